"""ROSU — Retain-Orthogonal Surrogate Unlearning ("Retain-Neutral Surrogates for Min–Max
Unlearning", Cai, Kim, Kim, Choi, Jin, Park, Joo; arXiv 2605.05871, 2026).

UAM's min–max step (``minmax.py``) with the inner perturbation constrained to leave the retain
loss unchanged to first order:

    max_ε ⟨g_f, ε⟩   s.t.  ⟨g_r, ε⟩ = 0,  ‖ε‖₂ ≤ ρ
    ⇒  ε* = ρ·u,   u = P g_f / ‖P g_f‖,   P = I − g_r g_rᵀ / ‖g_r‖²

with g_f = ∇L_f(θ), g_r = ∇L_r(θ) on the step's forget and retain batches. Then, as in UAM,
d = ∇L_r(θ + ε*) is "transported" back: the optimizer steps from θ with d.

Only the abstract of the paper could be read. The closed form above is forced by its
constrained problem; everything else is our choice, each with a switch:

- g_r at θ (``reuse_retain_grad``, default False = fresh). Fresh: one more forward and backward
  on the step's retain batch at θ (the same function L_r that is evaluated at θ + ε, so the
  constraint is exact for it; buffers such as BatchNorm running statistics are left as they
  were, so ROSU differs from UAM only in ε). Passes per step: UAM = forward+backward on
  [forget; retain] + forward+backward on retain at θ+ε; ROSU adds forward+backward on retain
  at θ. Measured on digits/cnn (63 steps, one thread, CPU seconds): UAM 1.03, ROSU 1.38
  (+34%), ROSU with reuse 1.09. True reuses the previous step's d = ∇L_r(θ'+ε') as the basis:
  UAM's cost, but that vector is from another batch and point, and on digits it is nearly
  orthogonal to the current g_r (trace ``cos_gr_stale``: mean 0.02–0.04 over 756 steps), so
  projecting it out leaves ε ≈ UAM's; hence fresh is the default. (A merged-batch forward could
  give g_r for one backward more, but with BatchNorm in train mode that is the gradient of
  another function: cosine ≈ 0.55 with the retain-only one on digits class:0.)
- ``parallel_fallback`` when ‖P g_f‖ ≤ ``parallel_tol``·‖g_f‖ (g_f ∥ g_r, no retain-neutral
  ascent direction): "zero" (ε = 0, a plain retain-descent step; default, keeps ⟨ε, g_r⟩ = 0)
  or "uam" (UAM's ε = ρ·g_f/‖g_f‖). ``ctx.trace["parallel_fallback"]`` is 1.0 on the steps where it
  applied, else 0.0.
- ``amp`` κ, the "amplification along the retain-neutral direction" (form unknown): the
  optimizer receives d − κ·u, i.e. each step also pushes θ by lr·κ (before momentum) along u,
  a forget-increasing, first-order retain-neutral unit direction (normalised projected gradient
  ascent on L_f). κ = 0 (default) is pure retain-orthogonal UAM. No amplification when u is
  undefined (parallel fallback). On digits κ = 0.5 forgets much more at a small retain cost
  (``benchmarks/claim_rosu.py``); it is off by default because the paper's form is unconfirmed.
- ``per_layer``: project each parameter tensor on its own block of g_r (then ⟨ε, g_r⟩ = 0 still
  holds globally); default global (flattened) products, as UAM.

Passes per step: 4 forward + 4 backward (UAM's 3 + 3 and the retain batch at θ for a fresh g_r;
``reuse_retain_grad``: UAM's 3 + 3). The projection and the trace are parameter-wise ops.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .base import register
from .gradients import Grads, inner_products, scale
from .minmax import KNOWN_PRODUCTS, UAM, UAMConfig, uam_perturbation


def _project_out(g_f: Grads, g_r: Grads, per_layer: bool) -> tuple[Grads, tuple[float, float, float] | None]:
    """(P g_f, (‖g_f‖², ⟨g_f, g_r⟩, ‖g_r‖²) when the global pass computed them, else None); see
    :func:`project_out`."""
    if per_layer:
        return [p for f, r in zip(g_f, g_r) for p in _project_out([f], [r], False)[0]], None
    products = inner_products([g_f, g_r], [(0, 0), (0, 1), (1, 1)])  # ‖g_f‖², ⟨g_f, g_r⟩, ‖g_r‖²
    _, fr, rr = products
    if rr == 0.0:
        return list(g_f), tuple(products)
    p = list(torch._foreach_add(list(g_f), list(g_r), alpha=-fr / rr))  # g_f − (⟨g_f, g_r⟩/‖g_r‖²)·g_r
    (pr,) = inner_products([p, g_r], [(0, 1)])
    torch._foreach_add_(p, list(g_r), alpha=-pr / rr)  # second pass: remove the rounding residue
    return p, tuple(products)


def project_out(g_f: Grads, g_r: Grads, *, per_layer: bool = False) -> Grads:
    """P g_f = g_f − (⟨g_f, g_r⟩/‖g_r‖²)·g_r (per tensor with ``per_layer``); g_r = 0 leaves g_f.

    Two Gram–Schmidt passes, so ⟨P g_f, g_r⟩ stays at rounding level even when P g_f is small.
    """
    return _project_out(g_f, g_r, per_layer)[0]


def _neutral(g_f: Grads, g_r: Grads, per_layer: bool, tol: float,
             products: list | None = None) -> tuple[Grads, float] | None:
    """(P g_f, ‖P g_f‖), or None when ‖P g_f‖ ≤ tol·‖g_f‖ (see :func:`retain_neutral_direction`).
    ``products``: a list that receives (‖g_f‖², ⟨g_f, g_r⟩, ‖g_r‖²) when the global pass computed them."""
    p, known = _project_out(g_f, g_r, per_layer)  # P g_f
    if known is None:
        pp, ff = inner_products([p, g_f], [(0, 0), (1, 1)])
    else:
        (pp,) = inner_products([p], [(0, 0)])
        ff = known[0]
        if products is not None:
            products.extend(known)
    p_norm, f_norm = math.sqrt(pp), math.sqrt(ff)
    if f_norm == 0.0 or p_norm <= tol * f_norm:
        return None
    return p, p_norm


def retain_neutral_direction(g_f: Grads, g_r: Grads, *, per_layer: bool = False,
                             tol: float = 1e-4) -> Grads | None:
    """u = P g_f / ‖P g_f‖, or None when ‖P g_f‖ ≤ tol·‖g_f‖ (g_f ∥ g_r, or g_f = 0)."""
    found = _neutral(g_f, g_r, per_layer, tol)
    return None if found is None else scale(1.0 / found[1], found[0])  # u


def perturbation_from_direction(u: Grads | None, g_f: Grads, rho: float, fallback: str = "zero") -> Grads:
    """ε* = ρ·u; when u is undefined, ε = 0 (``"zero"``) or UAM's ρ·g_f/‖g_f‖ (``"uam"``)."""
    if u is not None:
        return scale(rho, u)
    if fallback == "uam":
        return uam_perturbation(g_f, rho)
    return [torch.zeros_like(g) for g in g_f]


def _orthogonal_perturbation(g_f: Grads, g_r: Grads, rho: float, fallback: str, per_layer: bool,
                             tol: float, products: list | None = None) -> tuple[Grads, tuple[Grads, float] | None]:
    """(ε*, (P g_f, ‖P g_f‖) or None): ε* = (ρ/‖P g_f‖)·P g_f, scaled once (the same vector as ρ·u,
    u = P g_f/‖P g_f‖, without the intermediate u); the fallback's ε when P g_f is too small."""
    found = _neutral(g_f, g_r, per_layer, tol, products)
    if found is None:
        return perturbation_from_direction(None, g_f, rho, fallback), None
    p, p_norm = found
    return scale(rho / p_norm, p), found


def retain_orthogonal_perturbation(g_f: Grads, g_r: Grads, rho: float, *, fallback: str = "zero",
                                   per_layer: bool = False, tol: float = 1e-4) -> Grads:
    """ROSU's inner step: argmax ⟨g_f, ε⟩ s.t. ⟨g_r, ε⟩ = 0, ‖ε‖ ≤ ρ, i.e. ρ·P g_f/‖P g_f‖."""
    return _orthogonal_perturbation(g_f, g_r, rho, fallback, per_layer, tol)[0]


@dataclass
class ROSUConfig(UAMConfig):
    """UAM's config (ρ = 2, 3 epochs, SGD lr 0.01 momentum 0.9 wd 5e-4: the same as ``uam`` for a
    like-for-like comparison) plus ROSU's switches, all our choices (the paper's settings could
    not be read; see the module docstring):

    ``reuse_retain_grad``: project out the previous step's surrogate gradient instead of a fresh g_r.
    ``parallel_fallback``: zero | uam, the ε used when g_f ∥ g_r.
    ``parallel_tol``: "parallel" means ‖P g_f‖ ≤ tol·‖g_f‖, i.e. sin∠(g_f, g_r) ≤ tol.
    ``amp``: κ ≥ 0, amplification along u (d − κ·u goes to the optimizer).
    ``per_layer``: per-tensor projection instead of the global one.
    """

    reuse_retain_grad: bool = False
    parallel_fallback: str = "zero"
    parallel_tol: float = 1e-4
    amp: float = 0.0
    per_layer: bool = False
    # UAM's space plus amp κ over the research notes' proposed sweep {0, 0.1, 0.5, 1}
    search_space = {"lr": ("log", 1e-3, 1e-1), "epochs": ("int", 1, 6), "rho": ("log", 0.01, 5.0),
                    "amp": ("float", 0.0, 1.0)}

    def __post_init__(self):
        super().__post_init__()
        if self.parallel_fallback not in ("zero", "uam"):
            raise ConfigError(f"parallel_fallback must be zero or uam, got {self.parallel_fallback!r}")
        if self.amp < 0:
            raise ConfigError(f"amp must be >= 0, got {self.amp}")


@register
class ROSU(UAM):
    name = "rosu"
    summary = "ROSU: UAM with a retain-orthogonal surrogate, ε = ρ·P g_f/‖P g_f‖, P = I − ĝ_r ĝ_rᵀ"
    Config = ROSUConfig

    def needs_retain_grad(self, config, state):
        return not (config.reuse_retain_grad and "last_d" in state)

    def keeps_last_d(self, config):
        return True  # the stale basis (reuse) or its diagnostic (cos_gr_stale)

    def perturbation(self, g_f, g_r, rho, config, state):
        basis = g_r if g_r is not None else state["last_d"]  # g_r(θ), or last step's d (reuse)
        products: list[float] = []
        eps, found = _orthogonal_perturbation(g_f, basis, rho, config.parallel_fallback, config.per_layer,
                                              config.parallel_tol, products)  # ε* = ρ·u
        if products and g_r is not None:  # ‖g_f‖², ⟨g_f, g_r⟩, ‖g_r‖², for the trace
            state[KNOWN_PRODUCTS] = dict(zip([(0, 0), (0, 2), (2, 2)], products))
        state["parallel"] = found is None  # g_f ∥ g_r: no retain-neutral direction, the fallback's ε
        # the retain-neutral unit direction u = P g_f/‖P g_f‖, built only for the amplification
        # (None when g_f ∥ g_r, or with amp = 0, where nothing reads it)
        state["u"] = scale(1.0 / found[1], found[0]) if found is not None and config.amp else None
        return eps

    def outer_direction(self, d, config, state):
        u = state.get("u")
        if config.amp and u is not None:
            # d − κ·u: the step also ascends lr·κ along u
            return list(torch._foreach_add(list(d), u, alpha=-config.amp))
        return d

    def gradient_step(self, model, task, batches, config, state, step, ctx):
        loss = super().gradient_step(model, task, batches, config, state, step, ctx)
        ctx.record("parallel_fallback", float(state["parallel"]))
        return loss
