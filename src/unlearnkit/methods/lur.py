"""LUR — Learning to Unlearn while Retaining (Patel & Qiu, ICCV 2025; arXiv 2503.06339).

A meta-learning ("learning to learn") objective: take a virtual retain step, then unlearn at the
look-ahead point, and differentiate through the virtual step:

    θ' = θ − α·∇L_r(θ)                                   (inner, virtual step on retain)
    J(θ) = w_r·L_r(θ) + w_f·L_u(θ')                       (outer objective, one optimizer step on ∇J)
    ∇J = w_r·∇L_r(θ) + w_f·(I − α·H_r(θ))·∇L_u(θ')

To first order, L_u(θ') ≈ L_u(θ) − α⟨∇L_u, ∇L_r⟩, so descending J also raises the alignment of the
unlearning and retention gradients: the "implicit gradient regularisation" of the abstract.
The Hessian-vector product H_r·∇L_u(θ') is one extra backward through the create_graph'd retain
gradient; ``first_order=True`` drops it (θ' treated as θ minus a constant), leaving two
forward/backward passes per step, as NegGrad+.

Where the paper (no public code; only the abstract and a figure caption could be read) is silent:

- ``lookahead``: ``"retain"`` (above; the third-party reimplementation's order) or ``"forget"``
  (the reverse: J = w_f·L_u(θ) + w_r·L_r(θ − α·∇L_u(θ)), same first-order alignment term).
- ``unlearn_loss``: ``"ga"`` (L_u = −CE on forget, default) or ``"rl"`` (L_u = CE on forget
  examples relabelled by ``task.relabel``, SalUn-style). Default GA: it is what the only
  reimplementation uses, and the abstract's "conflicting gradients between unlearning and retention"
  is the GA/retain-descent conflict; RL is offered because the paper compares against SalUn (RL-based).
- BatchNorm: the forward at θ is an ordinary module call, so running statistics follow the inner
  loss's batch exactly as in plain training. The look-ahead forward at θ' goes through
  ``torch.func.functional_call`` and never touches the model's buffers: with
  ``lookahead_bn="batch"`` (default) it normalises with its own batch statistics (as the forward at θ
  does in train mode) and writes its running-stat update into throw-away copies; with ``"eval"`` the
  norm layers run in eval mode (running statistics) for that forward only.
- SNIP-style trimming at initialisation (inherited from Scissorhands by the reimplementation,
  unverified for LUR) is left out.

Defaults are ours for the embedded digits data (the paper's values are unknown): 10 epochs over the
forget set (the SalUn/Scissorhands protocol's epoch count; one step pairs a forget batch with the
next retain batch, as the reimplementation's shortest-loader zip), SGD lr 0.01, w_r = 1, w_f = 0.25
(GA is unbounded: w_f = 1 lets it wreck the retain set within 30 steps), α = 0.1 (α must stay below
about 1/λ_max(H_r) or (I − α·H_r) amplifies sharp directions; α = 0.5 was clearly worse on digits).
``ctx.trace["cos_unlearn_retain"]`` records cos(∇L_u, ∇L_r) per step from the two gradients the
step computes anyway: with ``lookahead="retain"`` that is ∇L_r at θ and ∇L_u at θ' (the reverse for
``"forget"``), so it is not the same quantity as the cosine of a plain NegGrad step at θ.
Second order needs a double backward through the model; use ``first_order=True`` where a kernel
(e.g. a fused attention) has none.

Passes per step: 2 forward + 2 backward and one double backward, ≈ 4 in all (the inner batch's
forward and backward with ``create_graph``, the outer batch's at θ', and the Hessian-vector product:
a backward through the backward graph, ≈ 2 passes; ``first_order``: 2 + 2).
"""
from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..errors import ConfigError
from .base import MethodConfig, register
from .gradients import at_params, grads_of, hvp, inner_products, set_grads, stat_buffers, trainable
from .loop import LoopMethod, check_finite


@dataclass
class LURConfig(MethodConfig):
    """``alpha``: inner (virtual) step size α.  ``retain_weight``/``forget_weight``: w_r, w_f.
    ``first_order``: drop the Hessian term.  ``lookahead``: retain | forget (which loss takes the
    virtual step).  ``unlearn_loss``: ga | rl.  ``lookahead_bn``: batch | eval (norm layers in the
    look-ahead forward)."""

    epochs: int = 10
    lr: float = 0.01
    alpha: float = 0.1
    retain_weight: float = 1.0
    forget_weight: float = 0.25
    first_order: bool = False
    lookahead: str = "retain"
    unlearn_loss: str = "ga"
    lookahead_bn: str = "batch"
    # ours: the paper's values could not be read; look-ahead step and forget weight around our defaults
    search_space = {"lr": ("log", 1e-4, 1e-1), "epochs": ("int", 1, 10), "alpha": ("log", 0.01, 1.0),
                    "forget_weight": ("log", 0.05, 1.0), "unlearn_loss": ("choice", ["ga", "rl"])}

    def __post_init__(self):
        super().__post_init__()
        for key, allowed in (("lookahead", ("retain", "forget")), ("unlearn_loss", ("ga", "rl")),
                             ("lookahead_bn", ("batch", "eval"))):
            if getattr(self, key) not in allowed:
                raise ConfigError(f"lur: {key} must be one of {allowed}, got {getattr(self, key)!r}")


@contextmanager
def _lookahead_buffers(model: nn.Module, mode: str):
    """Buffers for the look-ahead forward so that it leaves the model's own untouched."""
    stats = stat_buffers(model)
    if mode == "batch" or not stats:
        yield {name: b.clone() for name, b in stats.items()}  # updates land in copies, dropped after
        return
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase) and m.training]
    for m in norms:
        m.eval()  # normalise with running statistics, update nothing
    try:
        yield {}
    finally:
        for m in norms:
            m.train()


def lookahead_gradient(model: nn.Module, task, batches: dict, config: LURConfig,
                       generator: torch.Generator | None = None,
                       log=None) -> tuple[torch.Tensor, list[torch.Tensor], float]:
    """One LUR step's objective J (detached), its gradient ∇J (aligned with ``trainable(model)``)
    and cos(∇L_u, ∇L_r). ``log`` (e.g. ``ctx.log``) receives J's two terms unweighted, named by
    side: ``forget``/``retain`` at θ (the inner one) and ``…_lookahead`` at θ' (the outer one)."""
    params = trainable(model)
    forget = batches["forget"]
    if config.unlearn_loss == "rl":
        forget = task.relabel(forget, generator=generator)
        unlearn = lambda m: task.loss(m, forget).mean()  # noqa: E731  L_u = CE(f(x_f), ỹ)
    else:
        unlearn = lambda m: -task.loss(m, forget).mean()  # noqa: E731  L_u = −CE(f(x_f), y_f)
    retain = lambda m: task.loss(m, batches["retain"]).mean()  # noqa: E731  L_r = CE(f(x_r), y_r)
    if config.lookahead == "retain":
        inner, outer, w_in, w_out = retain, unlearn, config.retain_weight, config.forget_weight
        names = ("retain", "forget_lookahead")
    else:
        inner, outer, w_in, w_out = unlearn, retain, config.forget_weight, config.retain_weight
        names = ("forget", "retain_lookahead")

    second_order = not config.first_order and config.alpha != 0
    loss_in = inner(model)                                                # L_in(θ)
    g_in = grads_of(loss_in, params, create_graph=second_order)           # ∇L_in(θ)
    fast = [p - config.alpha * g for p, g in zip(params, g_in)]            # θ' = θ − α·∇L_in(θ)
    if not second_order:
        fast = [f.detach().requires_grad_() for f in fast]                 # θ' as a constant shift of θ
    with _lookahead_buffers(model, config.lookahead_bn) as buffers:
        loss_out = outer(at_params(model, fast, buffers))                 # L_out(θ')
    g_out = grads_of(loss_out, fast, retain_graph=False)                  # ∇L_out(θ')
    g_in_value = [g.detach() for g in g_in]
    g_u, g_r = (g_out, g_in_value) if config.lookahead == "retain" else (g_in_value, g_out)
    uu, rr, ur = inner_products([g_u, g_r], [(0, 0), (1, 1), (0, 1)])  # before g_out is overwritten below
    cos = ur / (math.sqrt(uu) * math.sqrt(rr) + 1e-30)                    # cos(∇L_u, ∇L_r)
    # ∇J built in place in fresh tensors (the HVP's output, else g_out), one _foreach kernel per op
    if second_order:
        outer_grad = hvp(g_in, params, g_out)                             # H_in(θ)·∇L_out(θ')
        torch._foreach_mul_(outer_grad, -config.alpha)
        torch._foreach_add_(outer_grad, g_out)                            # (I − α·H_in)·∇L_out(θ')
    else:
        outer_grad = g_out
    torch._foreach_mul_(outer_grad, w_out)
    torch._foreach_add_(outer_grad, g_in_value, alpha=w_in)               # ∇J = w_in·∇L_in + w_out·(…)
    objective = (w_in * loss_in + w_out * loss_out).detach()              # J(θ)
    if log is not None:
        log(names[0], loss_in)
        log(names[1], loss_out)
    return objective, outer_grad, cos


@register
class LUR(LoopMethod):
    name = "lur"
    summary = "LUR: look-ahead (meta-learning) unlearning whose gradient aligns forget and retain gradients"
    Config = LURConfig
    streams = ("forget", "retain")
    epoch_stream = "forget"

    def gradient_step(self, model, task, batches, config, state, step, ctx):
        # The fused scaled-dot-product attention kernels have no double backward: the exact
        # second-order gradient runs attention through the (differentiable) math backend.
        kernels = nullcontext() if config.first_order else sdpa_kernel([SDPBackend.MATH])
        with kernels:
            objective, grad, cos = lookahead_gradient(model, task, batches, config, ctx.generator, log=ctx.log)
        check_finite(objective, self.name, step)
        set_grads(trainable(model), grad, copy=False)  # ∇J (fresh tensors, handed over); the loop clips and steps
        ctx.record("cos_unlearn_retain", cos)
        return objective
