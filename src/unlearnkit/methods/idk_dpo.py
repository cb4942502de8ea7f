"""IdkDPO — direct preference optimisation towards a refusal and away from the forget answer, against
the frozen original, plus the retain NLL (the "preference optimisation" baseline of TOFU, Maini et al.
2024, with DPO of Rafailov et al. 2023, "Direct preference optimization: your language model is
secretly a reward model"; as OpenUnlearning runs it: trainer ``DPO`` fed the ``TOFU_QA_forget_idk``
dataset, ``configs/experiment/unlearn/tofu/idk.yaml``, ``configs/trainer/DPO.yaml``,
``src/trainer/unlearn/dpo.py``, ``src/trainer/utils.py::compute_dpo_loss``; locuslab/open-unlearning
@ d3d7cf9e).

With the sequence log-likelihood log π(y|x) = Σ_t log π(y_t | x, y_<t) (``task.log_likelihood``),
π_ref the frozen original, y_w = a refusal answer to the forget question x (preferred; ``task.relabel``,
as :mod:`.idk`) and y_l = the forget answer (rejected):

    h(x)     = β·[(log π_θ(y_w|x) − log π_ref(y_w|x)) − (log π_θ(y_l|x) − log π_ref(y_l|x))]
    ℓ_DPO(x) = −log σ(h(x))                                   (DPO, Rafailov et al. eq. 7)
    L(θ)     = γ·(2/β)·E_{x∈D_F} ℓ_DPO(x) + α·E_{(x,y)∈D_R} NLL_θ(y|x)

The 2/β factor is OpenUnlearning's (``compute_dpo_loss`` returns −(2/β)·mean log σ(h), the same scale
as its NPO, :mod:`.npo`); the DPO paper's loss is ℓ_DPO alone. At θ = θ_ref, h = 0 and ℓ_DPO = log 2
for every example (the forget term is (2/β)·log 2). The retain term is GradDiff's (:mod:`.graddiff`),
so ``retain_loss="kl"`` also works.

On a classifier ``relabel`` draws a uniformly random *wrong* label, so y_w is a random other class
and y_l the true one (log π(y|x) = log-softmax of the label).

Defaults. β = 0.1, γ = 1, α = 1, retain NLL: OpenUnlearning ``configs/trainer/DPO.yaml`` (its TOFU
recipe: AdamW lr 1e-5, 10 epochs, for 1B–8B models). Ours for the digits CNN: SGD lr 0.0015, 5 epochs,
clipping at norm 1, norm-layer statistics frozen so the ratios are exactly 1 at the start. Measured on
class:0 (two seeds, the same within 0.1): UA 100 %, RA 88.5 %, TA 85.5 %; at NPO's lr 0.002 RA falls to
79 %, at 0.001 UA reaches only 71 % (random:0.1: UA 0 at every lr tried, RA ≥ 99.5 % at 0.0015). Pushing
the forget class towards random other classes costs retain accuracy that NPO (RA 97.5 %) does not.

Passes per step: 5 forward + 3 backward (refusal and forget-answer rows, two batches' worth, forward
and backward under π_θ and forward under the frozen π_ref; a retain batch forward and backward).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import register
from .graddiff import GradDiff
from .npo import NPOConfig


@dataclass
class IdkDPOConfig(NPOConfig):
    """``beta``: β, the inverse temperature of the preference loss (OpenUnlearning DPO.yaml: 0.1), as
    NPO's (its range and check too). Digits: SGD lr 0.0015, 5 epochs, clipping at norm 1 (ours,
    measured: module docstring)."""

    lr: float = 0.0015


def dpo_terms(log_ratio_win: torch.Tensor, log_ratio_lose: torch.Tensor, beta: float) -> torch.Tensor:
    """ℓ_DPO = −log σ(β·(r_w − r_l)) per example, r = log π_θ(y|x) − log π_ref(y|x)."""
    return -F.logsigmoid(beta * (log_ratio_win - log_ratio_lose))


@register
class IdkDPO(GradDiff):
    name = "idk_dpo"
    summary = "IdkDPO: DPO preferring a refusal over the forget answer, against the frozen original, plus retain"
    Config = IdkDPOConfig

    def needs_reference(self, config) -> bool:
        return True                                                             # π_ref

    def log_ratios(self, model, task, batch, state) -> tuple[torch.Tensor, torch.Tensor]:
        """(r_w, r_l) per example: the refusal's and the forget answer's log π_θ − log π_ref."""
        refusals = task.relabel(batch, generator=state["generator"])           # (x, y_w)
        both = task.concat([refusals, batch])                                   # y_w rows, then y_l rows
        n = task.batch_size(batch)
        with torch.no_grad():
            ll_ref = task.log_likelihood(state["reference"], both)              # log π_ref(y|x)
        ratio = task.log_likelihood(model, both) - ll_ref                       # r = log π_θ − log π_ref
        return ratio[:n], ratio[n:]

    def forget_loss(self, model, task, batch, config, state):
        r_win, r_lose = self.log_ratios(model, task, batch, state)
        return (2.0 / config.beta) * dpo_terms(r_win, r_lose, config.beta).mean()   # (2/β)·E ℓ_DPO
