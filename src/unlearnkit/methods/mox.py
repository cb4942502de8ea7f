"""MOX — Memorize to Forget: unlearning by model extrapolation, without gradient ascent
(Huang, Wang, Hong, Ye, Han & Liu; "Is Gradient Ascent Really Necessary? Memorize to Forget for
Machine Unlearning", arXiv 2602.06441).

Never ascend on the forget set. Instead, train a *memorization* model by ordinary descent that fits
D_F even harder while staying close to the original on D_R, then step from it through the
original and beyond:

    θ_mem ← θ_ref, then descend
        L_mem(θ) = (1/n) Σ_{D_F} CE(x, y; θ) + λ_KL·(1/m) Σ_{D_R} KL(h_θref(·|x) ‖ h_θ(·|x))
    θ_for = θ_ref + α·(θ_ref − θ_mem)                     (α = 4)
    momentum ("MOX-Mo"):  θ̄_for ← η·θ_for + (1 − η)·θ̄_for   (η = 0.675 weights the new model)

θ_mem follows its own descent trajectory; θ_for is derived from it at each extrapolation event and
never fed back. Extrapolation touches the trainable floating-point parameters only.

Variants (the paper's): ``mem_loss="npo"`` replaces the CE term by the *negated* NPO loss
(2/β)·mean log σ(−β·r), r = log h_θ(y|x) − log h_θref(y|x), which rewards raising the likelihood
ratio on D_F. It is not bounded below as r grows, so r is clamped at ``npo_clamp`` (no gradient
beyond; for a classifier r ≤ −log h_θref(y|x) anyway, the clamp guards LMs and weak originals).
``targeted=True`` subtracts CE(x_f, ỹ; θ) with ỹ = ``task.relabel`` targets (a wrong class; a
refusal for an LM), so θ_mem pushes the target down and θ_for pushes it up. The published equation
sums this term over D_R; as the research notes (and a critical audit of the paper) point out, that
reads as a typo for forget inputs paired with target answers, which is what is implemented.
This targeted CE term is itself unbounded (it is ascent on the wrong targets inside θ_mem); on
digits at the default lr it wrecks the extrapolated model (RA ≈ 11%): lower ``targeted_weight``.

Where the paper (LLMs only, no public code) is silent — our choices, each with its switch:

- ``extrapolate_every``: 0 = an extrapolation event after every epoch (default), k > 0 = every k
  optimizer steps; a last event is always taken on the final θ_mem. ``ema=False`` returns the last
  θ_for alone (the plain "MOX α" rows).
- Buffers: never extrapolated (extrapolated BatchNorm variances can go negative). ``bn_stats=
  "reference"`` (default) takes every buffer from θ_ref; ``"recompute"`` re-estimates the norm
  layers' running statistics on D_R under θ_for (cumulative average, one pass). Integer buffers
  (``num_batches_tracked``) always come from θ_ref. On the digits CNN, recomputing re-normalises
  away most of the extrapolation (UA 0 vs 84 at the defaults): the forgetting lives partly in the
  scale of conv weights that BatchNorm is invariant to.
- ``mem_bn``: during memorization, norm layers run on their running statistics in both θ_mem and
  θ_ref (``"frozen"``, default: the KL compares two deterministic functions and is exactly 0 at
  the start, and single-class forget batches never feed BatchNorm), or on batch statistics
  (``"batch"``: θ_ref is then run in the same mode on throw-away copies of its buffers; on digits
  the single-class forget batches then shift the statistics and RA falls to ≈ 12%).
- The KL over the ``[P, C]`` positions of ``task.log_probs`` is averaged over positions
  (``batchmean``): per example for classifiers, per token for LMs.
- ``track=True`` records, at each event, the retain and forget accuracy (%) of the model that would
  be returned at that point in ``ctx.trace["retain_acc"]``/``["forget_acc"]`` (one pass over D_R
  and D_F per event); ``ctx.trace["kl"]`` holds the retain KL of every step. ``ctx.on_step``
  sees θ_mem (the model being trained), not θ_for.

Defaults. From the paper: α = 4, η = 0.675, momentum on, λ_KL = 1, weight decay 0.01, batch size
32, 10 epochs, linear decay (the paper also warms up linearly over the first epoch; the shared
scheduler has no warm-up). Ours for the digits CNN: SGD (momentum 0.9, so the weight decay is
coupled L2) at lr 0.03 with gradient clipping at norm 1, instead of the paper's AdamW at lr 1e-5
(tuned for 7B LMs). On digits the original fits the forget set to CE ≈ 1e-3, so forget gradients are
tiny and Adam's normalised steps move every parameter by ≈ lr in a nearly random direction, which
the ×α extrapolation amplifies (AdamW lr 5e-4: UA 52, RA 84; SGD: UA 84, RA 99.9, two seeds); SGD
without clipping diverges above lr ≈ 0.05 (BatchNorm frozen, single-class batches).
α = 0 returns θ_ref exactly (x + 0·d = x, and an EMA of equal models is that model).

Passes per step: 3 forward + 2 backward (a forget and a retain batch through the memorisation model,
the retain batch through the frozen reference for the KL; ``mem_loss="npo"`` adds a reference
forward on the forget batch). Extrapolation and averaging are parameter-wise ops.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import iterate_batches
from ..errors import ConfigError
from .base import MethodConfig, register
from .gradients import at_params, stat_buffers, trainable
from .loop import LoopMethod, check_finite
from .reference_model import freeze_norm_layers, norm_layers


@dataclass
class MOXConfig(MethodConfig):
    """``alpha``: extrapolation strength α.  ``kl_weight``: λ_KL.  ``mem_loss``: ce | npo
    (``npo_beta`` β, ``npo_clamp`` cap on the log-ratio).  ``targeted``/``targeted_weight``: the
    targeted variant.  ``ema``/``eta``: momentum extrapolation and η.  ``extrapolate_every``: 0 =
    per epoch, k = every k steps.  ``bn_stats``: reference | recompute.  ``mem_bn``: frozen | batch.
    ``track``: record retain/forget accuracy of the extrapolated model at each event."""

    epochs: int = 10
    lr: float = 0.03
    optimizer: str = "sgd"
    weight_decay: float = 0.01
    batch_size: int = 32
    schedule: str = "linear"
    grad_clip: float = 1.0
    alpha: float = 4.0
    kl_weight: float = 1.0
    mem_loss: str = "ce"
    npo_beta: float = 0.1
    npo_clamp: float = 10.0
    targeted: bool = False
    targeted_weight: float = 1.0
    ema: bool = True
    eta: float = 0.675
    extrapolate_every: int = 0
    bn_stats: str = "reference"
    mem_bn: str = "frozen"
    track: bool = False
    # alpha: the paper's grid {0.5, 1, 2, 4, 8}; eta around its 0.675; lr, epochs, kl_weight ours
    search_space = {"lr": ("log", 1e-3, 1e-1), "epochs": ("int", 1, 10),
                    "alpha": ("choice", [0.5, 1.0, 2.0, 4.0, 8.0]), "eta": ("float", 0.3, 0.95),
                    "kl_weight": ("log", 0.1, 10.0)}

    def __post_init__(self):
        super().__post_init__()
        for key, allowed in (("mem_loss", ("ce", "npo")), ("bn_stats", ("reference", "recompute")),
                             ("mem_bn", ("frozen", "batch"))):
            if getattr(self, key) not in allowed:
                raise ConfigError(f"mox: {key} must be one of {allowed}, got {getattr(self, key)!r}")
        if not 0.0 < self.eta <= 1.0:
            raise ConfigError(f"mox: eta must be in (0, 1], got {self.eta}")
        if self.extrapolate_every < 0:
            raise ConfigError(f"mox: extrapolate_every must be >= 0, got {self.extrapolate_every}")
        if self.npo_beta <= 0:
            raise ConfigError(f"mox: npo_beta must be > 0, got {self.npo_beta}")


# --- the parameter-space operations ---------------------------------------------------------

@torch.no_grad()
def extrapolate(reference: list[torch.Tensor], memorized: list[torch.Tensor], alpha: float) -> list[torch.Tensor]:
    """θ_for = θ_ref + α·(θ_ref − θ_mem), as new tensors."""
    delta = torch._foreach_sub(reference, memorized)           # θ_ref − θ_mem
    return torch._foreach_add(reference, delta, alpha=alpha)    # θ_ref + α·(θ_ref − θ_mem)


@torch.no_grad()
def ema_update(average: list[torch.Tensor], new: list[torch.Tensor], eta: float) -> None:
    """θ̄ ← η·θ_new + (1 − η)·θ̄, in place (as θ̄ + η·(θ_new − θ̄))."""
    torch._foreach_lerp_(average, new, eta)


@torch.no_grad()
def recompute_stats(model: nn.Module, params: list[torch.Tensor], task, data, batch_size: int,
                    device) -> dict[str, torch.Tensor]:
    """Running statistics of ``model``'s norm layers evaluated at ``params`` (aligned with
    ``trainable(model)``), re-estimated on ``data`` as a cumulative average over one pass.
    Returns them by buffer name; the model's own buffers and modes are left as they were."""
    fresh = {}
    for name, buffer in stat_buffers(model).items():
        fresh[name] = torch.ones_like(buffer) if name.endswith("running_var") else torch.zeros_like(buffer)
    if not fresh:
        return fresh
    modes = {m: m.training for m in model.modules()}
    momenta = {m: m.momentum for m in norm_layers(model)}
    model.eval()
    for m in momenta:
        m.train()
        m.momentum = None  # cumulative moving average over the pass
    try:
        view = at_params(model, params, fresh)
        for batch in iterate_batches(data, batch_size):
            task.loss(view, task.to_device(batch, device))
    finally:
        for m, momentum in momenta.items():
            m.momentum = momentum
        for m, training in modes.items():
            m.train(training)
    return fresh


@contextmanager
def _reference_view(reference: nn.Module, mem_bn: str):
    """θ_ref as the memorization forward sees it: running statistics (frozen), or batch statistics
    written into throw-away copies of its buffers."""
    norms = norm_layers(reference)
    if mem_bn == "frozen" or not norms:
        yield reference
        return
    for m in norms:
        m.train()
    try:
        buffers = {name: b.clone() for name, b in stat_buffers(reference).items()}
        yield at_params(reference, trainable(reference), buffers)
    finally:
        for m in norms:
            m.eval()


def memorization_loss(model: nn.Module, reference: nn.Module, task, batches: dict, config: MOXConfig,
                      generator: torch.Generator | None = None, log=None) -> tuple[torch.Tensor, torch.Tensor]:
    """L_mem on one (forget, retain) pair of batches, and its KL term (detached). ``log`` (e.g.
    ``ctx.log``) receives the terms unweighted: loss = memorize + kl_weight·kl − targeted_weight·targeted."""
    forget, retain = batches["forget"], batches["retain"]
    with _reference_view(reference, config.mem_bn) as ref, torch.no_grad():
        log_p_ref = task.log_probs(ref, retain)                               # log h_θref(·|x), x ∈ D_R
        ll_ref = task.log_likelihood(ref, forget) if config.mem_loss == "npo" else None
    if config.mem_loss == "ce":
        memorize = task.loss(model, forget).mean()                            # (1/n) Σ CE(x, y; θ)
    else:
        ratio = (task.log_likelihood(model, forget) - ll_ref).clamp(max=config.npo_clamp)  # r = log h_θ/h_θref, capped
        memorize = (2.0 / config.npo_beta) * F.logsigmoid(-config.npo_beta * ratio).mean()  # (2/nβ) Σ log σ(−β·r)
    kl = F.kl_div(task.log_probs(model, retain), log_p_ref, log_target=True, reduction="batchmean")  # KL(h_θref ‖ h_θ)
    loss = memorize + config.kl_weight * kl
    if log is not None:
        log("memorize", memorize)
        log("kl", kl)
    if config.targeted:
        target = task.relabel(forget, generator=generator)                    # (x_f, ỹ)
        targeted = task.loss(model, target).mean()
        if log is not None:
            log("targeted", targeted)
        loss = loss - config.targeted_weight * targeted                       # − (1/n) Σ CE(x_f, ỹ; θ)
    return loss, kl.detach()


@register
class MOX(LoopMethod):
    name = "mox"
    summary = "MOX: memorize the forget set by descent, then extrapolate θ_ref + α(θ_ref − θ_mem); no ascent"
    Config = MOXConfig
    streams = ("forget", "retain")
    epoch_stream = "forget"

    # The shared loop trains the model as θ_mem (θ_mem ← θ_ref at the start); extrapolation events
    # run in the step/epoch hooks; ``finish`` writes the (averaged) θ_for into the model.

    def prepare(self, model, task, split, config, ctx):
        reference = copy.deepcopy(model).eval()                   # θ_ref (only ever run under no_grad)
        return {"reference": reference, "theta_ref": trainable(reference), "average": None,
                "steps": 0, "last_event": -1, "task": task, "split": split}

    def set_train_mode(self, model, config):
        model.train()
        if config.mem_bn == "frozen":
            freeze_norm_layers(model)

    def gradient_step(self, model, task, batches, config, state, step, ctx):
        loss, kl = memorization_loss(model, state["reference"], task, batches, config, ctx.generator, log=ctx.log)
        check_finite(loss.detach(), self.name, step)
        loss.backward()                                           # descent on L_mem (no ascent anywhere)
        ctx.record("kl", float(kl))
        return loss.detach()

    def after_step(self, model, state, step, config, ctx):
        state["steps"] = step + 1
        if config.extrapolate_every and state["steps"] % config.extrapolate_every == 0:
            self._event(model, state, config, ctx)

    def after_epoch(self, model, state, steps_done, config, ctx):
        if not config.extrapolate_every:
            self._event(model, state, config, ctx)

    def _event(self, model, state, config, ctx) -> None:
        theta_for = extrapolate(state["theta_ref"], trainable(model), config.alpha)  # θ_ref + α(θ_ref − θ_mem)
        if state["average"] is None or not config.ema:
            state["average"] = theta_for
        else:
            ema_update(state["average"], theta_for, config.eta)                 # η·θ_for + (1 − η)·θ̄_for
        state["last_event"] = state["steps"]
        if config.track:
            self._track(state["reference"], state["average"], state["task"], state["split"], config, ctx)

    def finish(self, model, state, config, ctx):
        if state["last_event"] != state["steps"] or state["average"] is None:
            self._event(model, state, config, ctx)                 # always end on the last θ_mem
        reference, split = state["reference"], state["split"]
        # the returned model: θ̄_for on the trainable parameters, buffers by the chosen rule
        with torch.no_grad():
            torch._foreach_copy_(trainable(model), state["average"])
            own = dict(model.named_buffers())
            for name, buffer in reference.named_buffers():
                own[name].copy_(buffer)                                        # every buffer from θ_ref …
            if config.bn_stats == "recompute":
                fresh = recompute_stats(reference, state["average"], state["task"], split.retain,
                                        config.batch_size, ctx.device)
                for name, buffer in fresh.items():
                    if buffer.is_floating_point():
                        own[name].copy_(buffer)                                # … but re-estimated stats on D_R
        model.train()
        return model

    @staticmethod
    @torch.no_grad()
    def _track(reference, average, task, split, config, ctx) -> None:
        """Retain/forget accuracy (%) of the model that would be returned now."""
        buffers = (recompute_stats(reference, average, task, split.retain, config.batch_size, ctx.device)
                   if config.bn_stats == "recompute" else None)
        view = at_params(reference, average, buffers)
        for key, data in (("retain_acc", split.retain), ("forget_acc", split.forget)):
            correct = torch.cat([task.correct(view, task.to_device(b, ctx.device)) for b in iterate_batches(data, 512)])
            ctx.record(key, 100.0 * float(correct.mean()))
