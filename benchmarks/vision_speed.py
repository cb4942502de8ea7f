"""ResNet-18 at 32×32: a bare PyTorch training loop vs our shared loop, and each method's step cost.

    OMP_NUM_THREADS=1 python benchmarks/vision_speed.py [--device cpu|cuda] [--batch-size 16] \\
        [--steps 3] [--warmup 1] [--amp none|bf16|fp16] [--channels-last] [--compile] \\
        [--data digits|random|NAME:PATH] [--data-on-device] [--scenario random:0.1] \\
        [--methods ga,uam,...] [--repeats 3] [--timer cpu|wall]

1. ``bare``: the plain training step written out here: a shuffled batch gathered from the
   in-memory tensors, moved to the device, turned into model input by the data's
   :class:`ImagePipeline` (uint8 → float, random crop 4 + flip, normalisation; the same call the
   library makes), forward, mean cross-entropy, backward, SGD (momentum 0.9, weight decay 5e-4).
2. ``loop``: the same steps through ``unlearnkit.methods.training.fit`` (the shared ``run_loop``:
   per-example losses, paired-batch iterator, scheduler, step counter, divergence guard).
   Target (reported, not asserted): loop ≥ 0.9× bare samples/s. (1) and (2) alternate
   ``--repeats`` times; the best of each is kept.
3. Every registered method (but ``original``/``retrain``) through ``unlearnkit.unlearn`` at its
   defaults, every ``*batch_size`` field set to ``--batch-size`` (and ``epochs`` raised when the run would be
   shorter than the timed window), on ``--scenario``. ``×plain`` = its seconds per optimizer step
   ÷ the bare step's; ``passes`` = the forward+backward passes it needs by construction
   (``speed_common.PASSES``; "?" unknown); target (reported): ``×plain / passes`` ≤ 1.15. ``setup``
   = seconds before the first step less one step (reference copies, masks, importances).
   A ConfigError (the method does not apply here) prints "n/a".

Timing (``speed_common.StepClock``): after ``--warmup`` optimizer steps, over ``--steps`` steps; on a
GPU the device is synchronised only at those two points. ``--timer cpu`` (default on CPU) counts this
process's CPU seconds instead of elapsed time, so other jobs sharing the cores do not inflate a row
(all the work runs in this process: on CPU, autograd's backward runs on the calling thread). The model is a freshly initialised
ResNet-18 (CIFAR stem), the same initial weights for every row.

Flags (benchmark flags, not yet library options): ``--amp bf16|fp16`` runs every row under
``torch.autocast`` (the bare loop with a ``torch.amp.GradScaler`` for fp16; the shared loop has no
scaler, so its fp16 rows run unscaled — timing only); ``--channels-last`` converts the model and the
pipeline's output to channels-last; ``--compile`` compiles the model in place (``nn.Module.compile``).

Data: ``digits`` (default on CPU): the embedded 8×8 digits upsampled to 32×32 by bilinear
``F.interpolate``, 3 channels by repetition, stored as uint8 like CIFAR (1,437 train images).
``random`` (default on CUDA): 50,000 random uint8 3×32×32 images, 10 classes (CIFAR-10's size).
``NAME:PATH``: any 3×32×32 source ``load_data`` reads (e.g. ``cifar10:/data/cifar-10-batches-py``).

One run on this machine (CPU, 1 thread of a 2-core machine shared with other jobs):

    OMP_NUM_THREADS=1 python benchmarks/vision_speed.py --device cpu --batch-size 16 --steps 3 --warmup 1

    ResNet-18 (CIFAR stem, 11.17 M params) on CPU, 1 thread(s); torch 2.13.0+cpu; data digits (1437 train, uint8 → pipeline), batch 16, amp none, channels_last False, compile False; warm-up 1 steps, timed 3 steps, cpu time

                                 ms/step   samples/s
    bare PyTorch loop              638.0        25.1
    our loop (training.fit)        653.1        24.5
    our loop / bare samples/s = 0.977 (meets the ≥ 0.9 target); runs: bare 646, 645, 638 ms, loop 667, 658, 653 ms

    methods on random:0.1 (144 forget / 1293 retain), ×plain = ms/step ÷ bare ms/step; target ×plain/passes ≤ 1.15
    method           ms/step  ×plain  passes  ×/pass  setup s  steps
    ga                 661.7    1.04       1    1.04      0.0      3
    neggrad_plus      1292.4    2.03       2    1.01      0.1      3
    scrub              859.6    1.35    1.33    1.01      0.0      3
    bad_teacher        943.5    1.48    1.67    0.89      0.1      3
    entangle          6854.2   10.74       -       -     44.1      3
    finetune           617.0    0.97       1    0.97      0.1      3
    graddiff          1263.5    1.98       2    0.99      0.1      3
    idk               1220.4    1.91       2    0.96      0.0      3
    ieu               1274.3    2.00       2    1.00      0.0      3
    l1_sparse          645.1    1.01       1    1.01      0.0      3
    lur               3101.7    4.86       4    1.22      0.0      3 !
    npo               1617.5    2.54    2.33    1.09      0.0      3
    simnpo            1402.8    2.20       2    1.10      0.1      3
    uam               2106.2    3.30       3    1.10      0.2      3
    mox               1634.9    2.56    2.33    1.10      0.0      3
    random_label      1438.3    2.25       2    1.13      0.1      3
    rmu               1570.7    2.46    2.33    1.06      0.9      3
    rosu              3327.0    5.22       4    1.30      0.0      3 !
    salun             1289.7    2.02       2    1.01      6.1      3
    ssd           n/a (no optimizer steps; the whole run took 218.6 s)

    peak RSS 2757 MiB; load average (1 min) 1.02; 405 s in all

(The ssd row is from a later ``--methods ssd`` run, once the script printed a whole-run time.)

Reading it: our loop does the same operators as the bare loop (torch.profiler: identical op counts
and times within noise), at 0.98× its samples/s here. ``lur``'s 1.22 per pass is the price of its
double backward (an independent second-order step written with ``torch.func.functional_call``
costs 4.7 plain steps on the same model); ``rosu``'s extra ≈ 0.5 plain step over ``uam`` + 1 pass
is parameter-space work (Gram matrices of flattened 11 M-parameter gradients, 3 per step), a cost
per step that does not grow with the batch, so it shrinks at GPU batch sizes. ``ssd`` takes no
optimizer steps: its 219 s are per-example Fisher importances over the 1,437 training images
(≈ 340 plain steps of 16, i.e. ≈ 3.8× a batched forward+backward per example).
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

from unlearnkit import ClassificationTask, DataSource, build_model, load_data, make_split, unlearn
from unlearnkit.data import TensorData
from unlearnkit.data.transforms import ImagePipeline
from unlearnkit.errors import ConfigError, DivergenceError
from unlearnkit.methods import METHODS, RunContext, TrainConfig
from unlearnkit.methods.training import fit

from speed_common import PASSES, StepClock, device_sync

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
CIFAR_AUGMENT = dict(crop_padding=4, hflip=True)


# --- data -------------------------------------------------------------------------------------

def _uint8_source(name, train_x, train_y, test_x, test_y, channels_last) -> DataSource:
    """A CIFAR-like source: uint8 [N, 3, 32, 32] pixels, per-channel mean/std of the training set."""
    scaled = train_x.float().div(255)
    mean = tuple(scaled.mean(dim=(0, 2, 3)).tolist())
    std = tuple(scaled.std(dim=(0, 2, 3)).clamp(min=1e-3).tolist())
    pipeline = ImagePipeline(mean=mean, std=std, channels_last=channels_last, **CIFAR_AUGMENT)
    return DataSource(name=name, train=TensorData(train_x, train_y), test=TensorData(test_x, test_y),
                      num_classes=int(train_y.max()) + 1, input_shape=(3, 32, 32), pipeline=pipeline)


def _upsampled(x: torch.Tensor) -> torch.Tensor:
    """Digits [N, 1, 8, 8] in [0, 1] → uint8 [N, 3, 32, 32]."""
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    return x.mul(255).round().clamp(0, 255).to(torch.uint8)


def load_source(spec: str, channels_last: bool) -> DataSource:
    if spec == "digits":
        digits = load_data("digits")
        return _uint8_source("digits32", _upsampled(digits.train.x), digits.train.y,
                             _upsampled(digits.test.x), digits.test.y, channels_last)
    if spec == "random":
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (50_000 + 1_000, 3, 32, 32), dtype=torch.uint8, generator=g)
        y = torch.randint(0, 10, (len(x),), generator=g)
        return _uint8_source("random32", x[:50_000], y[:50_000], x[50_000:], y[50_000:], channels_last)
    source = load_data(spec)
    if tuple(source.input_shape) != (3, 32, 32):
        raise SystemExit(f"--data {spec}: need 3×32×32 images, got {source.input_shape}")
    if source.pipeline is not None and channels_last:
        p = source.pipeline
        source.pipeline = ImagePipeline(p.mean, p.std, p.crop_padding, p.hflip, channels_last=True)
    return source


def to_device(source: DataSource, device: torch.device) -> None:
    """Keep the whole training set on the device (``--data-on-device``): batches are gathered there."""
    source.train = TensorData(source.train.x.to(device), source.train.y.to(device))


# --- the bare loop ------------------------------------------------------------------------------

def bare_loop(model, source: DataSource, args, device, clock: StepClock) -> None:
    """The plain step, written out: gather, pipeline, forward, cross-entropy, backward, SGD."""
    x_all, y_all = source.train.x, source.train.y
    pipeline = source.pipeline
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    amp = AMP_DTYPES[args.amp]
    scaler = torch.amp.GradScaler(device.type) if args.amp == "fp16" else None
    order_gen, augment_gen = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
    model.train()
    with clock.running():
        while True:
            order = torch.randperm(len(y_all), generator=order_gen)
            for start in range(0, len(order) - args.batch_size + 1, args.batch_size):
                rows = order[start:start + args.batch_size]
                x = x_all[rows.to(x_all.device)].to(device, non_blocking=True)
                y = y_all[rows.to(y_all.device)].to(device, non_blocking=True)
                x = pipeline(x, augment=True, generator=augment_gen)
                with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                    loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
                clock.tick()


# --- our loop and the methods -----------------------------------------------------------------

def autocast(args, device):
    amp = AMP_DTYPES[args.amp]
    return torch.autocast(device.type, dtype=amp, enabled=amp is not None)


def epochs_for(steps_needed: int, examples: int, batch_size: int) -> int:
    return max(1, math.ceil(steps_needed / max(1, math.ceil(examples / batch_size))))


def our_loop(model, task, source, args, device, clock: StepClock) -> None:
    config = TrainConfig(batch_size=args.batch_size, lr=0.01,
                         epochs=epochs_for(args.warmup + args.steps, len(source.train), args.batch_size))
    ctx = RunContext(device=device, progress=False, on_step=clock)
    with clock.running(), autocast(args, device):
        fit(model, task, source.train, config, ctx)


def time_method(name, model, task, split, args, device, sync):
    """(seconds per step, steps timed, setup seconds) of one method, or a reason it has none."""
    clock = StepClock(args.warmup, args.steps, sync, args.timer_fn)
    needed = args.warmup + args.steps + 1
    defaults = METHODS.get(name).Config()
    hparams = {f: args.batch_size for f in vars(defaults) if f.endswith("batch_size")}   # every batch, one size
    default_epochs = getattr(defaults, "epochs", None)
    if default_epochs is not None:
        hparams["epochs"] = max(default_epochs, epochs_for(needed, len(split.forget), args.batch_size))
    began = args.timer_fn()
    try:
        with clock.running(), autocast(args, device):
            unlearn(model, task, split, method=name, ctx=RunContext(device=device, progress=False, on_step=clock),
                    **hparams)
    except ConfigError as error:
        return f"n/a ({str(error).splitlines()[0][:70]})"
    except DivergenceError:
        return f"diverged after {clock.index} steps"
    if not clock.timed:
        if clock.first is None:
            return f"n/a (no optimizer steps; the whole run took {args.timer_fn() - began:.1f} s)"
        return f"n/a (only {clock.index} steps)"
    setup = clock.first - clock.seconds_per_step if clock.first is not None else float("nan")
    return clock.seconds_per_step, clock.timed, max(setup, 0.0)


# --- report -----------------------------------------------------------------------------------

def prepare_model(source, args, device):
    model = build_model("resnet18", source.input_shape, source.num_classes, seed=0).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if args.compile:
        model.compile()
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 128 on CUDA, 16 on CPU")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 50 on CUDA, 3 on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 10 on CUDA, 1 on CPU)")
    parser.add_argument("--amp", choices=sorted(AMP_DTYPES), default="none")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--data", default=None, help="digits | random | NAME:PATH (default: digits on CPU, random on CUDA)")
    parser.add_argument("--data-on-device", action="store_true", help="keep the training tensors on the device")
    parser.add_argument("--scenario", default="random:0.1")
    parser.add_argument("--timer", choices=("wall", "cpu"), default=None,
                        help="wall: elapsed time; cpu: this process's CPU seconds, robust to other jobs on the cores "
                             "(default: cpu on CPU, wall on CUDA)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating bare/loop runs (best kept)")
    parser.add_argument("--methods", default=",".join(n for n in METHODS.names() if n not in ("original", "retrain")),
                        help="comma-separated; empty: bare vs loop only")
    args = parser.parse_args()
    began = time.perf_counter()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    args.batch_size = args.batch_size or (128 if gpu else 16)
    args.steps = args.steps or (50 if gpu else 3)
    args.warmup = args.warmup if args.warmup is not None else (10 if gpu else 1)
    args.data = args.data or ("random" if gpu else "digits")
    args.timer = args.timer or ("wall" if gpu else "cpu")
    if gpu and args.timer == "cpu":
        raise SystemExit("--timer cpu measures host work only; use wall time on a GPU")
    args.timer_fn = time.process_time if args.timer == "cpu" else time.perf_counter
    if gpu:
        torch.backends.cudnn.benchmark = True
    sync = device_sync(device)

    source = load_source(args.data, args.channels_last)
    if args.data_on_device:
        to_device(source, device)
    task = ClassificationTask(source.num_classes, source.pipeline)
    model = prepare_model(source, args, device)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    name = torch.cuda.get_device_name(device) if gpu else f"CPU, {torch.get_num_threads()} thread(s)"
    print(f"ResNet-18 (CIFAR stem, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params) on {name}; "
          f"torch {torch.__version__}; data {args.data} ({len(source.train)} train, uint8 → pipeline), "
          f"batch {args.batch_size}, amp {args.amp}, channels_last {args.channels_last}, compile {args.compile}; "
          f"warm-up {args.warmup} steps, timed {args.steps} steps, {args.timer} time\n")

    bare_times, loop_times = [], []
    for _ in range(args.repeats):
        model.load_state_dict(initial)
        clock = StepClock(args.warmup, args.steps, sync, args.timer_fn)
        bare_loop(model, source, args, device, clock)
        bare_times.append(clock.seconds_per_step)
        model.load_state_dict(initial)
        clock = StepClock(args.warmup, args.steps, sync, args.timer_fn)
        our_loop(model, task, source, args, device, clock)
        loop_times.append(clock.seconds_per_step)
    bare, loop = min(bare_times), min(loop_times)
    print(f"{'':<26}{'ms/step':>10}{'samples/s':>12}")
    print(f"{'bare PyTorch loop':<26}{bare * 1e3:>10.1f}{args.batch_size / bare:>12.1f}")
    print(f"{'our loop (training.fit)':<26}{loop * 1e3:>10.1f}{args.batch_size / loop:>12.1f}")
    verdict = "meets" if bare / loop >= 0.9 else "MISSES"
    print(f"our loop / bare samples/s = {bare / loop:.3f} ({verdict} the ≥ 0.9 target); "
          f"runs: bare {', '.join(f'{t * 1e3:.0f}' for t in bare_times)} ms, "
          f"loop {', '.join(f'{t * 1e3:.0f}' for t in loop_times)} ms\n")

    methods = [m for m in args.methods.split(",") if m]
    if methods:
        split = make_split(source, args.scenario)
        print(f"methods on {args.scenario} ({len(split.forget)} forget / {len(split.retain)} retain), "
              f"×plain = ms/step ÷ bare ms/step; target ×plain/passes ≤ 1.15")
        print(f"{'method':<14}{'ms/step':>10}{'×plain':>8}{'passes':>8}{'×/pass':>8}{'setup s':>9}{'steps':>7}"
              + (f"{'peak GiB':>10}" if gpu else ""))
    for method in methods:
        model.load_state_dict(initial)
        if gpu:
            torch.cuda.reset_peak_memory_stats(device)
        result = time_method(method, model, task, split, args, device, sync)
        passes = PASSES.get(method, "?")
        passes_text = "-" if passes is None else (passes if passes == "?" else f"{passes:.3g}")
        if isinstance(result, str):
            print(f"{method:<14}{result}")
            continue
        seconds, steps, setup = result
        ratio = seconds / bare
        per_pass = f"{ratio / passes:.2f}" if isinstance(passes, (int, float)) else "-"
        flag = " !" if isinstance(passes, (int, float)) and ratio / passes > 1.15 else ""
        line = (f"{method:<14}{seconds * 1e3:>10.1f}{ratio:>8.2f}{passes_text:>8}{per_pass:>8}{setup:>9.1f}"
                f"{steps:>7}")
        if gpu:
            line += f"{torch.cuda.max_memory_allocated(device) / 2**30:>10.2f}"
        print(line + flag)
        sys.stdout.flush()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
          f"load average (1 min) {load:.2f}; {time.perf_counter() - began:.0f} s in all")


if __name__ == "__main__":
    main()
