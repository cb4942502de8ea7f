"""Unlearning methods on ResNet-18 at CIFAR scale: samples/s and peak memory beside a bare PyTorch loop.

    python benchmarks/vision_scale.py --device cuda                          # batch 256, fp32
    python benchmarks/vision_scale.py --device cuda --amp bf16 --channels-last
    OMP_NUM_THREADS=1 python benchmarks/vision_scale.py --smoke               # CPU, batch 4, 2 steps, every method

Options: ``--device auto|cuda|cuda:N|cpu``, ``--batch-size`` (default 256: the batch of the
Unlearn-Sparse/SalUn recipe the ``cifar10-resnet18`` preset follows), ``--steps`` timed optimizer
steps (default 20) after ``--warmup-steps`` untimed ones (default 5), ``--amp none|bf16``,
``--channels-last``, ``--methods a,b,…`` (default: every registered method but ``original``, which
does not train: what ``bench --preset cifar10-resnet18`` runs), ``--timer auto|wall|cpu`` (auto: this
process's CPU seconds on a CPU device — other jobs on shared cores do not inflate them; elapsed
time on a GPU), ``--seed``, ``--out FILE`` (default ``benchmarks/results/vision_scale-<device>.json``).
``--smoke``: CPU, batch 4, 1 warm-up + 2 timed steps, every method: checks that every row runs (at
this size a step is mostly fixed per-step work, so its ratios say nothing about batch 256).

**The model.** unlearnkit's ``resnet18`` (CIFAR stem: 3×3 conv, stride 1, no max-pool; 11.17 M
parameters for 10 classes), initialised once with ``--seed`` and deep-copied for every row (methods
edit the model they are given), so every row starts from the same weights.

**The data.** CIFAR-shaped random tensors, nothing downloaded: uint8 3×32×32 pixels and labels in
0–9 (seeded), turned into model input by an :class:`ImagePipeline` as CIFAR-10's loader does (scale to
[0, 1], random crop with 4-pixel padding and horizontal flip while training, CIFAR-10's per-channel
normalisation). The forget set holds exactly (warm-up + timed steps) × batch rows and the retain set
as many, so a pass over either is the wanted steps; ``entangle``'s retain set is twice that (half
adjacent, given as ``split.related``, half remote: each phase's pass is the wanted steps). On a GPU
the tensors are kept on the device (each loop gathers its batches there); on CPU they stay where they
are.

**The bare loop.** The plain step on the same model and batch: gather a batch, the same pipeline,
forward, mean cross-entropy, backward, ``torch.optim.SGD`` (lr 0.01, momentum 0.9, weight decay 5e-4)
step, under the same ``--amp`` autocast and ``--channels-last`` format.

**The methods.** Each through ``unlearnkit.methods.base.run_method`` with
``resolve_config(method, kind="image", preset="cifar10-resnet18")`` and every ``*batch_size`` field
set to ``--batch-size`` (``ssd``'s keeps its 64: there it is the chunk of per-example gradients, not a
training batch), ``grad_accum`` 1, and the speed switches as the library runs them
(``RunContext.precision``: ``Precision(amp, channels_last)``). The run stops at the last timed step
(``speed_common.StepClock`` raises there), so the epoch counts only need to be long enough.
Special cases: ``ieu`` runs its phase 1 only (``repair_epochs=0``; the repair is plain fine-tuning);
``entangle`` gives two rows, one per phase (ALM: ``phase2_epochs=0``; W-PGD: ``phase1_epochs=0``),
every batch size set to the batch and ``adjacency="split"``; ``ssd`` takes no optimizer steps: it is
timed whole (per-example Fisher importances over forget + retain, then the dampening) after an
untimed warm-up run on one batch of each, and its per-step figures are per ``--batch-size`` examples.

**Figures.** **samples/s** = batch ÷ seconds per optimizer step (the step's batch, as for the bare
loop; methods that also read a retain batch process more). **× bare** = seconds per step ÷ the bare
loop's. **ratio** = × bare ÷ *passes*, the forward+backward passes a step does by construction, in
bare-step units (a forward alone counts 1/3): ``speed_common.PASSES`` at the image defaults,
entangle's from its config (ALM 2; W-PGD 1 + 2K + K/3), ssd 1 per example, ``random_label`` and
``salun`` 1 (their default ``feed="union"`` mixes forget and retain rows in one batch; ``PASSES``
counts the paired feed), ``idk_dpo`` 3⅔ (the forget rows twice, with the refusal and the true label,
through the model and the frozen reference, plus retain). About 1: the method costs
what its passes cost; above 1: overhead. **setup** = time to the end of the first step less one step
(teacher copies, masks, importances). **Memory**: CUDA: ``torch.cuda.max_memory_allocated`` over the
row (the model included); CPU: the process's peak RSS sampled by ``unlearnkit.bench.memory.PeakMemory``
(a lower bound; the whole process). A row that fails (out of memory, a method that does not apply)
is reported as failed and the run goes on.

Memory to expect at batch 256 on one GPU (estimate, not measured: no GPU was available when this was
written): ResNet-18 at 32×32 keeps ≈ 2–3 GB of fp32 activations per 256-image forward+backward;
methods with two batches per step (retain + forget) or teacher copies hold up to about twice that;
ssd's per-example gradients are 64 × 45 MB ≈ 2.9 GB per chunk: every row fits an 80 GB H100.
"""
from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from unlearnkit import build_model, resolve_config
from unlearnkit.data import TensorData
from unlearnkit.data.cifar import CIFAR10_MEAN, CIFAR10_STD
from unlearnkit.data.sources import DataSource
from unlearnkit.data.split import Split
from unlearnkit.data.transforms import ImagePipeline
from unlearnkit.devices import resolve_device
from unlearnkit.methods import METHODS as REGISTERED
from unlearnkit.methods import RunContext
from unlearnkit.methods.base import run_method
from unlearnkit.methods.precision import Precision
from unlearnkit.seeding import seed_everything
from unlearnkit.tasks.classification import ClassificationTask

from scale_common import (Throughput, add_run_args, check_args, device_info, device_name,
                          entangle_overrides, measure, measure_rows, resolve_timer, row_names,
                          write_results)
from speed_common import PASSES, StepClock, device_sync

PRESET = "cifar10-resnet18"
METHODS = tuple(name for name in REGISTERED.names() if name != "original")
AMP = {"none": None, "bf16": torch.bfloat16}
CLASSES, SHAPE = 10, (3, 32, 32)
BARE_LR, BARE_MOMENTUM, BARE_WEIGHT_DECAY = 0.01, 0.9, 5e-4


# --- data -------------------------------------------------------------------------------------

def make_split(forget_rows: int, retain_rows: int, related_rows: int, channels_last: bool, device,
               seed: int = 0) -> Split:
    """Random uint8 CIFAR-shaped images: forget rows first, then retain rows (the first
    ``related_rows`` of them adjacent, for entangle)."""
    g = torch.Generator().manual_seed(seed)
    n = forget_rows + retain_rows
    x = torch.randint(0, 256, (n, *SHAPE), dtype=torch.uint8, generator=g)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    test_x = torch.randint(0, 256, (CLASSES, *SHAPE), dtype=torch.uint8, generator=g)
    pipeline = ImagePipeline(mean=CIFAR10_MEAN, std=CIFAR10_STD, crop_padding=4, hflip=True,
                             channels_last=channels_last)
    source = DataSource(name="random-cifar", train=TensorData(x.to(device), y.to(device)),
                        test=TensorData(test_x, torch.arange(CLASSES)), num_classes=CLASSES, input_shape=SHAPE,
                        pipeline=pipeline)
    forget = torch.arange(forget_rows)
    retain = torch.arange(forget_rows, n)
    return Split(source, forget, retain, spec="synthetic", related_idx=retain[:related_rows] if related_rows else None)


# --- the rows -----------------------------------------------------------------------------------

_TEMPLATE: dict = {}


def build(args, device):
    """A fresh copy of the seeded model (built once: the initialisation of 11 M parameters is not free)."""
    if args.seed not in _TEMPLATE:
        _TEMPLATE[args.seed] = build_model("resnet18", SHAPE, CLASSES, seed=args.seed)
    return copy.deepcopy(_TEMPLATE[args.seed]).to(device).train()


def bare_loop(model, split: Split, args, device, clock: StepClock) -> None:
    """The plain step: gather, pipeline, forward, cross-entropy, backward, SGD."""
    data, pipeline = split.source.train, split.source.pipeline
    rows = split.forget_idx
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=BARE_LR, momentum=BARE_MOMENTUM, weight_decay=BARE_WEIGHT_DECAY)
    generator = torch.Generator(device=data.x.device).manual_seed(args.seed)
    amp = AMP[args.amp]
    with clock.running():
        for start in range(0, len(rows) - args.batch_size + 1, args.batch_size):
            index = rows[start:start + args.batch_size].to(data.x.device)
            x = pipeline(data.x[index].to(device, non_blocking=True), augment=True, generator=generator)
            y = data.y[index].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            clock.tick()


def method_config(row: str, args):
    method = row.split(":")[0]
    defaults = REGISTERED.get(method).Config()
    overrides = {name: args.batch_size for name in vars(defaults) if name.endswith("batch_size")}
    overrides["grad_accum"] = 1
    if method == "ssd":
        overrides.pop("batch_size", None)  # the per-example gradient chunk: its own default
    if method == "ieu":
        overrides["repair_epochs"] = 0  # phase 1 only; the repair phase is plain fine-tuning
    if method == "entangle":
        overrides = entangle_overrides(row, args.batch_size)
    return resolve_config(method, kind="image", preset=PRESET, overrides=overrides, seed=args.seed)


def passes_for(row: str, config) -> tuple[float, str]:
    """Forward+backward passes per optimizer step in bare-step units (a forward alone = 1/3)."""
    if row == "entangle:alm":
        return 2.0, "forget fwd+bwd + remote fwd+bwd (one backward of the augmented Lagrangian)"
    if row == "entangle:wpgd":
        k = config.basis_batches
        ref = k / 3 if config.alpha > 0 else 0.0
        return 1 + 2 * k + ref, (f"adjacent fwd+bwd + {k} forget fwd+bwd + {k} frozen-reference forward on forget "
                                 f"+ {k} remote fwd+bwd; Gram projection parameter-wise")
    if row == "ssd":
        return 1.0, "one per-example forward+backward (vmap) per example, forget + retain; per batch of examples"
    if row in ("random_label", "salun") and getattr(config, "feed", None) == "union":
        # speed_common.PASSES counts the paired feed (2); the default union feed mixes D_f and D_r in one batch
        return 1.0, "one batch of D_f ∪ D_r (feed=union) fwd+bwd"
    if row == "idk_dpo":
        return 3 + 2 / 3, ("forget rows twice (refusal and true label) fwd+bwd, frozen-reference forward on both, "
                           "retain fwd+bwd")
    value = PASSES.get(row)
    if value is None:
        raise ValueError(f"no pass count for {row} in speed_common.PASSES")
    return float(value), "speed_common.PASSES (image defaults)"


def method_row(row: str, split: Split, warm_split: Split, task, args, device):
    config = method_config(row, args)
    method = row.split(":")[0]
    precision = Precision(amp=args.amp, channels_last=args.channels_last)

    def context(clock=None):
        ctx = RunContext(device=device, progress=False, on_step=clock, precision=precision)
        ctx.generator = seed_everything(config.seed)
        return ctx

    def run(model, clock):
        if method != "ssd":
            with clock.running():
                run_method(method, model, task, split, config, context(clock))
            return None
        run_method(method, build(args, device), task, warm_split, config, context())  # untimed warm-up
        sync = device_sync(device)
        sync()
        start = args.timer_fn()
        run_method(method, model, task, split, config, context())
        sync()
        return args.timer_fn() - start, len(split.forget_idx) + len(split.retain_idx)

    return config, run


# --- arguments and main -------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", help="auto | cuda | cuda:N | cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps")
    parser.add_argument("--warmup-steps", type=int, default=5, help="untimed optimizer steps first")
    parser.add_argument("--amp", choices=sorted(AMP), default="none", help="autocast dtype of every row")
    parser.add_argument("--channels-last", action="store_true", help="channels-last model and batches")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated (default: every registered "
                                                                      "method but original)")
    add_run_args(parser, out_default="vision_scale-<device>.json",
                 smoke_help="CPU, batch 4, 1 warm-up + 2 timed steps, every method: every row runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.device, args.batch_size, args.steps, args.warmup_steps = "cpu", 4, 2, 1
    return check_args(parser, args, METHODS)


def main(argv=None) -> dict:
    args = parse_args(argv)
    started = time.perf_counter()
    device = resolve_device(args.device)
    resolve_timer(args, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    steps = args.warmup_steps + args.steps
    rows = steps * args.batch_size
    data_device = device if device.type == "cuda" else torch.device("cpu")
    split = make_split(rows, rows, 0, args.channels_last, data_device, args.seed)
    entangle_split = make_split(rows, 2 * rows, rows, args.channels_last, data_device, args.seed)
    warm_split = make_split(args.batch_size, args.batch_size, 0, args.channels_last, data_device, args.seed + 1)
    task = ClassificationTask(CLASSES, split.source.pipeline)
    rate = Throughput("samples_per_s", "samples/s", ",.1f", args.batch_size,
                      "samples/s = batch per optimizer step (ssd: examples per second of its whole run)")

    def measure_row(row, run):
        return measure(row, lambda: build(args, device), run, args, device, rate)

    def prepare(row):
        row_split = entangle_split if row.startswith("entangle") else split
        config, run = method_row(row, row_split, warm_split, task, args, device)
        return (config, run, *passes_for(row, config))

    n_params = sum(p.numel() for p in build(args, torch.device("cpu")).parameters())
    header = (f"ResNet-18 (CIFAR stem, {n_params / 1e6:.2f} M params) on {device} ({device_name(device)}); "
              f"torch {torch.__version__}; random uint8 3×32×32, 10 classes, CIFAR-10 pipeline; batch "
              f"{args.batch_size}, amp {args.amp}, channels_last {args.channels_last}; {args.warmup_steps} warm-up + "
              f"{args.steps} timed steps, {args.timer} timer, {torch.get_num_threads()} thread(s)")
    print(header, flush=True)
    results: dict = {
        "script": "benchmarks/vision_scale.py", "argv": sys.argv[1:] if argv is None else list(argv),
        "model": "resnet18 (CIFAR stem)", "parameters": n_params, "input_shape": list(SHAPE), "classes": CLASSES,
        "device": device_info(device),
        "torch": torch.__version__, "python": platform.python_version(), "preset": PRESET,
        "amp": args.amp, "channels_last": args.channels_last, "batch_size": args.batch_size, "steps": args.steps,
        "warmup_steps": args.warmup_steps, "timer": args.timer, "threads": torch.get_num_threads(),
        "smoke": args.smoke, "forget_rows": rows, "retain_rows": rows,
    }

    bare = ("bare PyTorch loop (SGD)", "forward, cross-entropy, backward, SGD step",
            lambda model, clock: bare_loop(model, split, args, device, clock))
    measure_rows(results, measure_row, bare, prepare, row_names(args.methods))

    out = Path(args.out) if args.out else \
        Path(__file__).resolve().parent / "results" / f"vision_scale-{device.type}.json"
    write_results(results, out, header, rate, started)
    return results


if __name__ == "__main__":
    main()
