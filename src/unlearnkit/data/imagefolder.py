"""``imagefolder:PATH`` — any classification data set laid out as one folder per class::

    PATH/train/<class>/*.png|jpg|jpeg|bmp|gif|tif|tiff|webp|ppm|pgm|pbm   (suffix case-insensitive)
    PATH/test/<class>/…
    PATH/groups.json          optional: {"<class name or index>": <group id or name>, …}

Classes are the sub-folders of ``train/`` sorted by name (class ``k`` is the ``k``-th name);
``test/`` must have the same sub-folders (a :class:`DataError` lists the difference). Files with
other suffixes and hidden files are ignored; a class with no training image is an error.

Colour (option ``mode``): ``"auto"`` (default) stores one channel when every image is greyscale
(Pillow modes ``1``, ``L``, ``LA``, ``I``, ``I;16``, ``F``: e.g. MNIST saved as PNG) and RGB
otherwise (greyscale images among colour ones become 3 equal channels; alpha is dropped);
``"RGB"`` or ``"L"`` force one. Every image must have the size of the first one (train/<first
class>/<first file>); another size is a :class:`DataError` naming the file, unless ``resize=True``
(bilinear resize to the first image's size). Unreadable images are errors naming the file.

Images are decoded in a thread pool (``workers=``) and cached as ``.npy`` under
``$UNLEARNKIT_CACHE/images/`` keyed by the folder, each file's size and mtime and the options
(``cache=False`` turns this off). Normalisation: the per-channel mean/std of the training pixels,
computed at load. No augmentation by default (the right one depends on the data: pass
``crop_padding=4, hflip=True`` for CIFAR-like photos).

The class→group map (``groups``, for ``--forget subclass:K``) comes from the option ``groups=PATH``,
else from ``PATH/groups.json`` if present (format: :func:`~unlearnkit.data.images.read_group_map`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .images import (
    DecodeOptions, cached_arrays, channel_stats, check_options, decode_images, fingerprint, image_files, image_source,
    need_path, require_dir,
)
from .sources import DataSource, data_source

OPTIONS = {"groups": str, "mode": str, "resize": bool, "workers": int, "cache": bool, "crop_padding": int,
           "hflip": bool}


def class_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def split_files(folder: Path, classes: list[str], *, need_each: bool) -> tuple[list[Path], np.ndarray]:
    files: list[Path] = []
    labels: list[int] = []
    for k, name in enumerate(classes):
        images = image_files(folder / name)
        if need_each and not images:
            raise DataError(f"{folder / name}: no image files (expected *.png, *.jpg, …) for class {name!r}")
        files += images
        labels += [k] * len(images)
    if not files:
        raise DataError(f"{folder}: no image files in any class folder (expected {folder}/<class>/*.png, *.jpg, …)")
    return files, np.asarray(labels, dtype=np.int64)


@data_source("imagefolder", options=OPTIONS)
def load_imagefolder(path: str | None = None, **options) -> DataSource:
    """``--data imagefolder:PATH`` (module docstring). Options: ``groups=PATH``, ``mode="auto"``,
    ``resize=False``, ``workers=N``, ``cache=True``, ``crop_padding=0``, ``hflip=False``."""
    check_options("imagefolder", options, OPTIONS)
    opts = DecodeOptions.parse("imagefolder", options)
    root = need_path("imagefolder", path, "train/<class>/<images> and test/<class>/<images>")
    train_dir = require_dir(root / "train", "one sub-folder of images per class (train/<class>/*.png …)")
    test_dir = require_dir(root / "test", "one sub-folder of images per class (test/<class>/*.png …)")
    classes = class_folders(train_dir)
    if not classes:
        raise DataError(f"{train_dir}: no class folders; expected train/<class>/<images>")
    test_classes = class_folders(test_dir)
    if test_classes != classes:
        missing = sorted(set(classes) - set(test_classes))
        extra = sorted(set(test_classes) - set(classes))
        detail = "; ".join(part for part in (
            f"missing {', '.join(missing[:5])}" if missing else "",
            f"not in train/: {', '.join(extra[:5])}" if extra else "") if part)
        raise DataError(f"{test_dir}: its class folders differ from {train_dir} ({detail}); "
                        "train/ and test/ must hold the same classes")
    train, y_train = split_files(train_dir, classes, need_each=True)
    test, y_test = split_files(test_dir, classes, need_each=False)

    def decode():
        files = train + test
        x = decode_images(files, [str(p) for p in files], mode=opts.mode, resize=opts.resize, workers=opts.workers,
                          loader="imagefolder")
        return x[: len(train)], x[len(train):]

    key = fingerprint(train + test, str(root.resolve()), opts.mode, opts.resize)
    x_train, x_test = cached_arrays("imagefolder", key, ("train", "test"), decode, enabled=opts.cache,
                                    lengths=(len(train), len(test)))
    mean, std = channel_stats(x_train)
    groups_file = options.get("groups") or (root / "groups.json" if (root / "groups.json").is_file() else None)
    return image_source(
        "imagefolder", x_train, y_train, x_test, y_test, class_names=classes, mean=mean, std=std,
        crop_padding=opts.crop_padding, hflip=opts.hflip, groups_path=groups_file,
    )
