"""Entangle — machine unlearning under retain–forget entanglement (ALM + W-PGD).

Cheng, Liu, Li & Zhang, "Machine Unlearning under Retain-Forget Entanglement", ICLR 2026
(arXiv 2603.26569); semantics follow the official code (``Jingpu-Cheng/unlearning-entanglement``,
``src/method.py``).

The retain set is split into D_adj (adjacent: entangled with D_f, e.g. the other fine classes of
the forgotten class's superclass) and D_rem (remote: the rest).

Phase 1 — augmented Lagrangian (D_adj deliberately unused)::

    min_θ −L_f(θ)  s.t.  L_rem(θ) = L̄_rem(θ₀)                L̄_rem: mean CE over D_rem under θ₀, once
    c(θ)  = CE(θ; B_rem) − L̄_rem
    L_aug = γ·(−CE_clip(θ; B_f)) + λ·c + (μ/2)·c²             Adam step, then λ ← λ + μ·c (λ₀ = 0, μ fixed)
    CE_clip: per-sample CE, forward value exact, gradient 0 above ``clip`` (detached tail)

Phase 2 — W2-regularised projected gradient descent (W-PGD), θ̄ = frozen copy after phase 1::

    v   ← m·v + ∇CE(θ; B_adj)
    g_f = Σ_{≤K forget batches} ∇[(1−α)·mean(−CE_θ) + α·W2²],  W2² = mean((sort(−CE_θ) − sort(−CE_θ̄))²)
    g_r = Σ_{≤K remote batches} ∇(−CE_θ)
    p   = v − a·g_f − b·g_r     [a, b] solves the 2×2 Gram system (float64, small ridge)
    v   ← p ;  θ ← θ − η·p      (plain SGD; the momentum is carried by hand in v)

Where the adjacent set comes from (``adjacency``; "auto" takes the first available):
  1. "split"   — ``split.related`` (``subclass:K`` specs, or ``class:K`` on a source with a class→group
                 map): the paper's a-priori taxonomy;
  2. "file"    — ``adjacent_indices_file``: indices into the training set, a subset of retain;
  3. "nearest" — **our proposal, not the paper's** (the paper assumes the taxonomy is known). With
                 class labels: the ``auto_adjacent_classes`` retain classes whose mean penultimate
                 feature (the output head's input; ``adjacency_signal="features"``) or mean softmax
                 output (``"softmax"``) under
                 θ₀ is nearest (Euclidean) to the forget set's mean. Without class labels (text): the
                 ``auto_adjacent_examples`` retain examples (0: as many as the forget set, at most half
                 the retain set) whose
                 feature (``task.features``: the LM head's input, averaged over real tokens)
                 is nearest to *some* forget example — the retain QA the model represents like the
                 forgotten QA.

The model stays in eval mode throughout, as in the official code (BatchNorm statistics frozen,
dropout off); ``train_mode=True`` switches to train mode.

Several processes (``unlearnkit.distributed``): every batch is the global one, each process keeping
its rows; phase 1 weighs the forget and remote terms by their batches' shares and takes c at the
global batch (its value enters λ and c²); phase 2's gradients are the global ones, and W2² pairs the
*global* batch's sorted losses (the sort is over the whole batch, so it cannot be taken per shard).
L̄_rem and the adjacency are computed on every process over all data (once per run).

Passes per step: no single figure. Phase 1 (ALM): 2 forward + 2 backward (a forget and a remote
batch); phase 2 (W-PGD): 1 + 3K forward + 1 + 2K backward (an adjacent batch; K forget batches, each
also through the frozen θ̄ when α > 0; K remote batches), each at its phase's batch size.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn
from torch.utils.data import Dataset

from .. import distributed
from ..data.dataset import cycle_batches, iterate_batches, labels_of, num_batches, subset
from ..data.forget import read_indices
from ..data.split import Split
from ..errors import ConfigError, NotApplicable, SpecError
from ..tasks.base import Task
from .base import Method, MethodConfig, RunContext, register
from .gradients import Grads, cosine, dot, set_grads, trainable
from .loop import StepCounter, check_finite, check_parameters_finite, local_batch

log = logging.getLogger(__name__)

ADJACENCY = ("auto", "split", "file", "nearest")


# --------------------------------------------------------------------------- the small math pieces

def clipped_ce(ce: torch.Tensor, clip: float) -> torch.Tensor:
    """Per-sample CE with a detached tail: value ``ce`` exactly, gradient 0 where ``ce > clip``."""
    return torch.where(ce < clip, ce, clip + (ce - clip).detach())


def w2_sorted(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared 2-Wasserstein distance between two 1-D empirical distributions of equal size:
    mean((sort(a) − sort(b))²)."""
    if a.shape != b.shape or a.dim() != 1:
        raise ValueError(f"w2_sorted needs two 1-D tensors of equal length, got {tuple(a.shape)} and {tuple(b.shape)}")
    return (torch.sort(a).values - torch.sort(b).values).pow(2).mean()


def w2_sorted_global(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """:func:`w2_sorted` of the global batch when ``a`` and ``b`` are this process's rows of it:
    each of this process's a_i is paired with the b value of the same rank in the whole batch; the
    mean is over this process's rows (the share-weighted gradient reduction makes it the global
    mean). One process: :func:`w2_sorted`."""
    if not distributed.active():
        return w2_sorted(a, b)
    rows, start = distributed.all_gather_rows(torch.stack([a.detach(), b.detach()], dim=1))
    if not distributed.holds_rows():
        return (a - a.detach()).sum()  # a placeholder: zero, with a (zero) gradient
    position = torch.empty_like(rows[:, 0], dtype=torch.long)
    position[torch.argsort(rows[:, 0], stable=True)] = torch.arange(len(rows), device=rows.device)  # rank of each a
    paired = torch.sort(rows[:, 1]).values[position[start : start + len(a)]]  # sort(b) at a_i's rank
    return (a - paired).pow(2).mean()


def gram_project(v: Grads, g1: Grads, g2: Grads, ridge: float = 0.0) -> tuple[Grads, tuple[float, float]]:
    """Project ``v`` off span{g1, g2}: p = v − a·g1 − b·g2 with (G + ridge·I)[a, b]ᵀ = [⟨g1,v⟩, ⟨g2,v⟩]ᵀ,
    G the 2×2 Gram matrix, solved in float64. Returns (p, (a, b))."""
    g11, g12, g22 = dot(g1, g1), dot(g1, g2), dot(g2, g2)
    gram = torch.stack([torch.stack([g11 + ridge, g12]), torch.stack([g12, g22 + ridge])]).cpu()
    rhs = torch.stack([dot(g1, v), dot(g2, v)]).cpu()
    a, b = torch.linalg.solve(gram, rhs).tolist()
    p = torch._foreach_add(v, g1, alpha=-a)
    torch._foreach_add_(p, g2, alpha=-b)
    return list(p), (a, b)


# --------------------------------------------------------------------------- config

@dataclass
class EntangleConfig(MethodConfig):
    """Hyper-parameters. Official values (CIFAR-100 superclasses, ResNet-18 at 224 px) in brackets;
    the defaults are ours, tuned on the embedded digits data with the ``cnn`` model (``subclass:3``
    and ``class:0``), where one phase-1 epoch is ~7–10 steps instead of hundreds: larger learning
    rates, two ALM epochs, smaller W-PGD batches (more projected steps) and K = 1 basis batch (the
    official Tiny-ImageNet value; K = 10 with the official basis batch sizes costs ~6× more here).
    Phase 1 must drive the forget loss up (L_f ≈ 10 here) before phase 2 can repair D_adj: too few
    ALM steps leave the forget class recognised. W-PGD needs small steps (its guarantees are first
    order): at phase2_lr ≥ 1e-3 one step undoes phase 1.

    Phase 1 (ALM, Adam): ``phase1_epochs`` [1] passes over D_rem, ``phase1_lr`` [2.5e-6],
    ``mu`` [10, fixed], ``gamma`` [1], ``clip`` [10], batch sizes ``p1_remote_batch`` [128] and
    ``p1_forget_batch`` [16] (the forget stream is cycled).
    Phase 2 (W-PGD, plain SGD): ``phase2_epochs`` [6] passes over D_adj, ``phase2_lr`` [2e-5],
    ``alpha`` [0.5; 0 is the paper's no-W2 ablation], ``momentum2`` = m [0.9], ``basis_batches`` = K [10],
    batch sizes ``p2_adjacent_batch`` [128], ``p2_forget_batch`` [128], ``p2_remote_batch`` [512];
    ``ridge`` [1e-8] is added to the Gram diagonal once per parameter tensor, as the official code does.
    ``epochs``: 0 uses the phase counts; > 0 sets both phases to that many epochs (a generic budget knob).
    ``train_mode``: False keeps the model in eval mode as the official code does.
    Adjacency: ``adjacency`` (auto|split|file|nearest), ``adjacent_indices_file``,
    ``auto_adjacent_classes``, ``auto_adjacent_examples`` (unlabelled data), ``adjacency_signal``
    (features|softmax), ``feature_layer`` ("" = the input of the output head, the last ``nn.Linear``; a name =
    that module's output).
    The generic ``lr``, ``optimizer``, ``momentum``, ``weight_decay``, ``batch_size``, ``schedule``
    and ``grad_clip`` fields are not used.
    """

    epochs: int = 0
    phase1_epochs: int = 2
    phase1_lr: float = 1e-4
    mu: float = 10.0
    gamma: float = 1.0
    clip: float = 10.0
    p1_remote_batch: int = 128
    p1_forget_batch: int = 32
    phase2_epochs: int = 3
    phase2_lr: float = 2e-4
    alpha: float = 0.5
    momentum2: float = 0.9
    basis_batches: int = 1
    p2_adjacent_batch: int = 32
    p2_forget_batch: int = 64
    p2_remote_batch: int = 128
    ridge: float = 1e-8
    train_mode: bool = False
    adjacency: str = "auto"
    adjacent_indices_file: str = ""
    auto_adjacent_classes: int = 1
    auto_adjacent_examples: int = 0
    adjacency_signal: str = "features"
    feature_layer: str = ""
    # ours: the learning rates from the official 2.5e-6 / 2e-5 up to where W-PGD undoes phase 1 (1e-3);
    # alpha 0 is the paper's no-W2 ablation
    search_space = {"phase1_lr": ("log", 1e-6, 1e-3), "phase2_lr": ("log", 1e-6, 1e-3),
                    "phase1_epochs": ("int", 1, 4), "phase2_epochs": ("int", 1, 6), "alpha": ("float", 0.0, 1.0)}

    def __post_init__(self):
        super().__post_init__()
        if self.adjacency not in ADJACENCY:
            raise ConfigError(f"entangle.adjacency must be one of {', '.join(ADJACENCY)}, got {self.adjacency!r}")
        if self.adjacency_signal not in ("features", "softmax"):
            raise ConfigError(f"entangle.adjacency_signal must be features or softmax, got {self.adjacency_signal!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"entangle.alpha must be in [0, 1], got {self.alpha}")
        for name in ("phase1_epochs", "phase2_epochs", "basis_batches", "auto_adjacent_classes",
                     "auto_adjacent_examples"):
            if getattr(self, name) < 0:
                raise ConfigError(f"entangle.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("p1_remote_batch", "p1_forget_batch", "p2_adjacent_batch", "p2_forget_batch", "p2_remote_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"entangle.{name} must be >= 1, got {getattr(self, name)}")
        if self.phase1_lr < 0 or self.phase2_lr < 0 or self.mu < 0 or self.ridge < 0:
            raise ConfigError("entangle: phase1_lr, phase2_lr, mu and ridge must be >= 0")

    def phase_epochs(self) -> tuple[int, int]:
        return (self.epochs, self.epochs) if self.epochs > 0 else (self.phase1_epochs, self.phase2_epochs)

    def quick_overrides(self):
        p1, p2 = self.phase_epochs()
        return {"epochs": 0, "phase1_epochs": max(1, p1 // 2), "phase2_epochs": max(1, p2 // 2)}


# --------------------------------------------------------------------------- adjacency

@dataclass(frozen=True)
class Adjacency:
    """Training-set indices of D_adj and D_rem (a partition of the retain set) and where D_adj came from."""

    adjacent_idx: torch.Tensor
    remote_idx: torch.Tensor
    source: str  # "split" | "file" | "nearest"


def resolve_adjacency(model: nn.Module, task: Task, split: Split, config: EntangleConfig,
                      device: torch.device | str = "cpu") -> Adjacency:
    """D_adj / D_rem for ``split`` by ``config.adjacency`` (see the module docstring)."""
    mode = config.adjacency
    if mode == "auto":
        if split.related_idx is not None and config.adjacent_indices_file:
            raise ConfigError(
                f"entangle: split {split.spec} already defines adjacent examples (split.related) and "
                f"adjacent_indices_file={config.adjacent_indices_file!r} is also set; choose with adjacency=split or adjacency=file")
        mode = "split" if split.related_idx is not None else "file" if config.adjacent_indices_file else "nearest"
    if mode == "split":
        if split.related_idx is None:
            raise NotApplicable(f"entangle: adjacency=split but split {split.spec} has no related (adjacent) examples")
        adjacent = split.related_idx
    elif mode == "file":
        adjacent = _adjacent_from_file(split, config.adjacent_indices_file)
    else:
        adjacent = _nearest(model, task, split, config, device)
    retain = split.retain_idx
    remote = retain[~torch.isin(retain, adjacent)]
    if remote.numel() == 0:
        raise NotApplicable(f"entangle: every retain example is adjacent ({mode}); the remote set D_rem is empty")
    return Adjacency(torch.sort(adjacent).values, remote, mode)


def _adjacent_from_file(split: Split, path: str) -> torch.Tensor:
    if not path:
        raise ConfigError("entangle: adjacency=file needs adjacent_indices_file=PATH")
    try:
        values = torch.from_numpy(read_indices(path))
    except SpecError as exc:
        raise ConfigError(f"entangle.adjacent_indices_file: {exc}") from None
    outside = values[~torch.isin(values, split.retain_idx)]
    if outside.numel():
        raise ConfigError(
            f"entangle.adjacent_indices_file {path}: {outside.numel()} indices are not in the retain set "
            f"(adjacent examples must be retain examples), e.g. {outside[:5].tolist()}")
    return values


@torch.no_grad()
def _signal(model, task, dataset, config, device) -> torch.Tensor:
    """Per-example adjacency signal ``[N, D]`` under the current model, in eval mode."""
    rows = []
    for batch in iterate_batches(dataset, 512):
        batch = task.to_device(batch, device)
        if config.adjacency_signal == "features":
            rows.append(task.features(model, batch, config.feature_layer or None).float())
        else:
            probs = task.log_probs(model, batch).exp()
            if len(probs) != task.batch_size(batch):
                raise ConfigError("entangle: adjacency_signal=softmax needs one output distribution per example")
            rows.append(probs.float())
    return torch.cat(rows).cpu()


def _signals(model, task, split, config, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(forget, retain) signals under the current model, in eval mode."""
    was_training = model.training
    model.eval()
    try:
        return _signal(model, task, split.forget, config, device), _signal(model, task, split.retain, config, device)
    finally:
        model.train(was_training)


def _nearest(model, task, split, config, device) -> torch.Tensor:
    labels = labels_of(split.retain)
    if split.source.kind == "image" and labels.dim() == 1:
        return _nearest_classes(model, task, split, config, device)
    return _nearest_examples(model, task, split, config, device)


def _nearest_examples(model, task, split, config, device) -> torch.Tensor:
    """Our proposal for data without classes: the retain examples nearest to some forget example."""
    k = config.auto_adjacent_examples or min(len(split.forget_idx), len(split.retain_idx) // 2)
    if k >= len(split.retain_idx):
        raise ConfigError(f"entangle: auto_adjacent_examples={k} would leave no remote example "
                          f"(retain has {len(split.retain_idx)})")
    forget_signal, retain_signal = _signals(model, task, split, config, device)
    nearest = torch.cat([torch.cdist(chunk, forget_signal).min(dim=1).values
                         for chunk in retain_signal.split(4096)])
    chosen = torch.argsort(nearest, stable=True)[:k]
    log.info("entangle: %d adjacent retain examples (nearest to the forget set; our proposal)", k)
    return split.retain_idx[chosen]


def _nearest_classes(model, task, split, config, device) -> torch.Tensor:
    """Our proposal: the retain classes whose mean signal is nearest to the forget set's mean."""
    k = config.auto_adjacent_classes
    if k < 1:
        raise ConfigError("entangle: automatic adjacency needs auto_adjacent_classes >= 1")
    labels = labels_of(split.retain)
    classes = torch.unique(labels)
    if k >= len(classes):
        raise ConfigError(f"entangle: auto_adjacent_classes={k} would leave no remote class (retain has {len(classes)})")
    forget_signal, retain_signal = _signals(model, task, split, config, device)
    forget_mean = forget_signal.mean(0)
    means = torch.stack([retain_signal[labels == c].mean(0) for c in classes])
    distance = (means - forget_mean).norm(dim=1)
    chosen = classes[torch.argsort(distance)[:k]]
    log.info("entangle: adjacent classes (nearest, our proposal): %s", chosen.tolist())
    return split.retain_idx[torch.isin(labels, chosen)]


# --------------------------------------------------------------------------- the method

def _shuffled(dataset: Dataset, batch_size: int, task: Task, ctx: RunContext) -> Iterator:
    """One shuffled pass; this process's rows of each global batch."""
    for batch in iterate_batches(dataset, batch_size, shuffle=True, generator=ctx.generator):
        yield local_batch(batch, task, ctx)


@register
class Entangle(Method):
    name = "entangle"
    summary = "Entangle (ICLR'26): constrained ascent (ALM), then W2-regularised projected descent on adjacent retain"
    Config = EntangleConfig

    def run(self, model, task, split, config: EntangleConfig, ctx: RunContext):
        model.to(ctx.device)
        adjacency = resolve_adjacency(model, task, split, config, ctx.device)
        source = split.source.train
        adjacent, remote = subset(source, adjacency.adjacent_idx), subset(source, adjacency.remote_idx)
        model.train(config.train_mode)
        phase1, phase2 = config.phase_epochs()
        total = phase1 * num_batches(remote, config.p1_remote_batch) + phase2 * num_batches(adjacent, config.p2_adjacent_batch)
        with StepCounter(total, self.name, model, ctx) as counter:  # one step count across both phases
            self.phase1(model, task, split.forget, remote, config, ctx, phase1, counter)
            self.phase2(model, task, split.forget, adjacent, remote, config, ctx, phase2, counter)
        if distributed.active():  # train_mode: norm statistics were per process; one model for all
            distributed.all_reduce_mean_([b for b in model.buffers() if b.is_floating_point()], share=1.0)
        check_parameters_finite(model, self.name)
        return model

    # ---- phase 1: augmented Lagrangian
    def phase1(self, model, task, forget, remote, config, ctx, epochs, counter: StepCounter):
        if epochs == 0:
            return
        params = trainable(model)
        with torch.no_grad():  # L̄_rem(θ₀): once, over the whole remote set
            total, count = 0.0, 0
            for batch in iterate_batches(remote, config.p2_remote_batch):
                losses = task.loss(model, task.to_device(batch, ctx.device))
                total, count = total + float(losses.sum()), count + losses.numel()
            rem_ref = total / count
        ctx.record("rem_ref", rem_ref)
        optimizer = torch.optim.Adam(params, lr=config.phase1_lr)
        counter.watch(optimizer)
        forget_stream = cycle_batches(forget, config.p1_forget_batch, generator=ctx.generator)
        lam = 0.0  # λ₀ = 0
        for _ in range(epochs):
            for b_rem in _shuffled(remote, config.p1_remote_batch, task, ctx):
                b_f = local_batch(next(forget_stream), task, ctx)
                ce_f = clipped_ce(task.loss(model, b_f), config.clip).mean()  # CE_clip(θ; B_f)
                c = distributed.global_mean(task.loss(model, b_rem).mean(), b_rem) - rem_ref  # c = CE(θ; B_rem) − L̄_rem
                loss = (config.gamma * (-distributed.weigh(ce_f, b_f))  # L_aug; each term weighed by its
                        + distributed.weigh(lam * c, b_rem)              # batch's share when several
                        + distributed.weigh(0.5 * config.mu * c * c, b_rem))  # processes share the batch
                check_finite(loss.detach(), self.name, counter.index)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                distributed.reduce_grads_(params, share=1.0)  # terms already weighed by their batches
                optimizer.step()
                c_value = float(c.detach())
                ctx.record("lambda", lam)  # λ used at this step
                ctx.record("residual", c_value)  # c at this step (before the update)
                ctx.log("forget_ce", ce_f)  # L_aug = −γ·forget_ce + λ·residual + (μ/2)·residual²
                ctx.log("residual", c_value)
                ctx.log("lambda", lam)
                lam += config.mu * c_value  # λ ← λ + μ·c
                counter.done(loss.detach())

    # ---- phase 2: W2-regularised projected gradient descent
    def phase2(self, model, task, forget, adjacent, remote, config, ctx, epochs, counter: StepCounter):
        if epochs == 0:
            return
        params = trainable(model)
        reference = copy.deepcopy(model).requires_grad_(False)  # θ̄: frozen at the end of phase 1
        optimizer = torch.optim.SGD(params, lr=config.phase2_lr, momentum=0.0)
        counter.watch(optimizer)
        ridge = config.ridge * len(params)  # official: 1e-8 added per parameter tensor
        velocity = [torch.zeros_like(p) for p in params]  # v
        for _ in range(epochs):
            for b_adj in _shuffled(adjacent, config.p2_adjacent_batch, task, ctx):
                loss_adj = task.loss(model, b_adj).mean()  # L_adj = CE(θ; B_adj)
                check_finite(loss_adj.detach(), self.name, counter.index)
                g_adj = self._gradient(params, [distributed.weigh(loss_adj, b_adj)], counter.index)
                g_f = self._gradient(params, self._forget_objectives(model, reference, task, forget, config, ctx), counter.index)
                g_rem = self._gradient(params, (distributed.weigh(-task.loss(model, b).mean(), b)  # −CE_rem
                                                for b in self._basis(remote, config.p2_remote_batch, task, config, ctx)), counter.index)
                torch._foreach_mul_(velocity, config.momentum2)  # v ← m·v + ∇L_adj
                torch._foreach_add_(velocity, g_adj)
                p, _ = gram_project(velocity, g_f, g_rem, ridge)  # p = v − Proj_span{g_f, g_rem} v
                ctx.record("dot_p_gforget", float(dot(p, g_f)))  # ⟨p, g_f⟩ ≈ 0
                ctx.record("dot_p_gremote", float(dot(p, g_rem)))  # ⟨p, g_rem⟩ ≈ 0
                ctx.record("cos_p_gforget", cosine(p, g_f))
                ctx.record("cos_p_gremote", cosine(p, g_rem))
                ctx.record("loss_adjacent", float(loss_adj.detach()))
                velocity = p  # v ← p
                set_grads(params, p)
                optimizer.step()  # θ ← θ − η·p
                counter.done(loss_adj.detach())  # phase 2's loss: L_adj (the step is its projected gradient)

    def _forget_objectives(self, model, reference, task, forget, config, ctx):
        """Per forget batch: L̃_f = (1−α)·mean(−CE_θ) + α·W2²(sort(−CE_θ), sort(−CE_θ̄))."""
        for b_f in self._basis(forget, config.p2_forget_batch, task, config, ctx):
            ell = -task.loss(model, b_f)  # ℓ_i(θ) = −CE_i
            objective = (1.0 - config.alpha) * ell.mean()
            if config.alpha > 0:
                with torch.no_grad():
                    ell_ref = -task.loss(reference, b_f)  # ℓ_i(θ̄)
                objective = objective + config.alpha * w2_sorted_global(ell, ell_ref)
            yield distributed.weigh(objective, b_f)

    @staticmethod
    def _basis(dataset, batch_size, task, config, ctx):
        """The first ``basis_batches`` batches of a fresh shuffled pass (K in the paper's code)."""
        for i, batch in enumerate(_shuffled(dataset, batch_size, task, ctx)):
            if i >= config.basis_batches:
                return
            yield batch

    def _gradient(self, params, objectives, step: int) -> Grads:
        """Σ over ``objectives`` of their gradients (one backward each, accumulated in ``.grad``);
        several processes: summed over them too (each objective weighed by its batch's share)."""
        for p in params:
            p.grad = None
        for objective in objectives:
            check_finite(objective.detach(), self.name, step)
            objective.backward()
        return distributed.all_reduce_mean([torch.zeros_like(p) if p.grad is None else p.grad for p in params], share=1.0)
