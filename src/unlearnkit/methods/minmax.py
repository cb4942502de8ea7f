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

Passes per step: 3 forward + 3 backward (the merged forget+retain batch, which counts two, at θ; the
retain batch at θ+ε; ``trace_retain_grad`` adds a retain forward + backward at θ). The perturbation,
the restore and the trace are parameter-wise ops.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
import torch

from .. import distributed
from ..data.dataset import num_batches
from ..errors import ConfigError
from .base import MethodConfig, RunContext, register
from .gradients import Grads, grads_of, inner_products, scale, set_grads, trainable
from .loop import LoopMethod, check_finite
from .npo import negative_preference
from .reference_model import frozen_copy


# ---------------------------------------------------------------------------------------------
# The perturbation math, as pure functions over gradient lists
# ---------------------------------------------------------------------------------------------

# run state key: inner products the perturbation computed, {(i, j): value} over [g_f, ε, g_r], for the trace
KNOWN_PRODUCTS = "_known_products"


def uam_perturbation(g_f: Grads, rho: float) -> Grads:
    """UAM's (and SAM's) inner step: ε = ρ·g_f / (‖g_f‖₂ + 1e-16), the norm over all tensors."""
    (sq_norm,) = inner_products([g_f], [(0, 0)])
    return scale(rho / (math.sqrt(sq_norm) + 1e-16), g_f)


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
    ``rho_scale``: absolute (ρ is the radius, the papers') | relative (ours, scale-free: the radius is
    ρ × ‖θ₀‖, the norm of the trainable parameters at the start of the run, so one value perturbs
    models of any weight scale by the same proportion).
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
    rho_scale: str = "absolute"
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
        if self.rho_scale not in ("absolute", "relative"):
            raise ConfigError(f"rho_scale must be absolute or relative, got {self.rho_scale!r}")


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
        """ε from g_f (and g_r where :meth:`needs_retain_grad`). May leave inner products it
        computed in ``state[KNOWN_PRODUCTS]`` ({(i, j): value} over [g_f, ε, g_r]) for :meth:`record`."""
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
        if config.rho_scale == "relative":  # the unit of ρ: ‖θ₀‖ over the trainable parameters
            (sq,) = inner_products([[p.detach() for p in trainable(model)]], [(0, 0)])
            state["rho_unit"] = math.sqrt(sq)
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
        radius = config.rho * state.get("rho_unit", 1.0)  # ρ, or ρ·‖θ₀‖ (rho_scale="relative")
        rho = radius if config.rho_schedule == "constant" else \
            cosine_rho(radius, step, state["total"], config.rho_cosine_start)
        needed = self.needs_retain_grad(config, state)
        loss_f, g_f, g_r = self.anchor_gradients(model, task, batches, params,
                                                 needed or config.trace_retain_grad, config, step, state)
        eps = self.perturbation(g_f, g_r if needed else None, rho, config, state)  # ε
        self.record(ctx, rho, loss_f, g_f, eps, g_r, state.get("last_d"), state.pop(KNOWN_PRODUCTS, None))

        anchor = _anchor_copy(params, state) if config.exact_restore else None
        with torch.no_grad():
            torch._foreach_add_(params, eps)  # θ + ε: the surrogate point
        loss_r = task.loss(model, batches["retain"]).mean()  # L_r(θ + ε)
        check_finite(loss_r.detach(), self.name, step)
        d = grads_of(loss_r, params)  # d = ∇L_r(θ + ε)
        with torch.no_grad():
            if anchor is not None:
                torch._foreach_copy_(params, anchor)  # back to θ, bit-exact
            else:
                torch._foreach_sub_(params, eps)  # θ + ε − ε (the code's restore)
        ctx.record("loss_r_surrogate", loss_r.item())
        ctx.log("forget", loss_f)  # L_f(θ), the ascended term (its sign as in the forget_loss: F for npo)
        ctx.log("retain", loss_r)  # L_r(θ + ε): the loss (the step's objective)
        kept = self.keeps_last_d(config)
        if kept:
            state["last_d"] = d

        direction = self.outer_direction(d, config, state)
        # the loop then steps θ ← θ − η·(d). The gradients are fresh tensors: handed over as they are,
        # but a copy where d is also kept (clipping or a pre-step hook may scale .grad in place)
        set_grads(params, direction, copy=kept and direction is d)
        return loss_r.detach()

    @staticmethod
    def record(ctx: RunContext, rho: float, loss_f, g_f: Grads, eps: Grads, g_r: Grads | None,
               last_d: Grads | None, known: dict[tuple[int, int], float] | None = None) -> None:
        """Per-step trace. With g_r at θ: cos(g_f, g_r), ⟨ε, g_r⟩, ‖g_r‖, and cos(d_{t−1}, g_r)
        (how well last step's surrogate gradient would stand in for g_r). One pass over the tensors
        for the products the trace reads (without g_r: ‖ε‖ alone) that are not ``known`` already
        ({(i, j): ⟨v_i, v_j⟩} over [g_f, ε, g_r, d_{t−1}], e.g. from the perturbation's own pass)."""
        pairs = [(1, 1)]  # ‖ε‖²
        if g_r is not None:
            pairs += [(0, 0), (2, 2), (0, 2), (1, 2)]  # ‖g_f‖², ‖g_r‖², ⟨g_f, g_r⟩, ⟨ε, g_r⟩
            if last_d is not None:
                pairs += [(3, 3), (2, 3)]  # ‖d_{t−1}‖², ⟨g_r, d_{t−1}⟩
        G = dict(known or {})
        missing = [pair for pair in pairs if pair not in G]
        G.update(zip(missing, inner_products([g_f, eps, g_r, last_d], missing)))
        ctx.record("rho", rho)
        ctx.record("loss_f", loss_f.item())
        ctx.record("eps_norm", math.sqrt(G[1, 1]))  # ‖ε‖
        if g_r is not None:
            ctx.record("cos_gf_gr", G[0, 2] / (math.sqrt(G[0, 0] * G[2, 2]) + 1e-30))  # cos(g_f, g_r)
            ctx.record("eps_dot_gr", G[1, 2])  # ⟨ε, g_r⟩
            ctx.record("gr_norm", math.sqrt(G[2, 2]))  # ‖g_r‖
            if last_d is not None:
                ctx.record("cos_gr_stale", G[2, 3] / (math.sqrt(G[2, 2] * G[3, 3]) + 1e-30))


def _anchor_copy(params: list[torch.Tensor], state: dict) -> list[torch.Tensor]:
    """θ copied into buffers kept in the run ``state`` and reused every step (no per-step allocation)."""
    anchor = state.get("_anchor")
    if anchor is None or len(anchor) != len(params) or any(a.shape != p.shape or a.dtype != p.dtype
                                                             or a.device != p.device for a, p in zip(anchor, params)):
        anchor = state["_anchor"] = [torch.empty_like(p, requires_grad=False) for p in params]
    with torch.no_grad():
        torch._foreach_copy_(anchor, params)
    return anchor

