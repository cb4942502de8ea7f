"""Write the paper-claim table of ``docs/results.md`` from the committed claim results files.

    python docs/gen_claims.py            # rewrite the claim table in docs/results.md
    python docs/gen_claims.py --check    # exit 1 if it differs from what would be written

The table sits between ``<!-- generated: claims -->`` and ``<!-- end generated -->`` (the markers
``docs/gen_results.py`` uses for its blocks); this script owns what is between them and
``tests/test_docs.py`` fails on a hand edit there. Everything outside the markers is prose.

Inputs: ``benchmarks/results/claim-<name>.json``, one per claim script (``benchmarks/claim_<name>.py``
writes it): the command and its wall time, the claims, and for each sub-claim the per-seed values of
its two arms. Every verdict is recomputed here from those values with the rule in
``benchmarks/claims_common.py`` (:func:`compare` per sub-claim, :func:`combine` per claim); a file whose
stored verdict differs from the rule's is an error (the rule changed since the run: rerun the script).

One row per claim: method | claim | scenario | figures | verdict | command. Figures: per sub-claim,
the two arms' means over seeds, the mean ± std over seeds of their per-seed difference, the number of
seeds compared and (with several sub-claims) the sub-claim's verdict.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # docs/: the generators' shared module
from generated_blocks import BEGIN as MARKER, END, is_current, replace_block, run  # noqa: E402

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
RESULTS = ROOT / "benchmarks" / "results"
PAGE = DOCS / "results.md"
NAME = "claims"
BEGIN = MARKER.format(name=NAME)  # this block's opening marker (tests find the block by it)
CLAIMS = ("entangle", "lur", "ieu", "mox", "rosu", "rl_salun")  # table order: the scripts' names


def rule():
    """``benchmarks/claims_common.py`` (the verdict rule), loaded by path."""
    spec = importlib.util.spec_from_file_location("claims_common", ROOT / "benchmarks" / "claims_common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read(name: str) -> dict:
    path = RESULTS / f"claim-{name}.json"
    if not path.is_file():
        raise SystemExit(f"{path}: missing; run benchmarks/claim_{name}.py")
    return json.loads(path.read_text(encoding="utf-8"))


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def _num(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def figures(sub: dict, result: dict, many: bool) -> str:
    d = sub.get("digits", 1)
    if result["n"] < 2:
        return f"{sub['what']}: not measured (n = {result['n']})"
    text = (f"{sub['what']}: {sub['a_label']} {_num(result['mean_a'], d)} vs {sub['b_label']} {_num(result['mean_b'], d)}, "
            f"Δ {result['mean_diff']:+.{d}f} ± {_num(result['std_diff'], d)} (n = {result['n']})")
    return text + (f" *{result['verdict']}*" if many else "")


def rows(name: str, data: dict, common) -> list[str]:
    """The table rows of one results file, verdicts recomputed (and checked against the stored ones)."""
    out = []
    command = f"`{data['command']}` ({_duration(data['wall_seconds'])})"
    for c in data["claims"]:
        results = []
        for sub in c["subclaims"]:
            result = common.compare(sub["a"], sub["b"], sub["direction"])
            if result["verdict"] != sub["result"]["verdict"]:
                raise SystemExit(f"claim-{name}.json: {sub['what']!r} is stored as {sub['result']['verdict']!r}, the rule "
                                 f"gives {result['verdict']!r}; rerun benchmarks/claim_{name}.py")
            results.append(result)
        verdict = common.combine(r["verdict"] for r in results)
        if verdict != c["verdict"]:
            raise SystemExit(f"claim-{name}.json: {c['claim']!r} is stored as {c['verdict']!r}, the rule gives "
                             f"{verdict!r}; rerun benchmarks/claim_{name}.py")
        many = len(results) > 1
        figs = "; ".join(figures(s, r, many) for s, r in zip(c["subclaims"], results))
        out.append("| " + " | ".join(_cell(x) for x in (f"`{c['method']}`", c["claim"], c["scenario"], figs,
                                                           f"**{verdict}**", command)) + " |")
    return out


def table() -> str:
    """Everything between the markers."""
    common = rule()
    lines = ["", "", "| method | claim | scenario | figures | verdict | command |", "|---|---|---|---|---|---|"]
    versions = set()
    for name in CLAIMS:
        data = read(name)
        lines += rows(name, data, common)
        versions.add(f"torch {data['versions'].get('torch', '?')}, Python {data['versions'].get('python', '?')}")
    lines += ["", f"Files: `benchmarks/results/claim-<name>.json` ({', '.join(sorted(versions))}; one CPU thread).", ""]
    return "\n".join(lines)


def render(text: str) -> str:
    return replace_block(text, NAME, table(), PAGE)


def check() -> bool:
    """True when the claim table in docs/results.md is what would be written now."""
    return is_current(PAGE, render)


def main(argv: list[str] | None = None) -> int:
    return run(argv, __doc__, PAGE, render, "gen_claims.py")


if __name__ == "__main__":
    sys.exit(main())
