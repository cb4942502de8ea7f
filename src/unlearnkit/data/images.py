"""Shared pieces of the image loaders (``cifar10``, ``cifar100``, ``tinyimagenet``, ``mnist``,
``fashion_mnist``, ``imagefolder``, ``hf``).

- file and folder checks whose :class:`~unlearnkit.errors.DataError` names the path and what was expected;
- decoding image files (or encoded bytes) with Pillow into ``uint8`` ``[C, H, W]`` arrays, in a
  thread pool for many files (Pillow's decoders release the GIL), every failure naming the file;
- the pixel cache: decoded arrays saved as ``.npy`` (``allow_pickle=False``) under
  ``$UNLEARNKIT_CACHE/images/``, keyed by the folder, the options and every file's size and mtime;
- per-channel mean/std of a training set (for sources without published statistics);
- the class→group map file (``groups=PATH`` on every image loader; ``groups.json`` of an image folder);
- :func:`image_source`, which assembles the :class:`DataSource` every image loader returns.

Stored pixels are ``uint8`` ``[N, C, H, W]`` tensors; the source's :class:`ImagePipeline` scales,
normalises and augments them batch by batch (data/transforms.py).
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Sequence, Union

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..values import parse_bool
from .dataset import TensorData
from .sources import DataSource
from ..cache import cache_root
from .transforms import ImagePipeline

log = logging.getLogger(__name__)

# Suffixes an image folder may hold (lower-cased); other files are ignored.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
# Pillow modes without colour: an image folder whose every file is one of these is stored as 1 channel.
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
# The scenarios `unlearnkit bench` runs on an image source when the user names none.
DEFAULT_SCENARIOS = ("class:0", "random:0.1")
# Bump when the decoding changes, so older cached pixels are not reused.
CACHE_VERSION = 1

# An image to decode: a file, or encoded bytes (a Hugging Face Image cell).
ImageInput = Union[str, Path, bytes]


# --- options and files ------------------------------------------------------------------------

def check_options(loader: str, options: dict, allowed: Iterable[str]) -> None:
    """A :class:`ConfigError` for an option ``loader`` does not take (not a bare TypeError)."""
    allowed = tuple(allowed)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"{loader} does not take the option(s) {', '.join(unknown)}; "
                          f"it takes: {', '.join(allowed) or 'none'}")


def option_flag(loader: str, name: str, value: object) -> bool:
    """A yes/no loader option given as a bool or as text (``true``/``false``/``1``/``0``)."""
    if isinstance(value, bool):
        return value
    try:
        return parse_bool(str(value))
    except ValueError:
        raise ConfigError(f"{loader}: option {name} must be true or false, got {value!r}") from None


def option_int(loader: str, name: str, value: object, minimum: int = 1) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{loader}: option {name} must be an integer, got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{loader}: option {name} must be at least {minimum}, got {number}")
    return number


def need_path(loader: str, path: str | None, layout: str) -> Path:
    """``PATH`` of ``--data NAME:PATH`` as an existing folder."""
    if not path:
        raise DataError(f"{loader} needs a folder: --data {loader}:PATH ({layout}); nothing is downloaded")
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"{loader}: folder not found: {root} (expected {layout})")
    if not root.is_dir():
        raise DataError(f"{loader}: {root} is not a folder (expected {layout})")
    return root


def locate(root: Path, folder_name: str, marker: str) -> Path:
    """``root/folder_name`` if ``root`` is the parent of the data set's folder, else ``root`` itself
    (a user may point at ``cifar-10-batches-py`` or at the folder that holds it)."""
    inner = root / folder_name
    if inner.is_dir() and not (root / marker).exists():
        return inner
    return root


def require_file(path: Path, expected: str) -> Path:
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "not found"
        raise DataError(f"{path}: {what}; expected {expected}")
    return path


def require_dir(path: Path, expected: str) -> Path:
    if not path.is_dir():
        what = "is a file" if path.exists() else "not found"
        raise DataError(f"{path}: {what}; expected a folder with {expected}")
    return path


def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder`` (by suffix, case-insensitive, hidden files skipped), sorted by name."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)


def read_text_lines(path: Path, expected: str) -> list[str]:
    require_file(path, expected)
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} ({exc}); expected {expected}") from None


# --- decoding ---------------------------------------------------------------------------------

def _open(source: ImageInput, name: str):
    from PIL import Image

    try:
        return Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
    except FileNotFoundError:
        raise DataError(f"{name}: image file not found") from None
    except Exception as exc:  # Pillow raises UnidentifiedImageError, OSError, SyntaxError, ValueError…
        raise DataError(f"{name}: not a readable image ({exc})") from None


def read_header(source: ImageInput, name: str) -> tuple[str, tuple[int, int]]:
    """(Pillow mode, (width, height)) of an image, reading only its header."""
    with _open(source, name) as image:
        return image.mode, image.size


def decode_image(source: ImageInput, name: str, *, mode: str = "RGB", size: tuple[int, int] | None = None,
                 resize: bool = False) -> np.ndarray:
    """One image as ``uint8`` ``[C, H, W]``: converted to ``mode`` ("RGB": greyscale, palette, CMYK
    and alpha images become 3-channel RGB; "L": 1 channel). ``size`` is (width, height): an image of
    another size is a :class:`DataError` naming ``name``, or is resized (bilinear) when ``resize``."""
    from PIL import Image

    with _open(source, name) as image:
        try:
            if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
                # 16-bit / 32-bit / float greyscale: Pillow's convert("L") clips at 255, so rescale:
                # 16-bit range → /257; float images in [0, 1] → ×255; otherwise taken as 0–255
                array = np.asarray(image, dtype=np.float64)
                if image.mode.startswith("I;16") or (image.mode == "I" and array.max(initial=0) > 255):
                    array = array / 257.0
                elif image.mode == "F" and array.max(initial=0) <= 1.0:
                    array = array * 255.0
                image = Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), "L")
            converted = image.convert(mode)
            if size is not None and converted.size != tuple(size):
                if not resize:
                    raise DataError(f"{name}: image is {converted.size[0]}×{converted.size[1]}, expected "
                                    f"{size[0]}×{size[1]} (pass resize=True to the loader to resize)")
                converted = converted.resize(tuple(size), Image.BILINEAR)
            array = np.asarray(converted, dtype=np.uint8)
        except DataError:
            raise
        except Exception as exc:  # truncated or corrupt data surfaces here, on the first full read
            raise DataError(f"{name}: cannot decode the image ({exc})") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def default_workers() -> int:
    """Decoding threads: the CPUs this process may use, at most 8."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cpus))


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    # disable=None: no bar when stderr is not a terminal (CI, logs)
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, disable=None if total >= 2000 else True)


def _parallel(function: Callable[[int], object], count: int, workers: int, desc: str) -> list:
    """``[function(i) for i in range(count)]`` in a thread pool; the first error is raised."""
    workers = max(1, int(workers))
    if workers == 1 or count < 64:
        return [function(i) for i in range(count)]
    out = [None] * count
    chunk = 256

    def run(start: int) -> int:
        stop = min(start + chunk, count)
        for i in range(start, stop):
            out[i] = function(i)
        return stop - start

    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        with _progress(count, desc) as bar:
            for future in [pool.submit(run, start) for start in range(0, count, chunk)]:
                bar.update(future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # after an error, skip the chunks not yet started
    return out


def headers(sources: Sequence[ImageInput], names: Sequence[str], workers: int) -> list[tuple[str, tuple[int, int]]]:
    return _parallel(lambda i: read_header(sources[i], names[i]), len(sources), workers, "reading image headers")


def choose_mode(requested: str, modes: Iterable[str], loader: str) -> str:
    """``"auto"``: ``"L"`` when every image is greyscale, else ``"RGB"``; or the mode asked for."""
    if requested == "auto":
        return "L" if all(m in GREY_MODES for m in modes) else "RGB"
    if requested not in ("RGB", "L"):
        raise ConfigError(f"{loader}: mode must be 'auto', 'RGB' or 'L', got {requested!r}")
    return requested


def common_size(sizes: Sequence[tuple[int, int]], names: Sequence[str]) -> tuple[int, int]:
    """The size every image has; the first one that differs from the first image is a DataError."""
    if not sizes:
        raise DataError("no images to read")
    first = tuple(sizes[0])
    for size, name in zip(sizes, names):
        if tuple(size) != first:
            raise DataError(f"{name}: image is {size[0]}×{size[1]} but {names[0]} is {first[0]}×{first[1]}; "
                            "every image must have the same size (pass resize=True to resize to the first one)")
    return first


def decode_all(sources: Sequence[ImageInput], names: Sequence[str], *, mode: str, size: tuple[int, int],
               resize: bool = False, workers: int | None = None, desc: str = "decoding images") -> np.ndarray:
    """All images as one ``uint8`` ``[N, C, H, W]`` array (``size`` = (width, height)), decoded in threads."""
    channels = 1 if mode == "L" else 3
    out = np.empty((len(sources), channels, size[1], size[0]), dtype=np.uint8)

    def one(i: int) -> None:
        out[i] = decode_image(sources[i], names[i], mode=mode, size=size, resize=resize)

    _parallel(one, len(sources), default_workers() if workers is None else workers, desc)
    return out


# --- the pixel cache --------------------------------------------------------------------------

def decode_images(sources: Sequence[ImageInput], names: Sequence[str], *, mode: str, resize: bool, workers: int,
                  loader: str) -> np.ndarray:
    """Every image as ``uint8`` ``[N, C, H, W]``: colour mode and size settled from the headers
    first (one size for all, or the first image's with ``resize``), then decoded in threads."""
    found = headers(sources, names, workers)
    chosen = choose_mode(mode, [m for m, _ in found], loader)
    sizes = [s for _, s in found]
    size = tuple(sizes[0]) if resize else common_size(sizes, names)
    return decode_all(sources, names, mode=chosen, size=size, resize=resize, workers=workers,
                      desc=f"decoding {loader} images")


@dataclass(frozen=True)
class DecodeOptions:
    """The decoding and augmentation options of the loaders that decode image files (imagefolder, hf)."""

    mode: str
    resize: bool
    cache: bool
    hflip: bool
    crop_padding: int
    workers: int

    @classmethod
    def parse(cls, loader: str, options: dict) -> "DecodeOptions":
        mode = options.get("mode", "auto")
        choose_mode(mode, [], loader)  # reject a bad mode before reading anything
        return cls(
            mode=mode,
            resize=option_flag(loader, "resize", options.get("resize", False)),
            cache=option_flag(loader, "cache", options.get("cache", True)),
            hflip=option_flag(loader, "hflip", options.get("hflip", False)),
            crop_padding=option_int(loader, "crop_padding", options.get("crop_padding", 0), minimum=0),
            workers=option_int(loader, "workers", options.get("workers", default_workers())),
        )


def fingerprint(files: Iterable[Path], *extra: object) -> str:
    """A digest of each file's path, size and mtime (and ``extra``): it changes when any file does."""
    digest = hashlib.sha256(repr((CACHE_VERSION,) + extra).encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def cached_arrays(tag: str, key: str, names: Sequence[str], build: Callable[[], Sequence[np.ndarray]],
                  enabled: bool = True, lengths: Sequence[int] | None = None) -> list[np.ndarray]:
    """Arrays ``names`` from ``$UNLEARNKIT_CACHE/images/{tag}-{key}-{name}.npy``, or ``build()`` them
    and save them there (atomically; plain ``.npy``, read back with ``allow_pickle=False``).
    ``lengths``: the expected number of rows of each array; a cached array of another length is rebuilt."""
    if not enabled:
        return list(build())
    folder = cache_root() / "images"
    paths = [folder / f"{tag}-{key}-{name}.npy" for name in names]
    if all(p.is_file() for p in paths):
        try:
            arrays = [np.load(p, allow_pickle=False) for p in paths]
            if lengths is None or [len(a) for a in arrays] == list(lengths):
                log.info("%s: decoded pixels from the cache %s", tag, folder)
                return arrays
            log.warning("%s: cached pixels have the wrong length; decoding again", tag)
        except (OSError, ValueError) as exc:
            log.warning("%s: cached pixels unreadable (%s); decoding again", tag, exc)
    arrays = list(build())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path, array in zip(paths, arrays):
            with tempfile.NamedTemporaryFile(dir=folder, suffix=".npy.tmp", delete=False) as handle:
                np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
            os.replace(handle.name, path)
    except OSError as exc:  # a read-only or full cache must not stop the run
        log.warning("%s: could not cache the decoded pixels in %s (%s)", tag, folder, exc)
    return arrays


# --- statistics -------------------------------------------------------------------------------

def channel_stats(x: np.ndarray | torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of ``[N, C, H, W]`` pixels, on the scale the pipeline sees them
    (``uint8`` divided by 255; floats as they are). Accumulated in float64, ``chunk`` images at a time."""
    x = x.numpy() if isinstance(x, torch.Tensor) else x
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    channels = x.shape[1]
    total = np.zeros(channels)
    squares = np.zeros(channels)
    for start in range(0, len(x), chunk):
        part = x[start:start + chunk].astype(np.float64) / scale
        total += part.sum(axis=(0, 2, 3))
        squares += np.square(part).sum(axis=(0, 2, 3))
    count = max(1, x.shape[0] * x.shape[2] * x.shape[3])
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
    std = np.where(std > 1e-8, std, 1.0)  # a constant channel: leave it unscaled
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


# --- class → group maps -----------------------------------------------------------------------

def read_group_map(path: str | Path, class_names: Sequence[str],
                   aliases: Sequence[Sequence[str]] = ()) -> dict[int, int]:
    """A class→group map from a JSON object: keys are class names or class indices (a key that is a
    class name is read as the name first; ``aliases`` are other per-class name lists accepted as keys,
    e.g. Tiny-ImageNet's wnids), values are group ids (integers) or group names (strings; numbered in
    sorted order). Every class must have a group."""
    path = Path(path).expanduser()
    require_file(path, "a JSON object mapping each class (name or index) to its group (id or name)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} ({exc})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); expected an object "
                        "mapping each class to its group") from None
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"{path}: expected a non-empty JSON object mapping each class (name or index) to its group")
    by_name: dict[str, int] = {}
    ambiguous: set[str] = set()
    for names in (class_names, *aliases):
        for k, name in enumerate(names):
            if by_name.setdefault(name, k) != k:
                ambiguous.add(name)
    n = len(class_names)
    values = list(raw.values())
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        group_of_value = {v: v for v in values}
    elif all(isinstance(v, str) for v in values):
        group_of_value = {v: i for i, v in enumerate(sorted(set(values)))}
    else:
        raise DataError(f"{path}: the groups must be all integers or all names (strings)")
    groups: dict[int, int] = {}
    for key, value in raw.items():
        if key in ambiguous:
            raise DataError(f"{path}: {key!r} names more than one class; use the class index instead")
        if key in by_name:
            k = by_name[key]
        else:
            try:
                k = int(key)
            except ValueError:
                raise DataError(f"{path}: {key!r} is neither a class name nor a class index "
                                f"(classes: {', '.join(class_names[:8])}{'…' if n > 8 else ''})") from None
            if not 0 <= k < n:
                raise DataError(f"{path}: class index {k} is out of range 0..{n - 1}")
        if k in groups:
            raise DataError(f"{path}: class {k} ({class_names[k]}) is listed twice")
        groups[k] = group_of_value[value]
    missing = [class_names[k] for k in range(n) if k not in groups]
    if missing:
        more = "…" if len(missing) > 10 else ""
        raise DataError(f"{path}: no group for the classes {', '.join(missing[:10])}{more}; every class needs one")
    return dict(sorted(groups.items()))


# --- the source -------------------------------------------------------------------------------

def _tensor(x) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x


def image_source(name: str, x_train, y_train, x_test, y_test, *, class_names: Sequence[str],
                 mean: Sequence[float], std: Sequence[float], crop_padding: int = 0, hflip: bool = False,
                 groups: dict[int, int] | None = None, groups_path: str | Path | None = None,
                 group_aliases: Sequence[Sequence[str]] = (),
                 default_scenarios: tuple[str, ...] = DEFAULT_SCENARIOS) -> DataSource:
    """The :class:`DataSource` of an image loader: ``uint8`` (or float) ``[N, C, H, W]`` pixels and
    ``int64`` labels in :class:`TensorData`, the :class:`ImagePipeline` with ``mean``/``std`` and the
    augmentation, and the class→group map (``groups_path``, the ``groups=`` option, overrides ``groups``;
    ``group_aliases``: other class names its keys may use)."""
    x_train, x_test = _tensor(x_train), _tensor(x_test)
    y_train = _tensor(np.asarray(y_train, dtype=np.int64)) if not isinstance(y_train, torch.Tensor) else y_train.long()
    y_test = _tensor(np.asarray(y_test, dtype=np.int64)) if not isinstance(y_test, torch.Tensor) else y_test.long()
    num_classes = len(class_names)
    for split, y in (("train", y_train), ("test", y_test)):
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
            raise DataError(f"{name}: {split} labels outside 0..{num_classes - 1}")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{name}: train images are {tuple(x_train.shape[1:])} but test images are "
                        f"{tuple(x_test.shape[1:])}")
    if groups_path is not None:
        groups = read_group_map(groups_path, class_names, group_aliases)
    return DataSource(
        name=name,
        train=TensorData(x_train, y_train),
        test=TensorData(x_test, y_test),
        num_classes=num_classes,
        input_shape=tuple(int(d) for d in x_train.shape[1:]),
        class_names=list(class_names),
        groups=groups,
        default_scenarios=default_scenarios,
        pipeline=ImagePipeline(mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std),
                               crop_padding=crop_padding, hflip=hflip),
    )
