"""What watching a run costs: the same unlearning run with and without training logs, in one process.

    OMP_NUM_THREADS=1 python benchmarks/logging_overhead.py [--model mlp] [--methods graddiff,neggrad_plus]
        [--epochs 5] [--repeats 7] [--device cpu]

Configurations, each timed ``--repeats`` times, interleaved (so drift hits all of them alike):
``none`` (no callback, no bar: the loop still collects the step's loss and terms for nobody),
``history`` (the in-memory History the benchmark attaches to every cell), ``csv`` (a CSVLogger,
one flushed row per step), ``all`` (History + CSVLogger + ConsoleLogger + the tqdm bar with its
loss postfix, the bar written to /dev/null). Prints the median seconds per optimizer step and its
ratio to ``none``, then the reporting's own cost per step (``StepCounter.done`` on a dummy loop).
The smallest model (``mlp``) shows the overhead at its largest: its steps are the cheapest, so a
fixed per-step cost weighs most.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from unlearnkit import ClassificationTask, build_model, load_data, make_split, unlearn
from unlearnkit.methods import ConsoleLogger, CSVLogger, History, RunContext


def run_once(model, task, split, method, epochs, device, mode, folder: Path, index: int) -> tuple[float, int]:
    history = History()
    callbacks, progress = [], False
    if mode in ("history", "all"):
        callbacks.append(history)
    if mode in ("csv", "all"):
        callbacks.append(CSVLogger(folder / f"{method}-{mode}-{index}.csv"))
    if mode == "all":
        callbacks.append(ConsoleLogger(every_s=5.0))
        progress = True
    steps = []
    ctx = RunContext(device=torch.device(device), callbacks=callbacks, progress=progress,
                     on_step=lambda m, s: steps.append(s))
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        unlearn(model, task, split, method, ctx=ctx, epochs=epochs)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return seconds, len(steps)


def reporting_microseconds(mode: str, folder: Path, steps: int = 20000) -> float:
    """The reporting alone: ``StepCounter.done`` with a loss and two logged terms (CPU tensors), per step."""
    from unlearnkit.methods.loop import StepCounter

    callbacks = []
    if mode in ("history", "all"):
        callbacks.append(History())
    if mode in ("csv", "all"):
        callbacks.append(CSVLogger(folder / f"micro-{mode}.csv"))
    if mode == "all":
        callbacks.append(ConsoleLogger(every_s=5.0))
    ctx = RunContext(callbacks=callbacks, progress=mode == "all")
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss, forget, retain = torch.tensor(1.0), torch.tensor(-2.0), torch.tensor(3.0)
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        start = time.perf_counter()
        with StepCounter(steps, "micro", model, ctx, optimizer) as counter:
            for _ in range(steps):
                ctx.log("forget", forget)
                ctx.log("retain", retain)
                counter.done(loss)
        return (time.perf_counter() - start) / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--methods", default="graddiff,neggrad_plus")
    parser.add_argument("--scenario", default="class:0")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    data = load_data("digits")
    task = ClassificationTask(data.num_classes)
    split = make_split(data, args.scenario)
    model = build_model(args.model, data.input_shape, data.num_classes, seed=0).to(args.device)
    modes = ("none", "history", "csv", "all")
    print(f"digits {args.scenario}, model {args.model}, {args.epochs} epochs, device {args.device}, "
          f"torch threads {torch.get_num_threads()}, median of {args.repeats}")
    print(f"{'method':<14}{'mode':<9}{'steps':>6}{'ms/step':>10}{'ratio':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods.split(","):
            run_once(model, task, split, method, 1, args.device, "all", Path(tmp), -1)  # warm-up
            times: dict[str, list[float]] = {m: [] for m in modes}
            steps = 0
            for r in range(args.repeats):
                for mode in modes:
                    seconds, steps = run_once(model, task, split, method, args.epochs, args.device, mode, Path(tmp), r)
                    times[mode].append(seconds / steps)
            base = statistics.median(times["none"])
            for mode in modes:
                median = statistics.median(times[mode])
                print(f"{method:<14}{mode:<9}{steps:>6}{1000 * median:>10.3f}{median / base:>8.3f}")
        print("reporting alone (StepCounter.done + 2 terms, 20k steps), µs/step: " + ", ".join(
            f"{mode} {reporting_microseconds(mode, Path(tmp)):.1f}" for mode in modes))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
