"""Sweeps: ``unlearnkit bench --sweep FILE.toml`` — methods with hyper-parameter grids (or a tuning
study's best trial) × scenarios × seeds, every grid point its own resumable cell.

The file (every key but ``methods`` optional; flags given on the command line win)::

    data = "digits"                 # NAME or NAME:PATH
    model = "cnn"
    scenarios = ["class:0", "random:0.1"]
    seeds = 3
    audits = ["accuracy", "mia"]
    quick = false
    device = "cpu"
    train_seed = 0
    split_seed = 0

    [data_options]                  # loader options, as --data-option
    groups = "map.json"

    [train]                         # the original's recipe, as --set train.KEY=VALUE
    epochs = 30

    [methods.ga]                    # a list is a grid axis (cartesian product); a scalar is fixed
    lr = [0.001, 0.002, 0.005]
    epochs = [3, 5]

    [methods.finetune]              # no keys: the method's defaults

    [methods.npo_tuned]             # any row name; `method` says which method it runs
    method = "npo"
    best = "tune-npo/best.json"     # the tuned hyper-parameters of `unlearnkit tune` (path relative to this file)

Each grid point is a row of the table labelled with its varied values, e.g. ``ga[lr=0.001,epochs=3]``;
``retrain`` always runs first, as the reference. Everything is checked before any cell runs: an
unknown key, method or hyper-parameter, or a value the method's config rejects, is a ``ConfigError``
naming the file, the line and the key.
"""
from __future__ import annotations

import itertools
import json
import re
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package
    import tomli as tomllib

from ..audits.base import AUDITS
from ..data.forget import parse_forget_spec
from ..data.sources import DATA_SOURCES, parse_data_arg
from ..errors import ConfigError, UnlearnkitError
from ..methods.api import build_config
from ..methods.base import METHODS, make_config
from ..methods.training import TrainConfig
from .runner import REFERENCE, BenchPlan, Variant

# top-level keys: (type, BenchPlan field)
SETTINGS = {"data": (str, "data"), "model": (str, "model"), "scenarios": (list, "scenarios"), "seeds": (int, "seeds"),
            "audits": (list, "audits"), "quick": (bool, "quick"), "device": (str, "device"),
            "train_seed": (int, "train_seed"), "split_seed": (int, "split_seed")}
TABLES = ("methods", "train", "data_options")
RESERVED = ("method", "best")


class _Where:
    """Names a place in the file for error messages: ``FILE line N: key``."""

    def __init__(self, path: Path, text: str):
        self.path, self.lines = path, text.splitlines()

    def line(self, table: tuple[str, ...], key: str | None) -> int | None:
        """The line of ``key = …`` in ``[table]``, else of the header ``[table.key]`` (or ``[table]``)."""
        current: tuple[str, ...] = ()
        header_line = None
        wanted = (*table, key) if key else table
        for number, line in enumerate(self.lines, start=1):
            header = re.match(r"\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$", line)
            if header:
                current = tuple(part.strip().strip("\"'") for part in header.group(1).split("."))
                if current == wanted and header_line is None:
                    header_line = number
                continue
            assignment = re.match(r"\s*[\"']?([A-Za-z0-9_\-]+)[\"']?\s*=", line)
            if key is not None and assignment and current == table and assignment.group(1) == key:
                return number
        return header_line

    def error(self, table: tuple[str, ...], key: str | None, message: str) -> ConfigError:
        number = self.line(table, key)
        dotted = ".".join([*table, key] if key else table)
        return ConfigError(f"{self.path}{f' line {number}' if number else ''}: {dotted}: {message}")


def load_sweep(path: str | Path, base: BenchPlan | None = None) -> BenchPlan:
    """The sweep file as a plan with one :class:`Variant` per grid point, fully validated. ``base``
    (the command line's plan) wins for every setting it sets; ``--methods`` cannot be combined."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"sweep file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    where = _Where(path, text)
    base = base or BenchPlan()
    if base.methods:
        raise ConfigError(f"--methods and --sweep {path}: the sweep file lists the methods")
    for key in raw:
        if key not in SETTINGS and key not in TABLES:
            raise where.error((), key, f"unknown setting; known: {', '.join([*SETTINGS, *TABLES])}")
    settings = _settings(raw, where)
    train = _train(raw.get("train", {}), where)
    data_options = _table(raw, "data_options", where)
    variants = _variants(raw, path, where)
    plan = replace(base, variants=variants,
                   overrides={**base.overrides, "train": {**train, **base.overrides.get("train", {})}},
                   data_options={**{k: str(v) for k, v in data_options.items()}, **base.data_options})
    defaults = BenchPlan()
    for key, value in settings.items():
        name = SETTINGS[key][1]
        if getattr(base, name) == getattr(defaults, name):  # not set on the command line
            plan = replace(plan, **{name: value})
    return plan


def _table(raw: dict, name: str, where: _Where) -> dict:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise where.error((), name, "must be a table ([" + name + "])")
    return value


def _settings(raw: dict, where: _Where) -> dict[str, Any]:
    out = {}
    for key, (kind, _) in SETTINGS.items():
        if key not in raw:
            continue
        value = raw[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise where.error((), key, f"must be {kind.__name__}, got {value!r}")
        if kind is list and not all(isinstance(v, str) for v in value):
            raise where.error((), key, f"must be a list of strings, got {value!r}")
        out[key] = value
    checks = {"data": lambda v: DATA_SOURCES.get(parse_data_arg(v)[0]),
              "scenarios": lambda v: [parse_forget_spec(spec) for spec in v],
              "audits": lambda v: [AUDITS.get(name) for name in v]}
    for key, check in checks.items():
        if key in out:
            try:
                check(out[key])
            except UnlearnkitError as exc:
                raise where.error((), key, str(exc)) from None
    if "seeds" in out and out["seeds"] < 1:
        raise where.error((), "seeds", f"must be >= 1, got {out['seeds']}")
    if "scenarios" in out and not out["scenarios"]:
        raise where.error((), "scenarios", "is empty")
    return out


def _train(values: Any, where: _Where) -> dict[str, str]:
    if not isinstance(values, dict):
        raise where.error((), "train", "must be a table ([train])")
    known = {f.name for f in fields(TrainConfig)}
    for key, value in values.items():
        if key not in known:
            raise where.error(("train",), key, f"the original's recipe has no such key; known: {', '.join(sorted(known))}")
        try:
            make_config(TrainConfig, {key: value}, "train")
        except ConfigError as exc:
            raise where.error(("train",), key, str(exc)) from None
    return {k: str(v) for k, v in values.items()}


def _variants(raw: dict, path: Path, where: _Where) -> list[Variant]:
    methods = raw.get("methods")
    if not isinstance(methods, dict) or not methods:
        raise where.error((), "methods", "the sweep needs a [methods.NAME] table per method")
    variants: list[Variant] = []
    for row, entry in methods.items():
        table = ("methods", row)
        if not isinstance(entry, dict):
            raise where.error(("methods",), row, "must be a table ([methods." + row + "])")
        method = entry.get("method", row)
        if not isinstance(method, str) or method not in METHODS:
            raise where.error(table if "method" in entry else ("methods",), "method" if "method" in entry else row,
                              f"unknown method {method!r}; known: {', '.join(METHODS.names())}")
        if method == REFERENCE:
            raise where.error(("methods",), row, "retrain always runs first, as the reference; remove this row")
        fixed = _best_params(entry["best"], method, path, where, table) if "best" in entry else {}
        known = {f.name for f in fields(METHODS.get(method).Config)}
        axes: dict[str, list] = {}
        for key, value in entry.items():
            if key in RESERVED:
                continue
            if key not in known:
                raise where.error(table, key, f"{method} has no hyper-parameter {key!r}; known: {', '.join(sorted(known))}")
            if key == "seed":
                raise where.error(table, key, "the seed is the cell's (set `seeds`)")
            values = value if isinstance(value, list) else [value]
            if not values:
                raise where.error(table, key, "an empty grid axis")
            for v in values:
                if isinstance(v, (dict, list)):
                    raise where.error(table, key, f"values must be numbers, strings or booleans, got {v!r}")
                try:
                    build_config(method, **{**fixed, key: v})
                except ConfigError as exc:
                    raise where.error(table, key, str(exc)) from None
            if isinstance(value, list):
                axes[key] = values
            else:
                fixed[key] = value
        for point in itertools.product(*axes.values()):
            overrides = {**fixed, **dict(zip(axes, point))}
            try:
                build_config(method, **overrides)
            except ConfigError as exc:  # a combination the config rejects (e.g. no_l1_epochs > epochs)
                raise where.error(("methods",), row, f"grid point {overrides}: {exc}") from None
            variants.append(Variant(method, _label(row, "best" in entry, dict(zip(axes, point))), overrides))
    labels = [v.label for v in variants]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise where.error(("methods",), None, f"rows with the same label: {duplicates}")
    return variants


def _best_params(value: Any, method: str, path: Path, where: _Where, table: tuple[str, ...]) -> dict:
    """The tuned hyper-parameters of a ``best.json`` written by ``unlearnkit tune``."""
    if not isinstance(value, str):
        raise where.error(table, "best", "must be the path of a best.json written by `unlearnkit tune`")
    best = Path(value) if Path(value).is_absolute() else path.parent / value
    try:
        data = json.loads(best.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise where.error(table, "best", f"file not found: {best}") from None
    except json.JSONDecodeError as exc:
        raise where.error(table, "best", f"{best} is not JSON ({exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
        raise where.error(table, "best", f"{best} is not a best.json of `unlearnkit tune` (no params)")
    if data.get("method") != method:
        raise where.error(table, "best", f"{best} tuned {data.get('method')!r}, not {method!r}")
    try:
        build_config(method, **data["params"])
    except ConfigError as exc:
        raise where.error(table, "best", f"{best}: {exc}") from None
    return dict(data["params"])


def _label(row: str, best: bool, varied: dict) -> str:
    parts = (["best"] if best else []) + [f"{k}={_show(v)}" for k, v in varied.items()]
    return f"{row}[{','.join(parts)}]" if parts else row


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
