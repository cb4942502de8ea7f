"""The two ends of every table: ``original`` (do nothing) and ``retrain`` (exact unlearning).

Passes per step: ``retrain`` 1 forward + 1 backward (ordinary training on one retain batch);
``original`` takes no step.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..models.registry import reinitialise
from .base import Method, MethodConfig, register
from .training import TrainConfig, fit


@dataclass
class OriginalConfig(MethodConfig):
    """No hyper-parameter is used: the model is returned unchanged."""

    epochs: int = 0


@register
class Original(Method):
    name = "original"
    summary = "no change: the do-nothing row every table needs"
    Config = OriginalConfig

    def run(self, model, task, split, config, ctx):
        return model.to(ctx.device)


@register
class Retrain(Method):
    name = "retrain"
    summary = "train from scratch on the retain set only: the exact-unlearning reference"
    Config = TrainConfig
    accumulates_grads = True  # through fit's shared loop

    def run(self, model, task, split, config, ctx):
        reinitialise(model, seed=config.seed)
        return fit(model, task, split.retain, config, ctx)
