"""IDK — fine-tune the forget questions towards a refusal answer, plus the retain NLL
(TOFU, Maini, Feng, Schwarzschild, Lipton & Kolter 2024, "Preference optimization" baseline trained
with the NLL of "I don't know"-style answers; the IdkNLL baseline of later work).

    min_θ  γ·E_{x∈D_F} NLL_θ(ỹ_idk | x) + α·E_{(x,y)∈D_R} NLL_θ(y | x)

ỹ_idk comes from ``task.relabel``: for text the same prompt answered by one of the task's refusal
sentences (drawn per example with the run's seeded generator; ``CausalLMTask(refusals=...)`` sets
them, TOFU ships ~100 such sentences); the true answer is never pushed down, only replaced.
On a classifier ``relabel`` draws a uniformly random *wrong* label, so ``idk`` there is the
random-label baseline: ``alpha=0`` is RL without its retain term, and with ``alpha > 0`` it is
``random_label`` with ``retain_weight = alpha`` (same relabelling, same paired batches; the same
run step for step with ``gamma=1, freeze_norm=False``, since ``random_label`` trains BatchNorm in
batch-statistics mode).
The retain term is GradDiff's (:mod:`.graddiff`), so ``retain_loss="kl"`` also works.

Defaults. γ = 1, α = 1, retain NLL: TOFU's objective (unit weights). Optimisation: TOFU's
recipe (AdamW lr 1e-5, 5 epochs, batch 32) is for 7B LMs; ours for the digits CNN is
``random_label``'s (SGD lr 0.01, 10 epochs) with norm-layer statistics frozen (``freeze_norm``) and
gradient clipping at norm 1: with frozen BatchNorm and no clipping the run diverges within a few
steps (two seeds, both digits scenarios), with clipping it keeps RA ≈ 99.5% on class:0.

Passes per step: 2 forward + 2 backward (the forget questions with refusal answers, and a retain
batch; ``retain_loss="kl"`` adds a reference forward).
"""
from __future__ import annotations

from dataclasses import dataclass

from .base import register
from .graddiff import GradDiff, GradDiffConfig


@dataclass
class IDKConfig(GradDiffConfig):
    epochs: int = 10
    lr: float = 0.01
    grad_clip: float = 1.0
    # ours, as GradDiff's
    search_space = {"lr": ("log", 1e-4, 1e-1), "epochs": ("int", 1, 10), "alpha": ("log", 0.1, 10.0)}


@register
class IDK(GradDiff):
    name = "idk"
    summary = "IDK: fine-tune forget questions towards refusal answers (random wrong labels for classifiers), plus retain"
    Config = IDKConfig

    def forget_loss(self, model, task, batch, config, state):
        refusals = task.relabel(batch, generator=state["generator"])           # (x, ỹ_idk)
        return task.loss(model, refusals).mean()                                # E NLL_θ(ỹ_idk | x)
