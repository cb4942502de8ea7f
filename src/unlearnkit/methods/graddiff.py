"""GradDiff — gradient difference (Liu et al. 2022, "Continual learning and private unlearning";
the TOFU baseline of Maini et al. 2024, as configured in OpenUnlearning's ``GradDiff`` trainer).

Ascend the loss on the forget set and descend a retain term, on paired batches:

    min_θ  γ·(−L_F(θ)) + α·L_R(θ)
    L_F(θ) = E_{(x,y)∈D_F} NLL_θ(y|x)                       (mean answer-token NLL for text)
    L_R(θ) = E_{(x,y)∈D_R} NLL_θ(y|x)                       retain_loss="nll"  (TOFU's "Grad. Diff.")
           = (1/P) Σ_p KL(π_ref(·|p) ‖ π_θ(·|p)) over D_R   retain_loss="kl"   (TOFU's "KL Min.")

π_ref is the frozen original model; for "kl" the KL runs over the output positions of
``task.log_probs`` (the answer positions for text, one row per example for a classifier) and is
averaged over them (``batchmean``). One epoch is one pass over D_F, each forget batch paired with
the next retain batch (OpenUnlearning anchors on the forget set the same way).

This class is also the base of the NPO family (:mod:`.npo`) and of :mod:`.idk`: they replace the
forget term (:meth:`GradDiff.forget_loss`) and keep this retain term.

Where we differ from OpenUnlearning (read at locuslab/open-unlearning d3d7cf9):
- NLL terms are the mean over examples of each example's mean answer-token NLL (``task.loss``);
  OpenUnlearning uses the HF batch loss, a token-weighted mean over the whole batch. Same value
  when answers have equal length.
- its KL runs over every position of the retain sequences (prompt and padding included, no mask);
  ours over the answer positions only, the positions every other term uses.
- ``freeze_norm``: BatchNorm-type layers run on their running statistics during the run (our
  choice for classifiers: the frozen reference then agrees with the model at the start, so the KL
  starts at exactly 0, and single-class forget batches never drive the statistics). LMs have no
  such layers. ``freeze_norm=False`` trains them in batch-statistics mode like ``ga``.

Defaults. γ = 1, α = 1, retain NLL: OpenUnlearning ``configs/trainer/GradDiff.yaml``. Its TOFU
recipe (AdamW, lr 1e-5, weight decay 0.01, 10 epochs, effective batch 32, one warm-up epoch) is for
1B–8B models; ours for the digits CNN: SGD (momentum 0.9) lr 0.002, batch 64, 5 epochs, gradient
clipping at norm 1 (without clipping, or at lr 0.01, the unbounded ascent collapses the CNN to one
class, RA ≈ 11%; measured on class:0, two seeds). The divergence guard stops a run that overflows.

Passes per step: 2 forward + 2 backward (a forget and a retain batch; ``retain_loss="kl"`` adds the
frozen original's forward on the retain batch: 3 forward + 2 backward).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .base import MethodConfig, register
from .loop import LoopMethod, log_term
from .reference_model import freeze_norm_layers, frozen_copy


@dataclass
class GradDiffConfig(MethodConfig):
    """``gamma``: weight γ of the forget term.  ``alpha``: weight α of the retain term (0 drops it
    and its forward pass).  ``retain_loss``: nll | kl (KL to the frozen original).  ``freeze_norm``:
    BatchNorm-type layers on running statistics."""

    epochs: int = 5
    lr: float = 0.002
    grad_clip: float = 1.0
    gamma: float = 1.0
    alpha: float = 1.0
    retain_loss: str = "nll"
    freeze_norm: bool = True
    # ours: the papers fix these per benchmark; the retain weight alpha across two decades
    search_space = {"lr": ("log", 1e-4, 1e-1), "epochs": ("int", 1, 10), "alpha": ("log", 0.1, 10.0),
                    "retain_loss": ("choice", ["nll", "kl"])}

    def __post_init__(self):
        super().__post_init__()
        if self.retain_loss not in ("nll", "kl"):
            raise ConfigError(f"retain_loss must be nll or kl, got {self.retain_loss!r}")


def retain_term(model, task, batch, kind: str, reference=None) -> torch.Tensor:
    """L_R on one retain batch: mean NLL, or KL(π_ref ‖ π_θ) averaged over the output positions."""
    if kind == "nll":
        return task.loss(model, batch).mean()                                   # E NLL_θ(y|x), (x,y) ∈ D_R
    with torch.no_grad():
        log_p_ref = task.log_probs(reference, batch)                            # log π_ref(·|p)
    return F.kl_div(task.log_probs(model, batch), log_p_ref, log_target=True,
                    reduction="batchmean")                                      # (1/P) Σ_p KL(π_ref ‖ π_θ)


@register
class GradDiff(LoopMethod):
    name = "graddiff"
    summary = "GradDiff: ascent on forget plus descent (NLL) or KL-to-original on retain"
    Config = GradDiffConfig
    streams = ("forget", "retain")
    epoch_stream = "forget"

    def needs_reference(self, config) -> bool:
        """Whether the run needs the frozen original π_ref (the KL retain term; NPO always)."""
        return config.retain_loss == "kl" and config.alpha != 0

    def prepare(self, model, task, split, config, ctx):
        return {"reference": frozen_copy(model) if self.needs_reference(config) else None,
                "generator": ctx.generator}

    def set_train_mode(self, model, config):
        model.train()
        if config.freeze_norm:
            freeze_norm_layers(model)

    def forget_loss(self, model, task, batch, config, state) -> torch.Tensor:
        """The forget term (minimised); GradDiff: −L_F(θ)."""
        return -task.loss(model, batch).mean()                                  # −E NLL_θ(y|x), (x,y) ∈ D_F

    def objective(self, model, task, batches, config, state):
        forget = self.forget_loss(model, task, batches["forget"], config, state)
        log_term(state, "forget", forget)                                       # terms logged unweighted
        loss = config.gamma * forget                                            # γ·forget term
        if config.alpha:
            retain = retain_term(model, task, batches["retain"], config.retain_loss, state["reference"])
            log_term(state, "retain", retain)
            loss = loss + config.alpha * retain                                 # + α·L_R(θ)
        return loss
