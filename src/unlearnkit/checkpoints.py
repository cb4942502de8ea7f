"""Safe checkpoints: safetensors only (no pickle), atomic writes, never overwrite an input."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import CheckpointError


def state_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers as contiguous CPU tensors (shared storage is copied apart)."""
    return {name: t.detach().to("cpu").contiguous().clone() for name, t in model.state_dict().items()}


def save_weights(model: torch.nn.Module, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``model``'s state to ``path`` atomically (temp file + rename).

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
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
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
