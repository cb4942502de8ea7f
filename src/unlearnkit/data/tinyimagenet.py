"""``tinyimagenet:PATH`` — Tiny-ImageNet (Le & Yang, 2015; the CS231n release ``tiny-imagenet-200``)
from its unzipped folder, as published (nothing is downloaded).

PATH is ``tiny-imagenet-200`` or the folder holding it::

    wnids.txt                         the 200 class ids (WordNet ids, one per line)
    words.txt                         "wnid<TAB>name, synonym, …" for (at least) those ids
    train/<wnid>/images/*.JPEG        500 training images per class (<wnid>_boxes.txt is ignored)
    val/images/*.JPEG                 10,000 validation images …
    val/val_annotations.txt           … labelled here: "file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1"

The labelled validation set is the test set (the ``test/`` folder has no labels and is not read),
the usual practice of the unlearning papers. Classes are the wnids in sorted order (the order of a
torchvision ``ImageFolder`` over ``train/``, which the reference code uses); the class name is the
first name of the wnid's ``words.txt`` line. Training images are in class order, then file name;
validation images in the order of ``val_annotations.txt``.

Images are decoded with Pillow in a thread pool (``workers=``, default up to 8) and converted to
RGB: about 2 % of the JPEGs are greyscale and become 3 equal channels. Every image must be 64×64;
one that is not is a :class:`DataError` naming it unless the option ``resize=True`` is given
(bilinear resize to 64×64). A file that cannot be decoded (e.g. a truncated JPEG) is a
:class:`DataError` naming it.

Decoding 110,000 JPEGs takes a while, so the decoded ``uint8`` arrays are cached as ``.npy`` files
under ``$UNLEARNKIT_CACHE/images/`` (see :func:`~unlearnkit.data.images.cached_arrays`), keyed by
the folder, every listed file's size and mtime, and the options; a second load reads them back
(``cache=False`` turns this off). Memory: 1.2 GB for the training pixels.

Normalisation: the commonly published per-channel mean/std of the training set
(0.4802/0.4481/0.3975 and 0.2302/0.2265/0.2262). Augmentation: random crop with 4-pixel padding and
horizontal flip. Option ``groups=PATH``: a class→group map (keys: class index, wnid or class name).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .images import (
    cached_arrays, check_options, decode_all, default_workers, fingerprint, image_files, image_source, locate,
    need_path, option_flag, option_int, read_text_lines, require_dir,
)
from .sources import DataSource, data_source

TINY_DIR = "tiny-imagenet-200"
TINY_MEAN, TINY_STD = (0.4802, 0.4481, 0.3975), (0.2302, 0.2265, 0.2262)
SIZE = (64, 64)
OPTIONS = {"groups": str, "resize": bool, "workers": int, "cache": bool}


def read_wnids(path: Path) -> list[str]:
    """The class ids of ``wnids.txt``, sorted."""
    wnids = [line.strip() for line in read_text_lines(path, "one WordNet id (e.g. n01443537) per line")]
    wnids = [w for w in wnids if w]
    if not wnids:
        raise DataError(f"{path}: no class ids; expected one WordNet id (e.g. n01443537) per line")
    seen: set[str] = set()
    for wnid in wnids:
        if wnid in seen:
            raise DataError(f"{path}: class id {wnid} is listed twice")
        seen.add(wnid)
    return sorted(wnids)


def read_words(path: Path, wnids: list[str]) -> list[str]:
    """The first name of each wnid's line in ``words.txt``."""
    expected = "lines 'wnid<TAB>name, synonym, …'"
    wanted = set(wnids)
    names: dict[str, str] = {}
    for lineno, line in enumerate(read_text_lines(path, expected), start=1):
        if not line.strip():
            continue
        wnid, tab, text = line.partition("\t")
        if not tab:
            raise DataError(f"{path}: line {lineno} has no tab; expected {expected}")
        if wnid.strip() in wanted:
            names[wnid.strip()] = text.split(",")[0].strip() or wnid.strip()
    missing = [w for w in wnids if w not in names]
    if missing:
        raise DataError(f"{path}: no line for the class ids {', '.join(missing[:5])}"
                        f"{'…' if len(missing) > 5 else ''}; expected one line per id of wnids.txt")
    return [names[w] for w in wnids]


def train_files(root: Path, wnids: list[str]) -> tuple[list[Path], np.ndarray]:
    train = require_dir(root / "train", "one folder per class id (train/<wnid>/images/*.JPEG)")
    extra = sorted(p.name for p in train.iterdir() if p.is_dir() and p.name not in set(wnids))
    if extra:
        raise DataError(f"{train / extra[0]}: a class folder whose id is not in {root / 'wnids.txt'}")
    files: list[Path] = []
    labels: list[int] = []
    for k, wnid in enumerate(wnids):
        folder = require_dir(train / wnid / "images", f"the training images of class {wnid} (*.JPEG)")
        images = image_files(folder)
        if not images:
            raise DataError(f"{folder}: no images; expected the training JPEGs of class {wnid}")
        files += images
        labels += [k] * len(images)
    return files, np.asarray(labels, dtype=np.int64)


def val_files(root: Path, wnids: list[str]) -> tuple[list[Path], np.ndarray, Path]:
    annotations = root / "val" / "val_annotations.txt"
    expected = "lines 'file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1' labelling val/images"
    index = {w: k for k, w in enumerate(wnids)}
    images = require_dir(root / "val" / "images", "the validation images (*.JPEG)")
    files: list[Path] = []
    labels: list[int] = []
    for lineno, line in enumerate(read_text_lines(annotations, expected), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataError(f"{annotations}: line {lineno} has {len(fields)} field(s); expected {expected}")
        name, wnid = fields[0].strip(), fields[1].strip()
        if wnid not in index:
            raise DataError(f"{annotations}: line {lineno} labels {name} with {wnid!r}, which is not in wnids.txt")
        file = images / name
        if not file.is_file():
            raise DataError(f"{file}: not found; it is listed at line {lineno} of {annotations}")
        files.append(file)
        labels.append(index[wnid])
    if not files:
        raise DataError(f"{annotations}: no labelled images; expected {expected}")
    return files, np.asarray(labels, dtype=np.int64), annotations


@data_source("tinyimagenet", options=OPTIONS)
def load_tinyimagenet(path: str | None = None, **options) -> DataSource:
    """``--data tinyimagenet:PATH`` (module docstring). Options: ``groups=PATH``, ``resize=False``,
    ``workers=N`` (decoding threads), ``cache=True``."""
    check_options("tinyimagenet", options, OPTIONS)
    resize = option_flag("tinyimagenet", "resize", options.get("resize", False))
    cache = option_flag("tinyimagenet", "cache", options.get("cache", True))
    workers = option_int("tinyimagenet", "workers", options.get("workers", default_workers()))
    root = locate(need_path("tinyimagenet", path, f"the {TINY_DIR} folder (wnids.txt, words.txt, train/, val/) "
                            "or the folder holding it"), TINY_DIR, "wnids.txt")
    wnids = read_wnids(root / "wnids.txt")
    class_names = read_words(root / "words.txt", wnids)
    train, y_train = train_files(root, wnids)
    test, y_test, annotations = val_files(root, wnids)

    def decode():
        return (decode_all(train, [str(p) for p in train], mode="RGB", size=SIZE, resize=resize, workers=workers,
                           desc="decoding Tiny-ImageNet train"),
                decode_all(test, [str(p) for p in test], mode="RGB", size=SIZE, resize=resize, workers=workers,
                           desc="decoding Tiny-ImageNet val"))

    key = fingerprint(train + test + [annotations], str(root.resolve()), resize)
    x_train, x_test = cached_arrays("tinyimagenet", key, ("train", "test"), decode, enabled=cache,
                                    lengths=(len(train), len(test)))
    return image_source(
        "tinyimagenet", x_train, y_train, x_test, y_test, class_names=class_names, mean=TINY_MEAN, std=TINY_STD,
        crop_padding=4, hflip=True, groups_path=options.get("groups"), group_aliases=(wnids,),
    )
