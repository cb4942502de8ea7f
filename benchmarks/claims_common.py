"""What the claim scripts share: the embedded data, its task, the cached original model, the
"mean ± std" cell format, the verdict rule, and the results file each script writes. Import from a
script run as ``python benchmarks/<script>.py``.

The verdict rule (:func:`compare`, :func:`combine`) is the one place that decides "reproduces /
partly / not reproduced"; ``docs/gen_claims.py`` re-applies it to the per-seed numbers of every
committed ``benchmarks/results/claim-<name>.json`` when it writes the claim table of
``docs/results.md``, so a verdict in the table is always the rule's, never a hand-written one.
"""
from __future__ import annotations

import json
import math
import numbers
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

REPRODUCES = "reproduces"
PARTLY = "partly"
NOT_REPRODUCED = "not reproduced"
NOT_MEASURED = "not measured"
DIRECTIONS = {"higher": 1.0, "lower": -1.0}
K_STD = 2.0  # "clearly": the mean effect exceeds K_STD × the seed std of the per-seed differences


def digits_original(model: str = "cnn", recipe=None):
    """(source, task, original): digits, its classification task, and the benchmark's original model."""
    from unlearnkit import ClassificationTask, load_data
    from unlearnkit.bench.originals import original_model
    from unlearnkit.methods import RunContext, TrainConfig

    source = load_data("digits")
    task = ClassificationTask(source.num_classes)
    original = original_model(source, "digits", model, task, recipe or TrainConfig(), RunContext())
    return source, task, original


def fmt(values, digits: int = 1) -> str:
    from unlearnkit.bench.table import format_mean_std

    return format_mean_std(values, digits)


# ----------------------------------------------------------------------------------- the rule

def _finite(value) -> bool:
    if value is None or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _scalar(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def compare(a, b, direction: str, k: float = K_STD) -> dict:
    """The verdict on one sub-claim "arm A is ``direction`` (higher | lower) than arm B".

    ``a`` and ``b`` are per-seed values of the two arms, paired by position (seed i of A with seed i
    of B; a plain number for B, e.g. a threshold, is used for every seed). Pairs where either value
    is missing (None or NaN: e.g. a seed whose curve never reaches a matched level) are dropped.
    With d_i = a_i − b_i, the effect is s·mean(d) (s = +1 for higher, −1 for lower) and the spread
    the sample standard deviation of the d_i over seeds:

    - **reproduces**: effect > k × spread (k = 2) and effect > 0: clearly in the claimed direction;
    - **partly**: 0 < effect ≤ k × spread: the claimed direction, within the seed noise;
    - **not reproduced**: effect ≤ 0 (no effect, or the opposite direction);
    - **not measured**: fewer than two complete pairs (no spread to judge by).

    Returns ``{"verdict", "effect", "mean_diff", "std_diff", "n", "mean_a", "mean_b"}``
    (``mean_diff`` = mean(a − b) in A's units, signed; ``effect`` = it in the claimed direction)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {direction!r}")
    a = list(a)
    b = [b] * len(a) if _scalar(b) else list(b)
    if len(a) != len(b):
        raise ValueError(f"the two arms must be paired by seed: {len(a)} vs {len(b)} values")
    pairs = [(float(x), float(y)) for x, y in zip(a, b) if _finite(x) and _finite(y)]
    n = len(pairs)
    out = {"n": n, "mean_a": None, "mean_b": None, "mean_diff": None, "std_diff": None, "effect": None}
    if n < 2:
        return {**out, "verdict": NOT_MEASURED}
    diffs = [x - y for x, y in pairs]
    mean_diff = statistics.fmean(diffs)
    std_diff = statistics.stdev(diffs)
    effect = DIRECTIONS[direction] * mean_diff
    if effect > 0 and effect > k * std_diff:
        verdict = REPRODUCES
    elif effect > 0:
        verdict = PARTLY
    else:
        verdict = NOT_REPRODUCED
    return {"n": n, "mean_a": statistics.fmean(x for x, _ in pairs), "mean_b": statistics.fmean(y for _, y in pairs),
            "mean_diff": mean_diff, "std_diff": std_diff, "effect": effect, "verdict": verdict}


def combine(verdicts) -> str:
    """A claim's verdict from its sub-claims' (sub-claims that could not be measured are left out):
    every one reproduces → reproduces; none is even in the claimed direction → not reproduced;
    anything between (some sub-claims only, or the right direction within the noise) → partly;
    nothing measured → not measured."""
    measured = [v for v in verdicts if v != NOT_MEASURED]
    if not measured:
        return NOT_MEASURED
    if all(v == REPRODUCES for v in measured):
        return REPRODUCES
    if all(v == NOT_REPRODUCED for v in measured):
        return NOT_REPRODUCED
    return PARTLY


def subclaim(what: str, a_label: str, a, b_label: str, b, direction: str, digits: int = 1) -> dict:
    """One sub-claim as stored in the results file: the two arms' per-seed values and the verdict."""
    clean = lambda values: [float(v) if _finite(v) else None for v in values]  # noqa: E731  (NaN is not JSON)
    a = clean(a)
    b = [float(b)] * len(a) if _scalar(b) else clean(b)
    return {"what": what, "a_label": a_label, "a": a, "b_label": b_label, "b": b, "direction": direction,
            "digits": digits, "result": compare(a, b, direction)}


def claim(method: str, text: str, scenario: str, subclaims: list[dict]) -> dict:
    """One row of the claim table: a method's claim, its scenario, and its sub-claims with the verdict."""
    return {"method": method, "claim": text, "scenario": scenario, "subclaims": subclaims,
            "verdict": combine(s["result"]["verdict"] for s in subclaims)}


# ----------------------------------------------------------------------------------- the file

def command_line() -> str:
    """The command as run (OMP_NUM_THREADS=1 and the script's arguments)."""
    args = " ".join(shlex.quote(a) for a in sys.argv[1:])
    return f"OMP_NUM_THREADS=1 python benchmarks/{Path(sys.argv[0]).name}" + (f" {args}" if args else "")


def versions() -> dict:
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__}


def _json_safe(value):
    """``value`` with NaN/inf as None (JSON has no NaN), numpy scalars as Python numbers, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value) if math.isfinite(float(value)) else None
    return value


def write_results(name: str, claims: list[dict], raw: dict, *, seeds, started: float, out: Path | None = None,
                  notes: str = "") -> Path:
    """Write ``benchmarks/results/claim-<name>.json`` (or ``out``): the command, its wall time (from
    ``started``, a ``time.perf_counter()``) and the process's CPU time (the machine may be shared), the
    seeds, the claims with their verdicts, and the script's raw per-seed outputs."""
    path = out or RESULTS / f"claim-{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"name": name, "command": command_line(), "wall_seconds": round(time.perf_counter() - started, 1),
               "cpu_seconds": round(time.process_time(), 1), "seeds": list(seeds), "versions": versions(), "notes": notes, "claims": claims, "raw": raw}
    path.write_text(json.dumps(_json_safe(payload), indent=1, ensure_ascii=False, allow_nan=False) + "\n",
                    encoding="utf-8")
    return path


def print_verdicts(claims: list[dict]) -> None:
    for c in claims:
        print(f"- {c['method']}: {c['claim']} [{c['scenario']}] → **{c['verdict']}**")
        for s in c["subclaims"]:
            r = s["result"]
            if r["n"] < 2:
                print(f"    {s['what']}: not measured (n={r['n']})")
                continue
            print(f"    {s['what']}: {s['a_label']} {r['mean_a']:.{s['digits']}f} vs {s['b_label']} "
                  f"{r['mean_b']:.{s['digits']}f}, Δ {r['mean_diff']:+.{s['digits']}f} ± {r['std_diff']:.{s['digits']}f} "
                  f"(n={r['n']}, expected {s['direction']}) → {r['verdict']}")
