"""What the scale scripts share (``llm_scale.py``, ``vision_scale.py``): the row measurement, the
loop over the bare row and the method rows, the arguments both take, the table and the results file.

Import from a script run as ``python benchmarks/<script>.py``. A script supplies what differs: how
a model is built, the bare loop and each method's run, the pass counts and a :class:`Throughput`
(tokens/s for text, samples/s for images).
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from unlearnkit.bench.memory import PeakMemory

from speed_common import StepClock, device_sync

ENTANGLE_ROWS = ("entangle:alm", "entangle:wpgd")  # one row per phase


@dataclass(frozen=True)
class Throughput:
    """A row's throughput: ``per_step`` items (tokens, samples) per optimizer step, stored in the
    results under ``key``, shown in the table under ``label`` formatted with ``spec``; ``note``
    says what it counts, under the table."""
    key: str
    label: str
    spec: str
    per_step: int
    note: str


# --- measuring ----------------------------------------------------------------------------------

def cleanup(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def resolve_timer(args, device: torch.device) -> None:
    """Settle ``args.timer`` (auto: cpu on a CPU device, else wall) and set ``args.timer_fn``."""
    if args.timer == "auto":
        args.timer = "cpu" if device.type == "cpu" else "wall"
    if args.timer == "cpu" and device.type != "cpu":
        raise SystemExit("--timer cpu counts this process's CPU seconds: it cannot time work on a GPU")
    args.timer_fn = time.process_time if args.timer == "cpu" else time.perf_counter


def measure(row: str, build: Callable[[], torch.nn.Module], run, args, device: torch.device,
            rate: Throughput) -> dict:
    """Time and measure one row: ``run(model, clock)`` on ``build()``, a freshly built model.

    ``run`` returns None when ``clock`` timed its steps, or ``(seconds, items)`` when it timed the
    whole run itself (a method without optimizer steps): the row's figures are then per
    ``rate.per_step`` items."""
    cleanup(device)
    result: dict = {"row": row, "method": row.split(":")[0]}
    clock = StepClock(args.warmup_steps, args.steps, device_sync(device), args.timer_fn)
    model, peak = None, None
    began = time.perf_counter()
    try:
        model = build()
        peak = PeakMemory(device)
        with peak:
            whole = run(model, clock)
    except Exception as exc:  # a benchmark reports, it does not stop (out of memory, a method that does not apply)
        message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        result.update(status="failed", error=f"{type(exc).__name__}: {message}")
        whole = None
    finally:
        if peak is not None:
            result["memory"] = peak.metrics()  # a failed row's too: how far it got (e.g. before running out)
        del model
        cleanup(device)
    result["wall_s"] = time.perf_counter() - began
    if "status" not in result:
        if whole is not None:  # (seconds, examples) of the whole run
            seconds, examples = whole
            per_step = seconds * rate.per_step / examples
            result.update(status="ok", seconds_per_step=per_step, steps_timed=None, examples=examples,
                          **{rate.key: examples / seconds}, setup_s=None, seconds=seconds)
        elif not clock.timed:
            result.update(status="failed", error=f"only {clock.index} optimizer steps (wanted "
                                                 f"{args.warmup_steps + args.steps})")
        else:
            per_step = clock.seconds_per_step
            result.update(status="ok", seconds_per_step=per_step, steps_timed=clock.timed,
                          **{rate.key: rate.per_step / per_step},
                          setup_s=max(0.0, clock.first - per_step) if clock.first is not None else None)
    memory = result.get("memory", {})
    result["peak_memory_mib"] = memory.get("peak_gpu_mib", memory.get("peak_rss_mib"))
    return result


def row_names(methods: list[str]) -> list[str]:
    """The table's rows for ``methods``: one each, entangle two (one per phase)."""
    return [r for m in methods for r in (list(ENTANGLE_ROWS) if m == "entangle" else [m])]


def entangle_overrides(row: str, batch_size: int) -> dict:
    """entangle's config overrides for one of its rows: that phase alone (one epoch), every batch
    ``batch_size``, the adjacent set taken from ``split.related``."""
    batches = {key: batch_size for key in ("p1_remote_batch", "p1_forget_batch", "p2_adjacent_batch",
                                           "p2_forget_batch", "p2_remote_batch")}
    phase = {"entangle:alm": {"phase1_epochs": 1, "phase2_epochs": 0},
             "entangle:wpgd": {"phase1_epochs": 0, "phase2_epochs": 1}}[row]
    return {"epochs": 0, "grad_accum": 1, "adjacency": "split", **batches, **phase}


def measure_rows(results: dict, measure_row: Callable[[str, Callable], dict], bare: tuple[str, str, Callable],
                 prepare: Callable[[str], tuple], rows: list[str]) -> None:
    """Measure the bare row, then each method row, into ``results["bare"]`` and ``results["methods"]``,
    printing each as it ends.

    ``measure_row(row, run)``: :func:`measure` with the script's model and throughput. ``bare``:
    (row name, how its passes are counted, its run). ``prepare(row)``: (the method's config, its run,
    passes, how they were counted); a row whose ``prepare`` raises is reported as failed."""
    name, counted, run = bare
    result = measure_row(name, run)
    result.update(method="bare", passes=1.0, passes_counted=counted)
    if result["status"] == "ok":
        result.update(x_bare=1.0, ratio=1.0)
    results["bare"] = result
    print(f"  bare: {result['status']} {fmt(result.get('seconds_per_step'), '.4f')} s/step "
          f"{result.get('error', '')}", flush=True)
    bare_step = result.get("seconds_per_step")

    results["methods"] = {}
    for row in rows:
        try:
            config, run, passes, counted = prepare(row)
        except Exception as exc:  # e.g. a config the method rejects
            result = {"row": row, "method": row.split(":")[0], "status": "failed",
                      "error": f"{type(exc).__name__}: {exc}", "peak_memory_mib": None}
        else:
            result = measure_row(row, run)
            result.update(passes=passes, passes_counted=counted, config=config.to_dict())
            if result["status"] == "ok" and bare_step:
                result["x_bare"] = result["seconds_per_step"] / bare_step
                result["ratio"] = result["x_bare"] / passes
        results["methods"][row] = result
        print(f"  {row}: {result['status']} {fmt(result.get('seconds_per_step'), '.4f')} s/step "
              f"{result.get('error', '')}", flush=True)


# --- arguments ----------------------------------------------------------------------------------

def add_run_args(parser: argparse.ArgumentParser, out_default: str, smoke_help: str) -> None:
    """``--timer``, ``--seed``, ``--out`` (default ``benchmarks/results/<out_default>``), ``--smoke``."""
    parser.add_argument("--timer", choices=("auto", "wall", "cpu"), default="auto",
                        help="wall: elapsed seconds; cpu: this process's CPU seconds, robust to other jobs on "
                             "shared cores (CPU runs only); auto: cpu on a CPU device, else wall")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help=f"JSON results file (default benchmarks/results/{out_default})")
    parser.add_argument("--smoke", action="store_true", help=smoke_help)


def check_args(parser: argparse.ArgumentParser, args, known: tuple[str, ...], also_bad: bool = False,
               also_need: str = ""):
    """Split ``--methods`` into a list of names from ``known``; refuse fewer than one step, warm-up
    step or row per batch (``also_bad``: a script's own bad value, ``also_need`` its requirement)."""
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(known))
    if unknown:
        parser.error(f"--methods: unknown {unknown}; choose from {', '.join(known)}")
    if args.steps < 1 or args.warmup_steps < 1 or args.batch_size < 1 or also_bad:
        parser.error("need --steps >= 1, --warmup-steps >= 1 (the first step carries the set-up), "
                     f"--batch-size >= 1{also_need}")
    args.methods = methods
    return args


# --- report -------------------------------------------------------------------------------------

def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info(device: torch.device) -> dict:
    """The results' ``device`` entry."""
    return {"type": device.type, "name": device_name(device), "spec": str(device)}


def fmt(value, spec: str, missing: str = "–") -> str:
    return missing if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)


def table(results: dict, rate: Throughput) -> str:
    """The markdown table: the bare row, then the method rows (a row timed whole says so in its status)."""
    mem = "peak GPU MiB" if results["device"]["type"] == "cuda" else "peak RSS MiB"
    lines = [f"| row | passes | ms/step | {rate.label} | × bare | ratio (× bare / passes) | {mem} | setup s "
             "| status |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in [results["bare"]] + list(results["methods"].values()):
        ok = row["status"] == "ok"
        status = "ok" if ok else f"failed: {row.get('error', '')[:90]}".replace("|", "/")
        if ok and "examples" in row:
            status = f"ok (whole run, {row['examples']} examples)"
        lines.append(
            f"| {row['row']} | {fmt(row.get('passes'), '.2f')} | "
            f"{fmt(row.get('seconds_per_step') and row['seconds_per_step'] * 1000, '.1f')} | "
            f"{fmt(row.get(rate.key), rate.spec)} | {fmt(row.get('x_bare'), '.2f')} | "
            f"{fmt(row.get('ratio'), '.2f')} | {fmt(row.get('peak_memory_mib'), ',.0f')} | "
            f"{fmt(row.get('setup_s'), '.2f')} | {status} |")
    return "\n".join(lines)


def write_results(results: dict, out: Path, header: str, rate: Throughput, started: float) -> None:
    """Add the total time and the table to ``results``, write them to ``out`` as JSON and print the table."""
    results["total_wall_s"] = time.perf_counter() - started
    results["table"] = table(results, rate)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print()
    print(header + "\n")
    print(results["table"])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nratio = (s/step ÷ bare s/step) ÷ passes; {rate.note}. {results['total_wall_s']:.0f} s in all; "
          f"load average (1 min) {load:.2f} on {os.cpu_count()} cores. Results: {out}")
