"""Optuna plumbing for ``unlearnkit tune``: the storage, one study shared by any number of workers,
a TPE sampler seeded per trial, and a worker loop that stops the study at exactly N complete trials.

- Storage: a journal file (the default, ``OUT/study.journal``: no server, safe for several processes
  on one machine or on a shared file system) or any Optuna storage URL (``sqlite:///f.db``,
  ``postgresql+psycopg2://user:pw@host/db``). A killed worker loses only its running trial; a rerun
  continues the study.
- Creation: workers that race to create a fresh SQL storage crash inside Optuna's schema setup
  (measured: stack-checks.md §2), so the study is created by one process first (the first
  ``tune`` run, or ``tune --workers-note``); a worker only retries the storage connection.
- Sampling: TPE seeded with (seed, trial number), so a single worker is reproducible, a resumed
  study does not replay the random start-up trials it already ran, and parallel workers never draw
  the same start-up point.
- Budget: ``--trials N`` is the study's total. A worker takes a new trial only while the complete
  trials plus the live running ones numbered before it are fewer than N, so several workers together
  finish exactly N (a trial asked for past the budget is closed as FAIL with ``surplus`` set).
  Running trials of dead processes on this host are closed as FAIL when a worker starts.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ConfigError
from ..extras import require

# the whole module is Optuna plumbing (TrialSeededSampler subclasses its BaseSampler), imported only by
# ``unlearnkit tune`` (bench/tune.py, inside functions): without the [tune] extra, importing it raises
# MissingExtraError with the pip hint
optuna = require("optuna", "tune", "unlearnkit tune needs")
from optuna.samplers import BaseSampler, TPESampler  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from ..methods.base import Choice, Dimension, FloatRange, IntRange

log = logging.getLogger(__name__)


def suggest(trial: optuna.Trial, name: str, dim: Dimension) -> Any:
    """Draw one hyper-parameter value from its declared dimension."""
    if isinstance(dim, FloatRange):
        return trial.suggest_float(name, dim.low, dim.high, log=dim.log)
    if isinstance(dim, IntRange):
        return trial.suggest_int(name, dim.low, dim.high)
    if isinstance(dim, Choice):
        return trial.suggest_categorical(name, list(dim.options))
    raise TypeError(f"unknown dimension {dim!r}")


def open_storage(spec: str | None, default_journal: Path):
    """``None``: the journal file ``default_journal``; a string with ``://``: an Optuna RDB URL;
    anything else: a journal file path."""
    if spec and "://" in spec:
        return _rdb_storage(spec)
    path = Path(spec) if spec else Path(default_journal)
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def _rdb_storage(url: str, attempts: int = 5):
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url)
        except ImportError as exc:
            raise ConfigError(f"storage {url}: its database driver is not installed ({exc})") from None
        except SQLAlchemyError as exc:  # another process creating the schema, or the server unreachable
            if attempt == attempts - 1:
                raise ConfigError(f"storage {url}: {str(exc).splitlines()[0]}") from None
            time.sleep(0.5 * (attempt + 1))


def ensure_study(storage, name: str, direction: str, setup: dict, sampler: BaseSampler | None = None) -> optuna.Study:
    """Load the study ``name`` or create it; its ``setup`` (what every worker must agree on: method,
    data, scenario, seeds, objective, search space…) is stored with it and checked on load."""
    setup = json.loads(json.dumps(setup))  # as stored: tuples become lists
    try:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    except KeyError:
        try:
            study = optuna.create_study(study_name=name, storage=storage, direction=direction, sampler=sampler)
            study.set_user_attr("setup", setup)
            return study
        except optuna.exceptions.DuplicatedStudyError:  # another worker created it meanwhile
            study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    stored = _wait_for_setup(study)
    if stored is None:
        study.set_user_attr("setup", setup)
    elif stored != setup:
        diff = sorted(k for k in set(stored) | set(setup) if stored.get(k) != setup.get(k))
        raise ConfigError(f"study {name!r} was created for another setup (differs in: {', '.join(diff)}); "
                          f"give another --study name, or the same settings as its creator: "
                          + ", ".join(f"{k}={stored.get(k)!r}" for k in diff))
    if study.direction.name.lower() != direction:
        raise ConfigError(f"study {name!r} is set to {study.direction.name.lower()}, this run needs {direction}")
    return study


def _wait_for_setup(study: optuna.Study, seconds: float = 5.0) -> dict | None:
    """The creator stores the setup right after creating the study; give it a moment."""
    deadline = time.monotonic() + seconds
    while True:
        stored = study.user_attrs.get("setup")
        if stored is not None or time.monotonic() > deadline:
            return stored
        time.sleep(0.2)


def trial_seed(seed: int, number: int) -> int:
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class TrialSeededSampler(BaseSampler):
    """TPE whose random state is a function of (seed, trial number): one fresh seeded TPESampler per
    trial. The trial number is unique in the study, so resumed and parallel workers draw distinct,
    reproducible start-up points; TPE's model still reads the whole shared history."""

    def __init__(self, seed: int, make: Callable[[int], BaseSampler] | None = None):
        self._seed = seed
        self._make = make or (lambda s: TPESampler(seed=s))
        self._samplers: dict[int, BaseSampler] = {}

    def _for(self, trial) -> BaseSampler:
        if trial.number not in self._samplers:
            self._samplers[trial.number] = self._make(trial_seed(self._seed, trial.number))
        return self._samplers[trial.number]

    def infer_relative_search_space(self, study, trial):
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self._for(trial).after_trial(study, trial, state, values)
        self._samplers.pop(trial.number, None)


# --- workers ------------------------------------------------------------------------------------

def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(trial) -> bool:
    """Whether a running trial's worker may still be alive (only this host's processes can be checked)."""
    host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_running(study: optuna.Study) -> list:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if _alive(t)]


def complete_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def fail_orphans(study: optuna.Study) -> int:
    """Close the running trials of this host's dead workers (killed runs) as FAIL; how many."""
    orphans = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if not _alive(t)]
    for trial in orphans:
        log.warning("trial %d: its worker %s is gone; marked failed", trial.number, trial.user_attrs.get("worker"))
        study.tell(trial.number, state=TrialState.FAIL)
    return len(orphans)


def _admitted(study: optuna.Study, number: int, target: int) -> bool:
    """Whether trial ``number`` fits the budget: complete trials plus live running ones asked before it."""
    trials = study.get_trials(deepcopy=False)
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    ahead = sum(t.state == TrialState.RUNNING and t.number < number and _alive(t) for t in trials)
    return complete + ahead < target


def run_trials(study: optuna.Study, objective: Callable[[optuna.Trial], float], target: int) -> int:
    """Run trials until the study holds ``target`` complete ones (counting every worker's); return
    how many this worker completed. An exception in ``objective`` fails its trial and propagates."""
    fail_orphans(study)
    ran = 0
    while complete_count(study) < target:
        trial = study.ask()
        trial.set_user_attr("worker", worker_id())
        if not _admitted(study, trial.number, target):
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=TrialState.FAIL)
            break
        try:
            value = objective(trial)
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            raise
        study.tell(trial, value)
        ran += 1
    return ran


def best_trial(study: optuna.Study):
    """(best complete trial, feasible): among trials meeting every constraint when any does, else the
    least violating one (ties broken by the objective)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise ConfigError(f"study {study.study_name!r} has no complete trial yet")
    sign = -1.0 if study.direction.name == "MAXIMIZE" else 1.0
    violation = lambda t: sum(max(0.0, v) for v in t.constraints.values())  # noqa: E731
    feasible = [t for t in complete if violation(t) == 0.0]
    if feasible:
        return min(feasible, key=lambda t: (sign * t.value, t.number)), True
    return min(complete, key=lambda t: (violation(t), sign * t.value, t.number)), False
