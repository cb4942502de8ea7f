"""RL — random labels (Golatkar et al. 2020; the SalUn/Unlearn-Sparse baseline).

Fine-tune on the forget set with every target replaced by a wrong one (``task.relabel``: a
random other class for classifiers), together with the retain set:
    min_θ  E_{x∈D_f} CE(f_θ(x), ỹ) + E_{(x,y)∈D_r} CE(f_θ(x), y),   ỹ ≠ y drawn uniformly
The reference code concatenates D_f(relabelled) and D_r into one loader; we pair one forget
batch with one retain batch per step (``retain_weight=0`` gives relabelled-forget only).
"""
from __future__ import annotations

from dataclasses import dataclass

from .base import MethodConfig, register
from .loop import LoopMethod, log_term


@dataclass
class RandomLabelConfig(MethodConfig):
    epochs: int = 10
    lr: float = 0.01
    retain_weight: float = 1.0
    # ours: lr and epochs as for fine-tuning, retain weight from forget-only (0) to 2× (1 = the code)
    search_space = {"lr": ("log", 1e-4, 1e-1), "epochs": ("int", 1, 10), "retain_weight": ("float", 0.0, 2.0)}


@register
class RandomLabel(LoopMethod):
    name = "random_label"
    summary = "RL: fine-tune on forget examples relabelled at random, plus retain"
    Config = RandomLabelConfig
    streams = ("forget", "retain")
    epoch_stream = "forget"

    def prepare(self, model, task, split, config, ctx):
        return {"generator": ctx.generator}

    def objective(self, model, task, batches, config, state):
        relabelled = task.relabel(batches["forget"], generator=state["generator"])
        loss = task.loss(model, relabelled).mean()  # CE(f(x_f), ỹ)
        log_term(state, "forget", loss)  # terms unweighted: loss = forget + retain_weight·retain
        if config.retain_weight:
            retain = task.loss(model, batches["retain"]).mean()
            log_term(state, "retain", retain)
            loss = loss + config.retain_weight * retain
        return loss
