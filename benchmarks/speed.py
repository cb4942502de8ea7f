"""Per-step cost of each method against a bare PyTorch loop, in the same run.

    OMP_NUM_THREADS=1 python benchmarks/speed.py [--model cnn] [--batch-size 64] [--methods ga,finetune,...]

The bare loop is the cheapest possible training step on the same model and batch size:
forward, cross-entropy, backward, SGD step — one "pass". Each method's time per optimizer
step is divided by it; the `passes` column says how many forward+backward passes the method
needs by construction, so `ratio / passes` near 1 means no overhead beyond the algorithm.
Peak resident memory (ru_maxrss) is printed for the whole process.
"""
from __future__ import annotations

import argparse
import resource

import torch
import torch.nn.functional as F

from unlearnkit import ClassificationTask, build_model, load_data, make_split, unlearn
from unlearnkit.data import cycle_batches
from unlearnkit.methods import METHODS, RunContext

from speed_common import PASSES, StepClock


def bare_step_seconds(model, data, batch_size, warmup=10, steps=60):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batches = cycle_batches(data, batch_size, generator=torch.Generator().manual_seed(0))
    model.train()
    clock = StepClock(warmup, steps)
    with clock.running():
        while True:
            x, y = next(batches)
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
            clock.tick()
    return clock.seconds_per_step


def method_step_seconds(model, task, split, method):
    """Mean seconds per step after the first two, over the whole run; and the run's step count."""
    clock = StepClock(warmup=2)
    with clock.running():
        unlearn(model, task, split, method=method, ctx=RunContext(progress=False, on_step=clock))
    return clock.seconds_per_step, clock.index


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--scenario", default="random:0.1")
    parser.add_argument("--methods", default=",".join(m for m in METHODS.names() if m not in ("original",)))
    args = parser.parse_args()
    torch.manual_seed(0)
    source = load_data("digits")
    task = ClassificationTask(source.num_classes)
    split = make_split(source, args.scenario)
    model = build_model(args.model, source.input_shape, source.num_classes, seed=0)
    bare = bare_step_seconds(model, source.train, args.batch_size)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, model {args.model}, batch {args.batch_size}")
    print(f"bare PyTorch step (1 fwd+bwd+SGD): {bare * 1e3:.2f} ms\n")
    print(f"{'method':<14}{'steps':>7}{'ms/step':>10}{'ratio':>8}{'passes':>8}{'ratio/pass':>12}")
    for method in args.methods.split(","):
        seconds, steps = method_step_seconds(model, task, split, method)
        passes = PASSES.get(method)
        per_pass = f"{seconds / bare / passes:.2f}" if passes else "-"
        passes_text = f"{passes:.3g}" if passes else "-"
        print(f"{method:<14}{steps:>7}{seconds * 1e3:>10.2f}{seconds / bare:>8.2f}{passes_text:>8}{per_pass:>12}")
    print(f"\npeak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
