"""``unlearnkit tune``: search a method's declared hyper-parameter space against the retrained model.

Protocol. The data's held-out examples are halved (``bench/holdout.py``: seeded, stratified by class
for images): trials are scored on the **validation** half, and the best trial's configuration is then
measured once on the **final-test** half, which the search never saw. Both are reported, next to the
untuned default's (the default is also the study's first trial, so the search starts from it).

Objective. Images: minimise Avg Gap to ``retrain`` (mean |UA, RA, TA, MIA-Efficacy − retrain's|). Text:
maximise TOFU forget quality subject to model utility ≥ ``utility_floor`` × the original model's (an
Optuna constraint: TPE learns the infeasible region and the best trial is chosen among feasible ones);
WMDP-style text data (its audits include ``wmdp``: wmdp-mini, ``wmdp:DIR``): minimise hazard accuracy
subject to general accuracy ≥ ``utility_floor`` × the original's. A diverged run scores the worst
value (Avg Gap 100; forget quality 0 / hazard accuracy 100, with utility 0).

The original comes from the cache (``bench/originals.py``) and the retrain reference is trained once
into ``OUT/references`` (the runner's layout), so workers after the first only run trials. The Optuna
side (storage, study creation, seeding, the exact trial budget across workers) is ``bench/study.py``.

Several workers, one study: create it first, then start the workers, each with the same ``--storage``
and ``--study`` (``--trials`` is the study's total, counted across workers)::

    unlearnkit tune --method ga --forget class:0 --trials 40 --out tune-ga --workers-note   # creates, prints
    for i in 1 2 3 4; do unlearnkit tune --method ga --forget class:0 --trials 40 --out tune-ga & done; wait

Across machines, give every worker the same ``--storage`` URL (e.g. ``postgresql+psycopg2://…``, or a
journal file on a shared file system) and study name.
"""
from __future__ import annotations

import copy
import json
import logging
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..atomic import write_text_atomic
from ..audits.api import audit
from ..audits.base import AuditContext
from ..checkpoints import load_weights, save_weights
from ..cli_options import lm_option_flags, precision_flags
from ..data.forget import make_split
from ..data.split import Split
from ..devices import resolve_device
from ..errors import ConfigError, UnlearnkitError
from ..methods.base import METHODS, Dimension, search_dimensions
from ..methods.precision import Precision
from ..models.lm_options import LMOptions
from .holdout import holdout_halves
from .runner import (REFERENCE, BenchPlan, build_originals, cell_id, load_reference, load_source, reference_path,
                     run_cell, versions)
from .workload import workload_for

log = logging.getLogger(__name__)

# What is optimised per kind of data: (metric, direction, audits run by default).
OBJECTIVES = {
    "image": ("avg_gap", "minimize", ("accuracy", "mia")),
    "text": ("forget_quality", "maximize", ("tofu",)),
    "wmdp": ("hazard_acc", "minimize", ("wmdp",)),
}
# objectives with a utility floor: the utility metric (a fraction of the original's must be kept)
UTILITY = {"text": "model_utility", "wmdp": "general_acc"}
WORST = {"avg_gap": 100.0, "forget_quality": 0.0, "hazard_acc": 100.0}
WORST_GAP = 100.0  # Avg Gap's ceiling: it averages percentages
HALVES = ("validation", "test")


@dataclass
class TuneRequest:
    """What ``unlearnkit tune`` needs; the CLI fills it. ``trials`` is the study's total."""

    method: str
    trials: int = 20
    data: str = "digits"
    forget: str | None = None  # None: the data's first default scenario
    storage: str | None = None  # None: OUT/study.journal
    study: str | None = None  # None: named after method, data, scenario and seed
    seed: int = 0  # unlearning and retrain seed, sampler seed, and the validation/test halving
    out: Path = Path("tune")
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)  # {method|"train": {key: value}}
    model: str | None = None
    audits: list[str] | None = None
    quick: bool = False
    utility_floor: float = 0.9  # text: model utility ≥ this × the original's
    device: str = "auto"
    train_seed: int = 0
    split_seed: int = 0
    data_options: dict[str, str] = field(default_factory=dict)
    hf_model: str | None = None
    precision: Precision = field(default_factory=Precision)  # amp / channels-last / compile of the trials
    log_dir: Path | None = None  # each trial's training curve as CSV
    retain_model: str | None = None  # a pretrained model's reference: the retain-finetuned checkpoint ...
    retain_logs: str | None = None   # ... or its evaluation log
    lm: LMOptions = field(default_factory=LMOptions)  # a language model's dtype, prompt format, lengths, reference device

    def plan(self) -> BenchPlan:
        return BenchPlan(data=self.data, model=self.model, scenarios=[self.forget] if self.forget else None,
                         methods=[self.method], seeds=1, audits=self.audits, quick=self.quick, out=Path(self.out),
                         device=self.device, train_seed=self.train_seed, split_seed=self.split_seed,
                         overrides=self.overrides, hf_model=self.hf_model, data_options=dict(self.data_options),
                         precision=self.precision, log_dir=self.log_dir, lm=self.lm,
                         retain_model=self.retain_model, retain_logs=self.retain_logs)


@dataclass
class Half:
    """One half of the held-out data: its split, audit context, and retrain's metrics on it."""

    split: Split
    ctx: AuditContext
    reference: dict[str, float] = field(default_factory=dict)


@dataclass
class Tuning:
    """Everything a trial needs, built once per process by :func:`prepare`."""

    request: TuneRequest
    plan: BenchPlan
    kind: str
    metric: str
    direction: str
    scenario: str
    work: Any
    recipe: Any
    task: Any
    original: Any
    halves: dict[str, Half]
    dims: dict[str, Dimension]
    floor: float | None = None  # text: the utility floor (utility_floor × the original's utility)
    objective_name: str = "image"  # the key of OBJECTIVES: image | text | wmdp

    @property
    def study_name(self) -> str:
        if self.request.study:
            return self.request.study
        raw = f"{self.request.method}-{self.plan.data_key}-{self.scenario}-seed{self.request.seed}"
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", raw)

    def setup(self) -> dict:
        """What every worker of one study must agree on (stored with the study, checked on load)."""
        return {"method": self.request.method, "data": self.plan.data_key, "model": self.plan.model,
                "scenario": self.scenario, "seed": self.request.seed, "split_seed": self.plan.split_seed,
                "train_seed": self.plan.train_seed, "recipe": self.recipe.to_dict(), "audits": list(self.plan.audits),
                "objective": self.metric,
                "utility_floor": self.request.utility_floor if self.objective_name in UTILITY else None,
                "fixed": dict(self.plan.overrides.get(self.request.method, {})), "quick": self.plan.quick,
                "space": {k: repr(d) for k, d in self.dims.items()}}

    def config(self, params: dict):
        """The full config of a trial: the bench's defaults under ``--set`` and ``params``."""
        return self.plan.method_config(self.request.method, self.request.seed, self.recipe, self.work, params)

    def default_params(self) -> dict:
        """The untuned configuration's values of the searched hyper-parameters."""
        config = self.config({})
        return {k: getattr(config, k) for k in self.dims}

    def evaluate(self, params: dict, half: str) -> dict:
        """Run the method with ``params`` and audit it on one half: the runner's cell record."""
        method, seed, h = self.request.method, self.request.seed, self.halves[half]
        try:
            config = self.config(params)
        except ConfigError as exc:  # a combination the config rejects: scored as the worst
            return {"status": "invalid", "error": str(exc), "metrics": {}, "config": dict(params)}
        cell = cell_id(self.plan, self.scenario, method, seed, config.to_dict(), self.recipe.to_dict())
        record, _ = run_cell(self.plan, cell, self.scenario, h.split, method, seed, config, self.recipe,
                             self.original, self.task, h.ctx, h.reference)
        return record

    def score(self, record: dict) -> tuple[float, float | None]:
        """(objective value, constraint: ≤ 0 when feasible, None for images) of a cell record."""
        return score(record, self.objective_name, self.floor)


def score(record: dict, kind: str, floor: float | None = None) -> tuple[float, float | None]:
    """The objective of one validation record; ``kind`` names the objective (:data:`OBJECTIVES`).
    Images: (avg_gap, None), a failed run WORST_GAP. Text: (forget_quality, floor − model_utility), a
    failed run (0, floor). WMDP: (hazard_acc, floor − general_acc), a failed run (100, floor)."""
    metrics = record.get("metrics", {}) if record.get("status") == "ok" else {}
    if kind in UTILITY:
        metric = OBJECTIVES[kind][0]
        value, utility = metrics.get(metric), metrics.get(UTILITY[kind])
        if value is None or utility is None or value != value:
            return WORST[metric], float(floor or 0.0)
        return float(value), float((floor or 0.0) - utility)
    gap = metrics.get("avg_gap")
    return (WORST_GAP if gap is None or gap != gap else float(gap)), None


def prepare(request: TuneRequest) -> Tuning:
    """Load the data, halve its held-out part, get the original (cache) and the retrain reference
    (``OUT/references``, trained here on first use), and retrain's metrics on both halves."""
    if request.method in (REFERENCE, "original"):
        raise ConfigError(f"{request.method} has no hyper-parameters to tune")
    method_cls = METHODS.get(request.method)
    fixed = request.overrides.get(request.method, {})
    dims = {k: d for k, d in search_dimensions(method_cls.Config, request.method).items() if k not in fixed}
    if not dims:
        raise ConfigError(f"{request.method} declares no search space" + (" left after --set" if fixed else ""))
    if request.trials < 0:
        raise ConfigError(f"--trials must be >= 0, got {request.trials}")
    if not 0.0 <= request.utility_floor <= 1.0:
        raise ConfigError(f"--utility-floor is a fraction of the original's utility in [0, 1], got {request.utility_floor}")
    device = resolve_device(request.device)
    plan = request.plan()
    source, given = load_source(plan, device)
    if source.kind not in OBJECTIVES:
        raise ConfigError(f"tuning has no objective for {source.kind} data")
    work = workload_for(source)
    defaults = plan.audits or source.default_audits or work.audits
    name = "wmdp" if source.kind == "text" and "wmdp" in defaults else source.kind
    metric, direction, audits = OBJECTIVES[name]
    plan = replace(plan, audits=plan.audits or list(audits)).resolve(source)
    if len(plan.scenarios) != 1 and request.forget is None:
        plan = replace(plan, scenarios=plan.scenarios[:1])
    scenario = plan.scenarios[0]
    recipe = plan.recipe(work)
    sources = dict(zip(HALVES, holdout_halves(source, seed=request.seed)))
    splits = {half: make_split(src, scenario, seed=plan.split_seed) for half, src in sources.items()}
    originals = build_originals(plan, splits.values(), work, recipe, device, given)
    task, original, trainer = originals[splits["validation"].source.name]
    halves = {half: Half(split, AuditContext(device=device, seed=request.seed, original=original, trainer=trainer,
                                             options=dict(work.audit_options)))
              for half, split in splits.items()}
    dims = {k: d for k, d in search_dimensions(method_cls.Config, request.method, kind=source.kind,
                                               scale=plan.scale(work)).items() if k not in fixed}
    tuning = Tuning(request, plan, source.kind, metric, direction, scenario, work, recipe, task, original, halves, dims,
                    objective_name=name)
    _reference(tuning)
    if name in UTILITY:
        # the original's audit, against the same reference (a model, or only its evaluation log)
        original_metrics = audit(original, task, halves["validation"].split, plan.audits, ctx=halves["validation"].ctx)
        missing = [k for k in (metric, UTILITY[name]) if k not in original_metrics]
        if missing:
            raise ConfigError(f"tuning on text optimises {metric} at a {UTILITY[name]} floor; the audits "
                              f"{plan.audits} on {plan.data_key} give no {', '.join(missing)} (use the "
                              f"{'tofu' if name == 'text' else 'wmdp'} audit)")
        tuning.floor = request.utility_floor * original_metrics[UTILITY[name]]
    return tuning


def _reference(tuning: Tuning) -> None:
    """Train (or load) the retrain reference and audit it on both halves; for a pretrained model, the
    given retain model or its evaluation log (never a retrain from scratch)."""
    plan, seed, val = tuning.plan, tuning.request.seed, tuning.halves["validation"]
    kind = plan.reference_kind()
    if kind == "none":
        raise ConfigError("tuning a pretrained --hf-model needs its reference: --retain-model DIR (the "
                          "retain-finetuned checkpoint) or --retain-logs FILE (its TOFU_EVAL.json)")
    if kind in ("retain_model", "retain_logs"):
        model, logs, _ = load_reference(plan, val.ctx.device)
        for half in tuning.halves.values():
            half.ctx.retrain, half.ctx.reference_logs = model, logs
            half.reference = audit(model, tuning.task, half.split, plan.audits, ctx=half.ctx) if model else {}
        return
    config = plan.method_config(REFERENCE, seed, tuning.recipe, tuning.work)
    cell = cell_id(plan, tuning.scenario, REFERENCE, seed, config.to_dict(), tuning.recipe.to_dict())
    path = reference_path(plan.out, cell)
    if path.exists():
        model = load_weights(copy.deepcopy(tuning.original), path)
    else:
        log.info("retrain reference: training on the retain set (%s)", val.split.describe())
        record, model = run_cell(plan, cell, tuning.scenario, val.split, REFERENCE, seed, config, tuning.recipe,
                                 tuning.original, tuning.task, val.ctx, None)
        if model is None:
            raise UnlearnkitError(f"the retrain reference failed: {record.get('error', record['status'])}")
        save_weights(model, path, overwrite=True)  # our own file; workers after this one load it
    for half in tuning.halves.values():
        half.ctx.retrain = model
        half.reference = audit(model, tuning.task, half.split, plan.audits, ctx=half.ctx)


# --- the study ------------------------------------------------------------------------------------

def objective(tuning: Tuning):
    """The Optuna objective: sample, run on the validation half, record, score."""
    from .study import suggest

    def run(trial) -> float:
        params = {name: suggest(trial, name, dim) for name, dim in tuning.dims.items()}
        record = tuning.evaluate(params, "validation")
        value, constraint = tuning.score(record)
        trial.set_user_attr("status", record["status"])
        trial.set_user_attr("metrics", _numbers(record.get("metrics", {})))
        if constraint is not None:
            trial.set_constraint("model_utility_floor", constraint)
        log.info("trial %d: %s → %s=%.4g%s", trial.number, _brief_params(params), tuning.metric, value,
                 "" if record["status"] == "ok" else f" ({record['status']})")
        return value

    return run


def open_study(tuning: Tuning):
    from .study import TrialSeededSampler, ensure_study, open_storage

    storage = open_storage(tuning.request.storage, Path(tuning.request.out) / "study.journal")
    study = ensure_study(storage, tuning.study_name, tuning.direction, tuning.setup(),
                         sampler=TrialSeededSampler(tuning.request.seed))
    defaults = tuning.default_params()
    if all(tuning.dims[k].contains(v) for k, v in defaults.items()):
        # the untuned default is the first trial: the search never ends worse than it on validation
        study.enqueue_trial(defaults, user_attrs={"untuned_default": True}, skip_if_exists=True)
    return study


def prepare_study(request: TuneRequest) -> str:
    """Create the study and the retrain reference once, before workers start; the study's name."""
    _quiet_optuna()
    tuning = prepare(request)
    open_study(tuning)
    return tuning.study_name


def _quiet_optuna() -> None:
    from ..extras import require

    optuna = require("optuna", "tune", "unlearnkit tune needs")

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def tune(request: TuneRequest) -> dict | None:
    """Run this worker's share of the study; the worker that finds the study done (no live trial
    left) evaluates the best configuration on the final-test half and writes ``OUT/best.json``.
    Returns the summary written, or None when other workers are still running trials."""
    from .study import complete_count, live_running, run_trials

    _quiet_optuna()
    tuning = prepare(request)
    study = open_study(tuning)
    ran = run_trials(study, objective(tuning), request.trials)
    done = complete_count(study)
    log.info("study %s: %d complete trials (%d by this worker)", tuning.study_name, done, ran)
    if live_running(study):
        log.info("other workers are still running trials; the last one to finish writes best.json")
        return None
    if done == 0:
        return None
    summary = finish(tuning, study)
    write_text_atomic(Path(request.out) / "best.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def finish(tuning: Tuning, study) -> dict:
    """The best trial's config on the final-test half, the untuned default's on both halves."""
    from .study import best_trial, complete_count

    best, feasible = best_trial(study)
    if not feasible:
        log.warning("no trial met the utility floor (%.3g); reporting the least violating one", tuning.floor)
    params = dict(best.params)
    tested = tuning.evaluate(params, "test")
    default = tuning.default_params()
    default_runs = {half: tuning.evaluate({}, half) for half in HALVES}
    config = tuning.config(params)
    return {
        "method": tuning.request.method, "params": params, "config": config.to_dict(),
        "objective": {"metric": tuning.metric, "direction": tuning.direction, "utility_floor": tuning.floor},
        "study": {"name": tuning.study_name, "storage": tuning.request.storage or str(Path(tuning.request.out) / "study.journal"),
                  "trials_complete": complete_count(study), "best_trial": best.number, "feasible": feasible},
        "setup": tuning.setup(),
        "validation": {"value": best.value, "status": best.user_attrs.get("status"),
                       "metrics": best.user_attrs.get("metrics", {})},
        "test": {"value": tuning.score(tested)[0], "status": tested["status"], "metrics": _numbers(tested.get("metrics", {}))},
        "default": {"params": default, **{half: {"value": tuning.score(r)[0], "status": r["status"],
                                                 "metrics": _numbers(r.get("metrics", {}))}
                                          for half, r in default_runs.items()}},
        "retrain": {half: _numbers(h.reference) for half, h in tuning.halves.items()},
        "held_out": {half: len(h.split.test) for half, h in tuning.halves.items()},
        "versions": versions(),
    }


def _numbers(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _brief_params(params: dict) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def format_summary(summary: dict) -> str:
    """The printed result: best params, then the objective on validation and final test, tuned vs default."""
    metric = summary["objective"]["metric"]
    study = summary["study"]
    columns = [metric] + [c for c in ("ua", "ra", "ta", "mia_efficacy", "forget_quality", "model_utility",
                                      "hazard_acc", "general_acc")
                          if c != metric and c in summary["test"]["metrics"]]
    lines = [f"study {study['name']}: {study['trials_complete']} trials, best #{study['best_trial']}"
             + ("" if study["feasible"] else " (no trial met the utility floor)"),
             f"best {summary['method']}: {_brief_params(summary['params'])}",
             f"default {summary['method']}: {_brief_params(summary['default']['params'])}",
             "",
             f"{'':<8} {'half':<11}" + "".join(f"{c:>14}" for c in columns)]
    rows = [("tuned", "validation", summary["validation"]), ("tuned", "test", summary["test"]),
            ("default", "validation", summary["default"]["validation"]), ("default", "test", summary["default"]["test"]),
            ("retrain", "test", {"metrics": summary["retrain"]["test"]})]
    for name, half, run in rows:
        metrics = run.get("metrics", {})
        lines.append(f"{name:<8} {half:<11}" + "".join(f"{metrics[c]:>14.3f}" if c in metrics else f"{'-':>14}"
                                                     for c in columns))
    return "\n".join(lines)


def worker_command(request: TuneRequest, study_name: str) -> str:
    """The command a further worker runs to join this study (same settings, same storage and study)."""
    parts = ["unlearnkit", "tune", "--method", request.method, "--data", request.data, "--trials", str(request.trials),
             "--seed", str(request.seed), "--out", str(request.out), "--study", study_name]
    if request.forget:
        parts += ["--forget", request.forget]
    if request.storage:
        parts += ["--storage", request.storage]
    for flag, value in (("--model", request.model), ("--hf-model", request.hf_model),
                        ("--retain-model", request.retain_model), ("--retain-logs", request.retain_logs),
                        ("--log-dir", request.log_dir),
                        ("--device", None if request.device == "auto" else request.device)):
        if value:
            parts += [flag, str(value)]
    if request.audits:
        parts += ["--audits", ",".join(request.audits)]
    if request.quick:
        parts.append("--quick")
    if request.utility_floor != 0.9:
        parts += ["--utility-floor", str(request.utility_floor)]
    for flag, value in (("--train-seed", request.train_seed), ("--split-seed", request.split_seed)):
        if value:
            parts += [flag, str(value)]
    for target, values in request.overrides.items():
        for key, value in values.items():
            parts += ["--set", f"{target}.{key}={value}"]
    for key, value in request.data_options.items():
        parts += ["--data-option", f"{key}={value}"]
    parts += precision_flags(request.precision) + lm_option_flags(request.lm)
    return " ".join(shlex.quote(p) for p in parts)
