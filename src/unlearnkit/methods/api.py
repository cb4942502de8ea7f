"""``unlearn``: the one entry point that runs any registered method."""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch
from torch import nn

from ..data.split import Split
from ..devices import resolve_device
from ..seeding import generator_for
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
    kind: str | None = None,
    scale: str | None = None,
    preset: str | None = None,
    config: MethodConfig | None = None,
    device: str | torch.device | None = None,
    ctx: RunContext | None = None,
    deterministic: bool = False,
    **hparams: Any,
) -> nn.Module:
    """Unlearn ``split.forget`` from ``model`` with a registered method; return the unlearned model.

    The result is always a **new object**: ``model`` is deep-copied first and never modified
    (so a divergence stop leaves it exactly as it was), and no file is ever written.

    Hyper-parameters: the same resolver as the command line (:func:`unlearnkit.resolve_config`):
    the method's defaults for ``kind`` data ("image" / "text"; default: the task's) and ``scale``
    ("pretrained": OpenUnlearning's recipe for a pretrained language model; default: "pretrained" for
    a text model loaded with ``from_pretrained`` — what ``--hf-model`` gives the CLI — else "small"),
    a ``preset``'s values, then the keywords (``lr=1e-3``). A ready ``config`` is used as given
    (keywords over it).
    ``device``: auto | cpu | cuda[:N] | mps (default: the model's). ``deterministic``: deterministic
    kernels only (``--deterministic``). The run draws from its own generator seeded by the config's
    ``seed`` (or ``ctx.generator`` when the caller gives one); the caller's global random state is
    left as it was.
    """
    if config is not None:
        cfg = build_config(method, config, **hparams)
    else:
        from ..resolve import resolve_config

        kind = kind or task.kind
        scale = scale or ("pretrained" if kind == "text" and _from_pretrained(model) else None)
        cfg = resolve_config(method, kind=kind, scale=scale, preset=preset, overrides=hparams,
                             data=getattr(split.source, "name", None))
    if ctx is None:
        ctx = RunContext(device=resolve_device(device) if device else _model_device(model))
    if deterministic:
        ctx.precision = dataclasses.replace(ctx.precision, deterministic=True)
    if ctx.generator is None:
        ctx.generator = generator_for(cfg.seed)  # a caller's own generator is used as given
    working = copy.deepcopy(model).to(ctx.device)
    return run_method(method, working, task, split, cfg, ctx)


def _from_pretrained(model: nn.Module) -> bool:
    """A Hugging Face model loaded from a checkpoint (``from_pretrained`` records where), as opposed to
    one built from a config here (the embedded data's tiny Llama)."""
    config = getattr(model, "config", None)
    return bool(getattr(config, "_name_or_path", "") or getattr(config, "name_or_path", ""))


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")
