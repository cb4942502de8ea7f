"""Read a results folder and shape it for the report: one row per (scenario, method) with mean ± std
over seeds (``bench/table.py``'s ``summarise``), the best cell per column, and the curves per method.

A folder may hold more than one run: records of different data, models, original-model recipes or
split seeds get a scenario label that says which (only the fields that differ); several
configurations of one method in one scenario become variants: a sweep's ``label`` (``ga[lr=0.001]``)
where the record has one, else ``method [key=value]`` naming the differing keys; a cell recorded
twice (a rerun with other audits) counts once, the later record.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..audits.metrics import METRICS
from ..bench.store import ResultStore
from ..bench.table import present_columns, summarise
from ..errors import DataError

REFERENCES = ("retrain", "original")  # reference rows: drawn distinctly, never marked best


@dataclass
class Results:
    records: list[dict]  # relabelled, deduplicated
    rows: list[dict]  # summarise()'s rows (scenario, method, seeds, status, column -> (mean, std) | None)
    columns: tuple[str, ...]
    best: set[tuple[str, str, str]] = field(default_factory=set)  # (scenario, method, column)
    status_counts: dict[tuple[str, str], Counter] = field(default_factory=dict)
    base: dict[str, str] = field(default_factory=dict)  # row label -> registered method name
    superseded: int = 0

    @property
    def scenarios(self) -> list[str]:
        return list(dict.fromkeys(row["scenario"] for row in self.rows))

    @property
    def methods(self) -> list[str]:
        """Row labels in first-seen order (retrain first: the runner runs it first)."""
        return list(dict.fromkeys(row["method"] for row in self.rows))

    def rows_of(self, scenario: str) -> list[dict]:
        return [row for row in self.rows if row["scenario"] == scenario]

    def records_of(self, scenario: str, method: str) -> list[dict]:
        return [r for r in self.records if r["scenario"] == scenario and r["method"] == method]


def load_results(path: str | Path) -> Results:
    """``path``: a results folder (``unlearnkit bench --out``) or its ``results.jsonl``."""
    path = Path(path)
    file = path / "results.jsonl" if path.is_dir() else path
    if not file.is_file():
        raise DataError(f"{file} not found: give the folder `unlearnkit bench --out DIR` wrote")
    records = ResultStore(file).records  # validates every line
    if not records:
        raise DataError(f"{file} holds no results records")
    return shape(records)


def shape(records: list[dict]) -> Results:
    records, superseded = _relabel(records)
    columns = present_columns(records)
    rows = summarise(records, columns)
    counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for record in records:
        counts[(record["scenario"], record["method"])][record.get("status", "ok")] += 1
    results = Results(records=records, rows=rows, columns=columns, status_counts=dict(counts),
                      base={r["method"]: r["_base"] for r in records}, superseded=superseded)
    results.best = best_cells(results)
    return results


def best_cells(results: Results) -> set[tuple[str, str, str]]:
    """Per scenario and column, the unlearning methods (not the reference rows, not runs that only
    diverged) whose mean is best by the metric's direction (``retrain``: closest to retrain's mean),
    ties at the shown precision all marked. ``info`` columns, columns without retrain's value (for
    ``retrain``) and columns with a single contender are unmarked."""
    best = set()
    for scenario in results.scenarios:
        rows = results.rows_of(scenario)
        reference = next((r for r in rows if results.base[r["method"]] == "retrain"), None)
        for column in results.columns:
            direction = METRICS.get(column, ("info", ""))[0]
            if direction == "retrain" and (reference is None or reference[column] is None):
                continue
            scored = []
            for row in rows:
                finished = "ok" in row["status"].split(",")  # a diverged run still has its seconds
                if results.base[row["method"]] in REFERENCES or row[column] is None or not finished:
                    continue
                mean = round(row[column][0], 2)  # the precision the table shows
                if direction == "higher":
                    scored.append((-mean, row["method"]))
                elif direction == "lower":
                    scored.append((mean, row["method"]))
                elif direction == "retrain":
                    scored.append((round(abs(mean - round(reference[column][0], 2)), 2), row["method"]))
            if len(scored) < 2:
                continue  # a lone contender is not "best"
            top = min(score for score, _ in scored)
            best.update((scenario, method, column) for score, method in scored if score == top)
    return best


def _differing(items: list[dict]) -> list[str]:
    """The keys whose values differ among ``items`` (dicts of JSON values)."""
    keys = sorted({k for item in items for k in item})
    return [k for k in keys if len({json.dumps(item.get(k), sort_keys=True) for item in items}) > 1]


def _label(values: dict, keys: list[str]) -> str:
    return ", ".join(f"{k}={values.get(k)}" for k in keys)


def _relabel(records: list[dict]) -> tuple[list[dict], int]:
    """Copies with ``scenario`` and ``method`` made unambiguous (see the module docstring), the
    registered method name kept as ``_base``, and repeated cells dropped (the later one kept)."""
    def context(r: dict) -> dict:
        seeds = r.get("seeds", {})
        recipe = {f"train.{k}": v for k, v in r.get("train_config", {}).items()}
        return {"data": r.get("data"), **{f"data.{k}": v for k, v in (r.get("data_options") or {}).items()},
                "model": r.get("model"), "split_seed": seeds.get("split"), **recipe}

    contexts = [context(r) for r in records]
    differ = _differing(list({json.dumps(c, sort_keys=True): c for c in contexts}.values()))
    out = []
    for record, ctx in zip(records, contexts):
        # a sweep's rows carry their own label (e.g. ga[lr=0.001]); the registered name stays the base
        copy = dict(record, _base=record["method"], method=record.get("label") or record["method"])
        if differ:
            copy["scenario"] = f"{record['scenario']} ({_label(ctx, differ)})"
        out.append(copy)

    configs: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for record in out:
        configs[(record["scenario"], record["method"])].append(
            {k: v for k, v in record.get("config", {}).items() if k != "seed"})
    for record in out:
        variants = configs[(record["scenario"], record["method"])]
        keys = _differing(variants)
        if keys:
            config = record.get("config", {})
            record["method"] = f"{record['method']} [{_label(config, keys)}]"

    latest: dict[tuple, int] = {}
    for index, record in enumerate(out):
        latest[(record["scenario"], record["method"], record.get("seed"))] = index
    kept = sorted(latest.values())
    return [out[i] for i in kept], len(out) - len(kept)


def direction_of(column: str) -> str:
    return METRICS.get(column, ("info", ""))[0]
