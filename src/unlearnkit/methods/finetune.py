"""FT — fine-tune on the retain set only (Warnecke et al. 2023; the SalUn/Unlearn-Sparse baseline).

Forgetting comes only from catastrophic forgetting of D_f while descending on D_r:
    min_θ  L_r(θ) = E_{(x,y)∈D_r} CE(f_θ(x), y)
FT never reads the forget set (``streams = ("retain",)``).
Defaults: the papers use 10 epochs at lr 0.01–0.1 on CIFAR; we keep 10 epochs, lr 0.01.

Passes per step: 1 forward + 1 backward (one retain batch).
"""
from __future__ import annotations

from dataclasses import dataclass

from .base import MethodConfig, register
from .loop import LoopMethod


@dataclass
class FinetuneConfig(MethodConfig):
    epochs: int = 10
    lr: float = 0.01
    # ours: the papers fix lr and epochs per dataset; lr around SGD's usable range
    search_space = {"lr": ("log", 1e-4, 1e-1), "epochs": ("int", 1, 10)}
    # text: each epoch is a full pass over the (large) retain QA; 3 keep a TOFU-sized bench in budget
    kind_defaults = {"text": {"epochs": 3}}


@register
class Finetune(LoopMethod):
    name = "finetune"
    summary = "FT: gradient descent on the retain set only"
    Config = FinetuneConfig
    streams = ("retain",)
    epoch_stream = "retain"

    def objective(self, model, task, batches, config, state):
        return task.loss(model, batches["retain"]).mean()  # L_r(θ)
