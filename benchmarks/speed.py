"""Per-step cost of each method against a bare PyTorch loop, in the same run.

    OMP_NUM_THREADS=1 python benchmarks/speed.py [--model cnn] [--batch-size 64] [--methods ga,finetune,...] \
        [--timer cpu|wall] [--repeats 3]

The bare loop is the cheapest possible training step on the same model and batch size:
forward, cross-entropy, backward, SGD step — one "pass". Each method's time per optimizer
step is divided by it; the `passes` column says how many forward+backward passes the method
needs by construction (``speed_common.PASSES``), so `ratio / passes` near 1 means no overhead
beyond the algorithm (target: ≤ 1.15). Every method runs at its defaults but with every
``*batch_size`` field set to ``--batch-size`` (scrub's forget/retain batches, ieu's and mox's
smaller ones), so each row's passes are passes of the bare loop's batch. Methods whose epoch
passes over the forget set (ga, lur, …: 144 examples at random:0.1) end each epoch with a
16-example batch, which lowers their mean step cost a little.
``--timer cpu`` (default) counts this process's CPU seconds (``time.process_time``), so other
jobs sharing the cores do not inflate a row; ``wall`` is elapsed time. Each row is the best of
``--repeats`` runs of the method, each right after a timing of the bare loop (on a copy of the
model, 30 steps), and is divided by the best of those bare timings: a change in the machine's load
between rows cannot skew one row against a bare loop timed long before it. (Process CPU time still
grows when other jobs share the caches, which is why the best of several runs is kept.)
Peak resident memory (ru_maxrss) is printed for the whole process.
"""
from __future__ import annotations

import argparse
import copy
import os
import resource
import time

import torch
import torch.nn.functional as F

from unlearnkit import ClassificationTask, build_model, load_data, make_split, unlearn
from unlearnkit.data import cycle_batches
from unlearnkit.methods import METHODS, RunContext

from speed_common import PASSES, StepClock


def bare_step_seconds(model, data, batch_size, warmup=10, steps=60, timer=time.perf_counter):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batches = cycle_batches(data, batch_size, generator=torch.Generator().manual_seed(0))
    model.train()
    clock = StepClock(warmup, steps, clock=timer)
    with clock.running():
        while True:
            x, y = next(batches)
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
            clock.tick()
    return clock.seconds_per_step


def method_step_seconds(model, task, split, method, batch_size, timer=time.perf_counter):
    """Mean seconds per step after the first two, over the whole run; and the run's step count.
    Every ``*batch_size`` field of the method's config is set to ``batch_size``."""
    fields = METHODS.get(method).Config.__dataclass_fields__
    hparams = {name: batch_size for name in fields if name.endswith("batch_size")}
    clock = StepClock(warmup=2, clock=timer)
    with clock.running():
        unlearn(model, task, split, method=method, ctx=RunContext(progress=False, on_step=clock), **hparams)
    return clock.seconds_per_step, clock.index


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--scenario", default="random:0.1")
    parser.add_argument("--methods", default=",".join(m for m in METHODS.names() if m not in ("original",)))
    parser.add_argument("--timer", choices=("cpu", "wall"), default="cpu",
                        help="cpu: this process's CPU seconds (robust to other jobs); wall: elapsed time")
    parser.add_argument("--repeats", type=int, default=3, help="runs per method (best kept), each after a bare timing")
    args = parser.parse_args()
    timer = time.process_time if args.timer == "cpu" else time.perf_counter
    torch.manual_seed(0)
    source = load_data("digits")
    task = ClassificationTask(source.num_classes)
    split = make_split(source, args.scenario)
    model = build_model(args.model, source.input_shape, source.num_classes, seed=0)
    first = bare_step_seconds(model, source.train, args.batch_size, timer=timer)  # also the methods' start point
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, model {args.model}, batch {args.batch_size} "
          f"(every method's *batch_size), {args.scenario}, {args.timer} time, best of {args.repeats}")
    print(f"bare PyTorch step (1 fwd+bwd+SGD): {first * 1e3:.2f} ms at the start; each row's own in 'bare ms'\n")
    print(f"{'method':<14}{'steps':>7}{'ms/step':>10}{'bare ms':>9}{'ratio':>8}{'passes':>8}{'ratio/pass':>12}")
    for method in args.methods.split(","):
        bares, runs = [], []
        for _ in range(args.repeats):  # interleaved: bare, method, bare, method, …
            bares.append(bare_step_seconds(copy.deepcopy(model), source.train, args.batch_size, steps=30, timer=timer))
            runs.append(method_step_seconds(model, task, split, method, args.batch_size, timer))
        bare = min(bares)
        seconds, steps = min(runs, key=lambda run: (run[0] != run[0], run[0]))  # NaN (no steps) last
        passes = PASSES.get(method)
        per_pass = f"{seconds / bare / passes:.2f}" if passes else "-"
        passes_text = f"{passes:.3g}" if passes else "-"
        print(f"{method:<14}{steps:>7}{seconds * 1e3:>10.2f}{bare * 1e3:>9.2f}{seconds / bare:>8.2f}{passes_text:>8}"
              f"{per_pass:>12}")
    print(f"\npeak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
          f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
