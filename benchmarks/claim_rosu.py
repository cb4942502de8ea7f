"""Claim check for ROSU (arXiv 2605.05871) against its base UAM (Kim et al., NeurIPS 2025):
"when forget and retain gradients are strongly aligned (high coupling), ROSU's retain-orthogonal
surrogate keeps the retain loss at the surrogate point down and gives better retention at matched
forgetting".

    OMP_NUM_THREADS=1 UNLEARNKIT_CACHE=/tmp/ukcache python benchmarks/claim_rosu.py [--seeds 5]

Writes ``benchmarks/results/claim-rosu.json`` (raw per-seed outputs and the verdicts of the rule in
``claims_common.py``) and prints the tables. About 5 minutes on one thread (measured: 4 min 39 s
wall, 3.4 CPU minutes, on a shared 2-core machine); the contrast grids are 3 ρ per arm and ``class:0``
is off by default to keep it there.

**The high-coupling scenario** (``near-dup``), built here on the embedded digits: 10 % of the
training images (144, drawn with seed 0) are forgotten, and each has a near-duplicate kept in the
retain set (the same image plus Gaussian pixel noise σ = 0.05, clipped to [0, 1]; same label), so
the training set has 1,581 rows. The original is the benchmark's recipe (``TrainConfig()``, 30
epochs) with weight decay 1e-2 instead of 5e-4, and both methods run on batches of 256 instead of
64 (every other hyper-parameter at the methods' own defaults, pinned here over the calibrated
layer: 3 epochs, SGD lr 0.01 as an absolute step, momentum 0.9).
Each ingredient raises the per-step cos(g_f, g_r) (the script measures the ladder, table 1, UAM at
ρ = 1): at a well-fitted original the batch gradients are mostly noise (the default digits
random:0.1 setting, batch 64: mean ≈ 0.13); larger batches average the noise away; a regularised
original sits where the data gradient balances the decay, so every subset's gradient shares the
−λθ component; the near-duplicates make forgetting an image and keeping its copy the same task.
A retrained model would keep UA ≈ 0 here (the copies teach the forgotten images): forgetting is
bought with retain damage by construction, which is the regime the paper's claim is about.

Contrasts (the previous scenarios, defaults otherwise): ``random:0.1`` (low coupling) and, on
request, ``class:0`` (negative coupling), on the default original with batches of 64.

Arms, each over a ρ sweep, seeds 0…n−1 (the unlearning run's seed; the original and the forget set
are fixed): ``uam`` (with ``trace_retain_grad``, which records cos(g_f, g_r) and ⟨ε, g_r⟩ without
changing the run); ``rosu`` with its amplification off (``amp=0``, the default) and on
(``amp=0.5``: the optimizer gets d − κ·u, u the retain-neutral unit direction).

Tables: (1) the coupling ladder; (2) per scenario and arm: UA, RA, TA, accuracy on the retained
near-duplicates, per ρ; (3) RA at matched UA: each seed's (UA, RA) curve over increasing ρ,
linearly interpolated at the first crossing of the UA level (a seed whose curve never reaches the
level is left out of that comparison); (4) per-step coupling and surrogate diagnostics pooled over
seeds and ρ: cos(g_f, g_r) mean and 10/50/90th percentiles, ⟨ε, g_r⟩/(ρ‖g_r‖) (= cos for UAM,
0 for ROSU), the retain loss at the surrogate point.

Verdicts (``near-dup`` only, the claim's regime; the contrasts are reported, not judged): ROSU's RA
minus UAM's at each matched UA level, per seed, amplification off and on (one claim each); and the
mechanism (theory ii), ROSU's retain loss at the surrogate point below UAM's where the two are like
for like: the first step of a run (the original θ₀, the seed's first forget and retain batches,
the same ρ), averaged over the ρ both grids share. (Later steps are at different points: ROSU forgets
more per ρ here, so its run-mean L_r(θ+ε) is higher at the same ρ.)

``class:0`` runs with ``--scenarios near-dup,random:0.1,class:0`` (about 2 minutes more).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from claims_common import claim, fmt, print_verdicts, subclaim, write_results

HIGH = "near-dup"
FRACTION, COPIES, SIGMA, DRAW_SEED = 0.1, 1, 0.05, 0
HIGH_WD, HIGH_BATCH = 1e-2, 256
PAPERS_STEP = {"step_size": "absolute", "lr": 0.01}  # UAMConfig's own lr (SGD, momentum 0.9)
ARMS = {"uam": ("uam", {}), "rosu": ("rosu", {}), "rosu κ=0.5": ("rosu", {"amp": 0.5})}
GRIDS = {  # scenario -> arm -> ρ values (increasing)
    HIGH: {"uam": [0.5, 0.75, 1.0, 1.125, 1.25, 1.375, 1.5], "rosu": [0.5, 0.75, 1.0, 1.25, 1.5, 2.0],
           "rosu κ=0.5": [0.25, 0.5, 0.75, 1.0, 1.25, 1.5]},
    "random:0.1": {"uam": [1.5, 2.0, 3.0], "rosu": [1.5, 2.0, 3.0], "rosu κ=0.5": [1.0, 1.5, 2.0]},
    "class:0": {"uam": [1.0, 1.5, 2.0, 3.0], "rosu": [1.0, 1.5, 2.0, 3.0], "rosu κ=0.5": [0.5, 1.0, 1.5, 2.0]},
}
DEFAULT_SCENARIOS = (HIGH, "random:0.1")  # class:0 on request (--scenarios): not judged, and ~2 more minutes
MATCH_UA = {HIGH: [5.0, 10.0, 20.0, 30.0], "random:0.1": [5.0, 10.0, 15.0, 30.0], "class:0": [50.0, 80.0, 95.0, 99.0]}
MECHANISM_RHOS = ("0.5", "0.75", "1", "1.25", "1.5")  # the ρ both ROSU and UAM ran in the high-coupling grid
LADDER_RHO = 1.0


def near_duplicate_source(fraction=FRACTION, copies=COPIES, sigma=SIGMA, seed=DRAW_SEED):
    """(source, split): digits plus a noisy copy of each forget image kept in retain (module docstring)."""
    from unlearnkit import load_data
    from unlearnkit.data.dataset import TensorData
    from unlearnkit.data.sources import DataSource
    from unlearnkit.data.split import Split

    digits = load_data("digits")
    x, y = digits.train.x, digits.train.y
    n = len(y)
    generator = torch.Generator().manual_seed(seed)
    forget = torch.randperm(n, generator=generator)[: int(round(fraction * n))]
    xs, ys = [x], [y]
    for _ in range(copies):
        xs.append((x[forget] + sigma * torch.randn(x[forget].shape, generator=generator)).clamp(0.0, 1.0))
        ys.append(y[forget])
    source = DataSource(name=f"digits-neardup{fraction:g}x{copies}s{sigma:g}", train=TensorData(torch.cat(xs), torch.cat(ys)),
                        test=digits.test, num_classes=digits.num_classes, input_shape=digits.input_shape,
                        class_names=list(digits.class_names))
    everything = torch.arange(len(source.train))
    retain = everything[~torch.isin(everything, forget)]
    return source, Split(source, forget, retain, spec=HIGH)


def setting(name: str):
    """(split, task, original, method overrides) of a scenario, or of a coupling-ladder rung."""
    from unlearnkit import ClassificationTask, load_data, make_split
    from unlearnkit.bench.originals import original_model
    from unlearnkit.methods import RunContext, TrainConfig

    if name == HIGH:
        source, split = near_duplicate_source()
        task = ClassificationTask(source.num_classes)
        original = original_model(source, source.name, "cnn", task, TrainConfig(weight_decay=HIGH_WD), RunContext())
        return split, task, original, {"batch_size": HIGH_BATCH}
    source = load_data("digits")
    task = ClassificationTask(source.num_classes)
    wd = HIGH_WD if "wd" in name else TrainConfig().weight_decay
    original = original_model(source, "digits", "cnn", task, TrainConfig(weight_decay=wd), RunContext())
    scenario = name.split(",")[0]
    return make_split(source, scenario), task, original, ({"batch_size": HIGH_BATCH} if "b256" in name else {})


LADDER = [  # (rung, what it adds)
    ("random:0.1", "digits random:0.1, default original (wd 5e-4), batch 64"),
    ("random:0.1,b256", "+ batch 256"),
    ("random:0.1,wd", "default batch 64, original with wd 1e-2"),
    ("random:0.1,wd,b256", "wd 1e-2 original + batch 256"),
    (HIGH, "+ a near-duplicate of each forget image in retain (the high-coupling scenario)"),
]


def accuracy(model, task, dataset) -> float:
    from unlearnkit.data import iterate_batches

    model.eval()
    with torch.no_grad():
        return 100.0 * float(torch.cat([task.correct(model, b) for b in iterate_batches(dataset, 512)]).float().mean())


def run(original, task, split, method, hparams, seed):
    """One unlearning run: its metrics and its per-step trace summary."""
    from unlearnkit import audit, unlearn
    from unlearnkit.audits.base import AuditContext
    from unlearnkit.data import subset
    from unlearnkit.methods import RunContext

    ctx = RunContext()
    extra = {"trace_retain_grad": True} if method == "uam" else {}
    start = time.perf_counter()
    # the papers' absolute SGD step the scenario was built on (the calibrated image defaults use a relative
    # step, which lowers the measured coupling to ≈ 0.46: the claim is about the method, not our defaults)
    model = unlearn(original, task, split, method=method, seed=seed, ctx=ctx, **{**PAPERS_STEP, **hparams}, **extra)
    seconds = time.perf_counter() - start
    metrics = audit(model, task, split, ["accuracy"], ctx=AuditContext(seed=seed))
    out = {k: float(metrics[k]) for k in ("ua", "ra", "ta")}
    if split.spec == HIGH:  # accuracy on the retained copies of the forget images
        copies = torch.arange(len(split.source.train) - len(split.forget_idx) * COPIES, len(split.source.train))
        out["copy_acc"] = accuracy(model, task, subset(split.source.train, copies))
    trace = ctx.trace
    cos = np.asarray(trace["cos_gf_gr"], dtype=float)
    first = np.asarray(trace["eps_dot_gr"]) / (np.asarray(trace["rho"]) * np.asarray(trace["gr_norm"]) + 1e-30)
    out.update(seconds=seconds, cos_steps=cos.round(4).tolist(), first_order=float(first.mean()),
               surrogate_loss=float(np.mean(trace["loss_r_surrogate"])),
               # step 1: every arm of a seed is at the original θ₀ with the same two batches
               surrogate_first=float(trace["loss_r_surrogate"][0]), loss_f_first=float(trace["loss_f"][0]),
               eps_dot_gr_first=float(trace["eps_dot_gr"][0]))  # ⟨ε, g_r⟩ at step 1: the first-order retain change
    return out


def interpolate(curve, level):
    """RA at UA = ``level`` on one seed's [(ua, ra)] ordered by increasing ρ: linear between the first
    two consecutive ρ whose UAs bracket the level (the smallest ρ that reaches it, as one would tune
    ρ upwards); None if the curve never crosses it."""
    for (u0, r0), (u1, r1) in zip(curve, curve[1:]):
        if min(u0, u1) <= level <= max(u0, u1):
            w = 0.0 if u1 == u0 else (level - u0) / (u1 - u0)
            return r0 + w * (r1 - r0)
    return None


def coupling(cos_lists):
    cos = np.concatenate([np.asarray(c, dtype=float) for c in cos_lists])
    p10, p50, p90 = np.percentile(cos, [10, 50, 90])
    return {"steps": int(cos.size), "mean": float(cos.mean()), "p10": float(p10), "p50": float(p50), "p90": float(p90)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS), help="comma-separated subset of " + ",".join(GRIDS))
    parser.add_argument("--no-write", action="store_true", help="print only; do not write the results file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    seeds = list(range(args.seeds))
    raw = {"ladder": {}, "scenarios": {}}

    print(f"# ROSU vs UAM on digits/cnn, {args.seeds} seeds (mean ± std)\n")
    print(f"## 1. Coupling ladder: per-step cos(g_f, g_r) of UAM at ρ = {LADDER_RHO:g}, all steps of all seeds\n")
    print("| setting | steps | mean | p10 / p50 / p90 | UA | RA |")
    print("|---|---|---|---|---|---|")
    for rung, what in LADDER:
        split, task, original, over = setting(rung)
        runs = [run(original, task, split, "uam", {**over, "rho": LADDER_RHO}, s) for s in seeds]
        stats = coupling([r["cos_steps"] for r in runs])
        raw["ladder"][rung] = {"what": what, "coupling": stats, "ua": [r["ua"] for r in runs], "ra": [r["ra"] for r in runs]}
        print(f"| {what} | {stats['steps']} | {stats['mean']:.3f} | {stats['p10']:.3f} / {stats['p50']:.3f} / "
              f"{stats['p90']:.3f} | {fmt([r['ua'] for r in runs])} | {fmt([r['ra'] for r in runs])} |")
    print()

    for scenario in [s for s in args.scenarios.split(",") if s]:
        split, task, original, over = setting(scenario)
        arms = {}
        for arm, (method, hp) in ARMS.items():
            arms[arm] = {f"{rho:g}": [run(original, task, split, method, {**over, **hp, "rho": rho}, s) for s in seeds]
                         for rho in GRIDS[scenario][arm]}
        entry = {"describe": split.describe(), "overrides": over, "grids": GRIDS[scenario],
                 "arms": {}, "coupling": {}, "matched": {}}
        print(f"## 2. {scenario} ({split.describe()}; method overrides {over or 'none'})\n")
        extra_col = " copies acc |" if scenario == HIGH else ""
        print(f"| arm | ρ | UA | RA | TA |{extra_col} L_r(θ+ε) | seconds |")
        print("|---|---|---|---|---|---|---|" + ("---|" if extra_col else ""))
        for arm, by_rho in arms.items():
            entry["arms"][arm] = {}
            for rho, runs in by_rho.items():
                keep = {k: [r[k] for r in runs] for k in runs[0] if k != "cos_steps"}
                keep["cos_mean"] = [float(np.mean(r["cos_steps"])) for r in runs]
                entry["arms"][arm][rho] = keep
                copies = f" {fmt(keep['copy_acc'])} |" if extra_col else ""
                print(f"| {arm} | {rho} | {fmt(keep['ua'])} | {fmt(keep['ra'])} | {fmt(keep['ta'])} |{copies} "
                      f"{fmt(keep['surrogate_loss'], 3)} | {fmt(keep['seconds'], 2)} |")
            entry["coupling"][arm] = coupling([r["cos_steps"] for runs in by_rho.values() for r in runs])
        entry["coupling"]["all"] = coupling([r["cos_steps"] for by_rho in arms.values() for runs in by_rho.values()
                                             for r in runs])

        print("\n### 3. RA at matched UA (per seed, interpolated along its ρ curve)\n")
        print("| UA level | " + " | ".join(f"{arm} RA (n)" for arm in ARMS) + " |")
        print("|---|" + "---|" * len(ARMS))
        for level in MATCH_UA[scenario]:
            cells = []
            for arm, by_rho in arms.items():
                per_seed = []
                for i in range(len(seeds)):
                    curve = [(runs[i]["ua"], runs[i]["ra"]) for runs in by_rho.values()]
                    per_seed.append(interpolate(curve, level))
                entry["matched"].setdefault(f"{level:g}", {})[arm] = per_seed
                got = [v for v in per_seed if v is not None]
                cells.append(f"{fmt(got)} ({len(got)})")
            print(f"| {level:g} | " + " | ".join(cells) + " |")

        print("\n### 4. Per-step coupling and surrogate (all seeds and ρ pooled)\n")
        print("| arm | steps | cos(g_f,g_r) mean | p10 / p50 / p90 | ⟨ε,g_r⟩/(ρ‖g_r‖) mean | L_r(θ+ε) mean |")
        print("|---|---|---|---|---|---|")
        for arm in ARMS:
            c = entry["coupling"][arm]
            runs = [v for by in entry["arms"][arm].values() for v in by["first_order"]]
            sur = [v for by in entry["arms"][arm].values() for v in by["surrogate_loss"]]
            print(f"| {arm} | {c['steps']} | {c['mean']:.3f} | {c['p10']:.3f} / {c['p50']:.3f} / {c['p90']:.3f} | "
                  f"{statistics.fmean(runs):.2e} | {statistics.fmean(sur):.3f} |")
        c = entry["coupling"]["all"]
        print(f"| all | {c['steps']} | {c['mean']:.3f} | {c['p10']:.3f} / {c['p50']:.3f} / {c['p90']:.3f} | | |\n")
        raw["scenarios"][scenario] = entry

    claims = []
    if HIGH in raw["scenarios"]:
        entry = raw["scenarios"][HIGH]
        c = entry["coupling"]["all"]
        scenario = (f"digits near-dup: forget 10 % (144), a noisy copy (σ {SIGMA:g}) of each kept in retain; "
                    f"original wd {HIGH_WD:g}; batch {HIGH_BATCH}; per-step cos(g_f, g_r) mean {c['mean']:.2f} "
                    f"(p10 {c['p10']:.2f}, p50 {c['p50']:.2f}, p90 {c['p90']:.2f})")
        for arm, label in (("rosu", "amplification off (κ = 0)"), ("rosu κ=0.5", "amplification on (κ = 0.5)")):
            subs = [subclaim(f"RA at UA {level}", arm, values[arm], "uam", values["uam"], "higher")
                    for level, values in entry["matched"].items()]
            claims.append(claim("rosu", f"higher RA than UAM at matched UA under high coupling, {label}", scenario, subs))
        first = {arm: [statistics.fmean(entry["arms"][arm][rho]["surrogate_first"][i] for rho in MECHANISM_RHOS)
                       for i in range(len(seeds))] for arm in ("uam", "rosu")}
        for rho in MECHANISM_RHOS:  # the same θ₀ and batches, or the comparison is not like for like
            assert np.allclose(entry["arms"]["uam"][rho]["loss_f_first"], entry["arms"]["rosu"][rho]["loss_f_first"])
        claims.append(claim("rosu", "lower retain loss at the surrogate point than UAM's, same θ, batches and ρ "
                            "(theory ii)", scenario,
                            [subclaim(f"L_r(θ₀+ε) at step 1, mean over ρ {', '.join(MECHANISM_RHOS)}", "rosu",
                                      first["rosu"], "uam", first["uam"], "lower", 3)]))
    print("## Verdicts\n")
    print_verdicts(claims)
    if not args.no_write:
        print("\nwrote", write_results("rosu", claims, raw, seeds=seeds, started=started,
                                       notes="near-dup built by near_duplicate_source() in the script"))
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
