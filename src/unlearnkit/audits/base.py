"""The audit seam: ``audit_fn(model, task, split, ctx) -> {metric: float}``, registered by family name.

Audits never import methods; the benchmark and CLI only aggregate their dicts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.utils.data import Dataset

from ..data.dataset import iterate_batches
from ..data.split import Split
from ..registry import Registry
from ..tasks.base import Task


# Builds a fresh model and trains it on a dataset with a seed (shadow models); supplied by the
# caller (the benchmark passes the original model's recipe), so audits never import methods.
Trainer = Callable[[Dataset, int], nn.Module]
# Runs the method under test, as configured for the cell, on a model and a split with a seed (the
# run's randomness: U-LiRA gives each shadow its own, as independent runs have) and returns the
# unlearned model; supplied by the caller per cell, so audits never import methods. It must leave
# its argument unchanged (the benchmark's works on a copy).
Unlearner = Callable[[nn.Module, Split, int], nn.Module]


@dataclass
class AuditContext:
    """``original``/``retrain``: the reference models, for audits that compare against them.
    ``trainer``: how to train a fresh model (shadow-model attacks). ``unlearner``: the method under
    test as a function ``(model, split, seed) -> unlearned model`` (U-LiRA). ``cache``: shared across the
    cells of one scenario and seed (shadow models are trained once, not once per method)."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_size: int = 512
    seed: int = 0
    original: nn.Module | None = None
    retrain: nn.Module | None = None
    # without a ``retrain`` model: a retain model's evaluation log (audits/reference_logs.py:
    # per-item forget truth ratios and the Min-K AUC), what forget quality and privleak compare with
    reference_logs: dict | None = None
    trainer: Trainer | None = None
    unlearner: Unlearner | None = None
    cache: dict = field(default_factory=dict)
    # per-family settings (e.g. {"relearn": RelearnConfig(...)}) chosen by the caller for the data kind
    options: dict = field(default_factory=dict)
    # non-scalar results of the last audited model, by family (relearn: the relearning curve; mia: the
    # loss attack's ROC points), small JSON-ready lists; the audits fill it, the caller clears it
    # between models (the benchmark stores it as the record's ``curves``)
    curves: dict = field(default_factory=dict)


AuditFn = Callable[[nn.Module, Task, Split, AuditContext], dict[str, float]]
AUDITS: Registry[AuditFn] = Registry("audit")


@torch.no_grad()
def per_example(model: nn.Module, task: Task, dataset: Dataset, fn, ctx: AuditContext) -> torch.Tensor:
    """``fn(model, batch)`` over the whole dataset in eval mode, concatenated to one CPU tensor."""
    was_training = model.training
    model.eval()
    try:
        values = [fn(model, task.to_device(batch, ctx.device)).float().cpu()
                  for batch in iterate_batches(dataset, ctx.batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(values) if values else torch.empty(0)


MAX_CURVE_POINTS = 100


def thin(n: int, max_points: int = MAX_CURVE_POINTS) -> list[int]:
    """At most ``max_points`` evenly spaced indices into a length-``n`` curve, both ends kept."""
    if n <= max_points:
        return list(range(n))
    step = (n - 1) / (max_points - 1)
    return sorted({round(i * step) for i in range(max_points)})


def compact(values) -> list[float]:
    """Floats rounded to 5 significant digits (curves stored with every result record stay small)."""
    return [float(f"{float(v):.5g}") for v in values]
