"""UA / RA / TA (Jia et al. 2023; Fan et al. 2024): accuracies in percent, evaluated without augmentation.

Where the split names adjacent retain examples (``subclass:K``: the other fine classes of K's
superclass; ``class:K`` on a source with a class→group map), RA is also reported on the adjacent
part (``adjacent_acc``) and the remote rest (``remote_acc``) — the entanglement setting, where the
adjacent retain is what unlearning damages first."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from ..data.dataset import subset
from ..data.split import Split
from ..tasks.base import Task
from .base import AUDITS, AuditContext, per_example


def accuracy(model: nn.Module, task: Task, dataset: Dataset, ctx: AuditContext) -> float:
    correct = per_example(model, task, dataset, task.correct, ctx)
    return 100.0 * float(correct.mean()) if correct.numel() else float("nan")


@AUDITS.register("accuracy")
def accuracy_audit(model: nn.Module, task: Task, split: Split, ctx: AuditContext) -> dict[str, float]:
    out = {
        "ua": 100.0 - accuracy(model, task, split.forget, ctx),
        "ra": accuracy(model, task, split.retain, ctx),
        "ta": accuracy(model, task, split.test, ctx),
    }
    if split.test_forget is not None:
        out["ta_forget"] = accuracy(model, task, split.test_forget, ctx)
    if split.related is not None:
        out["adjacent_acc"] = accuracy(model, task, split.related, ctx)
        remote = split.retain_idx[~torch.isin(split.retain_idx, split.related_idx)]
        if remote.numel():
            out["remote_acc"] = accuracy(model, task, subset(split.source.train, remote), ctx)
    return out
