"""Command-line values shared by the subcommands (``unlearnkit bench``, ``forget``, ``tune``)."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from .errors import ConfigError


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the message (not the stream that was
    current when logging was set up): callers that swap stderr (test capture, notebooks, job
    runners) never leave a handler pointing at a closed stream."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def configure_logging(verbose: bool = False) -> None:
    """Plain messages on stderr for the command line; replaces earlier handlers of ours."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _CurrentStderr)]:
        root.removeHandler(handler)
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def parse_data_options(items: list[str], data: str | None = None) -> dict[str, Any]:
    """``--data-option KEY=VALUE`` pairs, typed as the loader of ``data`` declares them (an option it
    does not take, or a mistyped value, is an error naming it)."""
    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"--data-option {item!r}: expected KEY=VALUE, e.g. groups=map.json")
        out[key] = value
    if data is None:
        return out
    from .data.sources import typed_data_options

    return typed_data_options(data, out)


# --- options every command that runs a method shares (bench, forget, tune): declared once here ----

def add_verbose(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``-v/--verbose``: on the main parser and after every subcommand (``unlearnkit bench -v``)."""
    parser.add_argument("-v", "--verbose", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="debug logging")


def add_run_options(parser: argparse.ArgumentParser, *, out_default: Path | None = None, out_help: str = "") -> None:
    """The options ``bench``, ``forget`` and ``tune`` share, with one meaning everywhere."""
    add_verbose(parser)
    parser.add_argument("--data", default="digits", help="NAME or NAME:PATH (default: digits, embedded)")
    parser.add_argument("--data-option", dest="data_options", action="append", default=[], metavar="KEY=VALUE",
                        help="an option for the data loader, typed as the loader declares it, e.g. groups=map.json, "
                             "resize=true, workers=4; repeatable")
    parser.add_argument("--model", help="architecture name (default: the data's: cnn for images, tiny-llama for text)")
    parser.add_argument("--hf-model", metavar="DIR",
                        help="a local Hugging Face causal-LM folder (save_pretrained) as the original model; its "
                             "tokenizer encodes the text data; a hub id only where the hub is reachable (else a clear error)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="[METHOD.]KEY=VALUE",
                        help="a hyper-parameter: METHOD.KEY=VALUE (train.KEY for the original's recipe), or KEY=VALUE "
                             "for the method being run; typed from the method's config; repeatable")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] | mps (default: auto, a GPU when "
                                                         "there is one)")
    parser.add_argument("--out", type=Path, default=out_default, required=out_default is None, help=out_help)
    parser.add_argument("--log-dir", type=Path, metavar="DIR",
                        help="keep each run's training curve (step, loss, objective terms, lr) as CSV in DIR")
    parser.add_argument("--retain-model", metavar="DIR",
                        help="a pretrained --hf-model's reference: its retain-finetuned checkpoint (e.g. TOFU's "
                             "retain90 model), evaluated once and never trained; forget quality and privleak compare "
                             "with it")
    parser.add_argument("--retain-logs", metavar="FILE",
                        help="or that model's evaluation log (OpenUnlearning's TOFU_EVAL.json, or the "
                             "references/retain-eval-*.json a bench with --retain-model writes): per-item forget "
                             "truth ratios and the Min-K AUC")
    parser.add_argument("--train-seed", type=int, default=0, help="seed of the original model's training")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the random forget-set draw")
    parser.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none",
                        help="mixed precision for the unlearning steps (fp16 adds a loss scaler)")
    parser.add_argument("--channels-last", action="store_true", help="channels-last memory format (GPU convolutions)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model's forward passes")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="recompute activations in the backward pass (Hugging Face models: less memory)")
    parser.add_argument("--deterministic", action="store_true",
                        help="deterministic kernels only (torch.use_deterministic_algorithms, cuDNN deterministic, "
                             "CUBLAS_WORKSPACE_CONFIG): the same numbers twice on a GPU too, slower")
    parser.add_argument("--fp32-master-weights", action="store_true",
                        help="step bf16/fp16 parameters (e.g. --dtype bf16) through fp32 master copies: fp32 "
                             "optimizer state and updates, the model kept in its dtype")
    lm = parser.add_argument_group("language models (--hf-model and text data)")
    lm.add_argument("--dtype", choices=("auto", "bf16", "fp16", "fp32"), default="auto",
                    help="--hf-model's dtype (default: auto, the checkpoint's own torch_dtype)")
    lm.add_argument("--trust-remote-code", action="store_true",
                    help="let transformers run the checkpoint's own Python code (off by default)")
    lm.add_argument("--prompt-format", choices=("auto", "chat", "plain"), default="auto",
                    help="how QA rows are prompted: the tokenizer's chat template (chat), 'Question: …\\nAnswer:' "
                         "(plain), or chat when the tokenizer has a template (auto, default)")
    lm.add_argument("--system-prompt", metavar="TEXT",
                    help="a system turn before each question (chat format; default: none, the template's own)")
    lm.add_argument("--max-length", type=int, metavar="N",
                    help="tokens per text row; longer rows are cut and counted in a warning (default: 256 for "
                         "data trained here, min(the model's max positions, 512) with --hf-model)")
    lm.add_argument("--max-new-tokens", type=int, metavar="N",
                    help="cap of greedy generation in the audits (default: 200, TOFU's)")
    lm.add_argument("--reference-device", metavar="DEVICE",
                    help="where methods keep the frozen reference copy of an --hf-model (e.g. cpu, cuda:1; "
                         "default: the model's device)")
    lm.add_argument("--lora", type=int, default=0, metavar="RANK",
                    help="unlearn through LoRA adapters of this rank on the --hf-model (only they train; peft)")
    lm.add_argument("--lora-alpha", type=int, metavar="N", help="LoRA scaling alpha (default: 2 × rank)")
    lm.add_argument("--lora-targets", metavar="a,b,...",
                    help="module names to adapt (default: q/k/v/o and gate/up/down projections)")
    lm.add_argument("--lora-save", choices=("merged", "adapter"), default="merged",
                    help="forget: write the model with the adapters merged (default) or the adapter alone")


def precision_of(args):
    """The precision switches (``--amp``, ``--channels-last``, ``--compile``, ``--gradient-checkpointing``)."""
    from .methods.precision import Precision

    return Precision(amp=args.amp, channels_last=args.channels_last, compile=args.compile,
                     checkpointing=args.gradient_checkpointing, master_weights=args.fp32_master_weights,
                     deterministic=args.deterministic)


def precision_flags(precision) -> list[str]:
    """The command-line flags that give ``precision`` back through :func:`precision_of` (defaults left out)."""
    flags = ["--amp", precision.amp] if precision.amp != "none" else []
    for flag, on in (("--channels-last", precision.channels_last), ("--compile", precision.compile),
                     ("--gradient-checkpointing", precision.checkpointing),
                     ("--fp32-master-weights", precision.master_weights), ("--deterministic", precision.deterministic)):
        if on:
            flags.append(flag)
    return flags


def lm_option_flags(lm) -> list[str]:
    """The command-line flags that give ``lm`` back through :func:`lm_options_of` (defaults left out)."""
    flags = []
    for flag, value, default in (("--dtype", lm.dtype, "auto"), ("--prompt-format", lm.prompt_format, "auto"),
                                 ("--system-prompt", lm.system_prompt, None), ("--max-length", lm.max_length, None),
                                 ("--max-new-tokens", lm.max_new_tokens, None),
                                 ("--reference-device", lm.reference_device, None), ("--lora", lm.lora, 0),
                                 ("--lora-alpha", lm.lora_alpha, None), ("--lora-save", lm.lora_save, "merged")):
        if value != default:
            flags += [flag, str(value)]
    if lm.lora_targets:
        flags += ["--lora-targets", ",".join(lm.lora_targets)]
    if lm.trust_remote_code:
        flags.append("--trust-remote-code")
    return flags


def lm_options_of(args):
    """The language-model options (``--dtype``, ``--trust-remote-code``, ``--prompt-format``,
    ``--system-prompt``, ``--max-length``, ``--max-new-tokens``, ``--reference-device``)."""
    from .models.lm_options import LMOptions

    return LMOptions(dtype=args.dtype, trust_remote_code=args.trust_remote_code, prompt_format=args.prompt_format,
                     system_prompt=args.system_prompt, max_length=args.max_length,
                     max_new_tokens=args.max_new_tokens, reference_device=args.reference_device,
                     lora=args.lora, lora_alpha=args.lora_alpha, lora_save=args.lora_save,
                     lora_targets=tuple(t.strip() for t in args.lora_targets.split(",") if t.strip())
                     if args.lora_targets else None)


def parse_sets(items: list[str], method: str | None = None, allowed: set[str] | None = None
               ) -> dict[str, dict[str, Any]]:
    """``--set`` values, one grammar for every command: ``METHOD.KEY=VALUE`` (``train.KEY`` for the
    original's recipe) or bare ``KEY=VALUE`` for ``method`` (the method being run; None where the
    command runs several). Values are typed from the target's config dataclass; an unknown key or a
    mistyped value is an error naming it. ``allowed``: the only targets the command accepts."""
    from .resolve import typed_overrides

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        name, eq, value = item.partition("=")
        target, dot, key = name.rpartition(".")
        if not eq or not key or (dot and not target):
            raise ConfigError(f"--set {item!r}: expected METHOD.KEY=VALUE (e.g. ga.lr=0.001) or KEY=VALUE")
        if not dot:
            if method is None:
                raise ConfigError(f"--set {item!r}: this command runs several methods; expected METHOD.KEY=VALUE "
                                  f"(e.g. ga.{key}={value})")
            target = method
        if allowed is not None and target not in allowed:
            raise ConfigError(f"--set {item!r}: this command takes KEY=VALUE or "
                              f"{' / '.join(sorted(t + '.KEY=VALUE' for t in allowed))}")
        if key in out.get(target, {}):
            raise ConfigError(f"--set {target}.{key} is given twice; give it once")
        typed = typed_overrides(target, {key: value})
        out.setdefault(target, {}).update(typed)
    return out
