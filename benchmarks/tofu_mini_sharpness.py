"""How sharp tofu-mini is: does the trained original *know* the facts, or only the answer strings?

    OMP_NUM_THREADS=1 python benchmarks/tofu_mini_sharpness.py [--seeds 2] [--epoch-timing 4] \
        [--out benchmarks/results/tofu-mini-sharpness.json]

(the defaults shown: what the committed JSON file holds; ``--seeds 1 --epoch-timing 0`` is about
half the time)

What ``unlearnkit bench --data tofu-mini`` builds is built here the same way, through the bench itself
(``run_bench`` with the ``original`` row, the ``tofu`` audit and the scenarios forget01/05/10): the
original (trained with the text recipe, or loaded from the bench's cache of originals; trained first
here, so that its training is timed) and one ``retrain`` reference per scenario and seed (the same
architecture and recipe on the retain split). Then, per model and per evaluation set
(forget01/05/10 and retain, the ``*_perturbed`` files):

- **paraphrase preference**: the fraction of rows where the length-normalised likelihood of the
  paraphrased answer (mean answer-token NLL, ``task.loss``, as the truth ratio uses it) beats that
  of *every* one of the 5 perturbed answers. A model that has learnt the facts (not only the
  answer strings) prefers the paraphrase nearly always; chance is 1/6. For the original we want it
  high on every set; for a retrain reference high on ``retain`` and near chance on the forget set
  it never saw;
- the same per kind of fact (birthplace, award, …) on forget10 + retain, for the original;
- the median per-item truth ratio (P(perturbed) / P(paraphrase), TOFU's R) on the forget sets;
- **forget quality** as the bench reports it: the original row's ``forget_quality`` (the KS
  p-value of its per-item forget truth ratios against the retrain reference's; small = the
  original is clearly told apart from retraining) and the retrain row's (1 by construction: the
  reference against itself). With ``--seeds 2`` the bench also trains a second retrain reference
  (cell seed 1) per scenario, and ``retrain_vs_retrain`` is the KS p-value between the two
  references' truth ratios (how alike two retrainings look: high is good).

``--epoch-timing N`` also times one training epoch of the original's recipe on tofu-mini and on the
same people without their biography rows (``generate_tofu_mini(bio_facts=0)``: the size of
version 1), alternately N times in this process, and reports the best of each and their ratio
(the biography's cost in the original's training time, robust to other processes sharing the
machine; the original's own ``original_train_seconds`` is not).

The bench's working folder is ``$UNLEARNKIT_CACHE/bench-sharpness/<data fingerprint>`` (a rerun on
the same data reuses its models). The result is merged into the JSON file under the key
``tofu-mini v<VERSION>`` (the generator's version), so the figures of an earlier version of the data
stay in the file beside the current ones; the command also prints them.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from unlearnkit.audits.base import AuditContext, per_example
from unlearnkit.audits.tofu import forget_quality, truth_ratio
from unlearnkit.bench.originals import original_model, original_path
from unlearnkit.bench.runner import BenchPlan, reference_path, run_bench
from unlearnkit.bench.workload import make_model, make_task, workload_for
from unlearnkit.cache import cache_root
from unlearnkit.checkpoints import load_weights
from unlearnkit.data import tofu_mini
from unlearnkit.data.sources import load_data
from unlearnkit.data.text import IGNORE
from unlearnkit.data.tofu import load_tofu_dir
from unlearnkit.methods.base import RunContext
from unlearnkit.methods.training import fit
from unlearnkit.seeding import seed_everything

SCENARIOS = ("forget01", "forget05", "forget10")
SETS = SCENARIOS + ("retain",)
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "tofu-mini-sharpness.json"


def nll_table(model, task, eval_set, ctx) -> tuple[np.ndarray, np.ndarray]:
    """Mean answer-token NLL of the paraphrased answer [N] and of each perturbed answer [N, K]."""
    para = per_example(model, task, eval_set.paraphrased, task.loss, ctx).double().numpy()
    wrong = np.stack([per_example(model, task, d, task.loss, ctx).double().numpy() for d in eval_set.perturbed], 1)
    return para, wrong


def preference(para: np.ndarray, wrong: np.ndarray) -> np.ndarray:
    """Per row: the paraphrase is more likely (per token) than every perturbed answer."""
    return para < wrong.min(axis=1)


def fact_kind(question: str) -> str:
    """The template a tofu-mini question comes from (its kind of fact)."""
    for kind, template, *_ in tofu_mini.TEMPLATES:
        head, _, tail = template.partition("{n}")
        if question.startswith(head) and question.endswith(tail):
            return kind
    return "?"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def epoch_timing(source, recipe, repeats: int) -> dict:
    """Best-of-``repeats`` seconds of one training epoch on ``source`` (tofu-mini) and on the same
    people without their biography rows."""
    with tempfile.TemporaryDirectory() as folder:
        tofu_mini.write_tofu_layout(tofu_mini.generate_tofu_mini(0, bio_facts=0), folder)
        bare = load_tofu_dir(folder, include_general=True, name="tofu-mini")
    sources = {"without_biography": bare, "tofu-mini": source}
    one_epoch = copy.deepcopy(recipe)
    one_epoch.epochs = 1
    seconds: dict[str, list[float]] = {label: [] for label in sources}
    for _ in range(repeats):
        for label, data in sources.items():
            model, task = make_model(data, seed=0), make_task(data)
            tick = time.perf_counter()
            fit(model, task, data.train, one_epoch, RunContext(generator=seed_everything(0)))
            seconds[label].append(time.perf_counter() - tick)
    best = {label: min(values) for label, values in seconds.items()}
    return {"rows": {label: len(data.train) for label, data in sources.items()},
            "best_seconds": {label: round(v, 3) for label, v in best.items()},
            "ratio": round(best["tofu-mini"] / best["without_biography"], 3), "repeats": repeats}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2, help="retrain references per scenario (2: also "
                        "retrain-vs-retrain forget quality)")
    parser.add_argument("--epoch-timing", type=int, default=4, metavar="N",
                        help="also time one epoch with and without the biography rows, best of N (0: not)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--workdir", type=Path, default=None, help="the bench's output folder (default: in the cache)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    source = load_data("tofu-mini")
    fingerprint = source.fingerprint()
    workdir = args.workdir or cache_root() / "bench-sharpness" / fingerprint[:16]
    plan = BenchPlan(data="tofu-mini", methods=["original"], scenarios=list(SCENARIOS), audits=["tofu"],
                     seeds=args.seeds, out=workdir)
    task = make_task(source)
    # the original as the bench makes it (same data key, architecture and recipe, so the same cache
    # file): trained here first, and timed, unless the cache has it; run_bench then loads it
    recipe = plan.recipe(workload_for(source))
    template = make_model(source, seed=recipe.seed)
    cached = original_path(f"{plan.data_key}|{source.name}", template, "tiny-llama", recipe, fingerprint).exists()
    tick = time.perf_counter()
    original = original_model(source, plan.data_key, "tiny-llama", task, recipe, RunContext())
    train_seconds = None if cached else round(time.perf_counter() - tick, 1)
    tick = time.perf_counter()
    records = run_bench(plan)
    bench_seconds = time.perf_counter() - tick

    ctx = AuditContext()
    rows = {(r["scenario"], r["method"], r["seed"]): r for r in records}

    def retrain(scenario: str, seed: int):
        cell = rows[(scenario, "retrain", seed)]["cell"]
        return load_weights(copy.deepcopy(template), reference_path(workdir, cell))

    original_tables = {name: nll_table(original, task, source.evals[name], ctx) for name in SETS}
    qa_rows = sum(len(source.evals[name]) for name in ("forget10", "retain"))
    result: dict = {
        "data": f"tofu-mini v{tofu_mini.VERSION} (seed 0)",
        "data_fingerprint": fingerprint[:16],
        "commit": git_commit(),
        "train_rows": len(source.train),
        "train_tokens_per_epoch": int((source.train.x != task.pad_id).sum()),
        "train_answer_tokens_per_epoch": int((source.train.y[:, 1:] != IGNORE).sum()),
        "recipe": {k: recipe.to_dict()[k] for k in ("epochs", "lr", "batch_size", "optimizer")},
        "threads": torch.get_num_threads(),
        "original_train_seconds": train_seconds,   # None: loaded from the cache
        "bench_seconds": round(bench_seconds, 1),  # the retrain references and the audits
        "paraphrase_preference": {"original": {}},
        "forget_quality": {"original": {}, "retrain": {}},
        "forget_truth_ratio_median": {"original": {}},
    }
    for name in SETS:
        result["paraphrase_preference"]["original"][name] = round(float(preference(*original_tables[name]).mean()), 4)
    for scenario in SCENARIOS:
        result["forget_truth_ratio_median"]["original"][scenario] = \
            round(float(np.median(truth_ratio(*original_tables[scenario]))), 4)
        result["forget_quality"]["original"][scenario] = rows[(scenario, "original", 0)]["metrics"]["forget_quality"]
        result["forget_quality"]["retrain"][scenario] = rows[(scenario, "retrain", 0)]["metrics"]["forget_quality"]
    # each retrain reference: preference on the forget set it never saw and on retain
    for scenario in SCENARIOS:
        key = f"retrain ({scenario} left out)"
        model = retrain(scenario, 0)
        result["paraphrase_preference"][key] = {}
        for name in (scenario, "retain"):
            para, wrong = nll_table(model, task, source.evals[name], ctx)
            result["paraphrase_preference"][key][name] = round(float(preference(para, wrong).mean()), 4)
            if name == scenario:
                ratios = truth_ratio(para, wrong)
                result["forget_truth_ratio_median"][key] = round(float(np.median(ratios)), 4)
        if args.seeds > 1:
            para, wrong = nll_table(retrain(scenario, 1), task, source.evals[scenario], ctx)
            result["forget_quality"].setdefault("retrain_vs_retrain", {})[scenario] = \
                forget_quality(ratios, truth_ratio(para, wrong))
    # the original per kind of fact (forget10 + retain rows)
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for name in ("forget10", "retain"):
        for question, ok in zip(source.evals[name].questions, preference(*original_tables[name])):
            by_kind[fact_kind(question)].append(bool(ok))
    result["paraphrase_preference_by_kind"] = {k: round(float(np.mean(v)), 3) for k, v in sorted(by_kind.items())}
    result["paraphrase_preference_by_kind_rows"] = qa_rows
    if args.epoch_timing:
        result["epoch_timing"] = epoch_timing(source, recipe, args.epoch_timing)
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]

    print(json.dumps(result, indent=1))
    merged = json.loads(args.out.read_text()) if args.out.exists() else {}
    merged[f"tofu-mini v{tofu_mini.VERSION}"] = result
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(merged, indent=1) + "\n")
    print(f"written to {args.out}")
    return result


if __name__ == "__main__":
    main()
