"""Which torch device a run uses: ``--device`` and ``device=`` in the API mean the same."""
from __future__ import annotations

import torch

from .errors import ConfigError


def resolve_device(spec: str | torch.device | None) -> torch.device:
    """``auto`` (a CUDA GPU, else Apple's MPS, else the CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``;
    a device this machine does not have is a :class:`ConfigError`, not a torch traceback."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "auto").strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {spec!r}: expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"--device {spec}: this machine has no CUDA GPU torch can use "
                              f"(torch {torch.__version__}); use --device cpu or auto")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"--device {spec}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
        return device
    if device.type == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise ConfigError(f"--device {spec}: Apple's MPS is not available here; use --device cpu or auto")
        return device
    raise ConfigError(f"--device {spec!r}: expected auto, cpu, cuda, cuda:N or mps")
