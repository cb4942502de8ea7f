"""Relearning convergence delay (RCD): how many fine-tuning steps on the forget set the model
needs before it knows the forget set again.

Tran & Woo, "Efficient Unlearning through Maximizing Relearning Convergence Delay",
CVPR 2026 Findings, arXiv:2604.09391. The paper defines RCD as the delay of relearning the
forgotten set starting from the unlearned model, and bounds it for *gradient-descent*
relearning (exponential convergence); it warns the bound does not cover Adam. Only its
abstract and secondary summaries were readable to us, so the concrete recipe below is ours
(every choice is a field of :class:`RelearnConfig`):

    θ_0 = θ_u                                   (a copy of the unlearned model; never edited)
    θ_{t+1} = θ_t − η ∇ L_f(θ_t; B_t)             (SGD, no momentum, no weight decay;
                                                   B_t = the whole relearn set: plain GD)
    a_t = acc(θ_t; D_f'),  ℓ_t = L_f(θ_t; D_f')  recorded for t = 0 … T
    RCD = min{ t : a_t ≥ τ }, or T when never reached (``rcd_reached = 0``; also when the
          relearning loss turns non-finite, which stops the run)
    τ  = fraction · acc(θ_orig; D_f')           (``threshold`` = None), or a stated absolute value

**Rescaled recipe (the default since issue 16).** A weight tensor whose output goes straight into a
normalisation layer (conv/linear → BatchNorm/LayerNorm/GroupNorm) is scale-invariant: scaling it by c
leaves the function unchanged but divides its gradient by c, so one SGD step moves its direction by
≈ η/‖W‖² — a method that shrinks those weights (IEU's decay, weight decay) raises the effective
learning rate of the relearning, and RCD then measures the catapult of an unstable lr more than a
delay (``rcd_loss_rise`` showed spikes of 10⁴ nats). Before relearning, each such tensor (found by
one forward pass: the norm layer's input *is* the weight layer's output) is rescaled to the original
model's norm, W ← W · ‖W_orig‖/‖W‖ (its bias too; a BatchNorm's running mean × c and running variance
× c², so the eval-mode function is the same up to the norm's ε). Then the relearning runs at each lr
of a small grid, η × {0.5, 1, 2}, and ``rcd`` is the median of the three delays: one lr that happens
to sit at a model's stability edge no longer decides the number. ``RelearnConfig(rescale=False,
lr_grid=(1.0,))`` (:data:`PLAIN`) is the earlier recipe: one run at η, weights as they are.

D_f' is the forget set, or a seeded subset of ``max_examples`` of it. The relearning runs in
**eval mode** by default (normalisation statistics frozen, dropout off), so the delay depends
on the weights alone, as in the GD theory; ``train_mode=True`` fine-tunes in train mode as a
plain attacker would (batch-norm statistics then drift towards the forget data).
``criterion="loss"`` stops on ``ℓ_t ≤ τ_ℓ`` instead, with τ_ℓ = loss_factor · ℓ(θ_orig);
``criterion="prob"`` on the mean per-example target probability p_t = mean_i exp(−ℓ_i) ≥
fraction · p(θ_orig) (for text: the length-normalised answer probability TOFU reports — the
threshold to use on language models, where exact-match accuracy is all-or-nothing)
(useful where forget accuracy is saturated, e.g. random forgetting on easy data).

:func:`relearn_curve` returns the whole curve (:class:`RelearnCurve`) of one lr; :func:`relearn_grid`
the curves over the lr grid (rescaled once); the registered ``relearn`` audit returns only floats,
and leaves the median run's curve (thinned, :func:`curve_record`, with the grid's delays) in
``ctx.curves["relearn"]``. :func:`normalise_rcd` turns a cell's RCD into a ratio to the
retrained model's (the benchmark holds retrain's cell).
"""
from __future__ import annotations

import copy
import math
import statistics
from dataclasses import dataclass, field, replace

import torch
from torch import nn
from torch.utils.data import Dataset

from ..data.dataset import cycle_batches, subset
from ..data.split import Split
from ..errors import ConfigError
from ..tasks.base import Task
from .base import AUDITS, AuditContext, compact, per_example, thin


@dataclass(frozen=True)
class RelearnConfig:
    """The relearning recipe (all our choices; the paper's is not available to us).

    ``optimizer``: ``sgd`` (default, the paper's theory) or ``adam``. ``lr`` 0.01 and
    ``steps`` (the budget T) 50: on digits/cnn class:0 the retrained model relearns in ≈13 to
    over 50 steps depending on its seed, GA's model in 1, so the scale separates methods; 50
    steps cost ≈0.6 s on one thread. Caveat, measured on digits: at lr 0.01 full-batch GD is
    past its stability edge for models far from the forget set — the forget loss spikes before
    it falls (retrain on class:0 by ≈27 nats; IEU, whose decay shrinks batch-normed weights and
    so raises the effective lr, by up to 10⁴), so RCD mixes convergence delay with catapult
    dynamics. ``rcd_loss_rise`` reports the spike. lr 0.002 with 150 steps keeps spikes ≤ ≈3
    nats and ranks the class:0 models the same way (retrain > IEU ≫ GA, FT), at 3× the cost.
    ``momentum``: 0 (plain GD). ``batch_size``: 0 = full batch
    (GD on the relearn set). ``max_examples``: size of the seeded forget subset (0 = all).
    ``criterion``: ``acc`` (forget accuracy ≥ τ), ``loss`` (forget loss ≤ τ_ℓ) or ``prob`` (mean
    forget probability ≥ fraction · the original's).
    ``fraction``: τ = fraction · the original model's forget accuracy (percent).
    ``threshold``: an absolute τ (percent for ``acc``, nats for ``loss``); overrides ``fraction``.
    Without an original model (and no ``threshold``) the original's accuracy is taken as 100%.
    ``loss_factor``: τ_ℓ = loss_factor · the original model's forget loss.
    ``train_mode``: fine-tune in train mode instead of eval mode.
    ``stop_at_threshold``: stop the run once τ is reached (the curve is then truncated).
    ``seed``: subset and batch order; None takes the audit context's seed.
    ``rescale``: before relearning, rescale each normalisation-fed weight tensor to the original
    model's norm (needs the original; see the module docstring). ``lr_grid``: multipliers of ``lr``;
    the audit relearns at each and reports the median RCD (:func:`relearn_grid`).
    :data:`PLAIN` = ``RelearnConfig(rescale=False, lr_grid=(1.0,))`` is the earlier recipe.
    Cost: the grid's three runs cost ≈ 3× the plain run (IEU's model on digits/cnn class:0: 5.9 s
    against 2.1 s, one thread on a busy 2-core machine).
    """

    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    batch_size: int = 0
    steps: int = 50
    max_examples: int = 256
    criterion: str = "acc"
    fraction: float = 0.9
    threshold: float | None = None
    loss_factor: float = 2.0
    train_mode: bool = False
    stop_at_threshold: bool = False
    seed: int | None = None
    rescale: bool = True
    lr_grid: tuple[float, ...] = (0.5, 1.0, 2.0)

    def __post_init__(self):
        object.__setattr__(self, "lr_grid", tuple(float(m) for m in self.lr_grid))
        if not self.lr_grid or any(not m >= 0 for m in self.lr_grid):
            raise ConfigError(f"relearn lr_grid must be non-empty multipliers >= 0, got {self.lr_grid!r}")
        if self.optimizer not in ("sgd", "adam"):
            raise ConfigError(f"relearn optimizer must be sgd or adam, got {self.optimizer!r}")
        if self.criterion not in ("acc", "loss", "prob"):
            raise ConfigError(f"relearn criterion must be acc, loss or prob, got {self.criterion!r}")
        if self.steps < 0 or self.batch_size < 0 or self.max_examples < 0 or self.lr < 0:
            raise ConfigError("relearn steps, batch_size, max_examples and lr must be >= 0")


@dataclass
class RelearnCurve:
    """One relearning run. Lists are indexed by step t = 0 … (recorded steps); entry 0 is θ_u.

    ``forget_acc`` in percent; ``forget_loss`` the mean task loss; ``weight_distance``
    ‖θ_t − θ_u‖₂ over trainable parameters. ``rcd``: the first t reaching the threshold,
    or ``budget`` when ``reached`` is False.
    """

    forget_acc: list[float] = field(default_factory=list)
    forget_loss: list[float] = field(default_factory=list)
    forget_prob: list[float] = field(default_factory=list)
    weight_distance: list[float] = field(default_factory=list)
    threshold: float = float("nan")
    criterion: str = "acc"
    budget: int = 0
    rcd: int = 0
    reached: bool = False
    lr: float = float("nan")
    rescaled: int = 0  # normalisation-fed weight tensors rescaled to the original's norm before relearning

    def hits(self, t: int, criterion: str | None = None, threshold: float | None = None) -> bool:
        criterion = criterion or self.criterion
        threshold = self.threshold if threshold is None else threshold
        if criterion == "acc":
            return self.forget_acc[t] >= threshold
        if criterion == "prob":
            return self.forget_prob[t] >= threshold
        return self.forget_loss[t] <= threshold

    def delay(self, criterion: str, threshold: float) -> tuple[int, bool]:
        """(RCD, reached) of this recorded curve under another criterion/threshold, capped at the
        recorded length (the budget, unless the run stopped early)."""
        for t in range(len(self.forget_acc)):
            if self.hits(t, criterion, threshold):
                return t, True
        return len(self.forget_acc) - 1, False


def relearn_subset(forget: Dataset, config: RelearnConfig, seed: int) -> Dataset:
    """The relearn set D_f': the forget set, or a seeded subset of ``max_examples`` of it."""
    if config.max_examples and len(forget) > config.max_examples:
        generator = torch.Generator().manual_seed(seed)
        positions = torch.randperm(len(forget), generator=generator)[: config.max_examples]
        return subset(forget, torch.sort(positions).values)
    return forget


def forget_stats(model: nn.Module, task: Task, data: Dataset, ctx: AuditContext) -> tuple[float, float, float]:
    """(accuracy in percent, mean loss, mean per-example probability exp(−loss)) on ``data``, eval mode."""
    acc = 100.0 * float(per_example(model, task, data, task.correct, ctx).mean())
    losses = per_example(model, task, data, task.loss, ctx)
    return acc, float(losses.mean()), float(torch.exp(-losses).mean())


def relearn_threshold(config: RelearnConfig, original_stats: tuple[float, float] | None) -> float:
    """τ for ``config.criterion``: the stated absolute value, else a multiple of the original's."""
    if config.threshold is not None:
        return float(config.threshold)
    if config.criterion == "acc":
        reference = original_stats[0] if original_stats is not None else 100.0
        return config.fraction * reference
    if config.criterion == "prob":
        reference = original_stats[2] if original_stats is not None else 1.0
        return config.fraction * reference
    if original_stats is None:
        raise ConfigError("relearn criterion 'loss' needs an original model or an absolute threshold")
    return config.loss_factor * original_stats[1]


def normalise_rcd(rcd: float, rcd_retrain: float, offset: float = 1.0) -> float:
    """RCD relative to the retrained model's: ``(rcd + offset) / (rcd_retrain + offset)``.

    1 means "as hard to relearn as retrain", above 1 harder. ``offset=1`` (our choice) counts
    the evaluation at step 0 so the ratio is defined when retrain relearns at once (RCD 0, common
    for random forgetting where retrain generalises to the forget set); ``offset=0`` is the plain
    ratio, NaN when retrain's RCD is 0 (1 when both are 0).
    """
    numerator, denominator = rcd + offset, rcd_retrain + offset
    if denominator == 0:
        return 1.0 if numerator == 0 else float("nan")
    return numerator / denominator


# Normalisation layers whose output does not change when their input is scaled by c > 0 (up to ε).
NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm,
               *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))
WEIGHT_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)


@torch.no_grad()
def norm_fed_layers(model: nn.Module, task: Task, data: Dataset, ctx: AuditContext,
                    probe_size: int = 32) -> dict[str, list[str]]:
    """The conv/linear layers whose output goes straight into a normalisation layer, found on one
    eval-mode forward pass over the first ``probe_size`` examples of ``data``: ``{weight layer name:
    [norm layer names]}``. Data flow, not module order: a norm layer's input must *be* the weight
    layer's output tensor (a residual sum or an activation in between does not count, so pre-norm
    transformers, whose norms read the residual stream, get no pairs). A norm layer fed by several
    layers (a module called twice) is left out: one set of running statistics cannot follow two scales.
    Assumed, not checked: the weight layer's output feeds nothing but the norm layer (true of the
    conv → BN blocks of the model zoo's CNNs, ResNet-18 and VGG-16-BN)."""
    modules = dict(model.named_modules())
    outputs: dict[int, tuple[str, torch.Tensor]] = {}  # id(output) -> (layer, output): kept alive, ids stay unique
    feeders: dict[str, set[str]] = {}
    hooks = []
    for name, module in modules.items():
        if isinstance(module, WEIGHT_LAYERS) and getattr(module, "weight", None) is not None:
            hooks.append(module.register_forward_hook(
                lambda m, args, out, name=name: outputs.__setitem__(id(out), (name, out)) if torch.is_tensor(out) else None))
        elif isinstance(module, NORM_LAYERS):
            def pre_hook(m, args, name=name):
                source = outputs.get(id(args[0])) if args and torch.is_tensor(args[0]) else None
                feeders.setdefault(name, set()).add(source[0] if source is not None and source[1] is args[0] else "")
            hooks.append(module.register_forward_pre_hook(pre_hook))
    try:
        per_example(model, task, subset(data, range(min(probe_size, len(data)))), task.loss, ctx)
    finally:
        for hook in hooks:
            hook.remove()
    fed: dict[str, list[str]] = {}
    for norm, sources in feeders.items():
        if len(sources) == 1 and "" not in sources:
            fed.setdefault(next(iter(sources)), []).append(norm)
    return fed


@torch.no_grad()
def rescale_to_reference(model: nn.Module, reference: nn.Module, fed: dict[str, list[str]]) -> int:
    """In place: each weight layer in ``fed`` (:func:`norm_fed_layers`) scaled so its weight tensor has
    the Frobenius norm of ``reference``'s same-named layer, c = ‖W_ref‖/‖W‖; its bias × c; the
    BatchNorm layers it feeds get running mean × c and running variance × c² (the eval-mode function
    is unchanged up to the norm's ε). Layers missing from ``reference``, of another shape, or with a
    zero or non-finite norm are skipped. Returns the number of weight tensors rescaled."""
    modules, ref_modules = dict(model.named_modules()), dict(reference.named_modules())
    count = 0
    for name, norms in fed.items():
        layer, ref = modules[name], ref_modules.get(name)
        if ref is None or getattr(ref, "weight", None) is None or ref.weight.shape != layer.weight.shape:
            continue
        norm = torch.linalg.vector_norm(layer.weight.detach().double())
        target = torch.linalg.vector_norm(ref.weight.detach().double()).to(norm.device)
        if not (torch.isfinite(norm) and torch.isfinite(target) and norm > 0 and target > 0):
            continue
        c = target / norm  # W ← c · W
        layer.weight.copy_((layer.weight.double() * c).to(layer.weight.dtype))
        if getattr(layer, "bias", None) is not None:
            layer.bias.copy_((layer.bias.double() * c).to(layer.bias.dtype))
        for norm_name in norms:
            bn = modules[norm_name]
            if isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.running_mean is not None:
                bn.running_mean.mul_(float(c))
                bn.running_var.mul_(float(c) ** 2)
        count += 1
    return count


def rescaled_copy(model: nn.Module, task: Task, data: Dataset, original: nn.Module | None,
                  ctx: AuditContext) -> tuple[nn.Module, int]:
    """A copy of ``model`` on ``ctx.device`` with its normalisation-fed weights at ``original``'s
    norms (:func:`rescale_to_reference`), and the number rescaled (0 without ``original``)."""
    work = copy.deepcopy(model).to(ctx.device)
    if original is None:
        return work, 0
    return work, rescale_to_reference(work, original, norm_fed_layers(work, task, data, ctx))


@torch.no_grad()
def _weight_distance(params: list[torch.Tensor], start: list[torch.Tensor]) -> float:
    if not params:
        return 0.0
    diffs = torch._foreach_sub(params, start)
    return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(diffs))))


def relearn_curve(model: nn.Module, task: Task, forget: Dataset, config: RelearnConfig = RelearnConfig(),
                  *, original: nn.Module | None = None, ctx: AuditContext | None = None) -> RelearnCurve:
    """Fine-tune a copy of ``model`` on (a seeded subset of) ``forget`` at ``config.lr`` (one run:
    ``lr_grid`` is :func:`relearn_grid`'s); record the curve and RCD. With ``config.rescale`` and an
    ``original``, the copy's normalisation-fed weights are first rescaled to the original's norms.

    ``model`` is not modified. Deterministic given ``config.seed`` (or ``ctx.seed``).
    """
    ctx = ctx or AuditContext(device=next(model.parameters()).device)
    seed = ctx.seed if config.seed is None else config.seed
    data = relearn_subset(forget, config, seed)
    original_stats = forget_stats(original, task, data, ctx) if original is not None else None
    curve = RelearnCurve(threshold=relearn_threshold(config, original_stats), criterion=config.criterion,
                         budget=config.steps, lr=config.lr)

    if config.rescale:
        work, curve.rescaled = rescaled_copy(model, task, data, original, ctx)
    else:
        work = copy.deepcopy(model).to(ctx.device)
    work.train(config.train_mode)
    params = [p for p in work.parameters() if p.requires_grad]
    start = [p.detach().clone() for p in params]
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)
    else:
        optimizer = torch.optim.Adam(params, lr=config.lr)
    full_batch = config.batch_size == 0 or config.batch_size >= len(data)
    batches = cycle_batches(data, len(data) if full_batch else config.batch_size,
                            generator=torch.Generator().manual_seed(seed))
    # In eval mode on the full relearn set, the step's own forward gives ℓ_t exactly: no second pass.
    shared_forward = full_batch and not config.train_mode

    for t in range(config.steps + 1):
        last = t == config.steps
        if shared_forward:
            batch = task.to_device(next(batches), ctx.device)
            with torch.set_grad_enabled(not last):
                losses = task.loss(work, batch)  # per-example L_f(θ_t; D_f')
            loss = float(losses.detach().mean())  # ℓ_t
            prob = float(torch.exp(-losses.detach()).mean())  # p_t
            acc = 100.0 * float(per_example(work, task, data, task.correct, ctx).mean())  # a_t
        else:
            acc, loss, prob = forget_stats(work, task, data, ctx)  # a_t, ℓ_t, p_t (eval mode, before the step)
        curve.forget_acc.append(acc)
        curve.forget_loss.append(loss)
        curve.forget_prob.append(prob)
        curve.weight_distance.append(_weight_distance(params, start))
        if not curve.reached and curve.hits(t):
            curve.reached, curve.rcd = True, t
            if config.stop_at_threshold:
                break
        if last or not math.isfinite(loss):
            break
        if not shared_forward:
            batch = task.to_device(next(batches), ctx.device)
            losses = task.loss(work, batch)  # per-example L_f(θ_t; B_t)
        optimizer.zero_grad(set_to_none=True)
        losses.mean().backward()
        optimizer.step()  # θ_{t+1} = θ_t − η ∇L_f(θ_t; B_t)
    if not curve.reached:
        curve.rcd = config.steps
    return curve


def relearn_grid(model: nn.Module, task: Task, forget: Dataset, config: RelearnConfig = RelearnConfig(),
                 *, original: nn.Module | None = None, ctx: AuditContext | None = None) -> list[RelearnCurve]:
    """One :func:`relearn_curve` per lr in ``config.lr × config.lr_grid`` (in the grid's order),
    from one copy of ``model`` rescaled once (``config.rescale``). ``model`` is not modified."""
    ctx = ctx or AuditContext(device=next(model.parameters()).device)
    rescaled = 0
    if config.rescale:
        seed = ctx.seed if config.seed is None else config.seed
        model, rescaled = rescaled_copy(model, task, relearn_subset(forget, config, seed), original, ctx)
    curves = []
    for factor in config.lr_grid:
        curve = relearn_curve(model, task, forget, replace(config, lr=config.lr * factor, rescale=False),
                              original=original, ctx=ctx)
        curve.rescaled = rescaled
        curves.append(curve)
    return curves


def median_run(curves: list[RelearnCurve]) -> tuple[float, RelearnCurve]:
    """The median RCD over the grid's runs, and the run at the median (the lower middle one for an
    even grid, whose median is the mean of the two middle delays)."""
    ranked = sorted(curves, key=lambda c: c.rcd)
    return float(statistics.median(c.rcd for c in curves)), ranked[(len(ranked) - 1) // 2]


def curve_record(curve: RelearnCurve, grid: list[RelearnCurve] | None = None) -> dict:
    """The curve as a small JSON-ready dict: the step t and the criterion's value per step (≤ 100
    points, thinned evenly), the threshold τ and the delay; with ``grid``, each run's lr, RCD and
    whether it reached τ."""
    values = {"acc": curve.forget_acc, "loss": curve.forget_loss, "prob": curve.forget_prob}[curve.criterion]
    keep = thin(len(values))
    record = {"criterion": curve.criterion, "threshold": float(curve.threshold), "rcd": curve.rcd,
              "reached": curve.reached, "budget": curve.budget,
              "step": keep, "value": compact(values[t] for t in keep)}
    if grid is not None:
        record["lr"] = float(curve.lr)
        record["grid"] = [{"lr": float(c.lr), "rcd": c.rcd, "reached": c.reached} for c in grid]
    return record


DEFAULT_CONFIG = RelearnConfig()
PLAIN = RelearnConfig(rescale=False, lr_grid=(1.0,))  # the recipe before issue 16: one lr, weights as they are


@AUDITS.register("relearn")
def relearn_audit(model: nn.Module, task: Task, split: Split, ctx: AuditContext,
                  config: RelearnConfig = DEFAULT_CONFIG) -> dict[str, float]:
    """RCD with the default recipe: the median over the lr grid after rescaling (module docstring).

    ``rcd``: steps, higher = harder to relearn (compare with retrain's via :func:`normalise_rcd`), the
    median over the grid; ``rcd_grid_min`` / ``rcd_grid_max``: the grid's extremes; ``rcd_rescaled``:
    how many weight tensors were rescaled. The rest describe the median run: ``rcd_reached``: 1 if
    the threshold was reached within the budget, else 0 and its RCD is the budget; ``rcd_threshold``:
    τ; ``rcd_start_forget_acc`` / ``rcd_final_forget_acc`` / ``rcd_final_forget_loss``: the curve's
    ends; ``rcd_mean_forget_acc``: its mean (the area under the relearning curve, lower = slower);
    ``rcd_final_weight_distance``: ‖θ_T − θ_u‖ (from the rescaled start); ``rcd_loss_rise``:
    max_t ℓ_t − ℓ_0, > 0 when the relearning went uphill at some step — the lr is then unstable for
    this model, so part of the delay is that instability rather than forgetting."""
    config = ctx.options.get("relearn", config)  # e.g. the benchmark's recipe for text
    curves = relearn_grid(model, task, split.forget, config, original=ctx.original, ctx=ctx)
    rcd, curve = median_run(curves)
    ctx.curves["relearn"] = curve_record(curve, curves)
    return {
        "rcd": rcd,
        "rcd_grid_min": float(min(c.rcd for c in curves)),
        "rcd_grid_max": float(max(c.rcd for c in curves)),
        "rcd_rescaled": float(curve.rescaled),
        "rcd_reached": float(curve.reached),
        "rcd_threshold": curve.threshold,
        "rcd_start_forget_acc": curve.forget_acc[0],
        "rcd_final_forget_acc": curve.forget_acc[-1],
        "rcd_final_forget_loss": curve.forget_loss[-1],
        "rcd_final_forget_prob": curve.forget_prob[-1],
        "rcd_mean_forget_acc": sum(curve.forget_acc) / len(curve.forget_acc),
        "rcd_final_weight_distance": curve.weight_distance[-1],
        "rcd_loss_rise": max(curve.forget_loss) - curve.forget_loss[0],
    }
