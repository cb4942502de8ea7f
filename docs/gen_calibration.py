"""Write the tables of ``docs/calibration.md`` from the committed calibration files.

    python docs/gen_calibration.py            # rewrite the generated blocks of docs/calibration.md
    python docs/gen_calibration.py --check    # exit 1 if a block differs from what would be written

Inputs (written by ``benchmarks/calibration.py``):

- ``benchmarks/results/calibration-digits.json`` — every method × calibration model at the
  calibrated defaults (``calibration.py table --out …``);
- ``benchmarks/results/calibration-digits-papers.json`` — the same without the calibrated layer
  (``calibration.py table --uncalibrated --out …``: the papers' values, the defaults before);
- ``benchmarks/studies/calibration-digits.json`` — the search: each method's grid and best point;
- ``benchmarks/studies/{wmdp-mini,tofu-mini}.json`` — the embedded text benchmarks' tune studies
  (``benchmarks/tune_embedded.py``);
- ``benchmarks/results/calibration-text.json`` and ``calibration-text-uncalibrated.json`` — the text
  calibration set at the calibrated / the text kind's defaults (``benchmarks/calibration_text.py``);
- ``benchmarks/results/targets.json`` and ``targets-before.json`` — ``benchmarks/targets.py``.

Blocks sit between ``<!-- generated: NAME -->`` and ``<!-- end generated -->`` as in
``docs/results.md`` (``docs/gen_results.py``); ``tests/test_calibrated.py`` fails on a hand edit.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # docs/: the generators' shared module
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))  # the criterion's one definition
from calibration import SCENARIOS, meets  # noqa: E402
from generated_blocks import replace_block, run  # noqa: E402

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
PAGE = DOCS / "calibration.md"
CALIBRATED = ROOT / "benchmarks" / "results" / "calibration-digits.json"
PAPERS = ROOT / "benchmarks" / "results" / "calibration-digits-papers.json"
STUDY = ROOT / "benchmarks" / "studies" / "calibration-digits.json"
TEXT = ROOT / "benchmarks" / "results" / "calibration-text.json"
TEXT_BEFORE = ROOT / "benchmarks" / "results" / "calibration-text-uncalibrated.json"
TARGETS = ROOT / "benchmarks" / "results" / "targets.json"
TARGETS_BEFORE = ROOT / "benchmarks" / "results" / "targets-before.json"
EMBEDDED = ("wmdp-mini", "tofu-mini")  # embedded text benchmarks with a tune study (benchmarks/tune_embedded.py)


def _cell(metrics: dict | None, ok: bool, scenario: str) -> str:
    if metrics is None:
        return "diverged ✗"
    text = f"{metrics['ua']:.0f} / {metrics['ra']:.0f}" if scenario.startswith("class") else f"{metrics['ra']:.0f}"
    return text if ok else f"**{text}** ✗"


def side_by_side(papers: dict, calibrated: dict) -> str:
    """Per method and model: class:0 UA / RA and random:0.1 RA, before (papers') → after (calibrated)."""
    models = list(calibrated["originals"])
    head = ["method", "defaults"] + [f"{m}: class:0 UA / RA, random:0.1 RA" for m in models] + ["meets"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, row in calibrated["rows"].items():
        for label, source in (("papers'", papers["rows"].get(method)), ("calibrated", row)):
            if source is None:
                continue
            cells = [method if label == "papers'" else "", label]
            for m in models:
                parts = [_cell(source["runs"][m][s], meets(s, source["runs"][m][s], method), s) for s in SCENARIOS]
                cells.append(" · ".join(parts))
            cells.append(f"{source['passed']}/{source['cells']}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def values_table(papers: dict, calibrated: dict, study: dict) -> str:
    """Per method: the values the calibrated layer changes, papers' → calibrated, and the grid searched."""
    lines = ["| method | papers' values | calibrated values | grid searched | grid points meeting the criterion |",
             "|---|---|---|---|---|"]
    for method, found in sorted(study["methods"].items()):
        best = found["best"]
        before = papers["rows"].get(method, {}).get("config", {})
        old = ", ".join(f"{k} {_fmt(before.get(k))}" for k in best)
        new = ", ".join(f"{k} {_fmt(v)}" for k, v in best.items())
        parts = found["grid"] if isinstance(found["grid"], list) else [found["grid"]]
        grid = " ∪ ".join("; ".join(f"{k} ∈ {{{', '.join(_fmt(v) for v in vs)}}}" for k, vs in part.items()
                                    if len(vs) > 1 or len(parts) > 1) for part in parts)
        meeting = sum(p["passed"] == p["cells"] for p in found["points"])
        lines.append(f"| `{method}` | {old} | {new} | {grid} | {meeting}/{len(found['points'])} |")
    return "\n".join(lines)


def summary(papers: dict, calibrated: dict) -> str:
    def count(data):
        rows = {m: r for m, r in data["rows"].items() if m not in ("original", "retrain")}
        return sum(r["passed"] == r["cells"] for r in rows.values()), len(rows)

    before, after = count(papers), count(calibrated)
    return (f"Methods meeting the criterion on every model of the set: **{before[0]} of {before[1]}** at the papers' "
            f"values, **{after[0]} of {after[1]}** at the calibrated defaults.\n\n"
            f"Commands: `{papers['command']}` ({papers['seconds']} s) and `{calibrated['command']}` "
            f"({calibrated['seconds']} s), 2 shared CPU cores; the search: `{json.loads(STUDY.read_text())['command']}`.")


def _brief(params: dict) -> str:
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in sorted(params.items()))


def _metric_pair(run: dict, names: tuple[str, ...]) -> str:
    metrics = run.get("metrics", {})
    return " / ".join(f"{metrics[n]:.3g}" if n in metrics else "–" for n in names)


def embedded_studies() -> str:
    """Per embedded text benchmark and method: default vs tuned values, on validation and final test."""
    lines = []
    for data in EMBEDDED:
        path = ROOT / "benchmarks" / "studies" / f"{data}.json"
        if not path.exists():
            continue
        study = json.loads(path.read_text(encoding="utf-8"))
        first = next(iter(study["methods"].values()))["tune"]
        metric = first["objective"]["metric"]
        names = (metric, "general_acc") if metric == "hazard_acc" else (metric, "model_utility")
        lines += [f"**{data}** ({names[0]} / {names[1]}; floor: {names[1]} ≥ {first['objective']['utility_floor']:.3g}, "
                  f"{first['study']['trials_complete']} trials per method):", "",
                  "| method | default values | tuned values | default: validation · test | tuned: validation · test | command |",
                  "|---|---|---|---|---|---|"]
        for method, entry in sorted(study["methods"].items()):
            tune = entry["tune"]
            default = tune["default"]
            lines.append(f"| `{method}` | {_brief(default['params'])} | {_brief(entry['best'])} | "
                         f"{_metric_pair(default['validation'], names)} · {_metric_pair(default['test'], names)} | "
                         f"{_metric_pair(tune['validation'], names)} · {_metric_pair(tune['test'], names)} | "
                         f"`{entry['command']}` |")
        lines.append("")
    return "\n".join(lines).strip() or "(no study committed yet)"


def text_calibration() -> str:
    """The text calibration set: forget quality / model utility per method × model at the calibrated
    defaults, ✗ where the script's criterion is not met, and the count before calibration."""
    if not TEXT.exists():
        return "(not measured yet)"
    after = json.loads(TEXT.read_text(encoding="utf-8"))
    before = json.loads(TEXT_BEFORE.read_text(encoding="utf-8")) if TEXT_BEFORE.exists() else None
    models = list(after["originals"])
    cell = lambda r: f"{r['forget_quality']:.1e} / {r['model_utility']:.2f}"  # noqa: E731
    lines = ["| method | " + " | ".join(f"`{m}`" for m in models) + " | meets | before |",
             "|" + "---|" * (len(models) + 3),
             "| original | " + " | ".join(cell(after["originals"][m]) for m in models) + " | | |"]
    for method, row in after["rows"].items():
        cells = []
        for m in models:
            r = row["runs"].get(m, "absent")
            cells.append("–" if r == "absent" else "diverged ✗" if r is None
                         else cell(r) + ("" if row["meets"][m] else " ✗"))
        old = before["rows"].get(method) if before else None
        lines.append(f"| `{method}` | " + " | ".join(cells) + f" | {row['passed']}/{row['cells']} | "
                     + (f"{old['passed']}/{old['cells']}" if old else "") + " |")
    def column(result, model):
        return sum(bool(row["meets"].get(model)) for row in result["rows"].values())

    lines.append("| **methods meeting it** | " + " | ".join(
        f"**{column(after, m)}** / {len(after['rows'])}" + (f" (before {column(before, m)})" if before else "")
        for m in models) + " | | |")
    met = sum(row["passed"] == row["cells"] for row in after["rows"].values())
    was = sum(row["passed"] == row["cells"] for row in before["rows"].values()) if before else None
    crit = after["criterion"]
    lines += ["", f"Forget quality / model utility on `{after['scenario']}` ({after['half']} half). ✗: the criterion "
              f"is not met (forget quality ≥ {crit['forget_quality_factor']:g} × that model's original's and model "
              f"utility ≥ {crit['utility_fraction']:g} × the original's). Methods meeting it on every model: "
              f"**{met} of {len(after['rows'])}** at the calibrated defaults"
              + (f", **{was} of {len(before['rows'])}** at the text kind's defaults before (column *before*)" if before else "")
              + f". Command: `python {after['script']} {' '.join(after['argv'])}` ({after['seconds']:.0f} s)"
              + (f"; before: `python {before['script']} {' '.join(before['argv'])}` ({before['seconds']:.0f} s)" if before else "")
              + "".join(f"; rows of {', '.join(u['methods'])} re-measured after their study changed: "
                        f"`python {after['script']} {' '.join(u['argv'])}` ({u['seconds']:.0f} s)"
                        for u in after.get("updates", []))
              + ". The SmolLM2 column is the real-model benchmark's run at the pretrained defaults, the same in both."]
    return "\n".join(lines)


def targets() -> str:
    lines = ["| benchmark | target | before (the previous defaults, all held-out data) | after (calibrated, test half) |",
             "|---|---|---|---|"]
    before = json.loads(TARGETS_BEFORE.read_text(encoding="utf-8"))["targets"] if TARGETS_BEFORE.exists() else []
    after = json.loads(TARGETS.read_text(encoding="utf-8"))["targets"] if TARGETS.exists() else []
    old = {(t["benchmark"], t["target"]): t for t in before}
    for t in after or before:
        b = old.get((t["benchmark"], t["target"]))
        mark = lambda x: "" if x is None else ("✓ " if x["met"] else "✗ ") + x["figure"]
        lines.append(f"| {t['benchmark']} | {t['target']} | {mark(b)} | {mark(t) if after else ''} |")
    return "\n".join(lines)


def blocks() -> dict[str, str]:
    papers = json.loads(PAPERS.read_text(encoding="utf-8"))
    calibrated = json.loads(CALIBRATED.read_text(encoding="utf-8"))
    study = json.loads(STUDY.read_text(encoding="utf-8"))
    return {"calibration-summary": summary(papers, calibrated),
            "calibration-table": side_by_side(papers, calibrated),
            "calibration-values": values_table(papers, calibrated, study),
            "embedded-studies": embedded_studies(),
            "calibration-text": text_calibration(),
            "targets": targets()}


def render(page: str) -> str:
    for name, body in blocks().items():
        page = replace_block(page, name, f"\n{body}\n", PAGE)
    return page


def main(argv: list[str] | None = None) -> int:
    return run(argv, __doc__, PAGE, render, "gen_calibration.py")


if __name__ == "__main__":
    sys.exit(main())
