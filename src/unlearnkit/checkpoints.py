"""Safe checkpoints: atomic safetensors writes that never overwrite an input, and reads that never
unpickle arbitrary objects.

Our own files (the cached originals, ``forget``'s output) are safetensors (:func:`save_weights`,
:func:`load_weights`). A user's own checkpoint (``forget --checkpoint``, ``bench --original``) is
read by :func:`load_into`: safetensors, or a ``torch.save`` file read with
``torch.load(weights_only=True)`` (tensors and plain containers only; a file that holds a pickled
class — a whole model, a custom object — is refused, never unpickled). It accepts what the
unlearning papers' code writes:

- a wrapper dict: ``{"state_dict": …, "epoch": …}`` (SalUn, Unlearn-Sparse), or the state under
  ``model_state_dict`` / ``model`` / ``net``, nested at most twice;
- ``module.`` (``DataParallel`` / DDP) and ``_orig_mod.`` (``torch.compile``) name prefixes;
- other ResNet-18 layouts, renamed onto ours (:data:`LAYOUTS`): torchvision's (SalUn's and
  Unlearn-Sparse's ResNet is written after it), and pytorch-cifar100's (SSD's);
- SalUn's / Unlearn-Sparse's in-model input normalisation buffers ``normalize.mean`` / ``.std``
  (dropped: the data pipeline normalises here), and BatchNorm ``num_batches_tracked`` counters
  missing from older files (the model's are kept).

Anything else that does not match is an error naming the missing and unexpected tensors and the
shape mismatches.
"""
from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import CheckpointError

log = logging.getLogger(__name__)


def state_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers as contiguous CPU tensors (shared storage is copied apart)."""
    return {name: t.detach().to("cpu").contiguous().clone() for name, t in model.state_dict().items()}


def save_weights(model: torch.nn.Module, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``model``'s state to ``path`` atomically and durably: a temp file in the same folder,
    fsync, rename, fsync of the folder (as ``atomic.write_text_atomic``) — after a crash or power
    loss the path holds the old file or the whole new one, and a hash recorded for it stays true.
    The file is readable by others (0644; mkstemp's is owner-only).

    Refuses to replace an existing file unless ``overwrite=True`` (used only for our own cache).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise CheckpointError(f"refusing to overwrite existing checkpoint {path}; choose another output path")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(state_tensors(model), tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except (OSError, SafetensorError) as exc:  # e.g. a full disk: nothing is left under the final name
        raise CheckpointError(f"{path}: cannot write the checkpoint ({exc})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    try:  # the rename itself is durable once the folder is synced (POSIX; not possible on Windows)
        folder = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(folder)
    except OSError:
        pass
    finally:
        os.close(folder)
    return path


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> torch.nn.Module:
    """Load a safetensors checkpoint into ``model`` (strict: every key must match)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{path}: tensor {name!r} has shape {tuple(tensor.shape)}, the model expects {tuple(expected[name].shape)}"
            )
    model.load_state_dict(tensors)
    return model


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_state(model: torch.nn.Module) -> str:
    """SHA-256 over the model's tensors (names, dtypes, shapes, bytes) in name order: the same for the
    same weights however they were saved (one file, shards, another folder)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state_tensors(model).items()):
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


# --- a user's own checkpoint: safetensors, or torch.save read with weights_only=True ------------

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")  # tried in this order
PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DDP, torch.compile
# SalUn / Unlearn-Sparse put the input normalisation inside the model (NormalizeByChannelMeanStd)
INPUT_NORMALISATION = ("normalize.mean", "normalize.std")


def _stage_rules() -> tuple[tuple[str, str], ...]:
    """pytorch-cifar100's BasicBlock: ``residual_function`` = Sequential(conv, BN, ReLU, conv, BN); its
    stages ``conv2_x`` … ``conv5_x`` are our ``layer1`` … ``layer4``."""
    parts = (("conv1", "residual_function.0"), ("bn1", "residual_function.1"), ("conv2", "residual_function.3"),
             ("bn2", "residual_function.4"), ("shortcut", "shortcut"))
    return tuple((f"layer{s}.{{b}}.{ours}.", f"conv{s + 1}_x.{{b}}.{theirs}.")
                 for s in range(1, 5) for ours, theirs in parts)


# Name prefixes of other ResNet-18 layouts, as (ours, theirs); ``{b}`` is a block index, the same on
# both sides; a name no rule matches is the same in both. Written from our model's names
# (models/resnet.py: conv1, bn1, layerN.M.{conv1,bn1,conv2,bn2}, layerN.0.shortcut.{0,1}, fc):
LAYOUTS: dict[str, tuple[tuple[str, str], ...]] = {
    # torchvision.models.resnet18, SalUn's and Unlearn-Sparse's ResNet (models/ResNet.py, torchvision's
    # code): the one difference is the block shortcut, ``downsample`` there (a 1×1 conv + BN, the same
    # Sequential indices 0 and 1)
    "torchvision": (("layer{s}.{b}.shortcut.", "layer{s}.{b}.downsample."),),
    # weiaicunzai/pytorch-cifar100 (SSD's src/resnet.py): the stem is Sequential(conv, BN, ReLU)
    "pytorch-cifar100": (("conv1.", "conv1.0."), ("bn1.", "conv1.1."), *_stage_rules()),
}


def _pattern(template: str) -> re.Pattern:
    pieces = re.split(r"\{(\w+)\}", template)
    return re.compile("".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>\\d+)" for i, p in enumerate(pieces)))


_COMPILED = {name: tuple((_pattern(ours), ours, _pattern(theirs), theirs) for ours, theirs in rules)
             for name, rules in LAYOUTS.items()}


def _rename(name: str, layout: str, to_ours: bool) -> str:
    for ours_re, ours, theirs_re, theirs in _COMPILED[layout]:
        match = (theirs_re if to_ours else ours_re).match(name)
        if match:
            return (ours if to_ours else theirs).format(**match.groupdict()) + name[match.end():]
    return name


def to_layout(state: Mapping[str, torch.Tensor], layout: str) -> dict[str, torch.Tensor]:
    """Our names → ``layout``'s (e.g. ``layer2.0.shortcut.0.weight`` → torchvision's
    ``layer2.0.downsample.0.weight``): how a model of ours would be named there."""
    return {_rename(name, layout, to_ours=False): tensor for name, tensor in state.items()}


def from_layout(state: Mapping[str, torch.Tensor], layout: str) -> dict[str, torch.Tensor]:
    """``layout``'s names → ours (the inverse of :func:`to_layout`)."""
    return {_rename(name, layout, to_ours=True): tensor for name, tensor in state.items()}


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with its header's length (8 bytes, little-endian), then the JSON header."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return 0 < int.from_bytes(head[:8], "little") <= path.stat().st_size - 8


def _refusal(path: Path, exc: Exception) -> CheckpointError:
    names: list[str] = []
    try:  # scans the pickle's opcodes; runs nothing
        names = list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # noqa: BLE001  (the legacy format: take the name from the refusal itself)
        pass
    names = names or re.findall(r"GLOBAL (\S+) was not an allowed global", str(exc))
    what = (", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")) if names else \
        "objects other than tensors and plain containers"
    return CheckpointError(
        f"{path} holds pickled Python objects ({what}); unlearnkit never unpickles them (unpickling can run any "
        f"code): re-save it as a plain state dict, torch.save(model.state_dict(), path), or as safetensors")


def _read(path: Path) -> tuple[object, str]:
    if _is_safetensors(path):
        try:
            return load_file(str(path)), "safetensors"
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None
    try:
        return torch.load(path, weights_only=True, map_location="cpu"), "torch.save (read with weights_only=True)"
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "allowed global" in text or "Unsupported global" in text:  # a class or function: never rebuilt
            raise _refusal(path, exc) from None
        reason = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)  # e.g. not a torch.save stream
        detail = reason.group(1) if reason else (text.strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path} is neither a safetensors file nor a readable torch.save file "
                              f"({detail[:120]})") from None
    except Exception as exc:  # noqa: BLE001  (a zip/pickle reader's error: KeyError, EOFError, RuntimeError…)
        detail = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is neither a safetensors file nor a readable torch.save file "
                              f"({detail})") from None


def _unwrap(obj, path: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The state dict inside ``obj``: ``obj`` itself, or under one of :data:`WRAPPER_KEYS` (at most twice)."""
    chain: list[str] = []
    for _ in range(2):  # a state dict's values are tensors: a wrapper key holding a mapping is never a weight
        if not isinstance(obj, Mapping):
            break
        key = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if key is None:
            break
        obj, chain = obj[key], chain + [key]
    where = "".join(f"[{k!r}]" for k in chain)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}{where} holds a {type(obj).__name__}, not a state dict (names → tensors)")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        keys = ", ".join(repr(k) for k in list(obj)[:8]) or "none"
        raise CheckpointError(f"{path}{where} holds no tensors (keys: {keys}); expected a state dict, or one under "
                              f"{', '.join(repr(k) for k in WRAPPER_KEYS)}")
    return tensors, chain


def _strip_prefixes(tensors: dict[str, torch.Tensor], path: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    out: dict[str, torch.Tensor] = {}
    removed: set[str] = set()
    for name, tensor in tensors.items():
        bare = name
        while bare.startswith(PREFIXES):
            prefix = next(p for p in PREFIXES if bare.startswith(p))
            removed.add(prefix)
            bare = bare[len(prefix):]
        if bare in out:
            raise CheckpointError(f"{path}: two tensors are named {bare!r} once {' / '.join(PREFIXES)} prefixes are "
                                  "removed")
        out[bare] = tensor
    return out, sorted(removed)


def _read_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    obj, fmt = _read(path)
    tensors, chain = _unwrap(obj, path)
    tensors, removed = _strip_prefixes(tensors, path)
    return tensors, {"format": fmt, "unwrapped": "/".join(chain) or None, "prefixes_removed": removed}


def load_state_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors or ``torch.save`` file (``weights_only=True``: nothing is unpickled
    but tensors and plain containers) on CPU, unwrapped from ``state_dict`` / ``model_state_dict`` /
    ``model`` / ``net`` and with ``module.`` / ``_orig_mod.`` prefixes removed; names as in the file
    otherwise. A file that needs arbitrary unpickling raises :class:`CheckpointError`."""
    return _read_state(path)[0]


def _listed(count_of: str, names: list[str], shown: int = 4) -> str:
    if not names:
        return f"0 {count_of}"
    more = ", …" if len(names) > shown else ""
    return f"{len(names)} {count_of} ({', '.join(names[:shown])}{more})"


def _shape_hint(model_state: Mapping[str, torch.Tensor], tensors: Mapping[str, torch.Tensor], arch: str | None) -> str:
    """A hint for the common mismatches: the other ResNet stem, another class count."""
    conv = tensors.get("conv1.weight")
    if conv is not None and "conv1.weight" in model_state and conv.dim() == 4 and \
            conv.shape[-1] != model_state["conv1.weight"].shape[-1]:
        if conv.shape[-1] == 7:
            return "; the file has the ImageNet stem (7×7 conv1): --model resnet18_imagenet"
        if conv.shape[-1] == 3:
            return "; the file has the CIFAR stem (3×3 conv1): --model resnet18"
    weights = [name for name in model_state if name.endswith(".weight")]
    head = weights[-1] if weights else None
    if head in tensors and tensors[head].dim() == 2 and tensors[head].shape[1:] == model_state[head].shape[1:] and \
            tensors[head].shape[0] != model_state[head].shape[0]:
        return (f"; the file's head ({head}) has {tensors[head].shape[0]} outputs, the data has "
                f"{model_state[head].shape[0]} classes")
    return ""


def load_into(model: torch.nn.Module, path: str | os.PathLike, *, arch: str | None = None) -> dict:
    """Load a user's checkpoint (see the module docstring) into ``model``; strict: every tensor of the
    model must come from the file and every tensor of the file must find a place, shapes equal.
    ``arch``: the architecture's name, for messages. Returns what the records keep: path, SHA-256 of
    the file, its format, the wrapper key and prefixes removed, the layout it was renamed from and
    what was dropped."""
    path = Path(path)
    tensors, details = _read_state(path)
    expected = model.state_dict()
    layout, best = "unlearnkit", len(expected.keys() & tensors.keys())
    for name in LAYOUTS:
        renamed = from_layout(tensors, name)
        score = len(expected.keys() & renamed.keys())
        if len(renamed) == len(tensors) and score > best:
            layout, best = name, score
    if layout != "unlearnkit":
        tensors = from_layout(tensors, layout)
    dropped = [name for name in INPUT_NORMALISATION if name in tensors and name not in expected]
    if dropped:
        values = {name: [round(v, 4) for v in tensors.pop(name).flatten().tolist()] for name in dropped}
        log.info("%s: dropped %s %s (input normalisation inside the model, as SalUn/Unlearn-Sparse save it; the "
                 "data pipeline normalises here)", path, " / ".join(dropped), values)
    missing = [name for name in expected if name not in tensors]  # in the model's order
    filled = [name for name in missing if name.endswith(".num_batches_tracked")]  # older files lack the counter
    missing = [name for name in missing if name not in filled]
    unexpected = [name for name in tensors if name not in expected]  # in the file's order
    model_name = f"the model (--model {arch})" if arch else "the model"
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match {model_name}: {_listed('missing', missing)}, "
                              f"{_listed('unexpected', unexpected)}{_shape_hint(expected, tensors, arch)}")
    wrong = [f"{name} {tuple(tensors[name].shape)} vs {tuple(t.shape)}" for name, t in expected.items()
             if name in tensors and tensors[name].shape != t.shape]
    if wrong:
        raise CheckpointError(f"{path} does not match {model_name}: {len(wrong)} shape mismatch(es) (file vs model: "
                              f"{'; '.join(wrong[:3])}{'; …' if len(wrong) > 3 else ''})"
                              f"{_shape_hint(expected, tensors, arch)}")
    for name in filled:
        tensors[name] = expected[name]
    model.load_state_dict(tensors, strict=True)
    details = {"path": str(path), "sha256": sha256_file(path), **details, "layout": layout,
               "dropped": dropped, "arch": arch}
    log.info("loaded %s into %s: %d tensors (%s%s%s%s)", path, arch or "the model", len(expected), details["format"],
             f", under {details['unwrapped']!r}" if details["unwrapped"] else "",
             f", removed {'/'.join(details['prefixes_removed'])}" if details["prefixes_removed"] else "",
             f", renamed from the {layout} layout" if layout != "unlearnkit" else "")
    return details
