"""Gradient-ascent family: GA and NegGrad+ (GA plus a retain term).

GA (Thudi et al. 2022; Jia et al. 2023):      min_θ  −L_f(θ)
NegGrad+ (Kurmanji et al. 2023, SCRUB paper):  min_θ  α·L_r(θ) − (1−α)·L_f(θ)

GA's ascent is unbounded; the loop's divergence guard stops a run whose loss overflows.
Defaults are ours for the embedded data (the papers' lr 1e-5–1e-4 for 5 epochs is tuned to
ResNet-18 on CIFAR, where one epoch is hundreds of steps); tune them against retrain.

Passes per step: GA 1 forward + 1 backward (one forget batch); NegGrad+ 2 forward + 2 backward (a
forget and a retain batch).
"""
from __future__ import annotations

from dataclasses import dataclass

from .base import MethodConfig, register
from .loop import LoopMethod, log_term


@dataclass
class GAConfig(MethodConfig):
    epochs: int = 5
    lr: float = 0.002
    # ours (digits/cnn): the paper gives no sweep; lr spans SGD's stable to diverging ascent
    search_space = {"lr": ("log", 1e-4, 1e-1), "epochs": ("int", 1, 10)}


@register
class GradientAscent(LoopMethod):
    name = "ga"
    summary = "GA: gradient ascent on the forget set"
    Config = GAConfig
    streams = ("forget",)
    epoch_stream = "forget"

    def objective(self, model, task, batches, config, state):
        return -task.loss(model, batches["forget"]).mean()  # −L_f(θ)


@dataclass
class NegGradPlusConfig(MethodConfig):
    """``alpha``: weight of the retain term (1 − alpha on the ascent term)."""

    epochs: int = 5
    lr: float = 0.01
    alpha: float = 0.9
    # ours: alpha from pure ascent (0) to pure fine-tuning (1)
    search_space = {"lr": ("log", 1e-4, 1e-1), "epochs": ("int", 1, 10), "alpha": ("float", 0.0, 1.0)}
    # text: each epoch is a full pass over the (large) retain QA; 2 keep a TOFU-sized bench in budget
    kind_defaults = {"text": {"epochs": 2}}


@register
class NegGradPlus(GradientAscent):
    name = "neggrad_plus"
    summary = "NegGrad+: descent on retain plus weighted ascent on forget"
    Config = NegGradPlusConfig
    streams = ("forget", "retain")
    epoch_stream = "retain"

    def objective(self, model, task, batches, config, state):
        retain = task.loss(model, batches["retain"]).mean()  # L_r(θ)
        ascent = super().objective(model, task, batches, config, state)  # −L_f(θ)
        log_term(state, "forget", ascent)  # terms unweighted: loss = α·retain + (1 − α)·forget
        log_term(state, "retain", retain)
        return config.alpha * retain + (1.0 - config.alpha) * ascent
