"""Claim check for RL and SalUn's data feed (issue 16 §2) on the embedded digits, ``random:0.1``.

RL (``random_label``) and SalUn now feed data as the reference code does: one shuffled pass per epoch
over D_f (random targets over all classes, the true one included) ∪ D_r (``feed=union``,
``label_draw=any``). The claim: at their defaults both keep RA ≥ 95 % and reach a UA above
fine-tuning's. The old pairing (one forget batch with one retain batch per step, a wrong class as
target: ``feed=paired, label_draw=other``) is printed beside them for comparison, not judged.

Command (about 1 minute on one thread; a rerun with the same --out resumes):

    OMP_NUM_THREADS=1 python benchmarks/claim_rl_salun.py [--seeds 5] [--out DIR]

Writes ``benchmarks/results/claim-rl_salun.json``: the per-seed UA/RA/TA of every row and the
verdicts of the rule in ``claims_common.py``, per method: RA against the threshold 95 (the spread is
RA's own over seeds) and UA against fine-tuning's, paired by seed. The exit status is 1 when a
claim is not reproduced.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from claims_common import NOT_REPRODUCED, claim, print_verdicts, subclaim, write_results

PAIRED = {"feed": "paired", "label_draw": "other"}
RA_FLOOR = 95.0


def main() -> int:
    from unlearnkit.bench.runner import BenchPlan, Variant, print_table, run_bench

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default=None, help="results folder (default: a temporary one)")
    args = parser.parse_args()
    started = time.perf_counter()
    out = Path(args.out or tempfile.mkdtemp(prefix="claim-rl-salun-"))
    variants = [Variant("finetune"), Variant("random_label"), Variant("salun"),
                Variant("random_label", "random_label[paired]", dict(PAIRED)),
                Variant("salun", "salun[paired]", dict(PAIRED))]
    plan = BenchPlan(data="digits", scenarios=["random:0.1"], seeds=args.seeds, audits=["accuracy"], out=out,
                     variants=variants)
    records = [r for r in run_bench(plan) if r.get("status") == "ok"]
    print(print_table(records, ("ua", "ra", "ta", "avg_gap", "seconds")))

    def per_seed(label: str, key: str) -> list[float]:
        rows = sorted(records, key=lambda r: r["seed"])
        return [r["metrics"][key] for r in rows if r.get("label", r["method"]) == label]

    claims = []
    for label in ("random_label", "salun"):
        claims.append(claim(label, "at its defaults (the reference code's union feed) RA ≥ 95 and UA above "
                            "fine-tuning's", "digits random:0.1, cnn", [
                                subclaim(f"RA vs the floor {RA_FLOOR:g}", label, per_seed(label, "ra"), "floor",
                                         RA_FLOOR, "higher", 2),
                                subclaim("UA vs finetune", label, per_seed(label, "ua"), "finetune",
                                         per_seed("finetune", "ua"), "higher", 2),
                            ]))
    print_verdicts(claims)
    labels = ["retrain", "finetune", "random_label", "salun", "random_label[paired]", "salun[paired]"]
    raw = {"scenario": "random:0.1", "paired_overrides": PAIRED,
           "per_seed": {label: {key: per_seed(label, key) for key in ("ua", "ra", "ta", "seconds")} for label in labels}}
    print("\nwrote", write_results("rl_salun", claims, raw, seeds=range(args.seeds), started=started))
    return 1 if any(c["verdict"] == NOT_REPRODUCED for c in claims) else 0


if __name__ == "__main__":
    raise SystemExit(main())
