"""The shared training loop and its reusable pieces.

Loop-shaped methods (FT, GA, RL, NegGrad+, …) only write ``objective``: the scalar to minimise
on one step's batches. The loop owns everything else: paired forget/retain streams (one epoch
is one pass over ``epoch_stream``; the other stream is cycled), optimizer and LR schedule from
the config, gradient clipping, a progress bar, and the divergence guard. Methods with another
shape override ``run`` and reuse :func:`make_optimizer`, :func:`make_scheduler`,
:func:`paired_batches` and :func:`check_finite`.

Several processes (``unlearnkit.distributed``): :func:`local_batch` keeps each process's rows of
the global batch, the loop all-reduces ``.grad`` after each ``gradient_step``, and an optimizer from
:func:`make_optimizer` all-reduces before it steps when a custom loop did not (so every loop built
from these pieces stays data-parallel).
"""
from __future__ import annotations

import math
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


def make_optimizer(params, config: MethodConfig) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    elif config.optimizer == "adam":
        optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if distributed.active():
        optimizer.register_step_pre_hook(_reduce_before_step)
    return optimizer


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
    """Counts optimizer steps: the progress bar, and ``ctx.on_step(model, steps_done)`` after each.
    Every method loop (the shared one and the custom ones) finishes a step with :meth:`done`."""

    def __init__(self, total: int, desc: str, model: nn.Module, ctx: RunContext):
        self.index, self.model, self.ctx = 0, model, ctx
        self.bar = progress_bar(total, desc, ctx)

    def __enter__(self) -> "StepCounter":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()

    def done(self) -> None:
        self.index += 1
        if self.ctx.on_step is not None:
            self.ctx.on_step(self.model, self.index)
        self.bar.update(1)


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
        (loss if scaler is None else scaler.scale(loss)).backward()
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
    return config.epochs * num_batches(streams[method.epoch_stream], config.batch_size)


def run_loop(method: LoopMethod, model: nn.Module, task: Task, streams: dict[str, Dataset],
             config: MethodConfig, ctx: RunContext, state: dict | None = None) -> nn.Module:
    state = {} if state is None else state
    total = total_steps(method, streams, config)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, config)
    scheduler = make_scheduler(optimizer, config, total)
    method.set_train_mode(model.to(ctx.device), config)
    precision = ctx.precision
    scaler = precision.scaler(ctx.device)
    if scaler is not None and type(method).gradient_step is not LoopMethod.gradient_step:
        raise ConfigError(f"{method.name} computes its own gradients, which a float16 loss scaler cannot "
                          "scale; use amp=bf16 (or none)")
    state[SCALER] = scaler
    forward_model = precision.prepare(model)
    seen_before = ctx.targets_seen
    # several processes: norm-layer running statistics averaged after each step (same model everywhere)
    statistics = [b for b in stat_buffers(model).values() if b.is_floating_point()] if distributed.active() else []
    with StepCounter(total, method.name, model, ctx) as counter:
        for _ in range(config.epochs):
            for batches in paired_batches(streams, method.epoch_stream, config.batch_size, task, ctx):
                optimizer.zero_grad(set_to_none=True)
                with precision.autocast(ctx.device):
                    method.gradient_step(forward_model, task, batches, config, state, counter.index, ctx)
                reduce_gradients(optimizer, params)  # mean over processes (the global batch's gradient)
                ctx.targets_seen += sum(int(task.target_length(b).sum()) for b in batches.values()
                                        if distributed.holds_rows(b))  # not a placeholder row
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
                counter.done()
            method.after_epoch(model, state, counter.index, config, ctx)
    ctx.targets_seen = seen_before + distributed.sum_int(ctx.targets_seen - seen_before)  # all processes'
    check_parameters_finite(model, method.name)
    return model
