"""``mnist:PATH`` and ``fashion_mnist:PATH`` — MNIST (LeCun et al., 1998) and Fashion-MNIST
(Xiao et al., 2017) from their IDX files, as published (nothing is downloaded).

PATH holds the four files, each plain or gzipped (``NAME`` or ``NAME.gz``):
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte`` (60,000), ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte`` (10,000). The spelling ``train-images.idx3-ubyte`` (a dot before ``idx``)
and torchvision's ``PATH/MNIST/raw/`` / ``PATH/FashionMNIST/raw/`` / ``PATH/raw/`` are found too.

IDX format: two zero bytes, a type byte (``0x08`` = unsigned byte, the only type these files use),
the number of dimensions, then each dimension as a big-endian 32-bit integer, then the values.
Images are ``[N, 28, 28]`` (stored as ``[N, 1, 28, 28]`` uint8), labels ``[N]`` in 0–9. The magic
number, the dimensions, the payload length (a truncated or over-long file) and the image/label
counts are checked; any mismatch is a :class:`DataError` naming the file.

Normalisation: the published training-set mean/std (MNIST 0.1307 / 0.3081, Fashion-MNIST
0.2860 / 0.3530). No augmentation (the usual recipe for these data sets). Option ``groups=PATH``.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from .images import check_options, image_source, need_path
from .sources import DataSource, data_source

UBYTE = 0x08
FILES = {
    "train_images": ("train-images", "idx3-ubyte", 3),
    "train_labels": ("train-labels", "idx1-ubyte", 1),
    "test_images": ("t10k-images", "idx3-ubyte", 3),
    "test_labels": ("t10k-labels", "idx1-ubyte", 1),
}
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot"]
OPTIONS = {"groups": str}  # a class→group map file


def find_idx(folder: Path, stem: str, kind: str) -> Path:
    """``stem-kind`` (or ``stem.kind``), plain or ``.gz``, in ``folder``."""
    for name in (f"{stem}-{kind}", f"{stem}.{kind}"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise DataError(f"{folder / f'{stem}-{kind}'}: not found (nor with .gz); expected the IDX file "
                    f"{stem}-{kind}[.gz] of the published MNIST layout")


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An unsigned-byte IDX array with ``ndim`` dimensions (module docstring), checked."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                raw = handle.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; a cut .gz is EOFError
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {exc}); expected an IDX file"
                        f"{' compressed with gzip' if path.suffix == '.gz' else ''}") from None
    header = 4 + 4 * ndim
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (the first two bytes must be zero); expected an IDX file")
    if raw[2] != UBYTE:
        raise DataError(f"{path}: IDX type 0x{raw[2]:02x}, expected 0x08 (unsigned bytes)")
    if raw[3] != ndim:
        raise DataError(f"{path}: IDX with {raw[3]} dimension(s), expected {ndim} "
                        f"({'images [N, rows, cols]' if ndim == 3 else 'labels [N]'})")
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "longer than its header says"
        raise DataError(f"{path}: {state}: dimensions {list(dims)} need {expected} bytes, the file has {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _idx_folder(loader: str, path: str | None, torchvision_name: str) -> Path:
    root = need_path(loader, path, "the folder of the four IDX files, e.g. train-images-idx3-ubyte[.gz]")
    for folder in (root, root / "raw", root / torchvision_name / "raw"):
        if any(folder.glob("train-images*")):
            return folder
    return root


def load_idx_source(name: str, path: str | None, *, mean, std, class_names, torchvision_name: str,
                    **options) -> DataSource:
    check_options(name, options, OPTIONS)
    folder = _idx_folder(name, path, torchvision_name)
    arrays, paths = {}, {}
    for key, (stem, kind, ndim) in FILES.items():
        paths[key] = find_idx(folder, stem, kind)
        arrays[key] = read_idx(paths[key], ndim)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != len(labels):
            raise DataError(f"{paths[f'{split}_labels']}: {len(labels)} labels for the {len(images)} images of "
                            f"{paths[f'{split}_images']}; the counts must match")
        bad = labels[labels >= len(class_names)]
        if bad.size:
            raise DataError(f"{paths[f'{split}_labels']}: label {int(bad[0])} outside 0..{len(class_names) - 1}")
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DataError(f"{paths['test_images']}: images are {list(arrays['test_images'].shape[1:])} but "
                        f"{paths['train_images']} has {list(arrays['train_images'].shape[1:])}")
    return image_source(
        name, arrays["train_images"][:, None].copy(), arrays["train_labels"],
        arrays["test_images"][:, None].copy(), arrays["test_labels"],
        class_names=class_names, mean=mean, std=std, groups_path=options.get("groups"),
    )


@data_source("mnist", options=OPTIONS)
def load_mnist(path: str | None = None, **options) -> DataSource:
    """``--data mnist:PATH`` (module docstring). Option: ``groups=PATH``."""
    return load_idx_source("mnist", path, mean=MNIST_MEAN, std=MNIST_STD,
                           class_names=[str(d) for d in range(10)], torchvision_name="MNIST", **options)


@data_source("fashion_mnist", options=OPTIONS)
def load_fashion_mnist(path: str | None = None, **options) -> DataSource:
    """``--data fashion_mnist:PATH`` (module docstring). Option: ``groups=PATH``."""
    return load_idx_source("fashion_mnist", path, mean=FASHION_MEAN, std=FASHION_STD,
                           class_names=list(FASHION_CLASSES), torchvision_name="FashionMNIST", **options)
