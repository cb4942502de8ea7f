"""Aggregate result records into the printed table: mean ± std over seeds per (scenario, method).

Avg Gap as the papers report it (SalUn, Fan et al. 2024; Unlearn-Sparse, Jia et al. 2023): each
metric is first averaged over seeds, for the method and for ``retrain`` in the same scenario, then
``avg_gap`` = mean over the gap metrics (:data:`~unlearnkit.audits.metrics.GAP_METRICS`: UA, RA, TA,
MIA-Efficacy) of |method's seed mean − retrain's seed mean|. One number per row, no spread (its
``std`` is NaN and the formatters show the mean alone). The per-seed value each record carries
(|metric − that seed's retrain|, averaged over the gap metrics) is summarised as ``avg_gap_seedwise``,
mean ± std over seeds. The two differ: seed noise that cancels in the means adds up in the per-seed
gaps, so with the same seeds on both sides ``avg_gap_seedwise`` ≥ ``avg_gap`` (triangle inequality).
"""
from __future__ import annotations

import math
import statistics
from collections import defaultdict

from ..audits.metrics import GAP_METRICS

REFERENCE = "retrain"

COLUMNS = ("ua", "ra", "adjacent_acc", "remote_acc", "ta", "mia_efficacy", "mia_auc", "lira_auc", "ulira_acc",
           "ulira_auc", "forget_quality", "model_utility", "forget_rouge", "forget_prob", "mia_auc_mink", "hazard_acc",
           "general_acc", "rcd", "rcd_rel", "avg_gap", "avg_gap_seedwise", "seconds")

# Summary columns computed from another metric of the records: column -> the record metric it needs.
DERIVED = {"avg_gap_seedwise": "avg_gap"}


def format_mean_std(values, digits: int = 2) -> str:
    """"m ± s" over the finite values (just "m" for one value, "–" for none)."""
    values = [v for v in values if v is not None and v == v]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _has(record: dict, column: str) -> bool:
    return DERIVED.get(column, column) in record.get("metrics", {})


def present_columns(records: list[dict], columns=COLUMNS) -> tuple[str, ...]:
    """The table's columns that at least one record has (audit families may be switched off)."""
    return tuple(c for c in columns if any(_has(r, c) for r in records))


def _is_reference(record: dict) -> bool:
    return record.get("_base", record["method"]) == REFERENCE  # the report keeps the method's name as _base


def _seed_means(cells: list[dict], keys=GAP_METRICS) -> dict[str, float]:
    """Per metric in ``keys``: its mean over the cells that have it."""
    means = {}
    for key in keys:
        values = [c["metrics"][key] for c in cells if key in c.get("metrics", {})]
        if values:
            means[key] = statistics.fmean(values)
    return means


def avg_gap_of_means(cells: list[dict], reference_cells: list[dict], keys=GAP_METRICS) -> float | None:
    """Avg Gap as the papers report it: mean over ``keys`` of |mean over ``cells`` − mean over
    ``reference_cells``| (each metric averaged over seeds first); None without a metric in common."""
    ours, theirs = _seed_means(cells, keys), _seed_means(reference_cells, keys)
    shared = [k for k in keys if k in ours and k in theirs]
    if not shared:
        return None
    return sum(abs(ours[k] - theirs[k]) for k in shared) / len(shared)


def summarise(records: list[dict], columns=COLUMNS) -> list[dict]:
    """One row per (scenario, method): ``seeds``, ``status`` and, per column, (mean, std) over the
    seeds that have it, or None. ``avg_gap`` is the gap of the seed means to the scenario's
    ``retrain`` row (std NaN; None without a retrain row); ``avg_gap_seedwise`` the records' own
    per-seed ``avg_gap``, mean ± std."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    order: list[tuple[str, str]] = []
    for record in records:
        key = (record["scenario"], record["method"])
        if key not in groups:
            order.append(key)
        groups[key].append(record)
    references: dict[str, list[dict]] = {}  # scenario -> the retrain cells (the row named "retrain" first)
    for scenario, method in order:
        cells = groups[(scenario, method)]
        if _is_reference(cells[0]) and (scenario not in references or method == REFERENCE):
            references[scenario] = cells
    rows = []
    for scenario, method in order:
        cells = groups[(scenario, method)]
        row = {"scenario": scenario, "method": method, "seeds": len(cells),
               "status": ",".join(sorted({c.get("status", "ok") for c in cells}))}
        for column in columns:
            if column == "avg_gap":
                gap = (avg_gap_of_means(cells, references[scenario]) if scenario in references
                       and any("avg_gap" in c.get("metrics", {}) for c in cells) else None)
                row[column] = None if gap is None else (gap, math.nan)
                continue
            source = DERIVED.get(column, column)
            values = [c["metrics"][source] for c in cells if source in c.get("metrics", {})]
            row[column] = (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0) if values else None
        rows.append(row)
    return rows


def _spread(row: dict, std: float) -> bool:
    """Whether a cell shows "± std": several seeds and a spread (the Avg Gap of seed means has none)."""
    return row["seeds"] > 1 and math.isfinite(std)


def format_table(rows: list[dict], columns=COLUMNS, headers: dict[str, str] | None = None) -> str:
    header = ["scenario", "method", *((headers or {}).get(c, c) for c in columns)]
    lines = [header]
    for row in rows:
        cells = [row["scenario"], row["method"]]
        for column in columns:
            value = row[column]
            if value is None:
                cells.append(row["status"] if row["status"] != "ok" else "-")
            else:
                mean, std = value
                cells.append(f"{mean:.2f}±{std:.2f}" if _spread(row, std) else f"{mean:.2f}")
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = []
    for n, line in enumerate(lines):
        text.append("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths))))
        if n == 0:
            text.append("  ".join("-" * w for w in widths))
    return "\n".join(text)


def format_markdown(rows: list[dict], columns=COLUMNS, headers: dict[str, str] | None = None) -> str:
    names = [(headers or {}).get(c, c) for c in columns]
    out = ["| scenario | method | " + " | ".join(names) + " |", "|" + "---|" * (len(columns) + 2)]
    for row in rows:
        values = []
        for column in columns:
            value = row[column]
            values.append("-" if value is None else (f"{value[0]:.2f} ± {value[1]:.2f}" if _spread(row, value[1])
                                                     else f"{value[0]:.2f}"))
        out.append(f"| {row['scenario']} | {row['method']} | " + " | ".join(values) + " |")
    return "\n".join(out)


def _header(column: str, headers: dict[str, str] | None) -> str:
    return (headers or {}).get(column, column)


def _std_or_none(std: float) -> float | None:
    return float(std) if math.isfinite(std) else None


def format_csv(rows: list[dict], columns=COLUMNS, headers: dict[str, str] | None = None) -> str:
    """One line per (scenario, method): seeds, status, then each metric's mean and std over seeds
    (the std empty where there is none, e.g. ``avg_gap``, the gap of the seed means)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["scenario", "method", "seeds", "status",
                     *(f"{_header(c, headers)}{suffix}" for c in columns for suffix in ("", "_std"))])
    for row in rows:
        values = []
        for column in columns:
            value = row[column]
            std = None if value is None else _std_or_none(value[1])
            values += ["", ""] if value is None else [repr(float(value[0])), "" if std is None else repr(std)]
        writer.writerow([row["scenario"], row["method"], row["seeds"], row["status"], *values])
    return buffer.getvalue()


def format_json(rows: list[dict], columns=COLUMNS, headers: dict[str, str] | None = None) -> str:
    """A JSON list: one object per (scenario, method) with ``{metric: {"mean", "std"}}`` (``std``
    null where there is none, e.g. ``avg_gap``, the gap of the seed means)."""
    import json

    out = []
    for row in rows:
        item = {"scenario": row["scenario"], "method": row["method"], "seeds": row["seeds"], "status": row["status"]}
        for column in columns:
            value = row[column]
            item[_header(column, headers)] = None if value is None else {"mean": value[0], "std": _std_or_none(value[1])}
        out.append(item)
    return json.dumps(out, indent=2)


FORMATS = ("table", "markdown", "csv", "json")


def format_summary(rows: list[dict], columns=COLUMNS, headers: dict[str, str] | None = None, fmt: str = "table") -> str:
    """The summary rows in one of :data:`FORMATS`."""
    if fmt == "table":
        return format_table(rows, columns, headers)
    if fmt == "markdown":
        return format_markdown(rows, columns, headers)
    if fmt == "csv":
        return format_csv(rows, columns, headers)
    if fmt == "json":
        return format_json(rows, columns, headers)
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
