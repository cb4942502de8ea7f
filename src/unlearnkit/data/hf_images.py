"""``hf:PATH`` — an image classification data set saved with Hugging Face ``datasets``
(``DatasetDict.save_to_disk(PATH)``), read with ``datasets.load_from_disk`` (nothing is downloaded).

PATH must hold a ``DatasetDict`` with a training and a test split (``train`` and ``test``; other
names with ``train_split=`` / ``test_split=``). Columns:

- the image column: ``image`` or ``img``, else the first column of type ``datasets.Image``
  (option ``image_column=`` to choose). An ``Image`` column is decoded with Pillow (its stored
  bytes, or its file path) like an image folder: option ``mode`` ``"auto"`` (1 channel if every
  image is greyscale, else RGB; the default), ``"RGB"`` or ``"L"``; every image the size of the
  first one unless ``resize=True``; decoded in threads (``workers=``) and cached as ``.npy`` under
  ``$UNLEARNKIT_CACHE/images/`` keyed by the folder's files (``cache=False`` turns this off).
  An array column (nested lists / ``Array2D``/``Array3D``) is taken as ``[N, H, W]``,
  ``[N, H, W, C]`` (C = 1 or 3) or ``[N, C, H, W]``; integers in 0–255 are stored as ``uint8``,
  floats as ``float32`` as they are (the pipeline uses floats unscaled).
- the label column: ``label``, ``labels`` or ``fine_label``, else the first ``ClassLabel`` column
  (option ``label_column=``). ``ClassLabel`` names become ``class_names``; plain integer labels
  give classes ``0..max`` named by their number; string labels become classes in sorted order.
  A negative label (``-1``: Hugging Face's "unlabelled") is an error naming the split.

Normalisation: the per-channel mean/std of the training pixels, computed at load. Augmentation
none by default (``crop_padding=``, ``hflip=`` options). Option ``groups=PATH``: a class→group map
(:func:`~unlearnkit.data.images.read_group_map`). Every failure is a :class:`DataError` naming the
folder, the split, the column and (for an image) the row.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..extras import require
from .images import (
    DecodeOptions, cached_arrays, channel_stats, check_options, decode_images, fingerprint, image_source, need_path,
)
from .sources import DataSource, data_source
from .dataset import unreadable_arrow_file

IMAGE_COLUMNS = ("image", "img")
LABEL_COLUMNS = ("label", "labels", "fine_label")
OPTIONS = {"groups": str, "image_column": str, "label_column": str, "train_split": str, "test_split": str,
           "mode": str, "resize": bool, "workers": int, "cache": bool, "crop_padding": int, "hflip": bool}


def _load(root: Path):
    datasets = require("datasets", "hf", "reading a Hugging Face dataset folder needs")
    try:
        return datasets, datasets.load_from_disk(str(root))
    except Exception as exc:  # datasets raises several kinds for a folder it cannot read
        broken = unreadable_arrow_file(root)
        if broken is not None:
            raise DataError(f"{broken}: a truncated or corrupt Arrow file in the dataset folder {root}") from None
        raise DataError(f"{root}: not a dataset folder written by save_to_disk ({type(exc).__name__}: {exc})") from None


def _pick(features: dict, given: str | None, preferred: tuple[str, ...], kind: type, what: str, where: str) -> str:
    columns = list(features)
    if given is not None:
        if given not in features:
            raise DataError(f"{where}: no column {given!r} (columns: {', '.join(columns)})")
        return given
    for name in preferred:
        if name in features:
            return name
    for name, feature in features.items():
        if isinstance(feature, kind):
            return name
    raise DataError(f"{where}: no {what} column (looked for {', '.join(preferred)} or a {kind.__name__} "
                    f"column; columns: {', '.join(columns)}); name it with the option "
                    f"{'image_column' if what == 'image' else 'label_column'}=")


def _labels(datasets, splits: dict[str, Any], column: str, root: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    feature = splits["train"][1].features[column]
    raw = {key: list(ds[column]) for key, (_, ds) in splits.items()}
    if isinstance(feature, datasets.ClassLabel):
        names = list(feature.names)
        labels = {key: np.asarray(values, dtype=np.int64) for key, values in raw.items()}
    elif all(isinstance(v, str) for values in raw.values() for v in values):
        names = sorted({v for values in raw.values() for v in values})
        index = {name: k for k, name in enumerate(names)}
        labels = {key: np.asarray([index[v] for v in values], dtype=np.int64) for key, values in raw.items()}
    else:
        try:
            labels = {key: np.asarray(values) for key, values in raw.items()}
        except Exception:
            labels = {}
        if not labels or any(a.ndim != 1 or not np.issubdtype(a.dtype, np.integer) for a in labels.values()):
            raise DataError(f"{root}: label column {column!r} must hold one integer (or string) label per row")
        names = [str(k) for k in range(int(max(a.max(initial=-1) for a in labels.values())) + 1)]
    for key, values in labels.items():
        split_name = splits[key][0]
        if len(values) and values.min() < 0:
            raise DataError(f"{root}: split {split_name!r} has label {int(values.min())} in column {column!r} "
                            "(unlabelled rows); choose a labelled split with test_split= / train_split=")
        if len(values) and values.max() >= len(names):
            raise DataError(f"{root}: split {split_name!r} has label {int(values.max())} in column {column!r}, "
                            f"outside its {len(names)} class names")
    if not names:
        raise DataError(f"{root}: label column {column!r} has no labels")
    return labels, names


def _array_images(ds, column: str, where: str) -> np.ndarray:
    try:
        x = np.asarray(ds.with_format("numpy", columns=[column])[:][column])
    except Exception as exc:
        raise DataError(f"{where}: cannot read column {column!r} as arrays ({exc})") from None
    if x.dtype == object or x.ndim not in (3, 4):
        raise DataError(f"{where}: column {column!r} must hold images of one shape, [H, W], [H, W, C] or [C, H, W]; "
                        f"got {'ragged rows' if x.dtype == object else f'an array {list(x.shape)}'}")
    if x.ndim == 3:
        x = x[:, None]
    elif x.shape[-1] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    elif x.shape[1] not in (1, 3):
        raise DataError(f"{where}: column {column!r} has images {list(x.shape[1:])}; expected 1 or 3 channels "
                        "first or last")
    if np.issubdtype(x.dtype, np.floating):
        return np.ascontiguousarray(x, dtype=np.float32)
    if x.dtype == np.bool_:
        return np.ascontiguousarray(x, dtype=np.uint8) * 255
    if np.issubdtype(x.dtype, np.integer):
        if x.size and (x.min() < 0 or x.max() > 255):
            raise DataError(f"{where}: column {column!r} holds integers outside 0..255; expected 8-bit pixels")
        return np.ascontiguousarray(x, dtype=np.uint8)
    raise DataError(f"{where}: column {column!r} holds {x.dtype} values; expected pixels")


def _image_cells(datasets, ds, column: str, where: str) -> tuple[list, list[str]]:
    cells = list(ds.cast_column(column, datasets.Image(decode=False))[column])
    sources, names = [], []
    for i, cell in enumerate(cells):
        data = cell.get("bytes") if isinstance(cell, dict) else None
        file = cell.get("path") if isinstance(cell, dict) else None
        if data is None and not file:
            raise DataError(f"{where}, column {column!r}, row {i}: no image (neither bytes nor a path)")
        sources.append(data if data is not None else file)
        names.append(f"{where}, column {column!r}, row {i}" + (f" ({file})" if file else ""))
    return sources, names


@data_source("hf", options=OPTIONS)
def load_hf_images(path: str | None = None, **options) -> DataSource:
    """``--data hf:PATH`` (module docstring). Options: ``image_column``, ``label_column``,
    ``train_split="train"``, ``test_split="test"``, ``groups=PATH``, ``mode="auto"``, ``resize=False``,
    ``workers``, ``cache=True``, ``crop_padding=0``, ``hflip=False``."""
    check_options("hf", options, OPTIONS)
    opts = DecodeOptions.parse("hf", options)
    root = need_path("hf", path, "a folder written by DatasetDict.save_to_disk with train and test splits")
    datasets, loaded = _load(root)
    if not isinstance(loaded, datasets.DatasetDict):
        raise DataError(f"{root}: holds a single Dataset; expected a DatasetDict with a train and a test split "
                        "(DatasetDict({'train': …, 'test': …}).save_to_disk(PATH))")
    wanted = {"train": options.get("train_split", "train"), "test": options.get("test_split", "test")}
    for key, split in wanted.items():
        if split not in loaded:
            raise DataError(f"{root}: no {split!r} split (splits: {', '.join(loaded)}); "
                            f"name the {key} split with {key}_split=")
    splits = {key: (split, loaded[split]) for key, split in wanted.items()}
    features = splits["train"][1].features
    image_column = _pick(features, options.get("image_column"), IMAGE_COLUMNS, datasets.Image, "image", str(root))
    label_column = _pick(features, options.get("label_column"), LABEL_COLUMNS, datasets.ClassLabel, "label", str(root))
    for key, (split, ds) in splits.items():
        for column in (image_column, label_column):
            if column not in ds.features:
                raise DataError(f"{root}: split {split!r} has no column {column!r} (columns: {', '.join(ds.features)})")
    labels, class_names = _labels(datasets, splits, label_column, root)

    if isinstance(features[image_column], datasets.Image):
        def decode():
            sources, names = [], []
            for key, (split, ds) in splits.items():
                s, n = _image_cells(datasets, ds, image_column, f"{root} split {split!r}")
                sources += s
                names += n
            x = decode_images(sources, names, mode=opts.mode, resize=opts.resize, workers=opts.workers, loader="hf")
            n_train = len(splits["train"][1])
            return x[:n_train], x[n_train:]

        files = sorted(p for p in root.rglob("*") if p.is_file())
        key = fingerprint(files, str(root.resolve()), image_column, wanted, opts.mode, opts.resize)
        x_train, x_test = cached_arrays("hf", key, ("train", "test"), decode, enabled=opts.cache,
                                        lengths=(len(splits["train"][1]), len(splits["test"][1])))
    else:
        x_train, x_test = (_array_images(ds, image_column, f"{root} split {split!r}") for split, ds in splits.values())
    mean, std = channel_stats(x_train)
    return image_source(
        "hf", x_train, labels["train"], x_test, labels["test"], class_names=class_names, mean=mean, std=std,
        crop_padding=opts.crop_padding, hflip=opts.hflip, groups_path=options.get("groups"),
    )
