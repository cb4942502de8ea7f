"""Write the measured tables of ``docs/results.md`` from the committed results files.

    python docs/gen_results.py            # rewrite every generated block in docs/results.md
    python docs/gen_results.py --check    # exit 1 if a block differs from what would be written

Every table in ``docs/results.md`` that holds measured numbers sits between two marker comments,
``<!-- generated: NAME -->`` and ``<!-- end generated -->``; this script owns what is between them
(hand edits there are overwritten, and ``tests/test_docs.py`` fails on them). Everything outside the
markers is prose and is left alone.

Inputs, all under ``docs/results/``:

- ``NAME.jsonl`` — the ``results.jsonl`` written by the command in ``runs.json``, one JSON object per
  (method, scenario, seed) cell, copied as written (so ``unlearnkit report docs/results/NAME.jsonl -o
  report.html`` draws its HTML report). A file over ~1.5 MB is committed *compacted* instead (``--compact RESULTS_JSONL
  NAME``): each record keeps only ``method``, ``label``, ``scenario``, ``seed``, ``seeds``,
  ``status``, ``metrics``, ``config``, ``train_config`` and ``versions`` (the ROC and relearning
  curves for the HTML report, cell ids and paths are dropped; the tables only need the metrics).
  The three files committed today are all under that size and are copied whole.
- ``runs.json`` — per NAME: the exact command, its wall time, the machine, and the code it ran.

Each block is: the command that produced the file, its wall time and machine, a link to the file,
and the table: mean ± std over seeds (one value for one seed) per (scenario, method), summarised by
the library's own code (:func:`unlearnkit.bench.table.summarise` and ``present_columns``, the
functions ``unlearnkit bench`` prints its table with); only the markdown layout is written here.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # docs/: the generators' shared module
from generated_blocks import BEGIN, END, replace_block  # noqa: E402

DOCS = Path(__file__).resolve().parent
RESULTS = DOCS / "results"
PAGE = DOCS / "results.md"

# the blocks, in page order: NAME -> columns to show (None: every table column the records have)
BLOCKS: dict[str, tuple[str, ...] | None] = {
    "digits": None,
    "wmdp-mini": ("hazard_acc", "general_acc", "seconds"),
    "tofu-mini": ("forget_quality", "model_utility", "forget_rouge", "forget_prob", "mia_auc_mink", "privleak",
                  "ua", "ra", "seconds"),
}
# fields a compacted record keeps
KEEP = ("method", "label", "scenario", "seed", "seeds", "status", "metrics", "config", "train_config", "versions")
# columns whose values span orders of magnitude: 3 significant digits instead of 2 decimals
SIGNIFICANT = {"forget_quality"}
ARROWS = {"higher": " ↑", "lower": " ↓", "retrain": " ≈R", "info": ""}


def compact(record: dict) -> dict:
    """The fields of a results record the tables (and a reader) need; see the module docstring."""
    return {key: record[key] for key in KEEP if key in record}


def read_records(name: str) -> list[dict]:
    path = RESULTS / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _number(value: float, column: str) -> str:
    if column in SIGNIFICANT:
        return f"{value:.3g}"
    return f"{value:.2f}"


def _cell(value, column: str, seeds: int) -> str:
    mean, std = value
    if seeds > 1 and std == std:  # a NaN std: a number of the seed means (Avg Gap), no spread
        return f"{_number(mean, column)} ± {_number(std, column)}"
    return _number(mean, column)


def markdown_table(records: list[dict], columns: tuple[str, ...] | None) -> str:
    """The records as a markdown table: mean ± std over seeds per (scenario, method), rows in the
    order the benchmark ran them; a column a row has no value for shows the row's status (or –)."""
    from unlearnkit.audits.metrics import METRICS
    from unlearnkit.bench.table import COLUMNS, present_columns, summarise

    for record in records:  # a sweep's rows are shown by their label, e.g. ga[lr=0.001]
        record.setdefault("label", record["method"])
    shown = present_columns(records, columns or COLUMNS)
    rows = summarise([{**r, "method": r["label"]} for r in records], shown)
    header = ["scenario", "method", *(c + ARROWS.get(METRICS.get(c, ("info",))[0], "") for c in shown)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * len(shown)]
    for row in rows:
        cells = [row["scenario"], f"`{row['method']}`"]
        for column in shown:
            value = row[column]
            cells.append((row["status"] if row["status"] != "ok" else "–") if value is None
                         else _cell(value, column, row["seeds"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def block(name: str, runs: dict) -> str:
    """Everything between the markers of block ``name``."""
    run = runs[name]
    records = read_records(name)
    seeds = max(len({r.get("seed") for r in records if r["method"] == m and r["scenario"] == s})
                for m, s in {(r["method"], r["scenario"]) for r in records})
    versions = records[0].get("versions", {})
    statuses = sorted({r.get("status", "ok") for r in records} - {"ok"})
    lines = [
        "",
        "```bash",
        run["command"],
        "```",
        "",
        f"Wall time **{run['wall_time']}** ({run['machine']}); {len(records)} cells, "
        f"{'mean ± std over ' + str(seeds) + ' seeds' if seeds > 1 else 'one seed'}; "
        f"{run['code']}; torch {versions.get('torch', '?')}, Python {versions.get('python', '?')}. "
        f"File: [`results/{name}.jsonl`](results/{name}.jsonl)"
        + (f" (cells with status {', '.join(statuses)} show it in place of a value)." if statuses else "."),
        "",
        markdown_table(records, BLOCKS[name]),
        "",
    ]
    return "\n".join(lines)


def render(text: str) -> str:
    """``text`` (the page) with every generated block rewritten from the results files."""
    runs = json.loads((RESULTS / "runs.json").read_text(encoding="utf-8"))
    for name in BLOCKS:
        text = replace_block(text, name, block(name, runs), PAGE)
    return text


def check() -> list[str]:
    """The names of the blocks whose text in docs/results.md differs from what would be written now."""
    current = PAGE.read_text(encoding="utf-8")
    wanted = render(current)
    if current == wanted:
        return []

    def blocks(text: str) -> dict[str, str]:
        out = {}
        for name in BLOCKS:
            begin = BEGIN.format(name=name)
            start = text.find(begin) + len(begin)
            out[name] = text[start:text.find(END, start)]
        return out

    have, want = blocks(current), blocks(wanted)
    return [name for name in BLOCKS if have[name] != want[name]] or ["(outside the blocks)"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a block is out of date")
    parser.add_argument("--compact", nargs=2, metavar=("RESULTS_JSONL", "NAME"),
                        help="copy a results.jsonl into docs/results/NAME.jsonl, compacted, then regenerate")
    args = parser.parse_args(argv)
    if args.compact:
        source, name = args.compact
        records = [json.loads(line) for line in Path(source).read_text(encoding="utf-8").splitlines() if line.strip()]
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{name}.jsonl").write_text(
            "".join(json.dumps(compact(r), sort_keys=True) + "\n" for r in records), encoding="utf-8")
    if args.check:
        stale = check()
        if stale:
            print(f"{PAGE}: generated blocks out of date: {', '.join(stale)}; run python docs/gen_results.py",
                  file=sys.stderr)
            return 1
        print(f"{PAGE}: generated blocks up to date")
        return 0
    PAGE.write_text(render(PAGE.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
