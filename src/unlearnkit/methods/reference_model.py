"""The frozen reference model θ_ref that several methods compare against (NPO's likelihood ratio,
GradDiff-KL's retain KL, RMU's retain activations, SCRUB's teacher; MOX and LUR could use it too).

- :func:`frozen_copy` — a deep copy of the model at the start of unlearning, in eval mode, with no
  parameter requiring a gradient (so no optimizer or autograd pass ever touches it), in the model's
  own dtype. Run it under ``torch.no_grad()``.
- **Where the copy lives.** By default on the model's device. A large model on one accelerator can
  keep its reference elsewhere (``--reference-device cpu`` / ``cuda:1``): ``frozen_copy(model,
  device=...)``, or :func:`set_reference_device` on the model beforehand (the CLI does this for a
  ``--hf-model``; the setting travels with deep copies of the model, so every method that calls
  ``frozen_copy(model)`` follows it without being told). The copy is made tensor by tensor on the
  target device (no second full copy on the model's device), tied weights stay tied, and the copy
  takes its inputs to its device and hands its outputs back on the device they came from, so the
  methods' code does not change. Only forward passes may use such a copy: a method that does
  arithmetic between θ and θ_ref parameters (MOX's extrapolation) keeps its own copy beside θ.
- :func:`freeze_norm_layers` — put the model's running-statistics norm layers (BatchNorm…) in eval
  mode. A model trained in train mode normalises by *batch* statistics while its frozen copy uses the
  running ones, so the two disagree before the first step (and single-class forget batches make the
  batch statistics meaningless). With the norm layers frozen, θ = θ_ref gives identical outputs, so
  ratios are exactly 1 and KLs exactly 0 at the start. Language models have no such layers (their
  LayerNorm/RMSNorm keeps no statistics), so this changes nothing there.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from .. import distributed
from ..errors import ConfigError

# the attribute set_reference_device keeps on the model (a plain attribute: deep copies keep it,
# save_pretrained / state_dict do not see it)
_ATTRIBUTE = "_unlearnkit_reference_device"


def set_reference_device(model: nn.Module, device: str | torch.device | None) -> nn.Module:
    """Keep the frozen references of ``model`` (and of its deep copies) on ``device``; None: on the
    model's own device. Returns ``model``."""
    if device is None:
        model.__dict__.pop(_ATTRIBUTE, None)
    else:
        object.__setattr__(model, _ATTRIBUTE, torch.device(device))
    return model


def reference_device_of(model: nn.Module) -> torch.device | None:
    """The device :func:`set_reference_device` chose for ``model``'s references (None: the model's)."""
    return model.__dict__.get(_ATTRIBUTE)


def _model_device(model: nn.Module) -> torch.device | None:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return None


def _move(value: Any, device: torch.device) -> Any:
    """Tensors in ``value`` (a tensor, tuple, list, dict or ModelOutput) on ``device``."""
    if torch.is_tensor(value):
        return value.to(device)
    if isinstance(value, dict):              # also transformers' ModelOutput (an OrderedDict)
        for key, item in list(value.items()):
            if torch.is_tensor(item):
                value[key] = item.to(device)
        return value
    if isinstance(value, (tuple, list)):
        return type(value)(_move(v, device) for v in value) if not hasattr(value, "_fields") else value
    return value


def _first_device(args, kwargs) -> torch.device | None:
    for value in list(args) + list(kwargs.values()):
        if torch.is_tensor(value):
            return value.device
    return None


def _serve_from(reference: nn.Module, device: torch.device) -> None:
    """Hooks on ``reference`` (which lives on ``device``): inputs go to ``device``, outputs come back
    to the device of the first input tensor."""
    origin: list[torch.device | None] = [None]

    def before(_module, args, kwargs):
        origin[0] = _first_device(args, kwargs)
        return _move(tuple(args), device), {k: _move(v, device) for k, v in kwargs.items()}

    def after(_module, _args, output):
        return output if origin[0] is None or origin[0] == device else _move(output, origin[0])

    reference.register_forward_pre_hook(before, with_kwargs=True)
    reference.register_forward_hook(after)


def _copy_to(model: nn.Module, device: torch.device) -> nn.Module:
    """A deep copy of ``model`` whose parameters and buffers are created on ``device`` directly."""
    memo: dict[int, Any] = {}
    with torch.no_grad():
        for parameter in model.parameters():     # shared (tied) parameters are listed once: they stay shared
            memo[id(parameter)] = nn.Parameter(parameter.detach().to(device, copy=True), requires_grad=False)
        for _, buffer in model.named_buffers(remove_duplicate=True):
            memo[id(buffer)] = buffer.detach().to(device, copy=True)
    return copy.deepcopy(model, memo)


def frozen_copy(model: nn.Module, device: str | torch.device | None = None) -> nn.Module:
    """θ_ref: a detached, eval-mode deep copy of ``model`` whose parameters require no gradient, in
    its dtype, on ``device`` (default: :func:`reference_device_of` the model, else its own device).
    A copy on another device than the model's serves its forward passes there and returns the
    outputs on the caller's device (module docstring)."""
    if distributed.is_sharded(model):  # FSDP2: no deep copy; the reference sharded like the model
        reference = distributed.sharded_reference(model)
        if reference is None:
            raise ConfigError("this method compares with a frozen reference, and an FSDP2-sharded model cannot be "
                              "copied: shard it with distributed.shard_model(model, reference=True)")
        return reference
    target = torch.device(device) if device is not None else reference_device_of(model)
    current = _model_device(model)
    if target is None or current is None or (target.type == current.type and target.index in (None, current.index)):
        reference = copy.deepcopy(model).eval()
        reference.requires_grad_(False)
        return reference
    reference = _copy_to(model, target).eval()
    reference.requires_grad_(False)
    _serve_from(reference, target)
    return reference


def norm_layers(model: nn.Module) -> list[nn.Module]:
    """The norm layers that keep running statistics (BatchNorm, InstanceNorm with tracking)."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats]


def freeze_norm_layers(model: nn.Module) -> None:
    """Eval mode for the running-statistics norm layers only (the rest keeps its mode)."""
    for module in norm_layers(model):
        module.eval()
