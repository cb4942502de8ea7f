"""``cifar10:PATH`` and ``cifar100:PATH`` — CIFAR-10/100 (Krizhevsky, 2009) from the "python version"
archives, unpacked as published (nothing is downloaded).

=============  =================================================  ========================================
source         folder (PATH is this folder or the one holding it)  files
=============  =================================================  ========================================
``cifar10``    ``cifar-10-batches-py``                            ``data_batch_1`` … ``data_batch_5``
                                                                  (train, 50,000), ``test_batch``
                                                                  (10,000), ``batches.meta``
``cifar100``   ``cifar-100-python``                               ``train`` (50,000), ``test`` (10,000),
                                                                  ``meta``
=============  =================================================  ========================================

Each file is a pickled dict written by Python 2 (protocol 2); it is read with ``encoding='bytes'``
(keys such as ``b'data'``). ``data`` is a ``uint8`` array ``[N, 3072]``: the 1,024 red, then green,
then blue values of a 32×32 image, row-major, so a reshape gives ``[N, 3, 32, 32]``. Labels are
``labels`` (CIFAR-10) or ``fine_labels`` and ``coarse_labels`` (CIFAR-100); the class names are
``label_names`` / ``fine_label_names`` / ``coarse_label_names`` in the meta file.

**Safe unpickling.** A pickle can name any importable callable and have it called while loading.
:class:`BatchUnpickler` resolves only the globals numpy needs to rebuild an array
(``numpy.core.multiarray._reconstruct`` — ``numpy._core`` in numpy 2 —, ``numpy.ndarray``,
``numpy.dtype``) and ``_codecs.encode`` limited to latin-1 (how a pickle written by Python 3 at
protocol 2 spells ``bytes``); any other global is refused with a :class:`DataError` naming the file
and the global, before anything is called.

CIFAR-100 keeps the 100 fine classes as the labels and sets ``groups`` to the fine→coarse map read
from the files' ``coarse_labels`` (each fine class belongs to one of 20 superclasses), so
``--forget subclass:K`` (train on the superclasses, forget fine class K; data/forget.py) works.
The loader option ``groups=PATH`` (a JSON map, see :func:`~unlearnkit.data.images.read_group_map`)
sets or replaces the map for either source.

Normalisation: the per-channel mean/std of the training pixels as commonly published
(CIFAR-10 0.4914/0.4822/0.4465 and 0.2470/0.2435/0.2616 — the exact values, not the often-copied
0.2023/0.1994/0.2010 —; CIFAR-100 0.5071/0.4865/0.4409 and 0.2673/0.2564/0.2762).
Augmentation: random crop with 4-pixel zero padding and horizontal flip, the standard recipe.
"""
from __future__ import annotations

import _codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .images import check_options, image_source, locate, need_path, require_file
from .sources import DataSource, data_source

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
CIFAR10_DIR, CIFAR100_DIR = "cifar-10-batches-py", "cifar-100-python"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
PIXELS = 3 * 32 * 32
OPTIONS = {"groups": str}  # a class→group map file


def _latin1_encode(text: Any, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as a Python-3 protocol-2 pickle uses it (``bytes`` as latin-1 text), nothing else."""
    if not isinstance(text, str) or encoding.replace("-", "").replace("_", "").lower() != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode called with {type(text).__name__}, {encoding!r}")
    return _codecs.encode(text, "latin-1")


def _array_globals() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }


class BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR batch: only numpy's array reconstruction may be referenced (see module docstring)."""

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="bytes")
        self.path = path
        self.allowed = _array_globals()

    def find_class(self, module: str, name: str) -> Any:
        target = self.allowed.get((module, name))
        if target is None:
            raise DataError(f"{self.path}: refused to unpickle the global {module}.{name}; a CIFAR batch may only "
                            "hold numpy arrays, lists, numbers and strings (the file is malformed or unsafe)")
        return target


def read_batch(path: Path, expected: str) -> dict[str, Any]:
    """A CIFAR pickle as a dict with ``str`` keys (``b'data'`` → ``'data'``)."""
    require_file(path, expected)
    try:
        with open(path, "rb") as handle:
            obj = BatchUnpickler(handle, path).load()
    except DataError:
        raise
    except Exception as exc:  # UnpicklingError, EOFError (truncated), ValueError, TypeError…
        raise DataError(f"{path}: not a readable CIFAR python pickle ({type(exc).__name__}: {exc}); "
                        f"expected {expected}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: holds a {type(obj).__name__}, expected a dict ({expected})")
    return {(k.decode("latin-1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _field(batch: dict[str, Any], key: str, path: Path) -> Any:
    if key not in batch:
        raise DataError(f"{path}: no {key!r} entry (it has {', '.join(sorted(batch)) or 'none'}); "
                        f"expected a CIFAR batch with {key!r}")
    return batch[key]


def _pixels(batch: dict[str, Any], path: Path) -> np.ndarray:
    data = _field(batch, "data", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        got = f"{data.dtype} array {list(data.shape)}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: 'data' is a {got}; expected a uint8 array [N, {PIXELS}] (3×32×32 pixels per row)")
    return data.reshape(-1, 3, 32, 32)


def _labels(batch: dict[str, Any], key: str, path: Path, count: int, num_classes: int) -> np.ndarray:
    values = _field(batch, key, path)
    try:
        labels = np.asarray(values)
    except Exception:  # ragged or odd objects
        labels = np.asarray([], dtype=object)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or len(labels) != count:
        raise DataError(f"{path}: {key!r} must be {count} integer labels (one per row of 'data')")
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.size:
        raise DataError(f"{path}: {key!r} holds {int(bad[0])}, outside 0..{num_classes - 1}")
    return labels.astype(np.int64)


def _names(meta: dict[str, Any], key: str, path: Path, count: int) -> list[str]:
    values = _field(meta, key, path)
    if not isinstance(values, (list, tuple)) or len(values) != count:
        raise DataError(f"{path}: {key!r} must list {count} class names")
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]


def _folder(loader: str, path: str | None, folder: str, marker: str, files: str) -> Path:
    return locate(need_path(loader, path, f"the {folder} folder ({files}) or the folder holding it"), folder, marker)


@data_source("cifar10", options=OPTIONS)
def load_cifar10(path: str | None = None, **options) -> DataSource:
    """``--data cifar10:PATH`` (module docstring). Option: ``groups=PATH``."""
    check_options("cifar10", options, OPTIONS)
    root = _folder("cifar10", path, CIFAR10_DIR, "batches.meta", "data_batch_1..5, test_batch, batches.meta")
    what = "a CIFAR-10 batch (a pickled dict with b'data' uint8 [N, 3072] and b'labels')"
    xs, ys = [], []
    for name in CIFAR10_TRAIN + ("test_batch",):
        file = root / name
        batch = read_batch(file, what)
        x = _pixels(batch, file)
        xs.append(x)
        ys.append(_labels(batch, "labels", file, len(x), 10))
    meta_path = root / "batches.meta"
    names = _names(read_batch(meta_path, "the CIFAR-10 meta file (a pickled dict with b'label_names')"),
                   "label_names", meta_path, 10)
    return image_source(
        "cifar10", np.concatenate(xs[:-1]), np.concatenate(ys[:-1]), xs[-1], ys[-1], class_names=names,
        mean=CIFAR10_MEAN, std=CIFAR10_STD, crop_padding=4, hflip=True, groups_path=options.get("groups"),
    )


def fine_to_coarse(fine: np.ndarray, coarse: np.ndarray, num_fine: int, path: Path,
                   known: dict[int, int] | None = None) -> dict[int, int]:
    """The superclass of each fine class, from paired label arrays; a fine class seen with two
    superclasses (here or against ``known``) is a DataError naming the file."""
    groups = dict(known or {})
    pairs = np.unique(np.stack([fine, coarse], axis=1), axis=0)
    for k, g in pairs.tolist():
        if groups.setdefault(k, g) != g:
            raise DataError(f"{path}: fine class {k} appears with superclasses {groups[k]} and {g}; "
                            "each fine class must belong to one superclass")
    if known is None:
        missing = [k for k in range(num_fine) if k not in groups]
        if missing:
            raise DataError(f"{path}: no examples of the fine classes {missing[:10]}; expected all {num_fine}")
    return groups


@data_source("cifar100", options=OPTIONS)
def load_cifar100(path: str | None = None, **options) -> DataSource:
    """``--data cifar100:PATH`` (module docstring): fine labels, superclasses in ``groups``.
    Option: ``groups=PATH`` (replaces the superclass map)."""
    check_options("cifar100", options, OPTIONS)
    root = _folder("cifar100", path, CIFAR100_DIR, "meta", "train, test, meta")
    what = "a CIFAR-100 batch (a pickled dict with b'data' uint8 [N, 3072], b'fine_labels', b'coarse_labels')"
    parts = {}
    groups = None
    for name in ("train", "test"):
        file = root / name
        batch = read_batch(file, what)
        x = _pixels(batch, file)
        fine = _labels(batch, "fine_labels", file, len(x), 100)
        coarse = _labels(batch, "coarse_labels", file, len(x), 20)
        groups = fine_to_coarse(fine, coarse, 100, file, known=groups)
        parts[name] = (x, fine)
    meta_path = root / "meta"
    meta = read_batch(meta_path, "the CIFAR-100 meta file (a pickled dict with b'fine_label_names', "
                                 "b'coarse_label_names')")
    names = _names(meta, "fine_label_names", meta_path, 100)
    _names(meta, "coarse_label_names", meta_path, 20)  # checked; DataSource keeps groups as ids
    return image_source(
        "cifar100", *parts["train"], *parts["test"], class_names=names, mean=CIFAR100_MEAN, std=CIFAR100_STD,
        crop_padding=4, hflip=True, groups=dict(sorted(groups.items())), groups_path=options.get("groups"),
    )
