"""Assemble the report: one self-contained HTML page (inline CSS, inline SVG figures, a few lines
of inline JS to sort the table). Nothing is fetched when the page is viewed."""
from __future__ import annotations

import datetime
import html
import math
from collections import Counter

from ..audits.metrics import METRICS
from . import figures
from .results import REFERENCES, Results, direction_of

ARROWS = {"higher": "↑", "lower": "↓", "retrain": "≈R", "info": ""}

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 0 auto; padding: 18px 28px 40px; max-width: 1400px; color: #1b1b1b; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
h3 { font-size: 14px; margin: 16px 0 4px; }
.meta, .note { color: #555; font-size: 12.5px; } .note { margin: 4px 0 10px; }
.scroll { overflow-x: auto; }
table.results { border-collapse: collapse; font-size: 12.5px; font-variant-numeric: tabular-nums; }
table.results th, table.results td { padding: 3px 8px; border-bottom: 1px solid #eee; white-space: nowrap; }
table.results thead th { position: sticky; top: 0; background: #f6f6f6; border-bottom: 2px solid #ccc;
       cursor: pointer; user-select: none; text-align: right; }
table.results thead th:first-child, table.results td.method { text-align: left; }
table.results td { text-align: right; }
table.results thead th[aria-sort=ascending]::after { content: " ▲"; font-size: 9px; }
table.results thead th[aria-sort=descending]::after { content: " ▼"; font-size: 9px; }
table.results tr.group th { text-align: left; background: #fafafa; font-size: 13px; padding-top: 8px;
       border-bottom: 1px solid #ccc; cursor: default; }
table.results tr.reference td { color: #555; font-style: italic; }
td.best { background: #e3f4e1; font-weight: 600; } td.best::before { content: "★ "; color: #2e7d32; }
td .status { color: #b3261e; font-style: italic; } td .std { color: #777; font-weight: normal; }
.flag { color: #b3261e; font-size: 11px; }
.figures { display: flex; flex-wrap: wrap; gap: 12px 24px; align-items: flex-start; }
svg.figure { max-width: 100%; height: auto; display: block; }
dl.glossary { display: grid; grid-template-columns: max-content 1fr; gap: 3px 14px; font-size: 12.5px; }
dl.glossary dt { font-family: ui-monospace, Menlo, Consolas, monospace; } dl.glossary dd { margin: 0; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
"""

# Sort each scenario's rows (its own <tbody>) by the clicked column; missing values stay last.
JS = """
document.querySelectorAll("table.results thead th").forEach(function (th) {
  function sort() {
    var table = th.closest("table"), col = th.cellIndex;
    var asc = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    table.querySelectorAll("tbody").forEach(function (body) {
      var rows = Array.prototype.slice.call(body.querySelectorAll("tr.row"));
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
        if (x === undefined || x === "") return (y === undefined || y === "") ? 0 : 1;
        if (y === undefined || y === "") return -1;
        var c = (isNaN(x) || isNaN(y)) ? x.localeCompare(y) : Number(x) - Number(y);
        return asc ? c : -c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  }
  th.addEventListener("click", sort);
  th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
});
"""

esc = html.escape


def render(results: Results, *, title: str, source: str) -> str:
    """The whole page as a string."""
    styles = figures.Styles(results)
    sections = [_summary(results, source), _table_section(results), _tradeoff_section(results, styles),
                _relearn_section(results, styles), _roc_section(results, styles), _runtime_section(results, styles),
                _loss_section(results, styles), _glossary(results)]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<h1>{esc(title)}</h1>\n" + "\n".join(sections) + f"\n<script>{JS}</script>\n</body>\n</html>\n"
    )


def _summary(results: Results, source: str) -> str:
    records = results.records
    first = records[0]
    seeds = sorted({len(results.records_of(row["scenario"], row["method"])) for row in results.rows})
    statuses = sum(results.status_counts.values(), start=Counter())
    versions = ", ".join(f"{k} {v}" for k, v in (first.get("versions") or {}).items())
    models = ", ".join(sorted({str(r.get("model")) for r in records}))
    data = ", ".join(sorted({str(r.get("data")) for r in records}))
    parts = [
        f"data <b>{esc(data)}</b> · model <b>{esc(models)}</b> · {len(results.scenarios)} scenario(s) · "
        f"{len(results.methods)} method(s) · {len(records)} cells · seeds per cell: "
        f"{esc('/'.join(map(str, seeds)))}" + (" · <b>quick run</b>" if any(r.get("quick") for r in records) else ""),
        "status: " + esc(", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))),
        f"results: <code>{esc(source)}</code>" + (f" ({results.superseded} earlier duplicate record(s) ignored)"
                                                  if results.superseded else ""),
        f"{esc(versions)} · generated {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
    ]
    return "<div class=\"meta\">" + "<br>".join(parts) + "</div>"


def _fmt(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else str(value)


def _cell(row: dict, column: str, best: bool) -> str:
    value = row[column]
    if value is None:  # no seed has it: the cell diverged / was not applicable, or the audit did not run
        failed = "ok" not in row["status"].split(",")
        text = f"<span class=\"status\">{esc(row['status'])}</span>" if failed else "–"
        return f"<td data-v=\"\">{text}</td>"
    mean, std = value
    spread = row["seeds"] > 1 and std == std  # a NaN std: a number of the seed means (Avg Gap), no spread
    text = _fmt(mean) + (f" <span class=\"std\">± {_fmt(std)}</span>" if spread else "")
    sort_value = repr(mean) if math.isfinite(mean) else ""
    marked = ' class="best"' if best else ""
    return f"<td data-v=\"{sort_value}\"{marked}>{text}</td>"


def _table_section(results: Results) -> str:
    columns = results.columns
    head = ["<th data-key=\"method\" tabindex=\"0\" title=\"click to sort\">method</th>"]
    for column in columns:
        direction = direction_of(column)
        meaning = METRICS.get(column, ("info", ""))[1]
        head.append(f"<th data-key=\"{esc(column)}\" tabindex=\"0\" title=\"{esc(meaning)} — click to sort\">{esc(column)} "
                    f"<small>{ARROWS.get(direction, '')}</small></th>")
    bodies = []
    for scenario in results.scenarios:
        rows = [f"<tr class=\"group\"><th colspan=\"{len(columns) + 1}\">{esc(scenario)}</th></tr>"]
        for row in results.rows_of(scenario):
            method = row["method"]
            counts = results.status_counts[(scenario, method)]
            flag = ""
            bad = {s: n for s, n in counts.items() if s != "ok"}
            if bad and counts.get("ok"):
                total = sum(counts.values())
                flag = " <span class=\"flag\">(" + esc(", ".join(f"{n}/{total} seeds {s}" for s, n in bad.items())) + ")</span>"
            reference = " reference" if results.base[method] in REFERENCES else ""
            cells = [f"<td class=\"method\" data-v=\"{esc(method)}\">{esc(method)}{flag}</td>"]
            cells += [_cell(row, c, (scenario, method, c) in results.best) for c in columns]
            rows.append(f"<tr class=\"row{reference}\">" + "".join(cells) + "</tr>")
        bodies.append("<tbody>" + "\n".join(rows) + "</tbody>")
    seeds = max(row["seeds"] for row in results.rows)
    note = ("mean ± std over seeds" if seeds > 1 else "one seed per cell (no spread)") + \
        "; ★ best unlearning method per scenario and column (↑ higher, ↓ lower, ≈R closest to retrain's " \
        "value; the reference rows retrain and original are not ranked; ties at the shown precision all " \
        "marked); click a header to sort within each scenario; hover a header for its meaning."
    return (f"<h2 id=\"table\">Results</h2>\n<p class=\"note\">{esc(note)}</p>\n<div class=\"scroll\">"
            f"<table class=\"results\"><thead><tr>{''.join(head)}</tr></thead>\n" + "\n".join(bodies)
            + "</table></div>")


def _skipped(results: Results, scenario: str, metric_sets: tuple[str, ...]) -> list[str]:
    """Methods of a scenario with none of ``metric_sets`` (diverged, not applicable): named under the figure."""
    out = []
    for row in results.rows_of(scenario):
        if all(row.get(c) is None for c in metric_sets if c in row) and row["status"] != "ok":
            out.append(f"{row['method']} ({row['status']})")
    return out


def _tradeoff_section(results: Results, styles) -> str:
    parts, notes = [], []
    for i, scenario in enumerate(results.scenarios):
        pair = figures.tradeoff_pair(results, scenario)
        if pair is None:
            notes.append(f"{scenario}: no forgetting/utility metric pair in these results (needs the accuracy "
                         "or TOFU/WMDP audit)")
            continue
        skipped = _skipped(results, scenario, pair)
        caption = f"<p class=\"note\">not shown: {esc(', '.join(skipped))}</p>" if skipped else ""
        parts.append("<figure style=\"margin:0\">" + figures.tradeoff_figure(results, scenario, styles, pair,
                                                                            f"tradeoff-{i}") + caption + "</figure>")
    intro = ("Each point is a method's mean over seeds (bars: ± std). The retrained model (black star) is the "
             "target; the original model (grey cross) is the do-nothing end.")
    return _section("tradeoff", "Forgetting vs utility", intro, parts, notes)


def _curves_section(results: Results, styles, key: str, title: str, intro: str, draw, missing: str) -> str:
    """One figure per scenario from ``draw``, or a note where the records carry no such curves."""
    parts, notes = [], []
    for i, scenario in enumerate(results.scenarios):
        figure = draw(results, scenario, styles, f"{key}-{i}")
        if figure is None:
            notes.append(f"{scenario}: no {missing} (the audit did not run, or the results predate curve recording)")
        else:
            parts.append(figure)
    return _section(key, title, intro, parts, notes)


def _relearn_section(results: Results, styles) -> str:
    intro = ("Fine-tuning each unlearned model on the forget set: how fast it knows the forget set again. "
             "A slower climb (later threshold crossing) means the knowledge is harder to recover.")
    return _curves_section(results, styles, "relearn", "Relearning curves", intro, figures.relearn_figure,
                           "relearning curves")


def _roc_section(results: Results, styles) -> str:
    intro = ("Loss-threshold membership attack, forget set (members) vs held-out examples of the same "
             "distribution. Close to retrain's curve is the goal; the diagonal is an attacker who cannot tell.")
    return _curves_section(results, styles, "mia", "Membership inference: ROC curves", intro, figures.roc_figure,
                           "MIA ROC curves")


def _runtime_section(results: Results, styles) -> str:
    figure = figures.runtime_figure(results, styles, "runtime")
    notes = [] if figure else ["no run times recorded"]
    return _section("runtime", "Run time", "Wall-clock seconds of the unlearning run itself (audits excluded).",
                    [figure] if figure else [], notes)


def _loss_section(results: Results, styles) -> str:
    """One figure per method: its training loss per scenario (``curves["loss"]`` of the records)."""
    parts, missing = [], []
    for i, method in enumerate(results.methods):
        figure = figures.loss_figure(results, method, styles, f"loss-{i}")
        if figure is None:
            missing.append(method)
        else:
            parts.append(figure)
    notes = []
    if not parts:
        notes.append("no training-loss curves in these results (they predate loss recording)")
    elif missing:
        notes.append(f"no training steps recorded for: {', '.join(missing)} (no training loop, or the run "
                     "stopped before its first step)")
    intro = ("The objective each method minimised, per optimizer step (each point the mean over a window of steps; "
             "line: mean over seeds, band: min–max), with the objective terms the method names, before their "
             "weights (dashed). Each method has its own scale: an ascent objective falls without bound, a "
             "descent one towards 0.")
    return _section("loss", "Training loss", intro, parts, notes)


def _section(anchor: str, heading: str, intro: str, figures_html: list[str], notes: list[str]) -> str:
    body = f"<h2 id=\"{anchor}\">{esc(heading)}</h2>\n"
    if figures_html:
        body += f"<p class=\"note\">{esc(intro)}</p>\n<div class=\"figures\">" + "\n".join(figures_html) + "</div>\n"
    body += "".join(f"<p class=\"note skipped\">{esc(n)}</p>\n" for n in notes)
    return body


def _glossary(results: Results) -> str:
    recorded = {k for r in results.records for k in r.get("metrics", {})}
    others = sorted(k for k in recorded if k in METRICS and k not in results.columns)
    out = "<h2 id=\"glossary\">Metrics</h2>\n" + _definitions([c for c in results.columns if c in METRICS])
    if others:
        out += "<h3>Also recorded in results.jsonl</h3>\n" + _definitions(others)
    return out


def _definitions(names: list[str]) -> str:
    items = []
    for name in names:
        direction, meaning = METRICS[name]
        better = {"higher": "higher is better", "lower": "lower is better",
                  "retrain": "closest to retrain's is best", "info": "context"}[direction]
        items.append(f"<dt>{esc(name)}</dt><dd>{esc(meaning)} <i>({better})</i></dd>")
    return "<dl class=\"glossary\">" + "".join(items) + "</dl>"
