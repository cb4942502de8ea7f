"""The original model: trained once per (data, model, recipe, seed) and cached as safetensors.

The cache key is the data's *contents* — :meth:`DataSource.fingerprint`, a SHA-256 of the loaded
tensors (inputs, labels, class names, groups, the image pipeline) — plus the data argument as given,
the architecture (name and every tensor's shape), the training recipe and its seed. Change the
files behind ``imagefolder:PATH`` (or any loader's files) and the next run trains a new original
instead of reusing a stale one; the same data under another path still differs by the data
argument (the cache file's name shows it)."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Callable

from torch import nn

from ..cache import cache_root
from ..checkpoints import load_weights, save_weights
from ..data.sources import DataSource
from ..methods.base import MethodConfig, RunContext
from ..methods.training import fit
from ..seeding import seed_everything
from ..tasks.base import Task
from .workload import workload_for

log = logging.getLogger(__name__)


def original_path(data_arg: str, model: nn.Module, model_name: str, recipe: MethodConfig,
                  fingerprint: str | None = None) -> Path:
    """Keyed by data (as given, and ``fingerprint``: :meth:`DataSource.fingerprint` of its contents),
    architecture (name and every tensor's shape), recipe and seed."""
    shapes = {name: list(t.shape) for name, t in model.state_dict().items()}
    fields = {"data": data_arg, "model": model_name, "shapes": shapes, "recipe": recipe.to_dict()}
    if fingerprint is not None:
        fields["data_fingerprint"] = fingerprint
    key = json.dumps(fields, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    stem = "".join(c if c.isalnum() else "_" for c in data_arg.split("|")[-1])
    return cache_root() / "originals" / f"{stem}-{model_name}-seed{recipe.seed}-{digest}.safetensors"


def original_model(source: DataSource, data_arg: str, model_name: str, task: Task, recipe: MethodConfig,
                   ctx: RunContext, make_model: Callable[[int], nn.Module] | None = None) -> nn.Module:
    """Load the cached original model or train it on the whole training set (seed ``recipe.seed``).

    ``data_arg`` names the data as the user gave it; ``source.name`` tells variants of it apart
    (e.g. the coarse-group relabelling a ``subclass:K`` scenario trains on)."""
    if make_model is None:
        make_model = lambda seed: workload_for(source).make_model(model_name, source, seed)  # noqa: E731
    model = make_model(recipe.seed)
    path = original_path(f"{data_arg}|{source.name}", model, model_name, recipe, source.fingerprint())
    if path.exists():
        log.info("original model: cached %s (data fingerprint %s)", path, source.fingerprint()[:16])
        return load_weights(model, path).to(ctx.device)
    log.info("original model: training %s on %s (%d epochs; data fingerprint %s)", model_name, source.describe(),
             recipe.epochs, source.fingerprint()[:16])
    ctx.generator = seed_everything(recipe.seed)
    fit(model.to(ctx.device), task, source.train, recipe, ctx)
    save_weights(model, path, overwrite=True)  # our own cache file, never a user's checkpoint
    return model
