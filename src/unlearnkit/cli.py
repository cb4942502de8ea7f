"""The ``unlearnkit`` command: parses arguments, calls the library, prints. Nothing else lives here."""
from __future__ import annotations

import argparse
from dataclasses import replace
import sys
from pathlib import Path

from .cli_options import configure_logging, parse_data_options
from .errors import ConfigError, UnlearnkitError


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _parse_sets(items: list[str]) -> dict[str, dict[str, str]]:
    """``--set METHOD.KEY=VALUE`` (``train.KEY`` for the original's recipe)."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        target, eq, value = item.partition("=")
        method, dot, key = target.partition(".")
        if not eq or not dot or not method or not key:
            raise ConfigError(f"--set {item!r}: expected METHOD.KEY=VALUE, e.g. ga.lr=0.001")
        out.setdefault(method, {})[key] = value
    return out


def _parse_slurm(items: list[str]) -> dict:
    """``--slurm KEY=VALUE``: submitit parameters (numbers become numbers)."""
    out: dict = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"--slurm {item!r}: expected KEY=VALUE, e.g. slurm_partition=gpu")
        out[key] = int(value) if value.isdigit() else value
    return out


def _add_precision_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none",
                        help="mixed precision for the unlearning steps (fp16 adds a loss scaler)")
    parser.add_argument("--channels-last", action="store_true", help="channels-last memory format (GPU convolutions)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model's forward passes")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="recompute activations in the backward pass (Hugging Face models: less memory)")


def _precision(args):
    from .methods.precision import Precision

    return Precision(amp=args.amp, channels_last=args.channels_last, compile=args.compile,
                     checkpointing=args.gradient_checkpointing)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unlearnkit", description="Machine unlearning: methods, audits, benchmarks.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", help="run methods × forget scenarios × seeds, audit each, print a table")
    bench.add_argument("--data", default="digits", help="NAME or NAME:PATH (default: digits, embedded)")
    bench.add_argument("--sweep", type=Path, metavar="FILE.toml",
                       help="methods × hyper-parameter grids (or a tune best.json) × scenarios × seeds from a TOML "
                            "file; validated before anything runs")
    bench.add_argument("--preset", help="a standard protocol (cifar10-resnet18, cifar100-subclass): fills model, "
                                        "scenarios, seeds, audits, the original's recipe and the table layout; "
                                        "explicit flags win")
    bench.add_argument("--model", help="architecture name (default: the data's: cnn for images, tiny-llama for text)")
    bench.add_argument("--forget", action="append", metavar="SPEC",
                       help="class:K[,K...] | subclass:K | random:P | indices:PATH | a split the data names "
                            "(e.g. forget05); repeatable (default: the data's, e.g. class:0 and random:0.1 for digits)")
    bench.add_argument("--methods", type=_csv, help="comma-separated method names (default: all registered)")
    bench.add_argument("--seeds", type=int, help="unlearning/retrain seeds per cell (default: 3 for images, 1 for text)")
    bench.add_argument("--audits", type=_csv, help="comma-separated audit families (default: the data's, e.g. "
                                                     "accuracy,mia,relearn,weights for images)")
    bench.add_argument("--quick", action="store_true", help="smoke run: 1 seed, fewer epochs")
    bench.add_argument("--full", action="store_true", help="every audit family, the expensive shadow-model attack included")
    bench.add_argument("--out", type=Path, default=Path("results"), help="output folder for results.jsonl (default: results)")
    bench.add_argument("--set", dest="sets", action="append", default=[], metavar="METHOD.KEY=VALUE",
                       help="override a hyper-parameter, e.g. ga.lr=0.001 or train.epochs=20; repeatable")
    bench.add_argument("--data-option", dest="data_options", action="append", default=[], metavar="KEY=VALUE",
                       help="an option for the data loader, e.g. groups=map.json (fine→coarse map), resize=true, "
                            "image_column=img; repeatable")
    bench.add_argument("--hf-model", metavar="DIR",
                       help="a local Hugging Face causal-LM folder (save_pretrained) to use as the original model; "
                            "its tokenizer encodes the text data; never downloads")
    bench.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    bench.add_argument("--workers", type=int,
                       help="worker processes, one (scenario, seed) group of cells each at a time, one torch "
                            "thread each (default: 1 for images; one per core for text, whose cells are slow)")
    bench.add_argument("--executor", choices=("local", "slurm", "submitit-local"), default="local",
                       help="where --workers groups run: local processes (default), SLURM jobs through submitit "
                            "(pip install 'unlearnkit[slurm]'), or submitit's local executor")
    bench.add_argument("--slurm", dest="slurm", action="append", default=[], metavar="KEY=VALUE",
                       help="a submitit parameter for --executor slurm, e.g. slurm_partition=gpu, timeout_min=120, "
                            "gpus_per_node=1; repeatable")
    _add_precision_flags(bench)
    bench.add_argument("--train-seed", type=int, default=0, help="seed of the original model's training")
    bench.add_argument("--split-seed", type=int, default=0, help="seed of the random forget-set draw")

    forget = sub.add_parser("forget", help="unlearn one deletion request from a model; write the model, "
                                           "record.json and record.html")
    forget.add_argument("--data", default="digits", help="NAME or NAME:PATH the model was trained on (default: digits)")
    forget.add_argument("--data-option", dest="data_options", action="append", default=[], metavar="KEY=VALUE",
                        help="an option for the data loader; repeatable")
    forget.add_argument("--forget", required=True, metavar="SPEC",
                        help="what to forget: class:K, subclass:K, random:P, indices:PATH or a named split")
    forget.add_argument("--method", required=True, help="the unlearning method (see `unlearnkit methods`)")
    forget.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a hyper-parameter of the method, e.g. lr=0.001; repeatable")
    forget.add_argument("--model", type=Path, metavar="CKPT", help="the trained classifier (safetensors); with --arch")
    forget.add_argument("--arch", help="the registered architecture of --model (e.g. resnet18, cnn)")
    forget.add_argument("--hf-model", type=Path, metavar="DIR", help="a local Hugging Face causal-LM folder")
    forget.add_argument("--out", type=Path, required=True, help="a new output folder (nothing in it is ever replaced)")
    forget.add_argument("--audits", type=_csv, help="audit families (default: the data's)")
    forget.add_argument("--retrain", action="store_true",
                        help="also train a retrain reference on the retain set and report the gaps to it")
    forget.add_argument("--retrain-model", type=Path, metavar="CKPT", help="a retrained reference checkpoint to compare with")
    forget.add_argument("--seed", type=int, default=0, help="unlearning seed")
    forget.add_argument("--split-seed", type=int, default=0, help="seed of a random forget-set draw")
    forget.add_argument("--train-seed", type=int, default=0, help="seed of the embedded default's original training")
    forget.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    _add_precision_flags(forget)

    from .bench import tune_cli
    from .report import cli as report_cli

    tune = sub.add_parser("tune", help=tune_cli.HELP)
    tune_cli.add_arguments(tune)
    report = sub.add_parser("report", help=report_cli.HELP)
    report_cli.add_arguments(report)

    sub.add_parser("methods", help="list the registered methods, their hyper-parameters and defaults")
    return parser


def cmd_bench(args) -> int:
    from .audits.api import FULL_AUDITS
    from .bench.presets import PRESETS
    from .bench.runner import BenchPlan, print_table, run_bench

    if args.seeds is not None and args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    audits = args.audits or (list(FULL_AUDITS) if args.full else None)
    plan = BenchPlan(
        data=args.data, model=args.model, scenarios=args.forget, methods=args.methods, seeds=args.seeds,
        audits=audits, quick=args.quick, out=args.out, device=args.device, train_seed=args.train_seed,
        split_seed=args.split_seed, overrides=_parse_sets(args.sets), hf_model=args.hf_model,
        data_options=parse_data_options(args.data_options), precision=_precision(args), workers=args.workers,
        executor=args.executor, slurm=_parse_slurm(args.slurm),
    )
    if args.sweep:
        from .bench.sweep import load_sweep

        plan = load_sweep(args.sweep, plan)
    columns = headers = None
    if args.preset:
        preset = PRESETS.get(args.preset)
        preset.check_data(args.data)
        plan = replace(plan, model=plan.model or preset.model, scenarios=plan.scenarios or list(preset.scenarios),
                       seeds=plan.seeds or preset.seeds, audits=plan.audits or list(preset.audits),
                       overrides=preset.overrides(plan.overrides, quick=plan.quick))
        columns, headers = preset.columns, preset.headers
    records = run_bench(plan)
    from . import distributed

    if distributed.is_main():  # several processes: one table
        print(print_table(records, columns, headers))
        print(f"\nresults: {Path(args.out) / 'results.jsonl'}")
    return 0


def cmd_forget(args) -> int:
    from .bench.table import COLUMNS
    from .deletion import ForgetRequest, run_forget

    overrides = {}
    for item in args.sets:
        key, eq, value = item.partition("=")
        if not eq or not key or "." in key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE for the method, e.g. lr=0.001")
        overrides[key] = value
    request = ForgetRequest(
        data=args.data, forget=args.forget, method=args.method, out=args.out, model=args.model, arch=args.arch,
        hf_model=args.hf_model, overrides=overrides, data_options=parse_data_options(args.data_options),
        audits=args.audits, retrain=args.retrain, retrain_model=args.retrain_model, seed=args.seed,
        split_seed=args.split_seed, train_seed=args.train_seed, device=args.device, argv=list(args.argv or []),
        precision=_precision(args),
    )
    record = run_forget(request)
    from . import distributed

    if not distributed.is_main():
        return 0
    metrics = record["metrics"]
    print(f"forgot {record['request']['forget_examples']} examples ({args.forget}) with {args.method} "
          f"in {record['run']['seconds']:.1f} s")
    print("  " + "  ".join(f"{k}={metrics[k]:.3g}" for k in COLUMNS if isinstance(metrics.get(k), float)))
    print(f"model:  {record['output_model']['path']}")
    print(f"record: {Path(args.out) / 'record.json'} and record.html")
    return 0


def cmd_methods(args) -> int:
    from .methods.base import METHODS, describe_config

    for name, cls in METHODS.items():
        print(f"{name:<14} {cls.summary}")
        print(f"{'':<14} {describe_config(cls.Config)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    configure_logging(args.verbose)
    try:
        from .bench import tune_cli
        from .report import cli as report_cli

        commands = {"bench": cmd_bench, "forget": cmd_forget, "tune": tune_cli.run, "report": report_cli.run,
                    "methods": cmd_methods}
        return commands[args.command](args)
    except UnlearnkitError as exc:
        print(f"unlearnkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("unlearnkit: interrupted; finished cells are saved and a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
