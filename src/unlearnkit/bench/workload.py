"""How each kind of data is treated: its task, its model, and what a benchmark runs when the user
does not say. One table, so the runner has no modality branches. (Hyper-parameters, the original's
training recipe included, come from the one resolver: ``unlearnkit/resolve.py``.)

:func:`make_task` and :func:`make_model` are the public way to build a source's task and model: the
Python API and every command use them, so an image source's pipeline (uint8 pixels → normalised
floats, the training augmentation) always reaches its task."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..audits.relearn import RelearnConfig
from ..data.sources import DataSource
from ..errors import ConfigError
from ..models.registry import build_model
from ..tasks.base import Task
from ..tasks.classification import ClassificationTask


@dataclass(frozen=True)
class Workload:
    kind: str
    make_task: Callable[..., Task]  # (source, **task options: a language model's generation/prompt settings)
    make_model: Callable[[str, DataSource, int], nn.Module]  # (architecture name, source, init seed)
    model: str
    scenarios: tuple[str, ...]
    audits: tuple[str, ...]
    seeds: int
    # per-audit-family settings for this kind of data (AuditContext.options)
    audit_options: tuple[tuple[str, object], ...] = ()
    # the methods a benchmark runs when the user names none (empty: every registered method)
    methods: tuple[str, ...] = ()
    # run the (scenario, seed) groups in one worker process per core unless --workers says otherwise:
    # worth it where a group costs minutes (text), not where it costs seconds (the digits cells)
    parallel_groups: bool = False


def _lm_task(source: DataSource, **options) -> Task:
    from ..tasks.causal_lm import CausalLMTask

    return CausalLMTask(source.tokenizer, **options)


def _image_task(source: DataSource, **options) -> Task:
    if options:
        raise ConfigError(f"an image task takes no options ({', '.join(options)}: they are for language models)")
    return ClassificationTask(source.num_classes, source.pipeline)


def _lm_model(name: str, source: DataSource, seed: int) -> nn.Module:
    from ..models.hf import build_lm

    return build_lm(name, source.tokenizer, seed=seed)


WORKLOADS = {
    "image": Workload(
        kind="image",
        make_task=_image_task,
        make_model=lambda name, source, seed: build_model(name, source.input_shape, source.num_classes, seed=seed),
        model="cnn", scenarios=("class:0", "random:0.1"),
        audits=("accuracy", "mia", "relearn", "weights"), seeds=3,
    ),
    # the reference models (original + one retrain per split and seed) dominate the cost of a text
    # benchmark, so one seed by default
    "text": Workload(
        kind="text", make_task=_lm_task, make_model=_lm_model, model="tiny-llama",
        # the reference rows, the LLM baselines and the five seed methods: what the TOFU/WMDP tables
        # compare, within ~10 minutes on 2 CPU cores for tofu-mini; `--methods` runs any other
        methods=("original", "ga", "graddiff", "npo", "simnpo", "idk", "rmu", "entangle", "lur", "ieu", "mox",
                 "rosu"),
        parallel_groups=True,
        scenarios=(), audits=("accuracy", "mia", "relearn"), seeds=1,
        # relearning a language model: Adam, thresholded on the answer probability (exact-match
        # accuracy is all-or-nothing on text)
        # at one learning rate (ours: the three-rate grid would triple the relearning cost of a text cell)
        audit_options=(("relearn", RelearnConfig(optimizer="adam", lr=1e-3, steps=30, max_examples=64,
                                                 criterion="prob", lr_grid=(1.0,))),),
    ),
}


def workload_for(source: DataSource) -> Workload:
    if source.kind not in WORKLOADS:
        raise ConfigError(f"{source.name}: no workload for {source.kind!r} data; known: {', '.join(WORKLOADS)}")
    return WORKLOADS[source.kind]


def make_task(source: DataSource, **options) -> Task:
    """The task for ``source``: a :class:`ClassificationTask` with the source's image pipeline, or a
    :class:`CausalLMTask` with its tokenizer (``options``: its keyword arguments, e.g.
    ``max_new_tokens``; the CLI passes ``LMOptions.task_options()``)."""
    return workload_for(source).make_task(source, **options)


def make_model(source: DataSource, arch: str | None = None, *, seed: int = 0) -> nn.Module:
    """A freshly initialised model for ``source``: ``arch`` (a registered architecture; default: the
    data kind's, ``cnn`` for images, ``tiny-llama`` for text) sized to its inputs and classes (or
    its tokenizer), initialised with ``seed``."""
    work = workload_for(source)
    return work.make_model(arch or work.model, source, seed)
