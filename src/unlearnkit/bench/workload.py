"""How the benchmark treats each kind of data: its task, its model, the original's training recipe,
and what runs when the user does not say. One table, so the runner has no modality branches."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..audits.relearn import RelearnConfig
from ..data.sources import DataSource
from ..methods.base import MethodConfig
from ..methods.training import LMTrainConfig, TrainConfig
from ..models.registry import build_model
from ..tasks.base import Task
from ..tasks.classification import ClassificationTask


@dataclass(frozen=True)
class Workload:
    kind: str
    make_task: Callable[[DataSource], Task]
    make_model: Callable[[str, DataSource, int], nn.Module]  # (architecture name, source, init seed)
    recipe: type[MethodConfig]
    model: str
    scenarios: tuple[str, ...]
    audits: tuple[str, ...]
    seeds: int
    quick_epochs: int
    # Hyper-parameters every method takes on this kind of data unless the user sets them (only
    # fields a method's config has). Method defaults are tuned for the small image models; a
    # transformer needs Adam-type steps.
    method_defaults: tuple[tuple[str, str], ...] = ()
    # per-audit-family settings for this kind of data (AuditContext.options)
    audit_options: tuple[tuple[str, object], ...] = ()
    # the methods a benchmark runs when the user names none (empty: every registered method)
    methods: tuple[str, ...] = ()
    # run the (scenario, seed) groups in one worker process per core unless --workers says otherwise:
    # worth it where a group costs minutes (text), not where it costs seconds (the digits cells)
    parallel_groups: bool = False


def _lm_task(source: DataSource) -> Task:
    from ..tasks.causal_lm import CausalLMTask

    return CausalLMTask(source.tokenizer)


def _lm_model(name: str, source: DataSource, seed: int) -> nn.Module:
    from ..models.hf import build_lm

    return build_lm(name, source.tokenizer, seed=seed)


WORKLOADS = {
    "image": Workload(
        kind="image",
        make_task=lambda source: ClassificationTask(source.num_classes, source.pipeline),
        make_model=lambda name, source, seed: build_model(name, source.input_shape, source.num_classes, seed=seed),
        recipe=TrainConfig, model="cnn", scenarios=("class:0", "random:0.1"),
        audits=("accuracy", "mia", "relearn", "weights"), seeds=3, quick_epochs=10,
    ),
    # the reference models (original + one retrain per split and seed) dominate the cost of a text
    # benchmark, so one seed by default
    "text": Workload(
        kind="text", make_task=_lm_task, make_model=_lm_model, recipe=LMTrainConfig, model="tiny-llama",
        # the reference rows, the LLM baselines and the five seed methods: what the TOFU/WMDP tables
        # compare, within ~10 minutes on 2 CPU cores for tofu-mini; `--methods` runs any other
        methods=("original", "ga", "graddiff", "npo", "simnpo", "idk", "rmu", "entangle", "lur", "ieu", "mox",
                 "rosu"),
        parallel_groups=True,
        scenarios=(), audits=("accuracy", "mia", "relearn"), seeds=1, quick_epochs=10,
        method_defaults=(("optimizer", "adamw"), ("lr", "1e-3"), ("batch_size", "32"), ("momentum", "0.9"),
                         ("weight_decay", "0.0")),
        # relearning a language model: Adam, thresholded on the answer probability (exact-match
        # accuracy is all-or-nothing on text)
        audit_options=(("relearn", RelearnConfig(optimizer="adam", lr=1e-3, steps=30, max_examples=64,
                                                 criterion="prob")),),
    ),
}


def workload_for(source: DataSource) -> Workload:
    return WORKLOADS[source.kind]
