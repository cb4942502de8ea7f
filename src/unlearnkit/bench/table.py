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


def format_markdown(rows: list[dict], columns=COLUMNS, headers: dict[str, str] | None = None) -> str:
    names = [(headers or {}).get(c, c) for c in columns]
    out = ["| scenario | method | " + " | ".join(names) + " |", "|" + "---|" * (len(columns) + 2)]
    for row in rows:
        values = []
        for column in columns:
            value = row[column]
            values.append("-" if value is None else (f"{value[0]:.2f} ± {value[1]:.2f}" if row["seeds"] > 1 else f"{value[0]:.2f}"))
        out.append(f"| {row['scenario']} | {row['method']} | " + " | ".join(values) + " |")
    return "\n".join(out)


def _header(column: str, headers: dict[str, str] | None) -> str:
    return (headers or {}).get(column, column)


def format_csv(rows: list[dict], columns=COLUMNS, headers: dict[str, str] | None = None) -> str:
    """One line per (scenario, method): seeds, status, then each metric's mean and std over seeds."""
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
            values += ["", ""] if value is None else [repr(float(value[0])), repr(float(value[1]))]
        writer.writerow([row["scenario"], row["method"], row["seeds"], row["status"], *values])
    return buffer.getvalue()


def format_json(rows: list[dict], columns=COLUMNS, headers: dict[str, str] | None = None) -> str:
    """A JSON list: one object per (scenario, method) with ``{metric: {"mean", "std"}}``."""
    import json

    out = []
    for row in rows:
        item = {"scenario": row["scenario"], "method": row["method"], "seeds": row["seeds"], "status": row["status"]}
        for column in columns:
            value = row[column]
            item[_header(column, headers)] = None if value is None else {"mean": value[0], "std": value[1]}
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
