"""Unlearning methods on Llama-3-sized causal LMs: tokens/s and peak memory beside a bare HF loop.

    python benchmarks/llm_scale.py --config llama-3.2-1b --device cuda --dtype bf16
    python benchmarks/llm_scale.py --config llama-3.1-8b --device cuda --dtype bf16 --gradient-checkpointing
    OMP_NUM_THREADS=1 python benchmarks/llm_scale.py --smoke        # tiny config, CPU, 3 steps, every method

Options: ``--config tiny|llama-3.2-1b|llama-3.1-8b``, ``--device auto|cuda|cpu``, ``--dtype bf16|fp32``
(the weights' dtype, and so the gradients' and AdamW states'; no autocast), ``--batch-size``
(default 8: the pretrained recipe's per-device batch), ``--seq-len`` (default 256: unlearnkit's
default ``max_length`` for text), ``--steps`` timed optimizer steps (default 10) after
``--warmup-steps`` untimed ones (default 2), ``--methods ga,npo,...``, ``--gradient-checkpointing``,
``--attn sdpa|eager``, ``--timer auto|wall|cpu`` (auto: on a CPU device this process's CPU
seconds, which other jobs on shared cores do not inflate — with one thread ≈ elapsed time; on a GPU
elapsed time), ``--seed``, ``--out FILE`` (default ``benchmarks/results/llm_scale-<config>-<device>.json``).

**The model.** A randomly initialised ``transformers.LlamaForCausalLM`` built from a
``LlamaConfig`` written out below (:data:`CONFIGS`: the shapes of the models' published
``config.json``; nothing is downloaded), created directly on the device in ``--dtype`` with a
fixed seed, and built afresh for every row (methods edit the model they are given, and RMU
changes which parameters require gradients).

**The data.** Synthetic token rows (seeded): ``seq_len`` random ids (never the tokenizer's four
special ids), labels = the ids with the first ``seq_len // 4`` positions (the "prompt") set to
-100, i.e. unlearnkit's text layout (``unlearnkit.data.text``: ``TensorData(input_ids, labels)``),
so every batch has the same shape and nothing is padding. The forget set holds exactly
(warm-up + timed steps) × batch rows, so one epoch (``epochs=1``, ``grad_accum=1``) is exactly the
steps wanted; the retain set is as large (rosu's epoch passes over retain). A small byte-level
BPE tokenizer trained here (``unlearnkit.data.tokenizer.train_tokenizer``) gives the
``CausalLMTask`` its pad/EOS ids; the model's vocabulary is the config's.

**The bare loop.** Plain Hugging Face training on the same model, batch shape and optimizer
settings: ``model(input_ids, attention_mask, labels=labels).loss`` (HF's causal-LM loss),
``backward``, ``torch.optim.AdamW(lr 1e-5, weight_decay 0.01)`` step, ``zero_grad`` — no
clipping, no schedule.

**The methods.** Each through ``unlearnkit.methods.base.run_method`` (what ``unlearnkit.unlearn``
calls, without its deep copy of the model, which a 16 GB model cannot afford) with
``resolve_config(method, kind="text", scale="pretrained", overrides={"epochs": 1, "batch_size": B,
"grad_accum": 1})``: OpenUnlearning's recipe for a pretrained LM (AdamW lr 1e-5, weight decay
0.01, linear schedule with warm-up, clipping at 1). Special cases: ``ieu`` runs its phase 1 only
(``repair_epochs=0``; the repair phase is plain fine-tuning, one pass per step); ``entangle``
gives two rows, one per phase (phase 1, ALM: ``phase2_epochs=0``; phase 2, W-PGD:
``phase1_epochs=0``, so it starts from the initial model), with every batch size set to B, its
adjacent set given as ``split.related`` (no nearest-neighbour pass) and the retain set twice the
forget set's size (half adjacent, half remote), so each phase takes exactly the wanted steps.

**Timing** (``speed_common.StepClock``): after ``--warmup-steps`` optimizer steps, over
``--steps`` steps; on a GPU the device is synchronised only at those two points. ``setup`` =
time to the end of the first step less one step (reference copies, RMU's activation norms,
entangle's L̄_rem pass). The clock ends a run at its last timed step, so work done after an
epoch or at the end (mox's extrapolation event, the final finite-parameter check) is neither run
nor timed; per-step work (ieu's decay and noise, clipping, the schedule) is. **tokens/s** = batch × seq_len ÷ seconds per optimizer step (the tokens
of the step's batch, as for the bare loop; methods that also read a retain batch process more).
**× bare** = seconds per step ÷ the bare loop's; **ratio** = × bare ÷ passes, where ``passes``
is the method's forward+backward passes per step in bare-step units, by construction (see
:func:`passes_for`): ≈ 1 means the method costs what its passes cost, above 1 is overhead.

**Memory**: CUDA: ``torch.cuda.max_memory_allocated`` over the row (the model's weights
included); CPU: the process's peak RSS sampled by ``unlearnkit.bench.memory.PeakMemory`` (a lower
bound; the RSS of the whole process, Python and libraries included; its increase over the row's
start is in the JSON as ``rss_increase_mib``, itself a lower bound when memory freed by an
earlier row is reused).

A row that fails (out of memory, a method that does not apply) is reported as failed in the
table and the JSON, and the script goes on.

Memory to expect on one GPU (estimates from the shapes, not yet measured; bf16 weights, so
gradients and AdamW states are bf16 too: 8 bytes per parameter before activations).
llama-3.2-1b (1.24 B parameters): ≈ 10 GB, plus 2.5 GB per model-sized copy a method keeps (a
frozen reference; gradient lists) and the activations: every row should fit an H100 (80 GB).
llama-3.1-8b (8.03 B): ≈ 64 GB before activations and 16 GB per model-sized copy, so on an H100
the bare loop and ga, graddiff and simnpo fit only with a small batch and/or
``--gradient-checkpointing``; rmu trains 3 MLP projections only (≈ 16 GB weights + 16 GB frozen
copy: fits); npo, mox and entangle keep a frozen copy and/or gradient lists, ieu draws a
model-sized noise tensor list every 5th step, rosu holds ~5 gradient-sized lists and lur a
second-order graph: expect out-of-memory rows there (an H200, 141 GB, fits more of them).
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from unlearnkit import resolve_config
from unlearnkit.data import TensorData
from unlearnkit.data.sources import DataSource
from unlearnkit.data.split import Split
from unlearnkit.data.text import IGNORE
from unlearnkit.devices import resolve_device
from unlearnkit.methods import RunContext
from unlearnkit.methods.base import run_method
from unlearnkit.models.hf import set_gradient_checkpointing
from unlearnkit.seeding import seed_everything
from unlearnkit.tasks.causal_lm import CausalLMTask

from scale_common import (Throughput, add_run_args, check_args, device_info, device_name,
                          entangle_overrides, measure, measure_rows, resolve_timer, row_names,
                          write_results)
from speed_common import PASSES, StepClock

# --- the models -------------------------------------------------------------------------------

# Shapes from the models' published config.json files on the Hugging Face Hub (nothing is
# downloaded here; the numbers are copied):
#   meta-llama/Llama-3.2-1B  config.json: hidden_size 2048, intermediate_size 8192, num_hidden_layers 16,
#       num_attention_heads 32, num_key_value_heads 8, head_dim 64, vocab_size 128256,
#       tie_word_embeddings true, rope_theta 500000.0, rope_scaling {rope_type llama3, factor 32.0,
#       low_freq_factor 1.0, high_freq_factor 4.0, original_max_position_embeddings 8192},
#       max_position_embeddings 131072, rms_norm_eps 1e-05, hidden_act silu, bos 128000, eos 128001
#   meta-llama/Llama-3.1-8B  config.json: hidden_size 4096, intermediate_size 14336, num_hidden_layers 32,
#       num_attention_heads 32, num_key_value_heads 8, head_dim 128, vocab_size 128256,
#       tie_word_embeddings false, rope_theta 500000.0, rope_scaling {rope_type llama3, factor 8.0,
#       low_freq_factor 1.0, high_freq_factor 4.0, original_max_position_embeddings 8192},
#       max_position_embeddings 131072, rms_norm_eps 1e-05, hidden_act silu, bos 128000, eos 128001
#   tiny: ours, for the CPU smoke run (same architecture: grouped KV heads, tied embeddings, llama3 rope).
_LLAMA3_ROPE = {"rope_type": "llama3", "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}
CONFIGS: dict[str, dict] = {
    "tiny": dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, vocab_size=512, tie_word_embeddings=True,
                 rope_theta=500000.0, rope_scaling={**_LLAMA3_ROPE, "factor": 32.0},
                 max_position_embeddings=131072, rms_norm_eps=1e-5, hidden_act="silu"),
    "llama-3.2-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=64, vocab_size=128256, tie_word_embeddings=True,
                         rope_theta=500000.0, rope_scaling={**_LLAMA3_ROPE, "factor": 32.0},
                         max_position_embeddings=131072, rms_norm_eps=1e-5, hidden_act="silu"),
    "llama-3.1-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=128, vocab_size=128256, tie_word_embeddings=False,
                         rope_theta=500000.0, rope_scaling={**_LLAMA3_ROPE, "factor": 8.0},
                         max_position_embeddings=131072, rms_norm_eps=1e-5, hidden_act="silu"),
}
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
METHODS = ("ga", "graddiff", "npo", "simnpo", "rmu", "entangle", "lur", "ieu", "mox", "rosu")
SPECIAL_IDS = 4  # the tokenizer's <pad> <s> </s> <unk> (ids 0-3); random tokens avoid them
BARE_LR, BARE_WEIGHT_DECAY = 1e-5, 0.01  # resolve.PRETRAINED_TEXT's AdamW settings


def llama_config(name: str, tokenizer, attn: str):
    from transformers import LlamaConfig

    config = LlamaConfig(**CONFIGS[name], pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, use_cache=False)
    config._attn_implementation = attn
    return config


def build_model(config, dtype: torch.dtype, device: torch.device, seed: int):
    """A freshly initialised LlamaForCausalLM created on ``device`` in ``dtype`` (no float32 copy first)."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    wrong = {p.dtype for p in model.parameters()} - {dtype}
    if wrong:
        raise RuntimeError(f"parameters built in {wrong}, not {dtype}")
    return model.train()  # buffers made in float32 on purpose (the rotary frequencies) stay float32


def matmul_sizes(config) -> dict[str, int]:
    """Weights a token's forward multiplies through (∝ its FLOPs; attention scores left out): one block,
    one MLP down-projection, the LM head, the whole model."""
    h, heads, kv = config.hidden_size, config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    attention = h * heads * head_dim * 2 + h * kv * head_dim * 2            # q, o; k, v
    down = h * config.intermediate_size
    block = attention + 3 * down                                             # gate, up, down
    head = h * config.vocab_size
    return {"block": block, "down": down, "head": head, "model": config.num_hidden_layers * block + head}


# --- forward+backward passes per optimizer step ------------------------------------------------

def passes_for(row: str, config, method_config) -> tuple[float, str]:
    """Forward+backward passes per optimizer step, in bare-step units (a forward alone counts 1/3: a
    backward costs about two forwards), counted from what each method's code does on text at the
    pretrained recipe (retain_loss="nll", grad_accum=1). Returns (passes, how they were counted)."""
    if row == "rmu":
        # rmu.py: three full forwards (forget and retain through θ, retain through the frozen θ_ref; the
        # hook at layer ℓ does not stop the forward, the LM head runs too) = 1 bare step; two backwards that
        # start at layer ℓ = L//2 and reach only the trainable MLP down-projections of blocks ℓ−2..ℓ
        # (trainable_layers="auto"): input gradients through blocks ℓ−1 and ℓ, weight gradients of 3 down_proj.
        # Costs ∝ the weights multiplied (matmul_sizes), a backward ≈ 2 forwards for the bare step.
        size = matmul_sizes(config)
        layer = config.num_hidden_layers // 2
        first = max(0, layer - 2)
        backward = (layer - first) * size["block"] + (layer - first + 1) * size["down"]
        value = 1 + 2 * backward / (3 * size["model"])
        return value, (f"3 forwards (1) + 2 partial backwards from block {layer} to block {first}'s down_proj "
                       f"(2 × {backward / size['model']:.3f} forward) = {value:.3f}")
    if row == "entangle:alm":
        return 2.0, "forget fwd+bwd + remote fwd+bwd (one backward of the augmented Lagrangian)"
    if row == "entangle:wpgd":
        k = method_config.basis_batches
        ref = k / 3 if method_config.alpha > 0 else 0.0
        value = 1 + 2 * k + ref
        return value, (f"adjacent fwd+bwd + {k} forget fwd+bwd + {k} frozen-reference forward on forget (W2) + "
                       f"{k} remote fwd+bwd = {value:.3f}; Gram projection parameter-wise")
    notes = {
        "ga": "forget fwd+bwd",
        "graddiff": "forget + retain fwd+bwd",
        "npo": "forget + retain fwd+bwd, frozen-reference forward on forget (3 fwd + 2 bwd)",
        "simnpo": "forget + retain fwd+bwd, no reference",
        "lur": "retain fwd+bwd (create_graph), forget fwd+bwd at θ', double backward for the HVP (≈ 2)",
        "ieu": "forget + retain fwd+bwd (phase 1); decay and noise are parameter-wise",
        "mox": "forget fwd+bwd (CE) + retain fwd+bwd (KL), frozen-reference forward on retain",
        "rosu": "fwd+bwd on [forget; retain] (2) + retain fwd+bwd at θ (fresh g_r) + retain fwd+bwd at θ+ε",
    }
    return float(PASSES[row]), notes[row]


# --- data ---------------------------------------------------------------------------------------

def make_tokenizer():
    """A small byte-level BPE (unlearnkit's own, specials <pad> <s> </s> <unk> at ids 0–3): the task's
    pad/EOS ids. The model's vocabulary is its config's."""
    from unlearnkit.data.tokenizer import train_tokenizer

    texts = ["Question: Who wrote it?\nAnswer: I don't know.", "Question: Where was she born?\nAnswer: In Lisbon."]
    return train_tokenizer(texts, vocab_size=300)


def token_rows(rows: int, seq_len: int, vocab: int, generator: torch.Generator) -> TensorData:
    """``rows`` random rows of ``seq_len`` tokens; labels = the ids, the first quarter (the prompt) -100."""
    ids = torch.randint(SPECIAL_IDS, vocab, (rows, seq_len), generator=generator)
    labels = ids.clone()
    labels[:, : seq_len // 4] = IGNORE
    return TensorData(ids, labels)


def make_split(forget_rows: int, retain_rows: int, related_rows: int, seq_len: int, vocab: int, tokenizer,
               seed: int = 0) -> Split:
    """Forget rows first, then retain rows (the first ``related_rows`` of them adjacent, for entangle)."""
    generator = torch.Generator().manual_seed(seed)
    data = token_rows(forget_rows + retain_rows, seq_len, vocab, generator)
    test = token_rows(2, seq_len, vocab, generator)
    forget = torch.arange(forget_rows)
    retain = torch.arange(forget_rows, forget_rows + retain_rows)
    source = DataSource(name="synthetic-tokens", train=data, test=test, num_classes=vocab, input_shape=(seq_len,),
                        kind="text", tokenizer=tokenizer)
    return Split(source, forget, retain, spec="synthetic", related_idx=retain[:related_rows] if related_rows else None)


# --- the rows -----------------------------------------------------------------------------------

def bare_loop(model, data: TensorData, batch_size: int, device: torch.device, clock: StepClock) -> None:
    """The plain Hugging Face step: forward with labels (HF's causal-LM loss), backward, AdamW, zero_grad."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=BARE_LR, weight_decay=BARE_WEIGHT_DECAY)
    ids, labels = data.x.to(device), data.y.to(device)
    model.train()
    with clock.running():
        for start in range(0, len(ids) - batch_size + 1, batch_size):
            x, y = ids[start:start + batch_size], labels[start:start + batch_size]
            loss = model(input_ids=x, attention_mask=torch.ones_like(x), labels=y).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            clock.tick()


def method_config(row: str, args):
    method = row.split(":")[0]
    overrides = {"epochs": 1, "batch_size": args.batch_size, "grad_accum": 1}
    if method == "ieu":
        overrides["repair_epochs"] = 0  # phase 1 only; the repair phase is plain fine-tuning
    if method == "entangle":
        overrides = entangle_overrides(row, args.batch_size)
    return resolve_config(method, kind="text", scale="pretrained", overrides=overrides)


def run_method_row(row: str, split: Split, task, args, device):
    config = method_config(row, args)

    def run(model, clock):
        ctx = RunContext(device=device, progress=False, on_step=clock)
        ctx.generator = seed_everything(config.seed)
        with clock.running():
            run_method(row.split(":")[0], model, task, split, config, ctx)

    return config, run


# --- arguments and main -------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="llama-3.2-1b")
    parser.add_argument("--device", default="auto", help="auto | cuda | cuda:N | cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="the weights' dtype")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="timed optimizer steps")
    parser.add_argument("--warmup-steps", type=int, default=2, help="untimed optimizer steps first")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, from {','.join(METHODS)}")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--attn", choices=("sdpa", "eager"), default="sdpa", help="attention implementation")
    add_run_args(parser, out_default="llm_scale-<config>-<device>.json",
                 smoke_help="tiny config on CPU: batch 4, seq-len 64, 1 warm-up + 3 timed steps, every method")
    args = parser.parse_args(argv)
    if args.smoke:
        args.config, args.device, args.batch_size, args.seq_len, args.steps, args.warmup_steps = \
            "tiny", "cpu", 4, 64, 3, 1
    return check_args(parser, args, METHODS, also_bad=args.seq_len < 8, also_need=", --seq-len >= 8")


def main(argv=None) -> dict:
    args = parse_args(argv)
    started = time.perf_counter()
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    device = resolve_device(args.device)
    resolve_timer(args, device)
    dtype = DTYPES[args.dtype]
    tokenizer = make_tokenizer()
    task = CausalLMTask(tokenizer)
    config = llama_config(args.config, tokenizer, args.attn)
    vocab = config.vocab_size
    steps = args.warmup_steps + args.steps
    rows = steps * args.batch_size
    split = make_split(rows, rows, 0, args.seq_len, vocab, tokenizer, args.seed)
    # entangle: retain = adjacent (its phase-2 epoch) + remote (its phase-1 epoch), each `rows` long
    entangle_split = make_split(rows, 2 * rows, rows, args.seq_len, vocab, tokenizer, args.seed)
    rate = Throughput("tokens_per_s", "tokens/s", ",.0f", args.batch_size * args.seq_len,
                      "tokens/s = batch × seq_len per optimizer step")

    def build():
        model = build_model(config, dtype, device, args.seed)
        if args.gradient_checkpointing:
            set_gradient_checkpointing(model)
        return model

    def measure_row(row, run):
        return measure(row, build, run, args, device, rate)

    def prepare(row):
        row_split = entangle_split if row.startswith("entangle") else split
        method_cfg, run = run_method_row(row, row_split, task, args, device)
        return (method_cfg, run, *passes_for(row, config, method_cfg))

    with torch.device("meta"):
        from transformers import LlamaForCausalLM

        n_params = sum(p.numel() for p in LlamaForCausalLM(config).parameters())
    header = (f"{args.config}: {n_params / 1e6:,.1f} M params ({args.dtype} weights, attn {args.attn}"
              f"{', gradient checkpointing' if args.gradient_checkpointing else ''}) on {device} "
              f"({device_name(device)}); torch {torch.__version__}, transformers {transformers.__version__}; "
              f"batch {args.batch_size} × seq {args.seq_len} (prompt {args.seq_len // 4} masked), "
              f"{args.warmup_steps} warm-up + {args.steps} timed steps, {args.timer} timer, "
              f"{torch.get_num_threads()} thread(s)")
    print(header, flush=True)
    results: dict = {
        "script": "benchmarks/llm_scale.py", "argv": sys.argv[1:] if argv is None else list(argv),
        "config": args.config, "model_shape": CONFIGS[args.config], "parameters": n_params,
        "device": device_info(device),
        "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
        "dtype": args.dtype, "attn": args.attn, "batch_size": args.batch_size, "seq_len": args.seq_len,
        "prompt_len": args.seq_len // 4, "steps": args.steps, "warmup_steps": args.warmup_steps,
        "gradient_checkpointing": args.gradient_checkpointing, "timer": args.timer,
        "threads": torch.get_num_threads(), "smoke": args.smoke,
        "tokens_per_step": args.batch_size * args.seq_len,
    }

    bare = ("bare HF loop (AdamW)", "forward with labels, backward, AdamW step",
            lambda model, clock: bare_loop(model, split.forget, args.batch_size, device, clock))
    measure_rows(results, measure_row, bare, prepare, row_names(args.methods))

    out = Path(args.out) if args.out else \
        Path(__file__).resolve().parent / "results" / f"llm_scale-{args.config}-{device.type}.json"
    write_results(results, out, header, rate, started)
    return results


if __name__ == "__main__":
    main()
