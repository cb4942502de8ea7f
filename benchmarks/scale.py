"""Scale-out throughput: samples/s (images) and answer tokens/s (language model) with 1 and 2
processes, through the same ``unlearnkit.unlearn`` code path (``unlearnkit.distributed``).

    OMP_NUM_THREADS=1 UNLEARNKIT_CACHE=/tmp/ukcache python benchmarks/scale.py [--procs 1,2] [--epochs 2]

The script launches itself through ``torch.distributed.run --standalone`` once per process count
(``ACCELERATE_USE_CPU=true`` without a GPU; one torch thread per process). Each run times, after a
warm-up run, ``finetune`` (one backward per step) and ``rosu`` (a projection method: three
backward passes per step, each gradient all-reduced, plus the loop's reduction) over the same
global batches:

- images: digits ``class:0``, the ``cnn`` (and ``resnet18`` on a GPU), global batch ``--batch-size``;
- language model: ``tofu-mini`` ``forget10``, the tofu-mini ``tiny-llama`` (hidden 128, 2 layers),
  global batch 32; tokens = answer tokens the optimizer steps consumed (``RunContext.targets_seen``).

Samples/s and tokens/s count the global batch (all processes). With a GPU, the runs use
``cuda:LOCAL_RANK`` and the table names the GPU; 2 processes need 2 GPUs (NCCL refuses two ranks on
one device), so one GPU gives the 1-process rows only. Models are freshly initialised: this measures
throughput, not forgetting.

Measured here (2 shared CPU cores, torch 2.13 CPU, gloo; the two processes also share those cores,
so this shows the overhead of the collectives, not a speed-up):

    OMP_NUM_THREADS=1 UNLEARNKIT_CACHE=/tmp/ukcache-dist python benchmarks/scale.py

    CPU: 2 cores, one torch thread per process, gloo; torch 2.13.0+cpu

    | workload | method | unit | 1 proc | 2 proc | 2 vs 1 |
    |---|---|---|---|---|---|
    | cnn / digits | finetune | samples/s | 6,675 | 5,396 | 0.81× |
    | cnn / digits | rosu | samples/s | 3,493 | 2,101 | 0.60× |
    | tiny-llama / tofu-mini | finetune | answer tokens/s | 2,585 | 2,328 | 0.90× |
    | tiny-llama / tofu-mini | rosu | answer tokens/s | 1,260 | 1,111 | 0.88× |

    load average (1 min) at the end: 3.14   (107 s in all; other jobs shared the 2 cores)

An earlier run gave 0.85×, 0.79×, 0.89×, 0.94× (same order): the ratios move by ~0.1–0.2 with the
load. (rosu's samples count both streams' rows.) Not run here: any GPU (none was lent to this task), and
more than one machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch


def _workloads(args):
    """(name, unit, model factory, task, split, method, hyper-parameters) per measured row."""
    from unlearnkit import ClassificationTask, CausalLMTask, build_model, load_data, make_split
    from unlearnkit.models.hf import build_lm

    rows = []
    digits = load_data("digits")
    split = make_split(digits, "class:0")
    task = ClassificationTask(digits.num_classes)
    models = ["cnn"] + (["resnet18"] if torch.cuda.is_available() else [])
    for arch in models:
        make = (lambda arch=arch: build_model(arch, digits.input_shape, digits.num_classes, seed=0))
        for method in ("finetune", "rosu"):
            rows.append((f"{arch} / digits", "samples/s", make, task, split, method,
                         dict(epochs=args.epochs, batch_size=args.batch_size)))
    tofu = load_data("tofu-mini")
    lm_split = make_split(tofu, "forget10")
    lm_task = CausalLMTask(tofu.tokenizer)
    make_lm = (lambda: build_lm("tiny-llama", tofu.tokenizer, seed=0))
    for method in ("finetune", "rosu"):
        rows.append(("tiny-llama / tofu-mini", "answer tokens/s", make_lm, lm_task, lm_split, method,
                     dict(epochs=1, batch_size=32, optimizer="adamw", lr=1e-3)))
    return rows


def worker(args) -> None:
    """One launched process: time every workload; the main process prints one JSON line each."""
    from unlearnkit import distributed, unlearn
    from unlearnkit.methods import RunContext

    torch.set_num_threads(1)
    distributed.init()
    device = distributed.device()
    with distributed.main_first():  # the main process fills the data cache, then the others read it
        workloads = _workloads(args)
    for name, unit, make, task, split, method, hp in workloads:
        model = make().to(device)
        for attempt in ("warm-up", "timed"):
            ctx = RunContext(device=device, progress=False)
            distributed.barrier()
            start = time.perf_counter()
            unlearn(model, task, split, method, ctx=ctx, **(dict(hp, epochs=1) if attempt == "warm-up" else hp))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            distributed.barrier()
            seconds = time.perf_counter() - start
        if distributed.is_main():
            print("RESULT " + json.dumps({"workload": name, "method": method, "unit": unit, "procs": distributed.world_size(),
                                          "seconds": seconds, "targets": ctx.targets_seen,
                                          "rate": ctx.targets_seen / seconds}), flush=True)
    distributed.shutdown()


def launch(procs: int, args) -> list[dict]:
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME=os.environ.get("GLOO_SOCKET_IFNAME", "lo"))
    if not torch.cuda.is_available():
        env["ACCELERATE_USE_CPU"] = "true"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
               __file__, "--worker", "--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{procs} processes failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return [json.loads(line[len("RESULT "):]) for line in done.stdout.splitlines() if line.startswith("RESULT ")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--procs", default=None, help="process counts, e.g. 1,2 (default: 1,2 on CPU; 1..GPUs on GPU)")
    parser.add_argument("--epochs", type=int, default=2, help="image epochs (the LM runs one)")
    parser.add_argument("--batch-size", type=int, default=128, help="global image batch")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    gpus = torch.cuda.device_count()
    procs = [int(p) for p in args.procs.split(",")] if args.procs else ([1, 2] if not gpus else list(range(1, min(gpus, 2) + 1)))
    where = (f"GPU: {torch.cuda.get_device_name(0)} × {gpus}" if gpus
             else f"CPU: {os.cpu_count()} cores, one torch thread per process, gloo")
    print(f"{where}; torch {torch.__version__}\n")
    results = {p: launch(p, args) for p in procs}
    print("| workload | method | unit | " + " | ".join(f"{p} proc" for p in procs) + " | 2 vs 1 |")
    print("|---|---|---|" + "---|" * len(procs) + "---|")
    for i, row in enumerate(results[procs[0]]):
        rates = [results[p][i]["rate"] for p in procs]
        ratio = f"{rates[procs.index(2)] / rates[procs.index(1)]:.2f}×" if 1 in procs and 2 in procs else "-"
        print(f"| {row['workload']} | {row['method']} | {row['unit']} | "
              + " | ".join(f"{r:,.0f}" for r in rates) + f" | {ratio} |")
    print(f"\nload average (1 min) at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
