"""Model registry: ``build_model(name, input_shape, num_classes)``."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, *, seed: int | None = None,
                **options) -> nn.Module:
    """A freshly initialised model; ``seed`` fixes the initialisation; ``options`` go to the
    architecture's factory (e.g. ``zero_init_residual=True`` for ``resnet18``)."""
    factory = MODELS.get(name)
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return factory(input_shape, num_classes, **options)
    return factory(input_shape, num_classes, **options)


def reinitialise(model: nn.Module, seed: int | None = None) -> nn.Module:
    """A fresh initialisation, in place: the model's own ``_init_weights`` scheme where it has one
    (Hugging Face models, and our resnet/vgg/vit; it also resets norm layers), otherwise every submodule that knows how (``reset_parameters`` /
    ``reset_running_stats``)."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        if hasattr(model, "_init_weights"):
            model.apply(model._init_weights)
            return model
        for module in model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            elif hasattr(module, "reset_running_stats"):
                module.reset_running_stats()
    return model
