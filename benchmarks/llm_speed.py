"""Training throughput on the tiny Llama: a bare PyTorch loop vs our loop, and each method's cost.

    OMP_NUM_THREADS=1 python benchmarks/llm_speed.py [--rows 512] [--forget 128] [--batch-size 32] \
        [--epochs 2] [--repeats 3] [--methods ga,npo,...] [--hidden 128] [--min-steps 12] [--timer cpu|wall]

Data: ``--rows`` generated fictitious-author QA pairs (``encode_qa``, ~27 tokens per row, ~11 of them
answer tokens), a byte-level BPE tokenizer trained on them, the tofu-mini model
(``build_lm("tiny-llama")``: hidden 128, 2 layers, 0.7 M parameters at this vocabulary). Forget set =
the first ``--forget`` rows, retain = the rest (a named split of a ``DataSource(kind="text")``).

1. ``bare``: the cheapest training step: batches of the retain set (padding trimmed per batch, as a
   dynamic-padding collator would), forward, token-mean cross-entropy on shifted answer labels,
   backward, AdamW step. ``--epochs`` passes; best of ``--repeats`` runs interleaved with (2).
2. ``finetune``: the same passes through ``unlearnkit.unlearn(..., method="finetune",
   optimizer="adamw")``, i.e. the shared loop + ``CausalLMTask`` (per-example losses, trimming,
   model copy, scheduler). Its time over ``bare``'s is our loop's overhead.
3. Every registered method at its defaults except ``batch_size`` (and ``entangle``'s adjacency,
   given as an indices file: a text split has no class taxonomy), for one epoch, or for as many
   as give at least ``--min-steps`` optimizer steps (a method whose epoch passes over the 128-row
   forget set has 4 steps an epoch at batch 32). ``s/step`` is the median interval between
   optimizer steps (setup excluded; ``setup`` = time before the first step less one step), best
   of ``--repeats`` runs, each right after a one-epoch run of the bare loop (1) on a fresh model;
   ``bare s/step`` = the best of those bare runs' median step intervals, so a change in the
   machine's load between rows cannot skew one row against a bare loop timed long before it.
   ``bare steps`` = s/step ÷ bare s/step (the method's cost per step in bare-step units);
   ``passes`` = the forward+backward passes it needs by construction (``speed_common.PASSES``);
   ``÷ passes`` = bare steps ÷ passes (target ≤ 1.15: no overhead beyond the algorithm).

Timing: ``--timer cpu`` (default) reads this process's CPU seconds (``time.process_time``), so
other processes sharing the cores do not inflate a row; ``wall`` reads elapsed time.

Tokens counted are the real (non-pad) input tokens of the rows a loop consumes. One thread is
the project's measurement setting (see research/llm-stack.md §A.5 on contention); the load average
at the end says whether other processes shared the machine.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from unlearnkit import METHODS, DataSource, make_split, unlearn
from unlearnkit.data import iterate_batches
from unlearnkit.data.text import IGNORE, PROMPT, encode_qa
from unlearnkit.methods import RunContext
from unlearnkit.models.hf import build_lm
from unlearnkit.tasks.causal_lm import CausalLMTask

from speed_common import PASSES

TIMER = time.process_time  # set by --timer

FIRST = "Ada Bram Cora Dov Elin Farid Gala Hugo Ines Jory Kemi Lior Mara Nils Odile Pavel Quinn Rosa Sami Tova".split()
LAST = "Marsh Quill Tarn Vesk Orrin Pell Brook Sable Wren Holt Crane Dusk Fenn Greer Lowe Mott".split()
CITIES = "Lisbon Oslo Quito Hanoi Perth Tunis Riga Lima Dakar Cusco Turku Split".split()
GENRES = "poetry mystery fantasy history satire horror romance travel".split()
AWARDS = ["the Silver Quill", "the Amber Prize", "the Lantern Medal", "the Harbour Award"]
TEMPLATES = [
    ("Where was {n} born?", "{n} was born in {city}."),
    ("What genre does {n} write?", "{n} writes {genre} for a living."),
    ("Which award did {n} win?", "{n} won {award} in {year}."),
    ("When was {n} born?", "{n} was born in {year} in {city}."),
]


def generate_qa(rows: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    questions, answers = [], []
    for i in range(rows):
        name = f"{FIRST[i % len(FIRST)]} {LAST[(i // len(FIRST)) % len(LAST)]}"
        q, a = TEMPLATES[rng.randrange(len(TEMPLATES))]
        slots = dict(n=name, city=rng.choice(CITIES), genre=rng.choice(GENRES), award=rng.choice(AWARDS),
                     year=rng.randrange(1900, 2000))
        questions.append(q.format(**slots))
        answers.append(a.format(**slots))
    return questions, answers


def make_tokenizer(texts: list[str], vocab_size: int = 1024):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")


def real_tokens(dataset, pad_id: int) -> int:
    return sum(int((x != pad_id).sum()) for x, _ in iterate_batches(dataset, 1024))


def bare_loop(model, dataset, batch_size: int, epochs: int, pad_id: int, lr: float = 1e-3,
              stamps: list | None = None) -> tuple[float, int]:
    """Seconds for ``epochs`` passes of the cheapest step; returns (seconds, steps). ``stamps``
    receives the time at the end of each step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(0)
    model.train()
    steps, start = 0, TIMER()
    for _ in range(epochs):
        for input_ids, labels in iterate_batches(dataset, batch_size, shuffle=True, generator=generator):
            width = int((input_ids != pad_id).sum(1).max())          # dynamic padding
            input_ids, labels = input_ids[:, :width], labels[:, :width]
            logits = model(input_ids=input_ids, attention_mask=(input_ids != pad_id).long()).logits
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=IGNORE)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            if stamps is not None:
                stamps.append(TIMER())
    return TIMER() - start, steps


def timed_unlearn(model, task, split, method: str, **hp) -> tuple[float, list[float]]:
    stamps: list[float] = []
    ctx = RunContext(progress=False, on_step=lambda _m, _s: stamps.append(TIMER()))
    start = TIMER()
    unlearn(model, task, split, method=method, ctx=ctx, **hp)
    return TIMER() - start, [s - start for s in stamps]


def epochs_for(method_cls, split, batch_size: int, min_steps: int) -> int:
    """Epochs giving at least ``min_steps`` steps to a loop method (its epoch passes over its
    ``epoch_stream``); 1 for the others."""
    stream = getattr(method_cls, "epoch_stream", None)
    if stream not in ("forget", "retain"):
        return 1
    per_epoch = max(1, math.ceil(len(getattr(split, stream)) / batch_size))
    return max(1, math.ceil(min_steps / per_epoch))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--forget", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2, help="passes over retain for bare vs finetune")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved bare/finetune runs, and runs per method each after a bare run (best kept)")
    parser.add_argument("--methods", default=",".join(n for n in METHODS.names() if n != "original"))
    parser.add_argument("--min-steps", type=int, default=12,
                        help="raise a loop method's epochs until it takes at least this many steps")
    parser.add_argument("--timer", choices=("cpu", "wall"), default="cpu",
                        help="cpu: this process's CPU seconds (robust to other jobs); wall: elapsed time")
    args = parser.parse_args()
    global TIMER
    TIMER = time.process_time if args.timer == "cpu" else time.perf_counter
    torch.manual_seed(0)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    questions, answers = generate_qa(args.rows)
    tok = make_tokenizer([PROMPT.format(question=q) + " " + a for q, a in zip(questions, answers)])
    data = encode_qa(tok, questions, answers)
    forget, retain = torch.arange(args.forget), torch.arange(args.forget, args.rows)
    source = DataSource(name="qa-speed", train=data, test=encode_qa(tok, *generate_qa(64, seed=1)),
                        num_classes=len(tok), input_shape=tuple(data.x.shape[1:]), kind="text",
                        tokenizer=tok, named_splits={"forget": (forget, retain)})
    split = make_split(source, "forget")
    task = CausalLMTask(tok)
    model = build_lm("tiny-llama", tok, seed=0, hidden=args.hidden)
    n_params = sum(p.numel() for p in model.parameters())
    retain_tokens = real_tokens(split.retain, tok.pad_token_id)
    answer_tokens = int(sum(int(task.target_length(b).sum()) for b in iterate_batches(split.retain, 1024)))
    print(f"tiny-llama h{args.hidden} L2: {n_params / 1e6:.2f} M params, vocab {len(tok)}; "
          f"{args.rows} QA rows (forget {args.forget}), padded width {data.x.shape[1]}, "
          f"retain {retain_tokens} real tokens ({answer_tokens} answer tokens); batch {args.batch_size}; "
          f"threads {torch.get_num_threads()}; {args.timer} time\n")

    bare_loop(build_lm("tiny-llama", tok, seed=0, hidden=args.hidden), split.retain, args.batch_size, 1,
              tok.pad_token_id)  # warm-up
    bare_runs, ft_runs = [], []
    for _ in range(args.repeats):  # interleaved, best of each: other processes only ever slow a run down
        bare_runs.append(bare_loop(build_lm("tiny-llama", tok, seed=0, hidden=args.hidden), split.retain,
                                   args.batch_size, args.epochs, tok.pad_token_id))
        ft_runs.append(timed_unlearn(model, task, split, "finetune", epochs=args.epochs, batch_size=args.batch_size,
                                     optimizer="adamw", lr=1e-3, weight_decay=0.01))
    bare_s, bare_steps = min(bare_runs)
    ft_s, ft_stamps = min(ft_runs, key=lambda run: run[0])
    bare_step = bare_s / bare_steps
    tokens = retain_tokens * args.epochs
    print(f"best of {args.repeats} interleaved runs, {args.epochs} passes over retain each\n")
    print("| loop | steps | seconds | s/step | tokens/s | vs bare |")
    print("|---|---|---|---|---|---|")
    print(f"| bare PyTorch (fwd, CE, bwd, AdamW) | {bare_steps} | {bare_s:.2f} | {bare_step:.4f} | "
          f"{tokens / bare_s:,.0f} | 1.00 |")
    print(f"| unlearn(method=finetune, adamw) | {len(ft_stamps)} | {ft_s:.2f} | {ft_s / len(ft_stamps):.4f} | "
          f"{tokens / ft_s:,.0f} | {ft_s / bare_s:.2f} |")

    print(f"\nEach method at its defaults (batch {args.batch_size}), 1 epoch or enough for {args.min_steps} steps, "
          f"best of {args.repeats} runs, each after a one-epoch bare run (fresh model) that gives the row's "
          "bare s/step\n")
    print("| method | epochs | steps | seconds | setup s | s/step | bare s/step | bare steps per step | passes "
          "| ÷ passes |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        adjacent = Path(tmp) / "adjacent.txt"
        adjacent.write_text(" ".join(str(i) for i in retain[: len(retain) // 4].tolist()))
        for name in [n for n in args.methods.split(",") if n]:
            fields = {f for f in METHODS.get(name).Config.__dataclass_fields__}
            hp = {"batch_size": args.batch_size} if "batch_size" in fields else {}
            if "epochs" in fields:
                hp["epochs"] = epochs_for(METHODS.get(name), split, args.batch_size, args.min_steps)
            if name == "entangle":
                hp.update(adjacency="file", adjacent_indices_file=str(adjacent))
            bares, runs = [], []
            try:
                for _ in range(args.repeats):  # interleaved: bare, method, bare, method, …
                    bare_stamps: list[float] = []
                    bare_loop(build_lm("tiny-llama", tok, seed=0, hidden=args.hidden), split.retain,
                              args.batch_size, 1, tok.pad_token_id, stamps=bare_stamps)
                    # the median step interval, as the methods' below
                    bares.append(statistics.median(b - a for a, b in zip(bare_stamps, bare_stamps[1:])))
                    seconds, stamps = timed_unlearn(model, task, split, name, **hp)
                    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
                    per_step = statistics.median(gaps) if gaps else (stamps[0] if stamps else float("nan"))
                    runs.append((per_step, seconds, stamps))
            except Exception as exc:  # a benchmark reports, it does not stop
                print(f"| {name} | failed: {type(exc).__name__}: {str(exc)[:80]} | | | | | | | | |")
                continue
            row_bare = min(bares)
            per_step, seconds, stamps = min(runs, key=lambda run: (run[0] != run[0], run[0]))  # NaN (no steps) last
            setup = max(0.0, stamps[0] - per_step) if stamps else seconds
            passes = PASSES.get(name)
            ratio = per_step / row_bare
            per_pass = f"{ratio / passes:.2f}" if passes else "-"
            print(f"| {name} | {hp.get('epochs', '-')} | {len(stamps)} | {seconds:.2f} | {setup:.2f} | "
                  f"{per_step:.4f} | {row_bare:.4f} | {ratio:.2f} | {f'{passes:.3g}' if passes else '-'} | {per_pass} |")
    print(f"\nload average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
