"""``audit``: run audit families on a model and return one flat dict of floats."""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ..data.split import Split
from ..tasks.base import Task
from . import ulira  # noqa: F401  (registers the ulira family)
from .base import AUDITS, AuditContext
from .gap import gaps_to_retrain

# The quick default fits the 5-minute benchmark; --full adds the shadow-model attacks: LiRA
# training-set membership (``lira``) and U-LiRA, unlearned vs retrained (``ulira``).
DEFAULT_AUDITS = ("accuracy", "mia", "relearn", "weights")
FULL_AUDITS = ("accuracy", "mia", "relearn", "weights", "lira", "ulira")


def audit(
    model: nn.Module,
    task: Task,
    split: Split,
    audits: Iterable[str] = DEFAULT_AUDITS,
    *,
    reference: dict[str, float] | None = None,
    ctx: AuditContext | None = None,
    device: str | torch.device | None = None,
    original: nn.Module | None = None,
) -> dict[str, float]:
    """Metrics of ``model`` on ``split``. With ``reference`` (retrain's metrics) adds ``avg_gap``
    and the attack gaps (``mia_auc_gap``…). ``original`` (the model before unlearning) sets the
    relearning threshold and the weight distances; a given ``ctx`` carries its own."""
    if ctx is None:
        ctx = AuditContext(device=torch.device(device) if device else next(model.parameters()).device,
                           original=original)
    names = list(audits)
    for name in names:
        AUDITS.get(name)  # fail on an unknown name before any work
    metrics: dict[str, float] = {}
    for name in names:
        metrics.update(AUDITS.get(name)(model, task, split, ctx))
    if reference is not None:
        metrics.update(gaps_to_retrain(metrics, reference))
    return metrics
