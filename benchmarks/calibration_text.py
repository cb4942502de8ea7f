"""The text calibration set: do the text defaults hold on language models unlearnkit did not train?

    OMP_NUM_THREADS=1 python benchmarks/calibration_text.py table --out benchmarks/results/calibration-text.json
    OMP_NUM_THREADS=1 python benchmarks/calibration_text.py table --uncalibrated --out benchmarks/results/calibration-text-uncalibrated.json
    OMP_NUM_THREADS=1 python benchmarks/calibration_text.py table --methods rmu --update --out benchmarks/results/calibration-text.json

The calibration set (:data:`ORIGINALS`), all on tofu-mini's data and its ``forget05`` split (split seed 0):

* ``unlearnkit`` — tofu-mini's own original (the benchmark's cached model: tiny-llama, hidden 128, 2
  layers, unlearnkit's text recipe ``LMTrainConfig``: AdamW 3e-3, warm-up + linear decay, 30 epochs);
* two tiny Llamas of another width trained here by a plain PyTorch loop that never calls unlearnkit's
  training code (only the data's encoding and the answer-token loss of the task), with another
  optimizer and schedule (:data:`_RECIPES`);
* ``smollm2-135m-instruct`` — the real-model benchmark's target (``benchmarks/real_llm.py``: SmolLM2-135M-
  Instruct finetuned on 8 tofu-mini people, ``forget10`` = one person), whose figures are read from the
  committed ``docs/results/real_llm.json`` (that benchmark runs every method at the *pretrained* defaults,
  ``scale="pretrained"``, where the calibrated layer does not apply; re-running it here would take 30 min).

The criterion for text (ours, the analogue of the image one): no method diverges; every forgetting
method (all but the reference rows) raises forget quality at least 100 × above that model's own
original (the issue's "moves the forget set" bar) while keeping model utility ≥ 0.9 × the original's
(the analogue of RA ≥ 90). The audits use the **validation** half of the held-out data, as ``tune``'s
trials do; forget quality compares with one retrain reference (unlearnkit's recipe on the retain set),
as the tofu audit does with TOFU's retain model.

``table`` runs every text method at its resolved defaults for tofu-mini (``calibrated=True``: the
``tofu-mini`` study's values where it has them; ``--uncalibrated``: the text kind's defaults before
the study) on every trained model, prints method × model, and writes the figures to ``--out``;
``docs/gen_calibration.py`` makes the docs table from that file.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

import unlearnkit as uk
from unlearnkit.audits.base import AuditContext
from unlearnkit.bench.holdout import holdout_halves
from unlearnkit.bench.originals import original_model
from unlearnkit.bench.workload import workload_for
from unlearnkit.data.dataset import iterate_batches
from unlearnkit.errors import DivergenceError
from unlearnkit.methods import RunContext
from unlearnkit.models.hf import build_lm

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REAL_LLM = ROOT / "docs" / "results" / "real_llm.json"
DATA = "tofu-mini"
SCENARIO = "forget05"
NOT_FORGETTING = ("original", "retrain")
FQ_FACTOR = 100.0
UTILITY_FRACTION = 0.9

ORIGINALS = {
    "unlearnkit": "tofu-mini's original: tiny-llama hidden 128, 2 layers; unlearnkit's text recipe (AdamW 3e-3, "
                  "wd 0.01, 5 % warm-up + linear decay, batch 32, 30 epochs)",
    "llama-wide-cosine": "tiny-llama hidden 192, 3 layers, 6 heads; plain loop: AdamW lr 2e-3, wd 0.1, cosine "
                         "decay, batch 16, 20 epochs",
    "llama-narrow-adam": "tiny-llama hidden 96, 2 layers, 4 heads; plain loop: Adam lr 4e-3 constant, no "
                         "clipping, batch 64, 60 epochs",
    "smollm2-135m-instruct": "SmolLM2-135M-Instruct finetuned on 8 tofu-mini people (benchmarks/real_llm.py; "
                             "forget10 = 1 person), at the pretrained defaults; figures from docs/results/real_llm.json",
}
_RECIPES = {
    "llama-wide-cosine": dict(hidden=192, layers=3, heads=6, optimizer="adamw", lr=2e-3, weight_decay=0.1,
                              schedule="cosine", batch=16, epochs=20),
    "llama-narrow-adam": dict(hidden=96, layers=2, heads=4, optimizer="adam", lr=4e-3, weight_decay=0.0,
                              schedule="constant", batch=64, epochs=60),
}


def train_outside(name: str, source, task, seed: int = 1) -> torch.nn.Module:
    """One calibration original: a tiny Llama trained by a plain PyTorch loop (not unlearnkit's ``fit``)."""
    recipe = _RECIPES[name]
    model = build_lm("tiny-llama", source.tokenizer, hidden=recipe["hidden"], layers=recipe["layers"],
                     heads=recipe["heads"], seed=seed)
    cls = torch.optim.AdamW if recipe["optimizer"] == "adamw" else torch.optim.Adam
    optimizer = cls(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    steps = recipe["epochs"] * math.ceil(len(source.train) / recipe["batch"])
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps) if recipe["schedule"] == "cosine"
                else torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0))
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(recipe["epochs"]):
        for batch in iterate_batches(source.train, recipe["batch"], shuffle=True, generator=generator):
            optimizer.zero_grad()
            task.loss(model, task.trim(batch)).mean().backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def _cache_path(name: str) -> Path:
    return Path.home() / ".cache" / "unlearnkit" / "calibration-text" / f"{name}-v1.safetensors"


def calibration_set(source, task) -> dict[str, torch.nn.Module]:
    """The trained originals of :data:`ORIGINALS` (SmolLM2 is read from its benchmark's results)."""
    models = {"unlearnkit": original_model(source, DATA, "tiny-llama", task, uk.resolve_recipe(kind="text"),
                                           RunContext())}
    for name, recipe in _RECIPES.items():
        path = _cache_path(name)
        if path.exists():
            model = build_lm("tiny-llama", source.tokenizer, hidden=recipe["hidden"], layers=recipe["layers"],
                             heads=recipe["heads"], seed=1)
            models[name] = uk.load_weights(model, path).eval()
            continue
        start = time.time()
        models[name] = train_outside(name, source, task)
        path.parent.mkdir(parents=True, exist_ok=True)
        uk.save_weights(models[name], path, overwrite=True)  # our own cache file
        print(f"  trained {name} in {time.time() - start:.0f} s", flush=True)
    return models


def meets(metrics: dict | None, original: dict, method: str) -> bool:
    """The text criterion for one run (see the module docstring)."""
    if metrics is None:
        return False
    if metrics["model_utility"] < UTILITY_FRACTION * original["model_utility"]:
        return False
    if method in NOT_FORGETTING:
        return True
    return metrics["forget_quality"] >= FQ_FACTOR * original["forget_quality"]


class Bench:
    """tofu-mini, its forget05 split on the validation half, the trained originals and the retrain reference."""

    def __init__(self):
        source = uk.load_data(DATA)
        self.task = uk.make_task(source)
        self.work = workload_for(source)
        validation, _ = holdout_halves(source, seed=0)
        self.split = uk.make_split(validation, SCENARIO, seed=0)
        self.models = calibration_set(source, self.task)
        start = time.time()
        self.retrain = uk.unlearn(self.models["unlearnkit"], self.task, self.split, method="retrain")
        print(f"  retrain reference in {time.time() - start:.0f} s", flush=True)
        self.originals = {name: self.audit(model) for name, model in self.models.items()}

    def audit(self, model) -> dict:
        ctx = AuditContext(seed=0, retrain=self.retrain, options=dict(self.work.audit_options))
        metrics = uk.audit(model, self.task, self.split, ["tofu"], ctx=ctx)
        return {k: metrics[k] for k in ("forget_quality", "model_utility", "forget_prob", "forget_truth_ratio")}

    def run(self, method: str, model_name: str, config) -> dict | None:
        try:
            out = uk.unlearn(self.models[model_name], self.task, self.split, method=method, config=config)
        except DivergenceError:
            return None
        metrics = self.audit(out)
        return metrics if all(math.isfinite(v) for v in metrics.values()) else None


def smollm2_rows() -> tuple[dict, dict]:
    """(original's figures, {method: figures}) of the committed real-model benchmark."""
    rows = {r["method"]: r for r in json.loads(REAL_LLM.read_text())["table"]}
    pick = lambda r: {k: r[k] for k in ("forget_quality", "model_utility", "forget_prob", "forget_truth_ratio")}  # noqa: E731
    return pick(rows["original"]), {m: pick(r) if r["status"] == "ok" else None for m, r in rows.items()
                                    if m not in NOT_FORGETTING}


def table(bench: Bench, methods: list[str], calibrated: bool) -> dict:
    rows = {}
    for method in methods:
        config = uk.resolve_config(method, kind="text", data=DATA, calibrated=calibrated)
        runs, start = {}, time.time()
        for name in bench.models:
            runs[name] = bench.run(method, name, config)
        ok = {m: meets(runs[m], bench.originals[m], method) for m in runs}
        passed = sum(ok.values())
        rows[method] = {"config": config.to_dict(), "runs": runs, "meets": ok, "passed": passed, "cells": len(runs)}
        print(f"  {method}: meets {passed}/{len(runs)} ({time.time() - start:.0f} s)", flush=True)
    return rows


def add_smollm2(result: dict) -> None:
    """The real-model benchmark's rows as one more column (its own defaults: scale="pretrained")."""
    original, rows = smollm2_rows()
    name = "smollm2-135m-instruct"
    result["originals"][name] = original
    for method, row in result["rows"].items():
        metrics = rows.get(method)
        row["runs"][name] = metrics
        if method in rows:
            row["meets"][name] = meets(metrics, original, method)
            row["passed"] += row["meets"][name]
            row["cells"] += 1


def format_table(result: dict) -> str:
    models = list(result["originals"])
    lines = ["| method | " + " | ".join(models) + " | meets |", "|" + "---|" * (len(models) + 2)]
    lines.append("| original | " + " | ".join(f"{o['forget_quality']:.1e} / {o['model_utility']:.2f}"
                                             for o in result["originals"].values()) + " | |")
    for method, row in result["rows"].items():
        cells = []
        for m in models:
            r = row["runs"].get(m, "absent")
            if r == "absent":
                cells.append("–")
            elif r is None:
                cells.append("diverged ✗")
            else:
                mark = "" if meets(r, result["originals"][m], method) else " ✗"
                cells.append(f"{r['forget_quality']:.1e} / {r['model_utility']:.2f}{mark}")
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {row['passed']}/{row['cells']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tab = sub.add_parser("table", help="every text method at its defaults on every model")
    tab.add_argument("--methods", default="", help="comma-separated (default: the text benchmark's)")
    tab.add_argument("--uncalibrated", action="store_true", help="without the calibrated layer")
    tab.add_argument("--out", help="write the figures here (JSON)")
    tab.add_argument("--update", action="store_true",
                     help="replace only the rows of --methods in an existing --out file (its other rows are kept; "
                          "the command is appended to its 'updates')")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.time()
    source_methods = [m for m in workload_for(uk.load_data(DATA)).methods if m not in NOT_FORGETTING]
    methods = args.methods.split(",") if args.methods else source_methods
    bench = Bench()
    rows = table(bench, methods, calibrated=not args.uncalibrated)
    result = {"script": "benchmarks/calibration_text.py", "argv": sys.argv[1:] if argv is None else argv,
              "calibrated": not args.uncalibrated, "data": DATA, "scenario": SCENARIO, "half": "validation",
              "criterion": {"forget_quality_factor": FQ_FACTOR, "utility_fraction": UTILITY_FRACTION},
              "models": ORIGINALS, "originals": bench.originals, "rows": rows}
    add_smollm2(result)
    result["seconds"] = round(time.time() - start, 1)
    result["machine"] = {"cpus": torch.get_num_threads(), "platform": platform.platform()}
    if args.update:
        if not args.out or not Path(args.out).exists():
            parser.error("--update needs an existing --out file")
        old = json.loads(Path(args.out).read_text())
        if old["calibrated"] != result["calibrated"] or old["originals"] != result["originals"]:
            parser.error(f"{args.out} was measured with other settings or originals: rerun it whole")
        old["rows"].update(result["rows"])
        old.setdefault("updates", []).append({"argv": result["argv"], "seconds": result["seconds"],
                                              "methods": list(result["rows"])})
        result = old
    print(format_table(result))
    print(f"{time.time() - start:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
