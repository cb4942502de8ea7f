"""Claim check for MOX (arXiv 2602.06441), "Is gradient ascent really necessary? Memorize to
forget": extrapolating away from a memorization model forgets without the collapse of utility
that gradient ascent suffers along its run; forgetting grows with α (the paper's α ∈ {0.5, 1, 2, 4, 8}
grid on MUSE: stronger forgetting, with utility loss only at α = 8).

    OMP_NUM_THREADS=1 UNLEARNKIT_CACHE=/tmp/ukcache python benchmarks/claim_mox.py [--seeds 5]

Writes ``benchmarks/results/claim-mox.json`` (per-seed metrics and the verdicts of the rule in
``claims_common.py``). About 1 minute on one thread.

On digits with the default ``cnn`` (the bench's original model: ``TrainConfig()``, 30 epochs),
seeds 0…n−1 (the unlearning run's seed):

- table 1, scenarios ``class:0`` and ``random:0.1``: ``ga`` at its defaults (5 epochs) and at
  MOX's 10 epochs, ``mox`` at its defaults and without momentum. "worst RA" is the lowest retain
  accuracy along the run: for GA measured after every epoch (an ``on_step`` hook at epoch ends), for
  MOX at every extrapolation event (``track=True``: the model MOX would return at that point);
- table 2, ``class:0``: the α sweep of ``mox`` (defaults otherwise).

Verdicts, paired by seed: (1) per scenario, MOX's worst RA over the run above GA's (5 and 10
epochs); (2) on class:0, UA grows with α (each α of the grid against the one before) and RA falls
only at the top of the grid (RA at α = 4 above RA at α = 8).

The paper tests LLMs only (TOFU, MUSE); this is the library's classification extension.
"""
from __future__ import annotations

import argparse
import time

import torch

from unlearnkit import audit, make_split, unlearn
from unlearnkit.audits.base import AuditContext
from unlearnkit.data import iterate_batches
from unlearnkit.methods import METHODS, RunContext

from claims_common import claim, digits_original, fmt, print_verdicts, subclaim, write_results

SCENARIOS = ["class:0", "random:0.1"]
RUNS = [  # (label, method, hyper-parameters)
    ("ga", "ga", {}),
    ("ga, 10 epochs", "ga", {"epochs": 10}),
    ("mox", "mox", {}),
    ("mox, no momentum", "mox", {"ema": False}),
]
ALPHAS = [0.5, 1.0, 2.0, 4.0, 8.0]



@torch.no_grad()
def accuracy(model, task, dataset):
    was_training = model.training
    model.eval()
    try:
        correct = torch.cat([task.correct(model, b) for b in iterate_batches(dataset, 512)])
    finally:
        model.train(was_training)
    return 100.0 * float(correct.mean())


def run(original, task, split, method, hparams, seed):
    """Final UA/RA/TA and the worst retain accuracy along the run."""
    trajectory: list[float] = []
    if method == "mox":
        ctx = RunContext()
        hparams = {**hparams, "track": True}
    else:
        config = METHODS.get(method).Config(**hparams)
        per_epoch = -(-len(split.forget_idx) // config.batch_size)

        def on_step(model, step):
            if step % per_epoch == 0:
                trajectory.append(accuracy(model, task, split.retain))
        ctx = RunContext(on_step=on_step)
    start = time.perf_counter()
    model = unlearn(original, task, split, method=method, seed=seed, ctx=ctx, **hparams)
    seconds = time.perf_counter() - start
    metrics = audit(model, task, split, ["accuracy"], ctx=AuditContext(seed=seed))
    trajectory = ctx.trace["retain_acc"] if method == "mox" else trajectory
    metrics["worst_ra"] = min(trajectory)
    metrics["seconds"] = seconds
    return metrics


def table(rows):
    print("| run | UA | RA | TA | worst RA over the run | seconds |")
    print("|---|---|---|---|---|---|")
    for label, ms in rows:
        print(f"| {label} | {fmt([m['ua'] for m in ms])} | {fmt([m['ra'] for m in ms])} | {fmt([m['ta'] for m in ms])} "
              f"| {fmt([m['worst_ra'] for m in ms])} | {fmt([m['seconds'] for m in ms], 2)} |")
    print()


def claims_of(results: dict, sweep: dict) -> list[dict]:
    col = lambda rows, key: [m[key] for m in rows]  # noqa: E731
    out = []
    for scenario in SCENARIOS:
        rows = results[scenario]
        out.append(claim("mox", "no retain collapse along the run, unlike gradient ascent (worst RA over the run)",
                         f"digits {scenario}, cnn", [
                             subclaim(f"worst RA vs {label}", "mox", col(rows["mox"], "worst_ra"), label,
                                      col(rows[label], "worst_ra"), "higher")
                             for label in ("ga", "ga, 10 epochs")]))
    names = [f"α={a:g}" for a in ALPHAS]
    subs = [subclaim(f"UA {hi} vs {lo}", hi, col(sweep[hi], "ua"), lo, col(sweep[lo], "ua"), "higher")
            for lo, hi in zip(names, names[1:])]
    subs.append(subclaim(f"RA {names[-2]} vs {names[-1]}", names[-2], col(sweep[names[-2]], "ra"), names[-1],
                         col(sweep[names[-1]], "ra"), "higher"))
    out.append(claim("mox", "forgetting grows with α; utility falls only at the largest α (the paper's MUSE α grid)",
                     "digits class:0, cnn; α ∈ {" + ", ".join(f"{a:g}" for a in ALPHAS) + "}", subs))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    source, task, original = digits_original()
    seeds = range(args.seeds)

    print(f"# MOX vs GA on digits/cnn, {args.seeds} seeds (mean ± std)\n")
    print("Retrain reference: UA 100 on class:0, ≈ 0 on random:0.1; RA 100.\n")
    results = {}
    for scenario in SCENARIOS:
        split = make_split(source, scenario)
        print(f"## {scenario} ({split.describe()})\n")
        results[scenario] = {label: [run(original, task, split, method, hp, s) for s in seeds]
                             for label, method, hp in RUNS}
        table(list(results[scenario].items()))

    split = make_split(source, "class:0")
    print("## α sweep, class:0\n")
    sweep = {f"α={a:g}": [run(original, task, split, "mox", {"alpha": a}, s) for s in seeds] for a in ALPHAS}
    table([(f"mox {name}", rows) for name, rows in sweep.items()])

    claims = claims_of(results, sweep)
    print_verdicts(claims)
    keep = lambda rows: [{k: v for k, v in m.items() if isinstance(v, (int, float))} for m in rows]  # noqa: E731
    raw = {"runs": {scenario: {label: keep(rows) for label, rows in by.items()} for scenario, by in results.items()},
           "alpha_sweep_class0": {name: keep(rows) for name, rows in sweep.items()}}
    print("\nwrote", write_results("mox", claims, raw, seeds=seeds, started=started))
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
