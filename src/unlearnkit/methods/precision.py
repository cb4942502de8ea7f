"""How the shared loop runs the arithmetic: mixed precision, memory format, compilation.

``Precision(amp="bf16")`` runs every step's forward and backward under ``torch.autocast`` in
bfloat16 (parameters and optimizer state stay float32); ``amp="fp16"`` adds a
``torch.amp.GradScaler`` (loss scaling, unscaled before clipping, steps skipped on overflow) and
needs the loop's own backward, so methods that compute their own gradients (look-aheads,
surrogate points: ``lur``, ``uam``/``rosu``, ``mox``…) accept bf16 only. ``channels_last`` puts
4-D weights (and image batches, through the data pipeline) in channels-last memory format, which
tensor-core convolutions prefer. ``compile`` hands ``torch.compile(model)`` to the method's
forward passes; the optimizer, hooks and the saved weights use the plain module.
``checkpointing`` (Hugging Face models) recomputes activations in the backward pass instead of
keeping them: less memory for ~1.3× the time, the switch for language models that do not fit.

These are speed switches: they change results only at floating-point rounding level (bf16/fp16
more than that). ``benchmarks/vision_speed.py`` measures them.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    amp: str = "none"
    channels_last: bool = False
    compile: bool = False
    checkpointing: bool = False
    # low-precision (bf16/fp16) parameters stepped through fp32 master copies: the optimizer's state
    # and the update are fp32, the model keeps its dtype (an update below bf16's resolution is not lost)
    master_weights: bool = False
    # deterministic kernels (torch.use_deterministic_algorithms, cuDNN flags, cuBLAS workspace) for the run
    deterministic: bool = False

    def __post_init__(self):
        if self.amp not in AMP_DTYPES:
            raise ConfigError(f"amp must be one of {', '.join(AMP_DTYPES)}, got {self.amp!r}")

    def autocast(self, device: torch.device):
        dtype = AMP_DTYPES[self.amp]
        return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)

    def scaler(self, device: torch.device) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(device.type) if self.amp == "fp16" else None

    def prepare(self, model: nn.Module) -> nn.Module:
        """The module the method's forwards go through (``model`` itself unless compiling)."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        if self.checkpointing:
            if not (hasattr(model, "gradient_checkpointing_enable") or hasattr(model, "activation_checkpointing_enable")):
                raise ConfigError("gradient checkpointing is for Hugging Face models; this model has no switch for it")
            from ..models.hf import set_gradient_checkpointing

            set_gradient_checkpointing(model)
        return torch.compile(model) if self.compile else model
