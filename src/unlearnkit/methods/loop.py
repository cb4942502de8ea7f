"""The shared training loop and its reusable pieces.

Loop-shaped methods (FT, GA, RL, NegGrad+, …) only write ``objective``: the scalar to minimise
on one step's batches. The loop owns everything else: paired forget/retain streams (one epoch
is one pass over ``epoch_stream``; the other stream is cycled), optimizer and LR schedule from
the config, gradient clipping, a progress bar, and the divergence guard. Methods with another
shape override ``run`` and reuse :func:`make_optimizer`, :func:`make_scheduler`,
:func:`paired_batches` and :func:`check_finite`.

Every loop finishes a step with :meth:`StepCounter.done`, the one place that reports the step's loss,
its named objective terms and learning rate to the progress bar and to ``ctx.callbacks``
(``methods/callbacks.py``). An ``objective`` names a term with :func:`log_term` (``state`` reaches the
run's context); code holding the context calls ``ctx.log``.

Several processes (``unlearnkit.distributed``): :func:`local_batch` keeps each process's rows of
the global batch, the loop all-reduces ``.grad`` after each ``gradient_step``, and an optimizer from
:func:`make_optimizer` all-reduces before it steps when a custom loop did not (so every loop built
from these pieces stays data-parallel).
"""
from __future__ import annotations

import logging
import math
import time
from typing import Any, ClassVar, Iterator

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .. import distributed
from ..data.dataset import cycle_batches, iterate_batches, num_batches
from ..data.split import Split
from ..errors import ConfigError, DivergenceError
from ..tasks.base import Task
from .base import Method, MethodConfig, RunContext
from .gradients import stat_buffers

Batches = dict[str, Any]

log = logging.getLogger(__name__)


def make_optimizer(params, config: MethodConfig, precision=None) -> torch.optim.Optimizer:
    """The config's optimizer over the trainable ``params``; with ``precision.master_weights``, low-precision
    parameters are stepped through fp32 master copies (:func:`_with_master_weights`)."""
    params = [p for p in params if p.requires_grad]
    masters = None
    if precision is not None and precision.master_weights and any(p.dtype != torch.float32 for p in params):
        masters = [p.detach().float().clone() if p.dtype != torch.float32 else p for p in params]
    stepped = masters if masters is not None else params
    relative = getattr(config, "step_size", "absolute") == "relative"
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(stepped, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    else:
        # relative steps: one group per tensor, its learning rate lr × RMS(θ) at the start (Adam's step
        # is ≈ lr per coordinate, so the step is ≈ lr × ‖θ‖ per tensor)
        groups = ([{"params": [p], "lr": config.lr * _rms(p)} for p in stepped] if relative else stepped)
        kind = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
        optimizer = kind(groups, lr=config.lr, weight_decay=config.weight_decay)
    if distributed.active():
        optimizer.register_step_pre_hook(_reduce_before_step)
    if masters is not None:
        _with_master_weights(optimizer, params, masters)
    if relative and config.optimizer == "sgd":
        optimizer.register_step_pre_hook(_trust_ratio)  # after the reduction and the master copies
    return optimizer


# relative steps: the smallest tensor norm a step is scaled to (a tensor initialised at zero, e.g. a bias)
RELATIVE_FLOOR = 1e-3


def _rms(p: torch.Tensor) -> float:
    return max(float(p.detach().float().pow(2).mean().sqrt()), RELATIVE_FLOOR)


def _trust_ratio(optimizer, args, kwargs) -> None:
    """``step_size="relative"`` with SGD: each tensor's gradient rescaled to the tensor's norm
    (g·‖θ‖/‖g‖), so ``lr`` is the step as a fraction of ‖θ‖ (before momentum)."""
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not params:
        return
    grads = [p.grad for p in params]
    with torch.no_grad():
        g_norms = torch._foreach_norm(grads)
        p_norms = torch._foreach_norm([p.detach() for p in params])
        scales = [torch.where(g > 0, pn.clamp_min(RELATIVE_FLOOR) / g.clamp_min(1e-30), torch.zeros_like(g))
                  for g, pn in zip(g_norms, p_norms)]
        torch._foreach_mul_(grads, scales)


def _with_master_weights(optimizer: torch.optim.Optimizer, params: list, masters: list) -> None:
    """Before each step the model's gradients (any dtype) become the fp32 masters' gradients; after
    it the masters are written back into the model's parameters (rounded to their dtype) and the
    model's gradients are cleared (the optimizer's ``zero_grad`` reaches only the masters)."""
    pairs = [(p, m) for p, m in zip(params, masters) if m is not p]

    def before(_optimizer, args, kwargs):
        for p, m in pairs:
            m.grad = None if p.grad is None else p.grad.detach().float()

    def after(_optimizer, args, kwargs):
        with torch.no_grad():
            for p, m in pairs:
                p.copy_(m)
                p.grad = None

    optimizer.register_step_pre_hook(before)
    optimizer.register_step_post_hook(after)


_REDUCED = "_grads_reduced"  # optimizer attribute: the loop reduced this step's gradients already


def reduce_gradients(optimizer: torch.optim.Optimizer, params) -> None:
    """All-reduce ``.grad`` across processes now (before clipping), and spare the optimizer's own
    reduction at its next step. No-op in one process."""
    if distributed.active():
        distributed.reduce_grads_(params)
        setattr(optimizer, _REDUCED, True)


def _reduce_before_step(optimizer, args, kwargs) -> None:
    if getattr(optimizer, _REDUCED, False):
        setattr(optimizer, _REDUCED, False)
        return
    distributed.reduce_grads_([p for group in optimizer.param_groups for p in group["params"]])


def make_scheduler(optimizer: torch.optim.Optimizer, config: MethodConfig, total_steps: int):
    total = max(total_steps, 1)
    warm = int(config.warmup * total)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm  # linear warm-up
        progress = min(step - warm, total - warm) / max(total - warm, 1)
        if config.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if config.schedule == "linear":
            return max(0.0, 1.0 - progress)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


SCALER = "_grad_scaler"  # run state key: the float16 loss scaler, or None
# run state key: the weight of the current micro-batch's gradient in its accumulated step (its share of
# the step's examples); the default ``gradient_step`` scales its loss by it and the loop adds up .grad
ACCUM_WEIGHT = "_accumulation_weight"
TERMS = "_log_term"  # run state key: where ``log_term`` sends a term (the run context's ``log``)


def log_term(state: dict, name: str, value) -> None:
    """Report objective term ``name`` of the current step from inside an ``objective`` (which sees
    the run ``state``, not the context): as it enters the objective, before its weight, e.g.
    ``log_term(state, "retain", retain)`` for ``loss = forget + α·retain``. No-op outside a run."""
    sink = state.get(TERMS)
    if sink is not None:
        sink(name, value)


def check_finite(value: torch.Tensor, method: str, step: int) -> None:
    """The divergence guard: stop with a clear error on a NaN/inf loss (on any process: all stop)."""
    if not distributed.all_true(torch.isfinite(value).all()):
        raise DivergenceError(
            f"{method}: loss became {value.item() if value.numel() == 1 else 'non-finite'} at step {step}; "
            "stopped (the input model is untouched). Lower the learning rate or enable grad_clip."
        )


def check_parameters_finite(model: nn.Module, method: str) -> None:
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            raise DivergenceError(f"{method}: parameter {name} became non-finite; stopped (the input model is untouched)")


def local_batch(batch, task: Task, ctx: RunContext):
    """A global batch on the run's device, cut to this process's rows (all of it in one process).
    The whole batch is moved (and augmented) first, so each example gets its single-process draw."""
    return distributed.shard(task.to_device(batch, ctx.device))


def paired_batches(
    streams: dict[str, Dataset],
    epoch_stream: str,
    batch_size: int,
    task: Task,
    ctx: RunContext,
) -> Iterator[Batches]:
    """One epoch: a pass over ``streams[epoch_stream]``, each batch paired with the next batch of every other stream.
    Every process draws the same global batches; each keeps its rows (:func:`local_batch`)."""
    others = {name: cycle_batches(data, batch_size, generator=ctx.generator) for name, data in streams.items() if name != epoch_stream}
    for batch in iterate_batches(streams[epoch_stream], batch_size, shuffle=True, generator=ctx.generator):
        moved = {epoch_stream: task.to_device(batch, ctx.device)}
        for name, iterator in others.items():
            moved[name] = task.to_device(next(iterator), ctx.device)
        out = {name: distributed.shard(b) for name, b in moved.items() if name != epoch_stream}
        # sharded last: the step's gradient reduction weighs by the epoch stream's share
        out[epoch_stream] = distributed.shard(moved[epoch_stream])
        yield {name: out[name] for name in moved}


def progress_bar(total: int, desc: str, ctx: RunContext):
    return tqdm(total=total, desc=desc, disable=not ctx.progress or not distributed.is_main(), leave=False,
                dynamic_ncols=True)


class StepCounter:
    """Counts optimizer steps: the progress bar, ``ctx.on_step(model, steps_done)`` after each, and
    the step's values for the bar's postfix and ``ctx.callbacks``. Every method loop (the shared one
    and the custom ones) finishes a step with :meth:`done`.

    ``done(loss)`` takes the step's objective (a tensor, kept detached) and the terms reported with
    ``ctx.log`` since the previous step; ``lr`` is read from the optimizer given here or to
    :meth:`watch`. The values are turned into floats together (one host sync) at most every
    ``FLUSH_S`` seconds, or after ``FLUSH_STEPS`` steps, and when the run ends: only then do the bar's
    postfix change and the callbacks' ``on_step`` run (in order, in bursts). With no callback and no
    bar nothing is kept."""

    FLUSH_S = 0.5
    FLUSH_STEPS = 1024

    def __init__(self, total: int, desc: str, model: nn.Module, ctx: RunContext,
                 optimizer: torch.optim.Optimizer | None = None):
        self.index, self.model, self.ctx, self.total, self.desc = 0, model, ctx, total, desc
        self.bar = progress_bar(total, desc, ctx)
        self.callbacks = list(ctx.callbacks) if distributed.is_main() else []
        self._show = not self.bar.disable
        self._pending: list[tuple] = []
        self._last_flush = -math.inf  # the first step shows at once
        self.optimizer, self._lr = None, None
        self.watch(optimizer)
        ctx.terms = {}  # terms reported before the first step (e.g. in ``prepare``) belong to no step

    def watch(self, optimizer: torch.optim.Optimizer | None) -> None:
        """Read ``lr`` from ``optimizer`` from the next step on (a loop that changes optimizer, e.g.
        per phase, calls this with the new one)."""
        self.optimizer = optimizer
        self._lr = _current_lr(optimizer)

    def __enter__(self) -> "StepCounter":
        self._dispatch("on_run_start", {"run": self.desc, "total": self.total})
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        status = "ok" if exc_type is None else "diverged" if issubclass(exc_type, DivergenceError) else "error"
        try:
            self.flush()  # the steps done before an error too
            self._dispatch("on_run_end", {"run": self.desc, "total": self.total, "steps": self.index, "status": status})
        except Exception as error:
            if exc_type is None:
                raise
            log.warning("a training callback failed while the run stopped: %s", error)  # keep the run's own error
        finally:
            self.bar.close()

    def done(self, loss: torch.Tensor | float | None = None) -> None:
        step = self.index
        self.index += 1
        terms = self.ctx.terms
        if terms:
            self.ctx.terms = {}
        if self.callbacks or self._show:
            lr = self._lr
            if self.optimizer is not None:
                self._lr = _current_lr(self.optimizer)  # after the schedule's step: the next step's rate
            entry = (step, loss, terms, lr)
            if self.callbacks:
                self._pending.append(entry)
            else:
                self._pending = [entry]  # the bar shows only the newest
            now = time.monotonic()
            if now - self._last_flush >= self.FLUSH_S or len(self._pending) >= self.FLUSH_STEPS:
                self.flush(now)
        if self.ctx.on_step is not None:
            self.ctx.on_step(self.model, self.index)
        self.bar.update(1)

    def flush(self, now: float | None = None) -> None:
        """Hand the steps kept so far to the callbacks and the bar's postfix."""
        if not self._pending:
            return
        entries, self._pending = self._pending, []
        self._last_flush = time.monotonic() if now is None else now
        logs = _materialise(entries)
        for step, values in logs:
            for callback in self.callbacks:
                on_step = getattr(callback, "on_step", None)
                if on_step is not None:
                    on_step(step, values)
        if self._show:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in logs[-1][1].items()}, refresh=True)

    def _dispatch(self, hook: str, info: dict) -> None:
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is not None:
                method(dict(info))


def _current_lr(optimizer: torch.optim.Optimizer | None) -> float | None:
    if optimizer is None or not optimizer.param_groups:
        return None
    return float(optimizer.param_groups[0]["lr"])


def _materialise(entries: list[tuple]) -> list[tuple[int, dict[str, float]]]:
    """(step, loss, terms, lr) entries as (step, {"loss": …, term: …, "lr": …}) with floats. CPU
    tensors are read directly (no sync to avoid); the others are stacked per device and dtype and
    read at once (one host sync per device)."""
    pending: dict[tuple, list[torch.Tensor]] = {}
    slots = []  # per entry: [(name, float | (group key, index))]
    with torch.no_grad():
        for step, loss, terms, lr in entries:
            row = [] if loss is None else [("loss", _slot(loss, pending))]
            row += [(name, _slot(value, pending)) for name, value in terms.items()]
            if lr is not None:
                row.append(("lr", lr))
            slots.append((step, row))
        read = {key: torch.stack(group).tolist() for key, group in pending.items()}
    return [(step, {name: read[v[0]][v[1]] if isinstance(v, tuple) else v for name, v in row}) for step, row in slots]


def _slot(value, pending: dict) -> float | tuple:
    if not isinstance(value, torch.Tensor):
        return float(value)
    if value.numel() != 1:
        value = value.float().mean()
    if value.device.type == "cpu":
        return value.item()
    group = pending.setdefault((value.device, value.dtype), [])
    group.append(value.reshape(()))
    return (value.device, value.dtype), len(group) - 1


class LoopMethod(Method):
    """A method that steps on paired batches.

    Most subclasses only write ``objective`` (the scalar to minimise). Hooks, in call order:
    ``prepare`` (per-run state) → per step ``gradient_step`` (fills ``.grad``; default: backward of
    ``objective``) then the optimizer step, then ``after_step`` → ``after_epoch`` → ``finish``.
    ``streams``: which of ``forget``/``retain`` the method consumes (a method that does not list
    ``forget`` is never given forget data). ``epoch_stream``: the stream one epoch passes over.
    """

    streams: ClassVar[tuple[str, ...]] = ("forget", "retain")
    epoch_stream: ClassVar[str] = "forget"

    def objective(self, model: nn.Module, task: Task, batches: Batches, config: MethodConfig, state: dict) -> torch.Tensor:
        raise NotImplementedError

    def gradient_step(self, model: nn.Module, task: Task, batches: Batches, config: MethodConfig,
                      state: dict, step: int, ctx: RunContext) -> torch.Tensor:
        """Fill ``.grad`` of the trainable parameters for one step; return the detached objective.
        Methods whose update is not the gradient of one loss (look-aheads, surrogate points)
        override this; the loop then clips, steps the optimizer and the schedule as usual."""
        loss = self.objective(model, task, batches, config, state)
        check_finite(loss.detach(), self.name, step)
        scaler = state.get(SCALER)
        scaled = loss * state[ACCUM_WEIGHT] if ACCUM_WEIGHT in state else loss  # a micro-batch's share
        (scaled if scaler is None else scaler.scale(scaled)).backward()
        return loss.detach()

    def set_train_mode(self, model: nn.Module, config: MethodConfig) -> None:
        """Modes for the loop (default: train mode; a method may freeze normalisation layers)."""
        model.train()

    def prepare(self, model: nn.Module, task: Task, split: Split, config: MethodConfig, ctx: RunContext) -> dict:
        """Per-run state (frozen reference models, masks…), built before the first step."""
        return {}

    def after_step(self, model: nn.Module, state: dict, step: int, config: MethodConfig, ctx: RunContext) -> None:
        """Hook after each optimizer step; ``step`` is the 0-based index of the step just taken."""

    def after_epoch(self, model: nn.Module, state: dict, steps_done: int, config: MethodConfig, ctx: RunContext) -> None:
        """Hook after each epoch; ``steps_done`` counts the optimizer steps so far."""

    def finish(self, model: nn.Module, state: dict, config: MethodConfig, ctx: RunContext) -> nn.Module:
        """The model to return, after the last step (default: the trained model itself)."""
        return model

    def run(self, model, task, split, config, ctx):
        streams = {name: getattr(split, name) for name in self.streams}
        model.to(ctx.device)
        state = self.prepare(model, task, split, config, ctx)
        run_loop(self, model, task, streams, config, ctx, state)
        model = self.finish(model, state, config, ctx)
        check_parameters_finite(model, self.name)
        return model


def total_steps(method: LoopMethod, streams: dict[str, Dataset], config: MethodConfig) -> int:
    """Optimizer steps: each takes ``grad_accum`` micro-batches (the epoch's last step may take fewer)."""
    accum = getattr(config, "grad_accum", 1)
    return config.epochs * -(-num_batches(streams[method.epoch_stream], config.batch_size) // accum)


def accumulation_groups(batches: Iterator[Batches], accum: int) -> Iterator[list[Batches]]:
    """Consecutive paired batches in groups of ``accum``: the micro-batches of one optimizer step."""
    group: list[Batches] = []
    for batch in batches:
        group.append(batch)
        if len(group) == accum:
            yield group
            group = []
    if group:
        yield group


def accumulated_gradient_step(method: LoopMethod, model: nn.Module, task: Task, group: list[Batches],
                              config: MethodConfig, state: dict, step: int, ctx: RunContext,
                              params: list[torch.Tensor]) -> torch.Tensor:
    """Fill ``.grad`` with the gradient of one optimizer step over ``group``'s micro-batches: each
    micro-batch's gradient weighted by its share of the step's ``epoch_stream`` examples, which for a
    mean-reduced objective is exactly the gradient of the whole effective batch. Returns the step's
    objective, weighted the same way. The default ``gradient_step`` accumulates into ``.grad`` itself
    (its loss scaled by the weight); one that sets ``.grad`` its own way is summed in a buffer."""
    if len(group) == 1:
        return method.gradient_step(model, task, group[0], config, state, step, ctx)
    sizes = [task.batch_size(b[method.epoch_stream]) for b in group]
    total = float(sum(sizes))
    default = type(method).gradient_step is LoopMethod.gradient_step
    buffers = None if default else [torch.zeros_like(p) for p in params]
    loss = 0.0
    try:
        for size, batches in zip(sizes, group):
            if default:
                state[ACCUM_WEIGHT] = size / total
            else:  # its gradient alone, weighted here (even if it calls the default step itself)
                for p in params:
                    p.grad = None
            micro = method.gradient_step(model, task, batches, config, state, step, ctx)
            loss = loss + micro * (size / total)
            if buffers is not None:
                for p, b in zip(params, buffers):
                    if p.grad is not None:
                        b.add_(p.grad, alpha=size / total)
    finally:
        state.pop(ACCUM_WEIGHT, None)
    if buffers is not None:
        for p, b in zip(params, buffers):
            p.grad = b
    return loss


def run_loop(method: LoopMethod, model: nn.Module, task: Task, streams: dict[str, Dataset],
             config: MethodConfig, ctx: RunContext, state: dict | None = None) -> nn.Module:
    state = {} if state is None else state
    total = total_steps(method, streams, config)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, config, ctx.precision)
    scheduler = make_scheduler(optimizer, config, total)
    method.set_train_mode(model.to(ctx.device), config)
    precision = ctx.precision
    scaler = precision.scaler(ctx.device)
    if scaler is not None and type(method).gradient_step is not LoopMethod.gradient_step:
        raise ConfigError(f"{method.name} computes its own gradients, which a float16 loss scaler cannot "
                          "scale; use amp=bf16 (or none)")
    state[SCALER] = scaler
    accum = getattr(config, "grad_accum", 1)
    if accum > 1 and distributed.active():
        raise ConfigError("grad_accum > 1 is not supported across several processes yet; use a larger batch_size "
                          "(each process takes its share of it)")
    forward_model = precision.prepare(model)
    seen_before = ctx.targets_seen
    # several processes: norm-layer running statistics averaged after each step (same model everywhere)
    statistics = [b for b in stat_buffers(model).values() if b.is_floating_point()] if distributed.active() else []
    state[TERMS] = ctx.log  # objectives name their terms through log_term(state, …)
    with StepCounter(total, method.name, model, ctx, optimizer) as counter:
        for _ in range(config.epochs):
            epoch = paired_batches(streams, method.epoch_stream, config.batch_size, task, ctx)
            for group in accumulation_groups(epoch, accum):
                optimizer.zero_grad(set_to_none=True)
                with precision.autocast(ctx.device):
                    loss = accumulated_gradient_step(method, forward_model, task, group, config, state,
                                                     counter.index, ctx, params)
                reduce_gradients(optimizer, params)  # mean over processes (the global batch's gradient)
                ctx.targets_seen += sum(int(task.target_length(b).sum()) for batches in group
                                        for b in batches.values() if distributed.holds_rows(b))  # not a placeholder
                if scaler is not None and config.grad_clip > 0:
                    scaler.unscale_(optimizer)
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                if scaler is None:
                    optimizer.step()
                else:
                    scaler.step(optimizer)  # skipped when the scaled gradients overflowed
                    scaler.update()
                scheduler.step()
                distributed.all_reduce_mean_(statistics)
                method.after_step(model, state, counter.index, config, ctx)
                counter.done(loss)
            method.after_epoch(model, state, counter.index, config, ctx)
    ctx.targets_seen = seen_before + distributed.sum_int(ctx.targets_seen - seen_before)  # all processes'
    check_parameters_finite(model, method.name)
    return model
