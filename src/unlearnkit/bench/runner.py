"""The benchmark runner: methods × scenarios × seeds, audited, resumable.

For every scenario and seed, ``retrain`` runs first (it is the reference every other cell's
``avg_gap`` is measured against), then every other method. Each finished cell is written to
``OUT/results.jsonl`` at once; a rerun skips cells already there (a cell is identified by data,
model, scenario, method, seed and a hash of its full configuration).

Seeds are separate and recorded: ``train_seed`` (the original model), ``split_seed`` (the
random forget draw), and the cell seed (the unlearning run and the retrain reference).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import os
import platform
from importlib import metadata
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import __version__, distributed
from ..audits.api import audit
from ..audits.base import AUDITS, AuditContext
from ..audits.gap import gaps_to_retrain
from ..checkpoints import load_weights, save_weights
from ..data.forget import make_split
from ..data.sources import DataSource, load_data
from ..errors import ConfigError, DivergenceError
from ..methods.api import build_config
from ..methods.base import METHODS, MethodConfig, RunContext, make_config, run_method
from ..methods.precision import Precision
from ..methods.training import fit
from ..models.registry import reinitialise
from ..seeding import seed_everything
from .memory import PeakMemory
from .originals import original_model
from .store import ResultStore
from .workload import Workload, workload_for
from .table import format_table, present_columns, summarise

log = logging.getLogger(__name__)

REFERENCE = "retrain"


@dataclass(frozen=True)
class Variant:
    """One method as a row of the table: ``method`` run with ``overrides`` (over the plan's ``--set``
    values), shown as ``label`` (e.g. ``ga[lr=0.001]``, a sweep's grid point)."""

    method: str
    label: str = ""
    overrides: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.label:
            object.__setattr__(self, "label", self.method)


@dataclass
class BenchPlan:
    """What to run. ``None`` fields take the data's defaults (its own, else its kind's: see
    ``bench/workload.py``): e.g. digits → cnn, class:0 + random:0.1, 3 seeds."""

    data: str = "digits"
    model: str | None = None
    scenarios: list[str] | None = None
    methods: list[str] | None = None  # None: every registered method
    seeds: int | None = None
    audits: list[str] | None = None
    quick: bool = False
    out: Path = Path("results")
    device: str = "cpu"
    train_seed: int = 0
    split_seed: int = 0
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)  # method -> {hparam: value}
    hf_model: str | None = None  # a local Hugging Face model folder: the original (not trained here)
    data_options: dict[str, str] = field(default_factory=dict)  # loader options, e.g. {"groups": "map.json"}
    precision: Precision = field(default_factory=Precision)  # amp / channels-last / compile of the unlearning runs
    workers: int | None = None  # worker processes for the (scenario, seed) groups; None: the data kind's default
    # where the groups run when workers > 1: "local" (a process pool here), "slurm" (submitit jobs on
    # a SLURM cluster; pip install submitit) or "submitit-local" (submitit's local executor: tests)
    executor: str = "local"
    slurm: dict[str, str] = field(default_factory=dict)  # submitit parameters, e.g. {"slurm_partition": "gpu"}
    variants: list[Variant] | None = None  # a sweep's rows; None: one row per name in ``methods``

    @property
    def data_key(self) -> str:
        """The data as given, loader options included: what results and cached originals are keyed by."""
        options = ",".join(f"{k}={v}" for k, v in sorted(self.data_options.items()))
        return f"{self.data}[{options}]" if options else self.data

    def resolve(self, source: DataSource) -> "BenchPlan":
        """A copy with every ``None`` filled from the data's and its kind's defaults."""
        work = workload_for(source)
        return replace(
            self,
            model=self.model or (f"hf:{Path(self.hf_model).name}" if self.hf_model else work.model),
            scenarios=list(self.scenarios or source.default_scenarios or work.scenarios),
            seeds=1 if self.quick else (self.seeds or work.seeds),
            audits=list(self.audits or source.default_audits or work.audits),
            methods=self.methods or (list(work.methods) if work.methods else None),
        )

    def method_names(self) -> list[str]:
        names = list(self.methods) if self.methods else METHODS.names()
        for name in names:
            METHODS.get(name)
        # retrain first: it is the reference for avg_gap
        return [REFERENCE] + [name for name in names if name != REFERENCE]

    def runs(self) -> list[Variant]:
        """The rows run per scenario and seed: retrain first (the reference), then each method, or
        each sweep variant."""
        if self.variants is None:
            return [Variant(name) for name in self.method_names()]
        for variant in self.variants:
            METHODS.get(variant.method)
        return [Variant(REFERENCE)] + [v for v in self.variants if v.method != REFERENCE]

    def recipe(self, work: Workload) -> MethodConfig:
        """The original model's training recipe (``--set train.KEY=VALUE`` overrides it)."""
        overrides = dict(self.overrides.get("train", {}))
        if self.quick:
            overrides.setdefault("epochs", str(work.quick_epochs))
        return make_config(work.recipe, {**overrides, "seed": self.train_seed}, "train")

    def method_config(self, method: str, seed: int, recipe: MethodConfig, work: Workload | None = None,
                      extra: dict | None = None):
        """The cell's config: the workload's and the method's kind defaults, under the plan's
        ``--set`` values and ``extra`` (a variant's overrides); the cell seed; ``--quick`` epochs."""
        overrides = {**self.overrides.get(method, {}), **(extra or {})}
        if work is not None and method not in (REFERENCE, "original"):
            config_cls = METHODS.get(method).Config
            known = {f.name for f in dataclasses.fields(config_cls)}
            overrides = {**{k: v for k, v in work.method_defaults if k in known},
                         **config_cls.kind_defaults.get(work.kind, {}), **overrides}
        if method == REFERENCE:
            # retrain repeats the original's recipe on the retain set
            merged = {**recipe.to_dict(), **overrides, "seed": seed}
            return build_config(method, **merged)
        config = build_config(method, **overrides)
        changes = {"seed": seed}
        if self.quick and "epochs" not in overrides:
            changes.update(config.quick_overrides())
        return build_config(method, config, **changes)


def versions() -> dict[str, str]:
    return {"unlearnkit": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "scikit-learn": metadata.version("scikit-learn"), "python": platform.python_version()}


def cell_id(plan: BenchPlan, scenario: str, method: str, seed: int, config: dict, recipe: dict) -> str:
    fields = {"config": config, "recipe": recipe, "audits": sorted(plan.audits)}
    if plan.precision != Precision():  # a speed switch that changes results at rounding level: its own cell
        fields["precision"] = dataclasses.asdict(plan.precision)
    payload = json.dumps(fields, sort_keys=True)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:12]
    return f"{plan.data_key}|{plan.model}|{scenario}|split{plan.split_seed}|{method}|{seed}|{digest}"


def reference_path(out: Path, cell: str) -> Path:
    """Where a retrain cell's weights are kept (our own file: later audits and resumed runs load it)."""
    return Path(out) / "references" / f"{hashlib.sha256(cell.encode()).hexdigest()[:16]}.safetensors"


def load_source(plan: BenchPlan, device: torch.device) -> tuple[DataSource, nn.Module | None]:
    """The plan's data, and the user's Hugging Face model when one is given (it is then the original
    and its tokenizer encodes the data)."""
    if plan.hf_model:
        from ..models.hf import load_hf_model, load_hf_tokenizer

        given = load_hf_model(plan.hf_model, device=device)
        return load_data(plan.data, tokenizer=load_hf_tokenizer(plan.hf_model), **plan.data_options), given
    return load_data(plan.data, **plan.data_options), None


def build_originals(plan: BenchPlan, splits, work: Workload, recipe: MethodConfig, device: torch.device,
                    given: nn.Module | None = None) -> dict[str, tuple]:
    """One (task, original model, shadow trainer) per labelling of the splits' data, keyed by the
    source's name: a subclass:K scenario trains on the coarse-group labels. Originals come from the
    cache (trained there on first use) unless ``given``."""
    originals: dict[str, tuple] = {}
    for split in splits:
        src = split.source
        if src.name not in originals:
            task = work.make_task(src)
            if given is not None:
                model = given
                make = lambda seed: reinitialise(copy.deepcopy(given), seed)  # noqa: E731  same architecture
            else:
                make = lambda seed, src=src: work.make_model(plan.model, src, seed)  # noqa: E731
                model = original_model(src, plan.data_key, plan.model, task, recipe, RunContext(device=device), make)
            originals[src.name] = (task, model, shadow_trainer(make, task, recipe, device))
    return originals


@dataclass
class _Setup:
    """Everything a (scenario, seed) group of cells needs, built the same way in the main process
    and in every worker."""

    plan: BenchPlan
    runs: list
    work: Workload
    recipe: MethodConfig
    splits: dict
    originals: dict
    device: torch.device
    out: Path


def _setup(plan: BenchPlan) -> _Setup:
    for name in plan.audits or ():
        AUDITS.get(name)
    device = torch.device(plan.device)
    source, given = load_source(plan, device)
    plan = plan.resolve(source)
    runs = plan.runs()  # after resolve: the data's kind may name the default methods
    for name in plan.audits:
        AUDITS.get(name)
    work = workload_for(source)
    recipe = plan.recipe(work)
    splits = {scenario: make_split(source, scenario, seed=plan.split_seed) for scenario in plan.scenarios}
    originals = build_originals(plan, splits.values(), work, recipe, device, given)
    return _Setup(plan, runs, work, recipe, splits, originals, device, Path(plan.out))


def _run_group(setup: _Setup, scenario: str, seed: int, lookup, on_new, budget: list | None = None) -> list[dict]:
    """The cells of one scenario and seed, retrain first (every other cell's reference): the stored
    record where ``lookup(cell)`` has one, else run it and hand it to ``on_new``. ``budget`` (a
    one-element list) counts down the cells still allowed to run (tests)."""
    plan, split, out = setup.plan, setup.splits[scenario], setup.out
    task, original, trainer = setup.originals[split.source.name]
    # one audit context per scenario and seed: shadow models are shared by all its cells
    audit_ctx = AuditContext(device=setup.device, seed=seed, original=original, trainer=trainer,
                             options=dict(setup.work.audit_options))
    reference_metrics, records = None, []
    for run in setup.runs:
        method = run.method
        config = plan.method_config(method, seed, setup.recipe, setup.work, run.overrides)
        cell = cell_id(plan, scenario, method, seed, config.to_dict(), setup.recipe.to_dict())
        reference_file = reference_path(out, cell)
        record = distributed.broadcast_object(lookup(cell))  # several processes: the main one's store decides
        if record is None:
            if budget is not None:
                if budget[0] <= 0:
                    return records
                budget[0] -= 1
            record, model = run_cell(plan, cell, scenario, split, method, seed, config, setup.recipe,
                                     original, task, audit_ctx, reference_metrics)
            if run.label != method:
                record["label"] = run.label
            if method == REFERENCE and model is not None and distributed.is_main():
                save_weights(model, reference_file, overwrite=True)  # our own file, for later audits
            on_new(record)
            log.info("%s %s seed %d: %s", scenario, run.label, seed, _brief(record))
        else:
            model = None
            if method == REFERENCE and reference_file.exists():
                model = load_weights(copy.deepcopy(original), reference_file)
            log.info("%s %s seed %d: done earlier, skipped", scenario, run.label, seed)
        if method == REFERENCE:
            reference_metrics = record["metrics"]
            audit_ctx.retrain = model
        records.append({**record, "label": run.label} if run.label != method else record)
    return records


def run_bench(plan: BenchPlan, *, max_cells: int | None = None) -> list[dict]:
    """Run (or resume) the plan; return the records of this plan's cells. ``max_cells`` stops early
    (tests). With ``plan.workers > 1`` the (scenario, seed) groups run in that many worker processes
    (one torch thread each); only this process writes the results store, each cell exactly once."""
    store = ResultStore(Path(plan.out) / "results.jsonl")
    if (plan.workers or 1) > 1 and distributed.active():
        raise ConfigError("--workers runs cells in separate processes; under a multi-process launch use one")
    with distributed.main_first():  # the main process trains and caches the originals; the others load them
        setup = _setup(plan)  # before any worker starts, too
    groups = [(scenario, seed) for scenario in setup.splits for seed in range(setup.plan.seeds)]
    workers = plan.workers
    if workers is None:  # expensive cells (text): one worker per core, one torch thread each
        auto = setup.work.parallel_groups and not distributed.active() and plan.executor == "local"
        workers = min(len(groups), os.cpu_count() or 1) if auto else 1
    plan = replace(plan, workers=workers)
    log.info("%d scenario(s) × %d seed(s) × %d method(s), %d worker(s)", len(setup.splits), setup.plan.seeds,
             len(setup.runs), workers)
    if plan.workers > 1 and max_cells is None:
        return _run_parallel(plan, setup, groups, store)
    budget = None if max_cells is None else [max_cells]
    records = []
    keep = store.add if distributed.is_main() else (lambda record: None)  # one writer
    for scenario, seed in groups:
        records += _run_group(setup, scenario, seed, store.get, keep, budget)
        if budget is not None and budget[0] <= 0:
            break
    return records


def _worker_init() -> None:
    torch.set_num_threads(1)
    from ..cli_options import configure_logging

    configure_logging()


def _worker_group(plan: BenchPlan, scenario: str, seed: int, done: dict[str, dict]) -> tuple[list, list]:
    """In a worker: run one group; return (its records in order, the newly run ones)."""
    torch.set_num_threads(1)
    new: list[dict] = []
    setup = _setup(plan)  # originals come from the cache the main process filled
    records = _run_group(setup, scenario, seed, done.get, new.append)
    return records, new


EXECUTORS = ("local", "slurm", "submitit-local")


def _run_parallel(plan: BenchPlan, setup: _Setup, groups, store: ResultStore) -> list[dict]:
    """Each (scenario, seed) group is one job on ``plan.executor``; records come back here, where the
    store is written (each cell once). A killed run resumes from the store like a sequential one."""
    done = {r["cell"]: r for r in store.records}
    worker_plan = replace(setup.plan, workers=1)
    by_group: dict[tuple, list] = {}

    def collect(group, result):
        records, new = result
        for record in new:
            if not store.has(record["cell"]):
                store.add(record)  # the main process is the only writer
        by_group[group] = records

    if plan.executor == "local":
        import concurrent.futures
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # no fork after torch has started threads
        with concurrent.futures.ProcessPoolExecutor(plan.workers, mp_context=context, initializer=_worker_init) as pool:
            futures = {pool.submit(_worker_group, worker_plan, scenario, seed, done): (scenario, seed)
                       for scenario, seed in groups}
            for future in concurrent.futures.as_completed(futures):
                collect(futures[future], future.result())
    else:
        jobs = _submitit_jobs(plan, worker_plan, groups, done)
        import submitit

        for job in submitit.helpers.as_completed(list(jobs)):
            collect(jobs[job], job.result())
    return [record for group in groups for record in by_group[group]]


def _submitit_jobs(plan: BenchPlan, worker_plan: BenchPlan, groups, done) -> dict:
    try:
        import submitit
    except ImportError:
        raise ConfigError("--executor slurm needs submitit: pip install 'unlearnkit[slurm]'") from None
    cluster = "local" if plan.executor == "submitit-local" else "slurm"
    executor = submitit.AutoExecutor(folder=Path(plan.out) / "submitit", cluster=cluster)
    executor.update_parameters(cpus_per_task=1, **plan.slurm)
    executor.update_parameters(**({"slurm_array_parallelism": plan.workers} if cluster == "slurm" else {}))
    with executor.batch():
        jobs = [(executor.submit(_worker_group, worker_plan, scenario, seed, done), (scenario, seed))
                for scenario, seed in groups]
    return dict(jobs)


def shadow_trainer(make_model, task, recipe: MethodConfig, device: torch.device):
    """Train a fresh model with the original's recipe: what shadow-model attacks need."""

    def train(data, seed: int):
        config = build_config(REFERENCE, **{**recipe.to_dict(), "seed": seed})
        return fit(make_model(seed).to(device), task, data, config,
                   RunContext(device=device, generator=seed_everything(seed)))

    return train


def run_cell(plan, cell, scenario, split, method, seed, config, recipe, original, task, audit_ctx, reference_metrics):
    """Run ``method`` with ``config`` on a copy of ``original`` and audit it: (record, model), the
    model ``None`` when the run diverged or does not apply. With ``reference_metrics`` (retrain's on
    the same split) the record has the gaps to retrain."""
    device = audit_ctx.device
    ctx = RunContext(device=device, generator=seed_everything(seed), precision=plan.precision)
    record = {
        "cell": cell, "data": plan.data, "data_options": dict(plan.data_options), "model": plan.model, "scenario": scenario, "method": method,
        "seed": seed, "seeds": {"train": plan.train_seed, "split": plan.split_seed, "unlearn": seed},
        "config": config.to_dict(), "train_config": recipe.to_dict(), "audits": list(plan.audits),
        "versions": versions(), "device": str(device), "quick": plan.quick,
        "forget_size": len(split.forget_idx), "retain_size": len(split.retain_idx),
        "precision": dataclasses.asdict(plan.precision),
    }
    working = copy.deepcopy(original)
    start = time.perf_counter()
    try:
        with PeakMemory(device) as memory:
            unlearned = run_method(method, working, task, split, config, ctx)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
    except DivergenceError as exc:
        record.update(status="diverged", error=str(exc), metrics={"seconds": time.perf_counter() - start})
        return record, None
    except ConfigError as exc:  # e.g. a method that needs class labels, on text: recorded, the bench goes on
        log.warning("%s on %s: not applicable (%s)", method, scenario, exc)
        record.update(status="not applicable", error=str(exc), metrics={})
        return record, None
    seconds = time.perf_counter() - start
    if method == REFERENCE:
        audit_ctx.retrain = unlearned  # audits that compare with retrain see it on its own row too
    audit_ctx.curves = {}  # this cell's curves only (the context is shared by the scenario's cells)
    metrics = distributed.on_main(audit, unlearned, task, split, plan.audits, ctx=audit_ctx)
    reference = metrics if method == REFERENCE else reference_metrics
    if reference is not None:
        metrics.update(gaps_to_retrain(metrics, reference))
    metrics["seconds"] = seconds
    if ctx.targets_seen and seconds > 0:
        metrics["targets_per_s"] = ctx.targets_seen / seconds
    metrics.update(memory.metrics())  # of the unlearning run, not of the audits
    record.update(status="ok", metrics=metrics, trace={k: v for k, v in ctx.trace.items()})
    if audit_ctx.curves:  # relearning curve, MIA ROC points (≤ 100 points each): what the report plots
        record["curves"] = audit_ctx.curves
    return record, unlearned


def _brief(record: dict) -> str:
    if record.get("status") != "ok":
        return record.get("status", "?")
    m = record["metrics"]
    return " ".join(f"{k}={m[k]:.2f}" for k in ("ua", "ra", "ta", "mia_efficacy", "avg_gap", "seconds") if k in m)


def print_table(records: list[dict], columns=None, headers: dict[str, str] | None = None) -> str:
    """The results as a text table: ``columns`` (default: every known metric present), named by
    ``headers`` where given (a preset's layout)."""
    # a sweep's rows are told apart by their label (e.g. ga[lr=0.001])
    records = [{**r, "method": r["label"]} if r.get("label") else r for r in records]
    columns = present_columns(records) if columns is None else present_columns(records, columns)
    return format_table(summarise(records, columns), columns, headers)
