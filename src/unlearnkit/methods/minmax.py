"""UAM — Unlearning-Aware Minimization (Kim, Kim, Chae, Yoon, NeurIPS 2025), and the shared
min–max step that ROSU (``rosu.py``) reuses.

    min_θ  max_{‖ε‖≤ρ}  L_r(θ + ε)    with ε chosen to *increase* the forget loss L_f

One step, as in the official code (torchunlearn ``optim/minimizer.py``, class ``UAM``, commit 405bab1):

    g_f = ∇L_f(θ)                     forget CE mean; forward on the concatenated forget+retain batch
    ε   = ρ·g_f / (‖g_f‖₂ + 1e-16)    global norm over all trainable parameters
    d   = ∇L_r(θ + ε)                 retain gradient at the surrogate point
    θ  ← θ − η·SGD-momentum(d)        the step is taken from θ (the surrogate point is undone first)

Subclasses change only the inner perturbation (:meth:`UAM.perturbation`) and, optionally, the
direction handed to the optimizer (:meth:`UAM.outer_direction`) and whether g_r = ∇L_r(θ) is
needed (:meth:`UAM.needs_retain_grad`).

Trace (``ctx.trace``, one value per step): ``rho``, ``loss_f`` (L_f(θ)), ``eps_norm`` (‖ε‖),
``loss_r_surrogate`` (L_r(θ+ε)); where g_r at θ was computed (ROSU, or ``trace_retain_grad``):
``cos_gf_gr``, ``eps_dot_gr`` (⟨ε, g_r⟩, the surrogate's first-order retain change), ``gr_norm``,
``cos_gr_stale`` (cos of the previous step's d with g_r).

Where the official code is silent or we deviate (each with its switch):

- ``concat_forward`` (default True, as the code): the forget loss is read off a forward pass on
  the concatenated forget+retain batch, so BatchNorm batch statistics are those of the merged
  batch. False runs the forget batch alone. The concatenation is ``task.concat``.
- ``exact_restore`` (default True, ours): θ is saved before adding ε and copied back, so the
  optimizer sees θ bit-for-bit; the code subtracts ε, which restores θ up to rounding. False
  subtracts (no parameter copy, for memory-bound models).
- ``rho_schedule="cosine"``: the code's ``CosineAnnealingUpdater``, ρ_t = ρ·½(1 + cos(π(t−s)/(T−s)))
  for t ≥ s = ``rho_cosine_start``, over T = all steps of the run (the code takes
  ``cosine_total_step`` as an argument; we use the run's length).
- Epochs pass over the retain set, the forget stream cycling, as the code's ``MergedLoaders``
  (its length is that of the longest loader).
- Not implemented: the code's ``ascent_sample`` (truncating the forget batch; use a smaller
  ``batch_size``) and ``gamma`` (stored but unused by the code's step; the paper's LLM algorithm
  box projects the retain step with (I − γP_f), which the code does not do).

Defaults: optimizer SGD(lr 0.01, momentum 0.9, weight decay 5e-4) from UAM's README (which also
uses 5 epochs and batches of 128 on CIFAR-10); ρ = 2, 3 epochs and batches of 64 are our choice
for the embedded digits data with the default cnn (the README leaves ρ to the user; ρ = 1 barely
forgets class 0, ρ ≥ 3 costs 35+ points of retain accuracy: ``benchmarks/claim_rosu.py``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .. import distributed
from ..data.dataset import num_batches
from ..errors import ConfigError
from .base import MethodConfig, RunContext, register
from .gradients import Grads, add_to_params, grads_of, gram, norm, scale, set_grads, trainable
from .loop import LoopMethod, check_finite
from .npo import negative_preference
from .reference_model import frozen_copy


# ---------------------------------------------------------------------------------------------
# The perturbation math, as pure functions over gradient lists
# ---------------------------------------------------------------------------------------------

def uam_perturbation(g_f: Grads, rho: float) -> Grads:
    """UAM's (and SAM's) inner step: ε = ρ·g_f / (‖g_f‖₂ + 1e-16), the norm over all tensors."""
    return scale(rho / (float(norm(g_f)) + 1e-16), g_f)


def cosine_rho(rho: float, step: int, total: int, start: int = 0) -> float:
    """The official ``CosineAnnealingUpdater`` (eta_min 0): ρ until ``start``, then cosine to 0 at ``total``."""
    if step < start:
        return rho
    span = total - start
    if span <= 1:
        return 0.0
    return rho * 0.5 * (1.0 + math.cos(math.pi * (step - start) / span))


# ---------------------------------------------------------------------------------------------
# The shared min–max method
# ---------------------------------------------------------------------------------------------

@dataclass
class UAMConfig(MethodConfig):
    """UAM's hyper-parameters (see the module docstring for sources and switches).

    ``rho``: perturbation radius ρ (ours for digits, see the module docstring).
    ``rho_schedule``: constant | cosine (the code's optional ``CosineAnnealingUpdater``).
    ``rho_cosine_start``: step at which the cosine annealing of ρ starts.
    ``concat_forward``: forget forward on the concatenated forget+retain batch (the code).
    ``exact_restore``: copy θ back instead of subtracting ε (ours; bit-exact).
    ``forget_loss``: the forget objective the perturbation ascends: ``ce`` (the code's forget CE)
    or ``npo`` (the LLM variant: F = −L_NPO with the frozen original as reference, β = ``npo_beta``;
    ascending F lowers the forget likelihood relative to the original's, bounded as NPO is; the
    forget forward then runs on the forget batch alone).
    ``trace_retain_grad``: also compute g_r = ∇L_r(θ) when the perturbation does not need it,
    only to record cos(g_f, g_r) and ⟨ε, g_r⟩ in ``ctx.trace`` (one extra retain forward and
    backward per step; the run itself is unchanged, buffers included).
    """

    epochs: int = 3
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    rho: float = 2.0
    rho_schedule: str = "constant"
    rho_cosine_start: int = 0
    concat_forward: bool = True
    exact_restore: bool = True
    trace_retain_grad: bool = False
    forget_loss: str = "ce"
    npo_beta: float = 0.1
    # text: an epoch is a full pass over the (large) retain QA at ~3 passes per step; one keeps a
    # TOFU-sized bench in budget (more epochs did not change tofu-mini's forget quality: 0.00)
    kind_defaults = {"text": {"epochs": 1}}
    # rho: the research notes' SAM-typical 0.01–1 extended to our digits default 2; lr, epochs ours
    search_space = {"lr": ("log", 1e-3, 1e-1), "epochs": ("int", 1, 6), "rho": ("log", 0.01, 5.0),
                    "rho_schedule": ("choice", ["constant", "cosine"])}

    def __post_init__(self):
        super().__post_init__()
        if self.rho < 0:
            raise ConfigError(f"rho must be >= 0, got {self.rho}")
        if self.forget_loss not in ("ce", "npo"):
            raise ConfigError(f"forget_loss must be ce or npo, got {self.forget_loss!r}")
        if self.rho_schedule not in ("constant", "cosine"):
            raise ConfigError(f"rho_schedule must be constant or cosine, got {self.rho_schedule!r}")


@register
class UAM(LoopMethod):
    """The min–max loop; UAM's perturbation. ROSU subclasses it and overrides :meth:`perturbation`."""

    name = "uam"
    summary = "UAM: retain descent at a forget-ascent surrogate point θ+ρ·g_f/‖g_f‖ (min–max)"
    Config = UAMConfig

    # -- hooks a subclass overrides ----------------------------------------------------------
    def needs_retain_grad(self, config: UAMConfig, state: dict) -> bool:
        """Whether the perturbation needs g_r = ∇L_r(θ) on this step's retain batch."""
        return False

    def perturbation(self, g_f: Grads, g_r: Grads | None, rho: float, config: UAMConfig,
                     state: dict) -> Grads:
        return uam_perturbation(g_f, rho)  # ε = ρ·g_f/‖g_f‖

    def outer_direction(self, d: Grads, config: UAMConfig, state: dict) -> Grads:
        """The gradient handed to the optimizer at θ (UAM: d = ∇L_r(θ+ε) unchanged)."""
        return d

    def keeps_last_d(self, config: UAMConfig) -> bool:
        """Whether to keep d = ∇L_r(θ+ε) for the next step (a stale g_r; traced as ``cos_gr_stale``)."""
        return config.trace_retain_grad

    # -- the step (the shared loop does the optimizer, schedule, clipping and counting) -------
    streams = ("forget", "retain")
    epoch_stream = "retain"  # one epoch = one pass over retain, as the code's merged loader

    def prepare(self, model, task, split, config, ctx):
        state = {"total": config.epochs * num_batches(split.retain, config.batch_size)}
        if config.forget_loss == "npo":
            state["reference"] = frozen_copy(model)  # π_ref: the original
        return state

    def anchor_gradients(self, model, task, batches, params, with_retain: bool, config: UAMConfig, step: int,
                         state: dict):
        """g_f = ∇L_f(θ) and, if asked, g_r = ∇L_r(θ), both at the anchor θ.

        g_r always comes from the retain batch alone, the same function L_r that is evaluated at
        the surrogate point, so ⟨ε, g_r⟩ is its first-order change. (With ``concat_forward`` the
        merged forward could give a retain gradient for one backward more, but with BatchNorm in
        train mode that is the gradient of another function: cosine ≈ 0.55 with the true one on
        digits class:0.) Cost: one more forward and backward on the retain batch.
        """
        forget, retain = batches["forget"], batches["retain"]
        if config.forget_loss == "npo":
            with torch.no_grad():
                ll_ref = task.log_likelihood(state["reference"], forget)  # log π_ref(y|x)
            ratio = task.log_likelihood(model, forget) - ll_ref  # r = log π_θ − log π_ref
            loss_f = -negative_preference(ratio, config.npo_beta)  # F = −L_NPO
        elif config.concat_forward:
            losses = task.loss(model, task.concat([forget, retain]))
            loss_f = losses[: task.batch_size(forget)].mean()  # L_f(θ): forget part of the merged batch
        else:
            loss_f = task.loss(model, forget).mean()  # L_f(θ)
        check_finite(loss_f.detach(), self.name, step)
        with distributed.weighted(forget):  # several processes: averaged by the forget batch's shares
            g_f = grads_of(loss_f, params)  # g_f
        g_r = None
        if with_retain:
            # an extra forward UAM does not make: keep the buffers (BatchNorm running statistics)
            # as they were, so ROSU differs from UAM only in ε, and the diagnostic changes nothing
            saved = [b.detach().clone() for b in model.buffers()]
            g_r = grads_of(task.loss(model, retain).mean(), params)  # g_r = ∇L_r(θ)
            with torch.no_grad():
                for b, s in zip(model.buffers(), saved):
                    b.copy_(s)
        return loss_f.detach(), g_f, g_r

    def gradient_step(self, model, task, batches, config, state, step, ctx):
        """Fill ``.grad`` with the outer direction: d = ∇L_r(θ+ε) taken at the surrogate point and
        handed back to θ (plus the subclass's outer adjustment)."""
        params = trainable(model)
        rho = config.rho if config.rho_schedule == "constant" else \
            cosine_rho(config.rho, step, state["total"], config.rho_cosine_start)
        needed = self.needs_retain_grad(config, state)
        loss_f, g_f, g_r = self.anchor_gradients(model, task, batches, params,
                                                 needed or config.trace_retain_grad, config, step, state)
        eps = self.perturbation(g_f, g_r if needed else None, rho, config, state)  # ε
        self.record(ctx, rho, loss_f, g_f, eps, g_r, state.get("last_d"))

        anchor = [p.detach().clone() for p in params] if config.exact_restore else None
        add_to_params(params, eps)  # θ + ε: the surrogate point
        loss_r = task.loss(model, batches["retain"]).mean()  # L_r(θ + ε)
        check_finite(loss_r.detach(), self.name, step)
        d = grads_of(loss_r, params)  # d = ∇L_r(θ + ε)
        if anchor is not None:
            with torch.no_grad():
                torch._foreach_copy_(params, anchor)  # back to θ, bit-exact
        else:
            add_to_params(params, eps, alpha=-1.0)  # θ + ε − ε (the code's restore)
        ctx.record("loss_r_surrogate", loss_r.item())
        ctx.log("forget", loss_f)  # L_f(θ), the ascended term (its sign as in the forget_loss: F for npo)
        ctx.log("retain", loss_r)  # L_r(θ + ε): the loss (the step's objective)
        if self.keeps_last_d(config):
            state["last_d"] = d

        set_grads(params, self.outer_direction(d, config, state))  # the loop then steps θ ← θ − η·(d)
        return loss_r.detach()

    @staticmethod
    def record(ctx: RunContext, rho: float, loss_f, g_f: Grads, eps: Grads, g_r: Grads | None,
               last_d: Grads | None) -> None:
        """Per-step trace. With g_r at θ: cos(g_f, g_r), ⟨ε, g_r⟩, ‖g_r‖, and cos(d_{t−1}, g_r)
        (how well last step's surrogate gradient would stand in for g_r). One pass (a Gram matrix)."""
        vectors = [g_f, eps] + ([g_r] if g_r is not None else [])
        if g_r is not None and last_d is not None:
            vectors.append(last_d)
        G = gram(vectors)
        ctx.record("rho", rho)
        ctx.record("loss_f", loss_f.item())
        ctx.record("eps_norm", float(G[1, 1].sqrt()))  # ‖ε‖
        if g_r is not None:
            ctx.record("cos_gf_gr", float(G[0, 2] / ((G[0, 0] * G[2, 2]).sqrt() + 1e-30)))  # cos(g_f, g_r)
            ctx.record("eps_dot_gr", float(G[1, 2]))  # ⟨ε, g_r⟩
            ctx.record("gr_norm", float(G[2, 2].sqrt()))  # ‖g_r‖
            if last_d is not None:
                ctx.record("cos_gr_stale", float(G[2, 3] / ((G[2, 2] * G[3, 3]).sqrt() + 1e-30)))
