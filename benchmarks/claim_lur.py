"""Claim check for LUR (Patel & Qiu, ICCV 2025; arXiv 2503.06339): "LUR has a lower average gap
to exact unlearning (retrain) than methods that ignore the conflict between unlearning and
retention gradients", here against NegGrad+ (the same two losses, summed) and RL; and the
ablations of its defining parts, the look-ahead and its second-order term.

    OMP_NUM_THREADS=1 UNLEARNKIT_CACHE=/tmp/ukcache python benchmarks/claim_lur.py [--seeds 5] [--out DIR]

Writes ``benchmarks/results/claim-lur.json`` (per-seed metrics and the verdicts of the rule in
``claims_common.py``). About 2.5 minutes on one thread. ``--out DIR`` keeps the bench's
``results.jsonl`` there (a rerun with the same DIR resumes; default: a fresh temporary folder).

On digits with the default ``cnn`` (the bench's original model: ``TrainConfig()``, 30 epochs),
scenarios ``class:0`` and ``random:0.1``, seeds 0…n−1, through the library's bench runner (the
retrain reference of each scenario and seed is shared):

- ``neggrad_plus`` and ``random_label`` at their defaults;
- ``lur`` at its defaults (second order, look-ahead on retain, GA unlearning loss);
- the two ablations of its defining parts: ``lur α=0`` (no virtual step: exactly NegGrad with
  LUR's weights, schedule and data order) and ``lur first-order`` (no Hessian term);
- the reverse order, ``lur lookahead=forget`` (reported, not judged).

Columns: UA, RA, TA, MIA-efficacy, Avg Gap to retrain (per seed, against that seed's retrain: the
paper's Fig. 1A measure, lower is better), seconds, and for LUR rows the mean per-step
cos(∇L_u, ∇L_r) over the run. Verdicts, per scenario and paired by seed: LUR's Avg Gap below RL's
and NegGrad+'s; below the α = 0 ablation's; below the first-order ablation's.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from claims_common import claim, fmt, print_verdicts, subclaim, write_results

SCENARIOS = ["class:0", "random:0.1"]
RUNS = [  # (label, method, overrides)
    ("neggrad_plus", "neggrad_plus", {}),
    ("random_label", "random_label", {}),
    ("lur", "lur", {}),
    ("lur α=0 (no look-ahead)", "lur", {"alpha": "0"}),
    ("lur first-order", "lur", {"first_order": "true"}),
    ("lur lookahead=forget", "lur", {"lookahead": "forget"}),
]
COLUMNS = ["ua", "ra", "ta", "mia_efficacy", "avg_gap", "seconds", "cos"]
SCENARIO_TEXT = "digits class:0 and random:0.1, cnn; Avg Gap per seed against that seed's retrain"


def claims_of(rows: dict) -> list[dict]:
    gap = lambda scenario, label: [c.get("avg_gap") for c in rows[(scenario, label)]]  # noqa: E731
    comparisons = [
        ("lower Avg Gap to retrain than RL and NegGrad+ (Fig. 1A)", [("random_label", "RL"), ("neggrad_plus", "NegGrad+")]),
        ("the look-ahead lowers Avg Gap: LUR vs its α = 0 ablation", [("lur α=0 (no look-ahead)", "α=0")]),
        ("the second-order term lowers Avg Gap: LUR vs first-order", [("lur first-order", "first-order")]),
    ]
    out = []
    for text, others in comparisons:
        subs = [subclaim(f"Avg Gap {scenario} vs {short}", "lur", gap(scenario, "lur"), short, gap(scenario, label),
                         "lower", 2)
                for scenario in SCENARIOS for label, short in others if (scenario, label) in rows]
        out.append(claim("lur", text, SCENARIO_TEXT, subs))
    return out


def main():
    from unlearnkit.bench.runner import BenchPlan, Variant, run_bench

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    out = args.out or Path(tempfile.mkdtemp(prefix="unlearnkit-claim-lur-"))
    variants = [Variant(method, label, dict(overrides)) for label, method, overrides in RUNS]
    plan = BenchPlan(data="digits", scenarios=SCENARIOS, seeds=args.seeds, audits=["accuracy", "mia"], out=out,
                     variants=variants)
    records = sorted(run_bench(plan), key=lambda r: r["seed"])
    rows: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        name = record.get("label", record["method"])
        metrics = {k: v for k, v in record.get("metrics", {}).items() if isinstance(v, (int, float))}
        cos = record.get("trace", {}).get("cos_unlearn_retain")
        metrics["cos"] = statistics.fmean(cos) if cos else None
        metrics["seed"] = record["seed"]
        metrics["status"] = record.get("status", "ok")
        if metrics["status"] != "ok":
            metrics["avg_gap"] = None
        rows.setdefault((record["scenario"], name), []).append(metrics)

    print(f"# LUR vs NegGrad+ and RL on digits/cnn, {args.seeds} seeds (mean ± std)\n")
    print("| scenario | run | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for scenario in SCENARIOS:
        for (sc, name), cells in rows.items():
            if sc == scenario:
                values = [fmt([c.get(k) for c in cells], 3 if k == "cos" else 2) for k in COLUMNS]
                print(f"| {scenario} | {name} | " + " | ".join(values) + " |")
    print()
    claims = claims_of(rows)
    print_verdicts(claims)
    raw = {"scenarios": SCENARIOS, "runs": [{"label": l, "method": m, "overrides": o} for l, m, o in RUNS],
           "per_seed": {f"{scenario} | {name}": cells for (scenario, name), cells in rows.items()}}
    print("\nwrote", write_results("lur", claims, raw, seeds=range(args.seeds), started=started,
                                   notes="avg_gap: the bench record's per-seed Avg Gap (its retrain of the same seed)"))
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
