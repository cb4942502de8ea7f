"""Aggregate result records into the printed table: mean ± std over seeds per (scenario, method)."""
from __future__ import annotations

import statistics
from collections import defaultdict

COLUMNS = ("ua", "ra", "adjacent_acc", "remote_acc", "ta", "mia_efficacy", "mia_auc", "lira_auc", "forget_quality", "model_utility",
           "forget_rouge", "forget_prob", "mia_auc_mink", "hazard_acc", "general_acc", "rcd", "rcd_rel",
           "avg_gap", "seconds")


def format_mean_std(values, digits: int = 2) -> str:
    """"m ± s" over the finite values (just "m" for one value, "–" for none)."""
    values = [v for v in values if v is not None and v == v]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def present_columns(records: list[dict], columns=COLUMNS) -> tuple[str, ...]:
    """The table's columns that at least one record has (audit families may be switched off)."""
    return tuple(c for c in columns if any(c in r.get("metrics", {}) for r in records))


def summarise(records: list[dict], columns=COLUMNS) -> list[dict]:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    order: list[tuple[str, str]] = []
    for record in records:
        key = (record["scenario"], record["method"])
        if key not in groups:
            order.append(key)
        groups[key].append(record)
    rows = []
    for scenario, method in order:
        cells = groups[(scenario, method)]
        row = {"scenario": scenario, "method": method, "seeds": len(cells),
               "status": ",".join(sorted({c.get("status", "ok") for c in cells}))}
        for column in columns:
            values = [c["metrics"][column] for c in cells if column in c.get("metrics", {})]
            row[column] = (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0) if values else None
        rows.append(row)
    return rows


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
                cells.append(f"{mean:.2f}±{std:.2f}" if row["seeds"] > 1 else f"{mean:.2f}")
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = []
    for n, line in enumerate(lines):
        text.append("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths))))
        if n == 0:
            text.append("  ".join("-" * w for w in widths))
    return "\n".join(text)


def format_markdown(rows: list[dict], columns=COLUMNS) -> str:
    out = ["| scenario | method | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 2)]
    for row in rows:
        values = []
        for column in columns:
            value = row[column]
            values.append("-" if value is None else (f"{value[0]:.2f} ± {value[1]:.2f}" if row["seeds"] > 1 else f"{value[0]:.2f}"))
        out.append(f"| {row['scenario']} | {row['method']} | " + " | ".join(values) + " |")
    return "\n".join(out)
