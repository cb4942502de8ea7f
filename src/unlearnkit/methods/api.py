"""``unlearn``: the one entry point that runs any registered method."""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ..data.split import Split
from ..seeding import seed_everything
from ..tasks.base import Task
from .base import METHODS, MethodConfig, RunContext, make_config, run_method


def build_config(method: str, config: MethodConfig | None = None, **hparams: Any) -> MethodConfig:
    cls = METHODS.get(method)
    if config is not None:
        if hparams:
            config = make_config(cls.Config, {**config.to_dict(), **hparams}, method)
        return config
    return make_config(cls.Config, hparams, method)


def unlearn(
    model: nn.Module,
    task: Task,
    split: Split,
    method: str = "ga",
    *,
    config: MethodConfig | None = None,
    device: str | torch.device | None = None,
    ctx: RunContext | None = None,
    **hparams: Any,
) -> nn.Module:
    """Unlearn ``split.forget`` from ``model`` with a registered method; return the unlearned model.

    The result is always a **new object**: ``model`` is deep-copied first and never modified
    (so a divergence stop leaves it exactly as it was), and no file is ever written.
    Hyper-parameters are given as keywords (``lr=1e-3``) or as a ready ``config``.
    """
    cfg = build_config(method, config, **hparams)
    if ctx is None:
        ctx = RunContext(device=torch.device(device) if device else _model_device(model))
    ctx.generator = seed_everything(cfg.seed)
    working = copy.deepcopy(model).to(ctx.device)
    return run_method(method, working, task, split, cfg, ctx)


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")
