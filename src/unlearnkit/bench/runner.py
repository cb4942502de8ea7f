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
import functools
import hashlib
import json
import logging
import os
import platform
import re
from importlib import metadata
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import __version__, distributed
from ..atomic import write_text_atomic
from ..audits.api import audit
from ..audits.base import AUDITS, AuditContext
from ..audits.gap import gaps_to_retrain
from ..checkpoints import load_weights, save_weights, sha256_file, sha256_state
from ..data.forget import make_split
from ..data.sources import DataSource, load_data
from ..errors import ConfigError, DivergenceError, NotApplicable, UnlearnkitError
from ..methods.api import build_config
from ..methods.base import METHODS, MethodConfig, RunContext, run_method
from ..methods.callbacks import CSVLogger, History
from ..methods.precision import Precision
from ..methods.training import fit
from ..devices import resolve_device
from ..models.lm_options import LMOptions
from ..models.registry import reinitialise
from ..resolve import resolve_config, resolve_recipe
from ..seeding import seed_everything
from .memory import PeakMemory
from .originals import original_model
from .store import ResultStore
from .workload import Workload, workload_for
from .table import format_summary, present_columns, summarise

log = logging.getLogger(__name__)

HOLDOUTS = ("all", "validation", "test")  # BenchPlan.holdout

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
    device: str = "auto"  # auto | cpu | cuda[:N] | mps (devices.resolve_device)
    train_seed: int = 0
    split_seed: int = 0
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)  # method -> {hparam: value}
    hf_model: str | None = None  # a local Hugging Face model folder: the original (not trained here)
    data_options: dict[str, str] = field(default_factory=dict)  # loader options, e.g. {"groups": "map.json"}
    precision: Precision = field(default_factory=Precision)  # amp / channels-last / compile of the unlearning runs
    lm: LMOptions = field(default_factory=LMOptions)  # a language model's dtype, prompt format, lengths, reference device
    workers: int | None = None  # worker processes for the (scenario, seed) groups; None: the data kind's default
    # where the groups run when workers > 1: "local" (a process pool here), "slurm" (submitit jobs on
    # a SLURM cluster; pip install submitit) or "submitit-local" (submitit's local executor: tests)
    executor: str = "local"
    slurm: dict[str, str] = field(default_factory=dict)  # submitit parameters, e.g. {"slurm_partition": "gpu"}
    variants: list[Variant] | None = None  # a sweep's rows; None: one row per name in ``methods``
    # a paper's protocol (bench/presets.py): fills model, scenarios, seeds, audits where None, and its
    # hyper-parameters are a layer of the resolver (under --set)
    preset: str | None = None
    # the reference of a user's pretrained model (``hf_model``), as the field uses it: a retain-finetuned
    # checkpoint (evaluated once, never trained) or its evaluation log (audits/reference_logs.py).
    # Without either, a pretrained model gets no retrain-from-scratch row (see ``reference_kind``)
    retain_model: str | None = None
    retain_logs: str | None = None
    log_dir: Path | None = None  # each cell's training curve as CSV (LOG_DIR/<cell>.csv)
    # a user's trained classifier (safetensors or a torch.save state dict, architecture ``model``) as the
    # original, instead of the cached one unlearnkit trains (images; a language model is ``hf_model``)
    original: str | None = None
    # the held-out examples the audits use: "all", or one half of them ("validation": what ``tune``
    # scores trials on; "test": the half it never sees, where tuned values are reported) — bench/holdout.py
    holdout: str = "all"

    @property
    def data_key(self) -> str:
        """The data as given, loader options (and a held-out half) included: what results and cached
        originals are keyed by."""
        options = ",".join(f"{k}={v}" for k, v in sorted(self.data_options.items()))
        key = f"{self.data}[{options}]" if options else self.data
        return key if self.holdout == "all" else f"{key}@{self.holdout}"

    def holdout_half(self, source: DataSource) -> DataSource:
        """``source`` with only the plan's half of its held-out examples (seed 0, as ``tune --seed 0``)."""
        if self.holdout == "all":
            return source
        if self.holdout not in HOLDOUTS:
            raise ConfigError(f"holdout must be one of {', '.join(HOLDOUTS)}, got {self.holdout!r}")
        from .holdout import holdout_halves

        validation, test = holdout_halves(source, seed=0)
        return validation if self.holdout == "validation" else test

    def resolve(self, source: DataSource) -> "BenchPlan":
        """A copy with every ``None`` filled from the preset's, the data's and its kind's defaults."""
        work = workload_for(source)
        preset = self.preset_object()
        if preset is not None:
            preset.check_data(self.data)
        return replace(
            self,
            model=self.model or (f"hf:{Path(self.hf_model).name}" if self.hf_model else None)
            or (preset.model if preset else work.model),
            scenarios=list(self.scenarios or (preset.scenarios if preset else ()) or source.default_scenarios
                           or work.scenarios),
            seeds=1 if self.quick else (self.seeds or (preset.seeds if preset else None) or work.seeds),
            audits=list(self.audits or (preset.audits if preset else ()) or source.default_audits or work.audits),
            methods=self.methods or (list(work.methods) if work.methods else None),
        )

    def preset_object(self):
        if not self.preset:
            return None
        from .presets import PRESETS

        return PRESETS.get(self.preset)

    def reference_kind(self) -> str:
        """What every cell is compared with: "retrain" (trained here from scratch: models unlearnkit
        trained itself), "retain_model", "retain_logs", or "none" (a pretrained model without either)."""
        if self.retain_model and self.retain_logs:
            raise ConfigError("give either --retain-model DIR or --retain-logs FILE, not both")
        if (self.retain_model or self.retain_logs) and not self.hf_model:
            raise ConfigError("--retain-model / --retain-logs are the reference of a pretrained --hf-model; a model "
                              "unlearnkit trains itself gets a retrain-from-scratch reference")
        if self.retain_model:
            return "retain_model"
        if self.retain_logs:
            return "retain_logs"
        return "none" if self.hf_model else "retrain"

    def method_names(self) -> list[str]:
        names = list(self.methods) if self.methods else METHODS.names()
        for name in names:
            METHODS.get(name)
        # retrain first: it is the reference for avg_gap (a row only where there is a model to compare with)
        reference = [REFERENCE] if self.reference_kind() in ("retrain", "retain_model") else []
        return reference + [name for name in names if name != REFERENCE]

    def runs(self) -> list[Variant]:
        """The rows run per scenario and seed: retrain first (the reference), then each method, or
        each sweep variant."""
        if self.variants is None:
            return [Variant(name) for name in self.method_names()]
        for variant in self.variants:
            METHODS.get(variant.method)
        reference = [Variant(REFERENCE)] if self.reference_kind() in ("retrain", "retain_model") else []
        return reference + [v for v in self.variants if v.method != REFERENCE]

    def recipe(self, work: Workload) -> MethodConfig:
        """The original model's training recipe (``--set train.KEY=VALUE`` overrides it): the resolver's."""
        return resolve_recipe(kind=work.kind, scale=self.scale(work), preset=self.preset,
                              overrides=self.overrides.get("train"), quick=self.quick, seed=self.train_seed)

    def task_options(self, work: Workload) -> dict:
        """The task's options from ``--max-new-tokens`` / ``--prompt-format`` / ``--system-prompt`` (text)."""
        return self.lm.task_options() if work.kind == "text" else {}

    def scale(self, work: Workload | None) -> str | None:
        """The resolver's scale: "pretrained" for a user's language model (``hf_model``), else the default."""
        return "pretrained" if self.hf_model and work is not None and work.kind == "text" else None

    def method_config(self, method: str, seed: int, recipe: MethodConfig, work: Workload | None = None,
                      extra: dict | None = None):
        """The cell's config, from the resolver: the method's and its kind's defaults, the preset, the
        plan's ``--set`` values and ``extra`` (a variant's overrides), ``--quick``, the cell seed."""
        overrides = {**self.overrides.get(method, {}), **(extra or {})}
        return resolve_config(method, kind=work.kind if work is not None else "image", scale=self.scale(work),
                              preset=self.preset, overrides=overrides, quick=self.quick, seed=seed,
                              recipe=recipe.to_dict(), data=self.data)


def versions() -> dict[str, str]:
    return {"unlearnkit": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "scikit-learn": metadata.version("scikit-learn"), "python": platform.python_version()}


def cell_id(plan: BenchPlan, scenario: str, method: str, seed: int, config: dict, recipe: dict) -> str:
    fields = {"config": config, "recipe": recipe, "audits": sorted(plan.audits)}
    if plan.precision != Precision():  # a speed switch that changes results at rounding level: its own cell
        fields["precision"] = dataclasses.asdict(plan.precision)
    if plan.lm.lora:  # unlearning through adapters is another run
        fields["lora"] = plan.lm.lora_settings()
    if plan.original:  # the user's own original: its content, not its path
        fields["original"] = _file_sha256(plan.original)
    payload = json.dumps(fields, sort_keys=True)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:12]
    return f"{plan.data_key}|{plan.model}|{scenario}|split{plan.split_seed}|{method}|{seed}|{digest}"


@functools.lru_cache(maxsize=8)
def _file_sha256(path: str) -> str:
    return sha256_file(path)


def reference_path(out: Path, cell: str) -> Path:
    """Where a retrain cell's weights are kept (our own file: later audits and resumed runs load it)."""
    return Path(out) / "references" / f"{hashlib.sha256(cell.encode()).hexdigest()[:16]}.safetensors"


def load_source(plan: BenchPlan, device: torch.device) -> tuple[DataSource, nn.Module | None]:
    """The plan's data, and the user's Hugging Face model when one is given (it is then the original
    and its tokenizer encodes the data); ``plan.lm`` says how (models/lm_options.py)."""
    from ..models.lm_options import load_lm_source

    return load_lm_source(plan.data, plan.hf_model, plan.lm, plan.data_options, device=device)


def build_originals(plan: BenchPlan, splits, work: Workload, recipe: MethodConfig, device: torch.device,
                    given: nn.Module | None = None, info: dict | None = None) -> dict[str, tuple]:
    """One (task, original model, shadow trainer) per labelling of the splits' data, keyed by the
    source's name: a subclass:K scenario trains on the coarse-group labels. Originals come from the
    cache (trained there on first use) unless ``given`` (a user's language model) or ``plan.original``
    (a user's classifier file, read by ``checkpoints.load_into``: it is the original of every labelling,
    so it must fit each). ``info``, when given, is filled with what the records say about that file
    (``record["original"]``: path, SHA-256, format, layout)."""
    if plan.original and (given is not None or work.kind != "image"):
        raise ConfigError("--original FILE is an image classifier's checkpoint (with --model ARCH); a language "
                          "model is given with --hf-model DIR")
    originals: dict[str, tuple] = {}
    for split in splits:
        src = split.source
        if src.name not in originals:
            task = work.make_task(src, **plan.task_options(work))
            if given is not None:
                model = given
                make = lambda seed: reinitialise(copy.deepcopy(given), seed)  # noqa: E731  same architecture
            elif plan.original:  # the user's file replaces the cached original
                from ..checkpoints import load_into

                make = lambda seed, src=src: work.make_model(plan.model, src, seed)  # noqa: E731
                model = make(recipe.seed)
                loaded = load_into(model, plan.original, arch=plan.model)
                model = model.to(device)
                if info is not None:
                    info.update({"kind": "file", **loaded})
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
    # the given reference (``--retain-model`` / ``--retain-logs``): (model or None, logs or None, record info)
    reference: tuple = (None, None, None)
    original: dict | None = None  # a given original file (``plan.original``): what each record says about it


def load_reference(plan: BenchPlan, device: torch.device) -> tuple:
    """(retain model, retain logs, what the records say about the reference) for ``plan``."""
    kind = plan.reference_kind()
    if kind == "retain_model":
        from ..models.hf import load_hf_model

        model = load_hf_model(plan.retain_model, device=device, dtype=plan.lm.dtype,
                              trust_remote_code=plan.lm.trust_remote_code)
        return model, None, {"kind": kind, "path": str(plan.retain_model), "sha256": sha256_state(model)}
    if kind == "retain_logs":
        from ..audits.reference_logs import read_retain_logs

        return None, read_retain_logs(plan.retain_logs), {"kind": kind, "path": str(plan.retain_logs),
                                                           "sha256": sha256_file(plan.retain_logs)}
    if kind == "none":
        log.warning("no reference for this pretrained model: forget quality and privleak need one; pass "
                    "--retain-model DIR (the retain-finetuned checkpoint) or --retain-logs FILE (its TOFU_EVAL.json)")
        return None, None, {"kind": "none"}
    return None, None, {"kind": "retrain", "trained": "here, from scratch on the retain set (the retrain row)"}


def _setup(plan: BenchPlan) -> _Setup:
    for name in plan.audits or ():
        AUDITS.get(name)
    device = resolve_device(plan.device)
    source, given = load_source(plan, device)
    source = plan.holdout_half(source)
    plan = plan.resolve(source)
    runs = plan.runs()  # after resolve: the data's kind may name the default methods
    for name in plan.audits:
        AUDITS.get(name)
    work = workload_for(source)
    recipe = plan.recipe(work)
    splits = {scenario: make_split(source, scenario, seed=plan.split_seed) for scenario in plan.scenarios}
    original: dict = {}
    originals = build_originals(plan, splits.values(), work, recipe, device, given, info=original)
    reference = load_reference(plan, device)
    return _Setup(plan, runs, work, recipe, splits, originals, device, Path(plan.out), reference, original or None)


def _run_group(setup: _Setup, scenario: str, seed: int, lookup, on_new, budget: list | None = None,
               progress: "_CellProgress | None" = None) -> list[dict]:
    """The cells of one scenario and seed, retrain first (every other cell's reference): the stored
    record where ``lookup(cell)`` has one, else run it and hand it to ``on_new``. ``budget`` (a
    one-element list) counts down the cells still allowed to run (tests). ``progress`` counts the
    cells (its ``[k/N]`` and ETA start each cell's log line)."""
    plan, split, out = setup.plan, setup.splits[scenario], setup.out
    task, original, trainer = setup.originals[split.source.name]
    # one audit context per scenario and seed: shadow models are shared by all its cells
    given_model, given_logs, reference_info = setup.reference
    audit_ctx = AuditContext(device=setup.device, seed=seed, original=original, trainer=trainer,
                             options=dict(setup.work.audit_options), reference_logs=given_logs)
    reference_metrics, records = None, []
    for run in setup.runs:
        method = run.method
        if method == REFERENCE and given_model is not None:  # evaluated, never trained
            config, values = None, {"retain_model": reference_info["path"], "sha256": reference_info["sha256"]}
        else:
            config = plan.method_config(method, seed, setup.recipe, setup.work, run.overrides)
            values = config.to_dict()
        cell = cell_id(plan, scenario, method, seed, values, setup.recipe.to_dict())
        reference_file = reference_path(out, cell)
        record = distributed.broadcast_object(lookup(cell))  # several processes: the main one's store decides
        if record is None:
            if budget is not None:
                if budget[0] <= 0:
                    return records
                budget[0] -= 1
            if method == REFERENCE and given_model is not None:
                record, model = evaluate_reference(plan, cell, scenario, split, seed, given_model, setup.recipe,
                                                   task, audit_ctx)
            else:
                record, model = run_cell(plan, cell, scenario, split, method, seed, config, setup.recipe,
                                         original, task, audit_ctx, reference_metrics)
            record["reference"] = reference_info
            record["threads"] = torch.get_num_threads()  # results may move at rounding level across counts
            if model is not None:  # the unlearned weights, to compare reruns bit for bit
                record["weights_sha256"] = sha256_state(model)
            record["data_fingerprint"] = split.source.fingerprint()  # the data this cell's original trained on
            if setup.original:
                record["original"] = setup.original
            if run.label != method:
                record["label"] = run.label
            if method == REFERENCE and given_model is None and model is not None and distributed.is_main():
                save_weights(model, reference_file, overwrite=True)  # our own file, for later audits
            if record["status"] != "failed":  # a failed cell is not stored: a rerun retries it
                on_new(record)
            prefix, suffix = _counted(progress, True)
            log.info("%s%s %s seed %d: %s%s", prefix, scenario, run.label, seed, _brief(record), suffix)
        else:
            model = given_model if method == REFERENCE else None
            if method == REFERENCE and model is None and reference_file.exists():
                model = load_weights(copy.deepcopy(original), reference_file)
            prefix, suffix = _counted(progress, False)
            log.info("%s%s %s seed %d: done earlier, skipped%s", prefix, scenario, run.label, seed, suffix)
        if method == REFERENCE:
            reference_metrics = record["metrics"]
            audit_ctx.retrain = model
        records.append({**record, "label": run.label} if run.label != method else record)
    return records


def evaluate_reference(plan, cell, scenario, split, seed, model, recipe, task, audit_ctx) -> tuple[dict, nn.Module]:
    """The reference row of a pretrained model: the given retain-finetuned model, audited (not trained)."""
    audit_ctx.retrain = model
    audit_ctx.curves = {}
    metrics = distributed.on_main(audit, model, task, split, plan.audits, ctx=audit_ctx)
    metrics.update(gaps_to_retrain(metrics, metrics))
    record = {
        "cell": cell, "data": plan.data, "data_options": dict(plan.data_options), "model": plan.model,
        "scenario": scenario, "method": REFERENCE, "seed": seed,
        "seeds": {"train": plan.train_seed, "split": plan.split_seed, "unlearn": seed},
        "config": {"retain_model": str(plan.retain_model)}, "train_config": recipe.to_dict(),
        "audits": list(plan.audits), "versions": versions(), "device": str(audit_ctx.device), "quick": plan.quick,
        "forget_size": len(split.forget_idx), "retain_size": len(split.retain_idx), "status": "ok",
        "metrics": metrics,
    }
    if audit_ctx.curves:
        record["curves"] = audit_ctx.curves
    written = _write_retain_logs(plan, scenario, split, audit_ctx)
    if written is not None:
        record["retain_logs_written"] = str(written)
    return record, model


def _write_retain_logs(plan, scenario, split, audit_ctx) -> Path | None:
    """The given retain model's TOFU evaluation (per-item forget truth ratios, Min-K AUC) as a
    ``--retain-logs`` file (OUT/references/retain-eval-<scenario>-<hash>.json), for later runs without
    the model. None when the audits computed none (no tofu audit)."""
    cached = audit_ctx.cache.get(("tofu", split.spec))
    if not cached or not distributed.is_main() or cached[1].get("truth_ratios") is None:
        return None
    from ..audits.reference_logs import retain_logs_json

    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", scenario)
    path = Path(plan.out) / "references" / f"retain-eval-{name}-{sha256_state(cached[0])[:12]}.json"
    write_text_atomic(path, retain_logs_json(cached[1]["truth_ratios"], cached[1]["mink_auc"]))
    return path


def plan_cells(plan: BenchPlan) -> list[dict]:
    """What ``run_bench(plan)`` would run, without training anything (``bench --dry-run``): one dict
    per cell with the method, its row label, scenario, seed, the resolved config, which layer each
    non-default value comes from (``resolve.explain_config``), the original's recipe and the cell id.
    Loads the data (and a ``--hf-model``'s tokenizer, not its weights) to resolve the plan."""
    from ..resolve import explain_config

    for name in plan.audits or ():
        AUDITS.get(name)
    tokenizer = None
    if plan.hf_model:
        from ..models.hf import load_hf_tokenizer

        tokenizer = load_hf_tokenizer(plan.hf_model, trust_remote_code=plan.lm.trust_remote_code)
    options = plan.lm.loader_options(plan.data, plan.data_options)
    source = load_data(plan.data, **({"tokenizer": tokenizer} if tokenizer is not None else {}), **options)
    plan = plan.resolve(source)
    for name in plan.audits:
        AUDITS.get(name)
    work = workload_for(source)
    recipe = plan.recipe(work)
    runs = plan.runs()
    cells = []
    for scenario in plan.scenarios:
        make_split(source, scenario, seed=plan.split_seed)  # a bad spec fails here, as it would in a run
        for seed in range(plan.seeds):
            for run in runs:
                config = plan.method_config(run.method, seed, recipe, work, run.overrides)
                origin = explain_config(run.method, kind=work.kind, scale=plan.scale(work), preset=plan.preset,
                                        quick=plan.quick, seed=seed, data=plan.data,
                                        overrides={**plan.overrides.get(run.method, {}), **run.overrides},
                                        recipe=recipe.to_dict())
                cells.append({
                    "method": run.method, "label": run.label, "scenario": scenario, "seed": seed,
                    "kind": work.kind, "model": plan.model, "data": plan.data_key, "preset": plan.preset,
                    "config": config.to_dict(), "from": {k: v for k, v in origin.items() if v != "defaults"},
                    "train_config": recipe.to_dict(),
                    "cell": cell_id(plan, scenario, run.method, seed, config.to_dict(), recipe.to_dict()),
                })
    return cells


def run_bench(plan: BenchPlan, *, max_cells: int | None = None) -> list[dict]:
    """Run (or resume) the plan; return the records of this plan's cells. ``max_cells`` stops early
    (tests). With ``plan.workers > 1`` the (scenario, seed) groups run in that many worker processes
    (one torch thread each); only this process writes the results store, each cell exactly once.
    The summary over seeds is written as ``results.csv`` beside ``results.jsonl``."""
    records = _run_bench(plan, max_cells=max_cells)
    if distributed.is_main() and records:
        write_text_atomic(Path(plan.out) / "results.csv", print_table(records, fmt="csv"))
    return records


def _run_bench(plan: BenchPlan, *, max_cells: int | None = None) -> list[dict]:
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
    with _CellProgress(len(groups) * len(setup.runs)) as progress:
        if plan.workers > 1 and max_cells is None:
            return _run_parallel(plan, setup, groups, store, progress)
        budget = None if max_cells is None else [max_cells]
        records = []
        keep = store.add if distributed.is_main() else (lambda record: None)  # one writer
        for scenario, seed in groups:
            records += _run_group(setup, scenario, seed, store.get, keep, budget, progress)
            if budget is not None and budget[0] <= 0:
                break
        return records


class _CellProgress:
    """The bench's count of cells: a bar over them (when stderr is a terminal and not CI, as the
    training bar) and, per finished cell, ``[k/N]`` with the elapsed time and the ETA (the mean time
    of the cells run here so far × the cells left; cells done earlier count as done, in no time)."""

    def __init__(self, total: int):
        self.total, self.done, self.ran = total, 0, 0
        self.start = time.perf_counter()
        show = RunContext().progress and distributed.is_main()
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc="bench", unit="cell", disable=not show, dynamic_ncols=True)
        self._redirect = None

    def __enter__(self) -> "_CellProgress":
        if not self.bar.disable:  # log lines above the bar instead of through it
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._redirect = logging_redirect_tqdm()
            self._redirect.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._redirect is not None:
            self._redirect.__exit__(*exc)
        self.bar.close()

    def advance(self, cells: int = 1, ran: int = 0) -> tuple[str, str]:
        """Count ``cells`` finished (``ran`` of them run now): the ``[k/N] `` prefix and the
        `` (elapsed …, ETA …)`` suffix of the log line."""
        self.done, self.ran = self.done + cells, self.ran + ran
        self.bar.update(cells)
        elapsed = time.perf_counter() - self.start
        left = max(self.total - self.done, 0)
        eta = _clock(elapsed / self.ran * left) if self.ran else "?"
        return f"[{self.done}/{self.total}] ", f" (elapsed {_clock(elapsed)}, ETA {eta})"


def _counted(progress: _CellProgress | None, ran: bool) -> tuple[str, str]:
    return ("", "") if progress is None else progress.advance(1, int(ran))


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


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


def _run_parallel(plan: BenchPlan, setup: _Setup, groups, store: ResultStore,
                  progress: _CellProgress | None = None) -> list[dict]:
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
        if progress is not None:
            prefix, suffix = progress.advance(len(records), len(new))
            log.info("%s%s seed %d: %d cell(s) finished%s", prefix, group[0], group[1], len(records), suffix)

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
        from ..extras import require

        submitit = require("submitit", "slurm", "--executor slurm / submitit-local needs")
        for job in submitit.helpers.as_completed(list(jobs)):
            collect(jobs[job], job.result())
    return [record for group in groups for record in by_group[group]]


def _submitit_jobs(plan: BenchPlan, worker_plan: BenchPlan, groups, done) -> dict:
    from ..extras import require

    submitit = require("submitit", "slurm", "--executor slurm / submitit-local needs")
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
    the same split) the record has the gaps to retrain. The run's loss curve (loss and the method's
    objective terms, ≤ 100 points) is kept as ``curves["loss"]``; with ``plan.log_dir`` every step
    also goes to a CSV file there (``log_file`` in the record)."""
    device = audit_ctx.device
    history = History()  # every step; downsampled into the record
    ctx = RunContext(device=device, generator=seed_everything(seed), precision=plan.precision, callbacks=[history])
    record = {
        "cell": cell, "data": plan.data, "data_options": dict(plan.data_options), "model": plan.model, "scenario": scenario, "method": method,
        "seed": seed, "seeds": {"train": plan.train_seed, "split": plan.split_seed, "unlearn": seed},
        "config": config.to_dict(), "train_config": recipe.to_dict(), "audits": list(plan.audits),
        "versions": versions(), "device": str(device), "quick": plan.quick,
        "forget_size": len(split.forget_idx), "retain_size": len(split.retain_idx),
        "precision": dataclasses.asdict(plan.precision),
    }
    log_file = None
    if plan.log_dir is not None and distributed.is_main():
        log_file = cell_log_file(plan.log_dir, scenario, method, seed, cell)
        ctx.callbacks.append(CSVLogger(log_file))  # created when a training loop starts (none: no file)
    working = copy.deepcopy(original)
    start = time.perf_counter()
    try:
        with PeakMemory(device) as memory:
            unlearned = run_method(method, working, task, split, config, ctx)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
    except DivergenceError as exc:
        record.update(status="diverged", error=str(exc), metrics={"seconds": time.perf_counter() - start})
        if len(history):  # the steps up to the divergence: what the report shows of a diverged run
            record["curves"] = {"loss": history.curve()}
        if log_file is not None and log_file.exists():
            record["log_file"] = str(log_file)
        return record, None
    except NotApplicable as exc:  # the method's declared inapplicability to this data: recorded, the bench goes on
        log.warning("%s on %s: not applicable (%s)", method, scenario, exc)
        record.update(status="not applicable", error=str(exc), metrics={})
        return record, None
    except UnlearnkitError as exc:  # a misconfiguration is an error, not a table cell: not stored, reported at the end
        log.error("%s on %s seed %d failed: %s", method, scenario, seed, exc)
        record.update(status="failed", error=str(exc), metrics={})
        return record, None
    seconds = time.perf_counter() - start
    if method == REFERENCE:
        audit_ctx.retrain = unlearned  # audits that compare with retrain see it on its own row too
    audit_ctx.unlearner = lambda model, shadow_split, shadow_seed: run_method(  # U-LiRA's shadows: this cell's method
        method, copy.deepcopy(model), task, shadow_split, replace(config, seed=shadow_seed),
        RunContext(device=device, generator=seed_everything(shadow_seed), precision=plan.precision))
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
    if len(history):  # the training loss (and objective terms), ≤ 100 window means
        record.setdefault("curves", {})["loss"] = history.curve()
    if log_file is not None and log_file.exists():
        record["log_file"] = str(log_file)
    return record, unlearned


def cell_log_file(log_dir: Path, scenario: str, method: str, seed: int, cell: str) -> Path:
    """Where a cell's training CSV goes: ``LOG_DIR/<method>_<scenario>_seed<seed>_<hash>.csv`` (the
    hash of the cell id tells configurations, e.g. a sweep's variants, apart). A file already there
    is an earlier attempt at the same cell that did not finish (a finished one is never rerun): it is
    kept, and this run writes ``…-2.csv`` (``-3``, … next)."""
    digest = hashlib.sha256(cell.encode()).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{method}_{scenario}_seed{seed}_{digest}").strip("._") or digest
    path, attempt = Path(log_dir) / f"{stem}.csv", 2
    while path.exists():
        path, attempt = Path(log_dir) / f"{stem}-{attempt}.csv", attempt + 1
    return path


def _brief(record: dict) -> str:
    if record.get("status") != "ok":
        return record.get("status", "?")
    m = record["metrics"]
    return " ".join(f"{k}={m[k]:.2f}" for k in ("ua", "ra", "ta", "mia_efficacy", "avg_gap", "seconds") if k in m)


def print_table(records: list[dict], columns=None, headers: dict[str, str] | None = None, fmt: str = "table") -> str:
    """The results summarised over seeds: ``columns`` (default: every known metric present), named by
    ``headers`` where given (a preset's layout), as a text ``table``, ``markdown``, ``csv`` or ``json``."""
    # a sweep's rows are told apart by their label (e.g. ga[lr=0.001])
    records = [{**r, "method": r["label"]} if r.get("label") else r for r in records]
    columns = present_columns(records) if columns is None else present_columns(records, columns)
    return format_summary(summarise(records, columns), columns, headers, fmt)
