"""The ``unlearnkit`` command: parses arguments, calls the library, prints. Nothing else lives here."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .cli_options import (add_run_options, add_verbose, configure_logging, lm_options_of, parse_data_options,
                          parse_sets, precision_of)
from .errors import ConfigError, UnlearnkitError


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _parse_slurm(items: list[str]) -> dict:
    """``--slurm KEY=VALUE``: submitit parameters (numbers become numbers)."""
    out: dict = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"--slurm {item!r}: expected KEY=VALUE, e.g. slurm_partition=gpu")
        out[key] = int(value) if value.isdigit() else value
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unlearnkit", description="Machine unlearning: methods, audits, benchmarks.")
    parser.add_argument("--version", action="version", version=f"unlearnkit {__version__}")
    add_verbose(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", help="run methods × forget scenarios × seeds, audit each, print a table")
    add_run_options(bench, out_default=Path("results"),
                    out_help="output folder for results.jsonl and results.csv (default: results)")
    bench.add_argument("--sweep", type=Path, metavar="FILE.toml",
                       help="methods × hyper-parameter grids (or a tune best.json) × scenarios × seeds from a TOML "
                            "file; validated before anything runs")
    bench.add_argument("--preset", help="a paper's protocol (cifar10-resnet18, cifar100-subclass): model, scenarios, "
                                        "seeds, audits, the original's recipe, the methods' hyper-parameters and the "
                                        "table layout; explicit flags and --set win")
    bench.add_argument("--original", metavar="FILE",
                       help="your trained classifier as the original (safetensors, or a torch.save state dict such "
                            "as SalUn's {'state_dict': …}; read without unpickling code), --model naming its "
                            "architecture; default: the original unlearnkit trains and caches")
    bench.add_argument("--forget", action="append", metavar="SPEC",
                       help="class:K[,K...] | subclass:K | random:P | indices:PATH | a split the data names "
                            "(e.g. forget05); repeatable (default: the data's, e.g. class:0 and random:0.1 for digits)")
    bench.add_argument("--methods", type=_csv, help="comma-separated method names (default: the data kind's)")
    bench.add_argument("--seeds", type=int, help="unlearning/retrain seeds per cell (default: 3 for images, 1 for text)")
    bench.add_argument("--audits", type=_csv, help="comma-separated audit families (default: the data's, e.g. "
                                                     "accuracy,mia,relearn,weights for images)")
    bench.add_argument("--quick", action="store_true", help="smoke run: 1 seed, fewer epochs")
    bench.add_argument("--holdout", choices=("all", "validation", "test"), default="all",
                       help="which held-out examples the audits use: all (default), or the validation / test half "
                            "that `unlearnkit tune --seed 0` scores trials on / never sees (report tuned values on test)")
    bench.add_argument("--full", action="store_true", help="every audit family, the expensive shadow-model attack included")
    bench.add_argument("--dry-run", action="store_true",
                       help="print one JSON object per planned cell (method, scenario, seed, the resolved config and "
                            "where each value comes from, the original's recipe) and exit without training")
    bench.add_argument("--format", choices=("table", "markdown", "csv", "json"), default="table",
                       help="how the summary is printed (results.csv is written beside results.jsonl either way)")
    bench.add_argument("--workers", type=int,
                       help="worker processes, one (scenario, seed) group of cells each at a time, one torch "
                            "thread each (default: 1 for images; one per core for text, whose cells are slow)")
    bench.add_argument("--executor", choices=("local", "slurm", "submitit-local"), default="local",
                       help="where --workers groups run: local processes (default), SLURM jobs through submitit "
                            "(pip install 'unlearnkit[slurm]'), or submitit's local executor")
    bench.add_argument("--slurm", dest="slurm", action="append", default=[], metavar="KEY=VALUE",
                       help="a submitit parameter for --executor slurm, e.g. slurm_partition=gpu, timeout_min=120, "
                            "gpus_per_node=1; repeatable")

    forget = sub.add_parser("forget", help="unlearn one deletion request from a model; write the model, "
                                           "record.json and record.html")
    add_run_options(forget, out_help="a new output folder (nothing in it is ever replaced)")
    forget.add_argument("--forget", required=True, metavar="SPEC",
                        help="what to forget: class:K, subclass:K, random:P, indices:PATH or a named split")
    forget.add_argument("--method", required=True, help="the unlearning method (see `unlearnkit methods`)")
    forget.add_argument("--checkpoint", type=Path, metavar="CKPT",
                        help="the trained classifier (safetensors, or a torch.save state dict such as SalUn's "
                             "{'state_dict': …}; read without unpickling code); --model names its architecture")
    forget.add_argument("--arch", help=argparse.SUPPRESS)  # deprecated spelling of --model (one release)
    forget.add_argument("--audits", type=_csv, help="audit families (default: the data's)")
    forget.add_argument("--retrain", action="store_true",
                        help="also train a retrain reference on the retain set and report the gaps to it")
    forget.add_argument("--retrain-model", dest="retain_model", metavar="CKPT",
                        help="a retrained reference checkpoint to compare with (same as --retain-model)")
    forget.add_argument("--seed", type=int, default=0, help="unlearning seed")

    from .bench import tune_cli
    from .report import cli as report_cli

    tune = sub.add_parser("tune", help=tune_cli.HELP)
    tune_cli.add_arguments(tune)
    report = sub.add_parser("report", help=report_cli.HELP)
    add_verbose(report)
    report_cli.add_arguments(report)

    methods = sub.add_parser("methods", help="list the registered methods and the hyper-parameters they run with",
                             description="One method per line, then the values it runs with; VALUE(layer) marks a "
                                         "value a resolver layer (kind, method kind, calibrated, preset, recipe) set "
                                         "over the method's own default.")
    add_verbose(methods)
    methods.add_argument("--kind", choices=("image", "text"), default="image",
                         help="the data kind whose defaults to show (default: image)")
    methods.add_argument("--preset", help="also apply a preset's hyper-parameters")
    methods.add_argument("--scale", choices=("small", "pretrained"),
                         help="text only: pretrained = the recipe for a pretrained --hf-model (OpenUnlearning's)")
    methods.add_argument("--data", default=None,
                         help="an embedded benchmark (e.g. wmdp-mini): its own calibrated defaults, as bench --data uses")

    convert = sub.add_parser("convert-gguf", help="convert a GGUF checkpoint into a save_pretrained folder "
                                                  "(model + tokenizer) that --hf-model reads",
                             description="De-quantise a GGUF file (needs the gguf and accelerate packages) and write "
                                         "it with save_pretrained into a new folder; offline, never overwrites.")
    add_verbose(convert)
    convert.add_argument("gguf_file", type=Path, metavar="FILE", help="the .gguf file")
    convert.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="a new folder for the converted model")
    convert.add_argument("--dtype", choices=("auto", "bf16", "fp16", "fp32"), default="auto",
                         help="dtype of the saved weights (default: auto, what the de-quantisation gives)")

    verify = sub.add_parser("verify", help="recompute every hash a deletion record cites (forgotten ids, data, "
                                           "input and output models); exit 1 on any mismatch",
                            description="Recompute the forgotten ids' SHA-256 from the data, forget spec and split "
                                        "seed, the data fingerprint, and the input and output models' hashes of a "
                                        "record.json written by `unlearnkit forget`; print one line per check (ok, "
                                        "MISMATCH, MISSING, skipped) and exit 1 if any is MISMATCH or MISSING.")
    add_verbose(verify)
    verify.add_argument("record", type=Path, metavar="RECORD", help="the record.json (or the folder holding it)")
    return parser


def _one_method(methods: list[str] | None) -> str | None:
    """The method a bare ``--set KEY=VALUE`` means: the only one named (besides the retrain reference)."""
    named = [m for m in methods or () if m != "retrain"]
    return named[0] if len(named) == 1 else None


def cmd_bench(args) -> int:
    from .audits.api import FULL_AUDITS
    from .bench.presets import PRESETS
    from .bench.runner import BenchPlan, plan_cells, print_table, run_bench

    if args.seeds is not None and args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    if args.preset:
        PRESETS.get(args.preset).check_data(args.data)
    audits = args.audits or (list(FULL_AUDITS) if args.full else None)
    plan = BenchPlan(
        data=args.data, model=args.model, scenarios=args.forget, methods=args.methods, seeds=args.seeds,
        audits=audits, quick=args.quick, out=args.out, device=args.device, train_seed=args.train_seed,
        split_seed=args.split_seed, overrides=parse_sets(args.sets, _one_method(args.methods)),
        hf_model=args.hf_model, data_options=parse_data_options(args.data_options, args.data),
        precision=precision_of(args), workers=args.workers, executor=args.executor, slurm=_parse_slurm(args.slurm),
        preset=args.preset, log_dir=args.log_dir, retain_model=args.retain_model, retain_logs=args.retain_logs,
        lm=lm_options_of(args), original=args.original, holdout=args.holdout,
    )
    if args.sweep:
        from .bench.sweep import load_sweep

        plan = load_sweep(args.sweep, plan)
    if args.dry_run:
        for cell in plan_cells(plan):
            print(json.dumps(cell, sort_keys=True))
        return 0
    records = run_bench(plan)
    from . import distributed

    if distributed.is_main():  # several processes: one table
        preset = PRESETS.get(args.preset) if args.preset else None
        columns, headers = (preset.columns, preset.headers) if preset else (None, None)
        print(print_table(records, columns, headers, fmt=args.format))
        if args.format == "table":
            print(f"\nresults: {Path(args.out) / 'results.jsonl'} (and results.csv)")
        failed = [r for r in records if r.get("status") == "failed"]
        if failed:
            print(f"unlearnkit: error: {len(failed)} cell(s) failed (not stored; a rerun retries them):", file=sys.stderr)
            for record in failed:
                print(f"  {record['scenario']} {record.get('label', record['method'])} seed {record['seed']}: "
                      f"{record['error']}", file=sys.stderr)
            return 1
    return 0


def _forget_checkpoint(args) -> tuple[Path | None, str | None]:
    """(checkpoint, architecture) from ``--checkpoint``/``--model``, accepting the deprecated
    ``--model CKPT --arch NAME`` spelling for one release, with a warning."""
    checkpoint, arch = args.checkpoint, args.model
    if args.arch:
        print("unlearnkit: warning: forget --arch is deprecated; --model names the architecture now", file=sys.stderr)
    old_spelling = arch is not None and (Path(arch).suffix in CHECKPOINT_SUFFIXES or Path(arch).is_file())
    if old_spelling and checkpoint is None:
        print("unlearnkit: warning: forget --model CKPT is deprecated; use --checkpoint CKPT --model ARCH",
              file=sys.stderr)
        return Path(arch), args.arch
    if args.arch and arch is None:
        arch = args.arch
    return checkpoint, arch


CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


def cmd_forget(args) -> int:
    from .bench.table import COLUMNS
    from .deletion import ForgetRequest, run_forget

    checkpoint, arch = _forget_checkpoint(args)
    overrides = parse_sets(args.sets, args.method, allowed={args.method}).get(args.method, {})
    request = ForgetRequest(
        data=args.data, forget=args.forget, method=args.method, out=args.out, checkpoint=checkpoint, arch=arch,
        hf_model=args.hf_model, overrides=overrides, data_options=parse_data_options(args.data_options, args.data),
        audits=args.audits, retrain=args.retrain, retrain_model=args.retain_model,
        retain_logs=args.retain_logs, seed=args.seed,
        split_seed=args.split_seed, train_seed=args.train_seed, device=args.device, argv=list(args.argv or []),
        precision=precision_of(args), log_dir=args.log_dir, lm=lm_options_of(args),
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
    from .methods.base import METHODS
    from .resolve import explain_config, resolve_config

    for name, cls in METHODS.items():
        config = resolve_config(name, kind=args.kind, scale=args.scale, preset=args.preset, data=args.data).to_dict()
        origin = explain_config(name, kind=args.kind, scale=args.scale, preset=args.preset, data=args.data)
        values = " ".join(f"{k}={v}" + (f"({origin[k]})" if origin.get(k, "defaults") != "defaults" else "")
                          for k, v in config.items())
        print(f"{name:<14} {cls.summary}")
        print(f"{'':<14} {values}")
    return 0


def cmd_verify(args) -> int:
    from .verify import format_report, verify_record

    checks = verify_record(args.record)
    print(format_report(checks))
    return 1 if any(check.failed for check in checks) else 0


def cmd_convert_gguf(args) -> int:
    from .models.hf import convert_gguf

    out = convert_gguf(args.gguf_file, args.out_dir, dtype=args.dtype)
    print(f"model: {out} (use it with --hf-model {out})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    configure_logging(args.verbose)
    try:
        from .bench import tune_cli
        from .report import cli as report_cli

        commands = {"bench": cmd_bench, "forget": cmd_forget, "tune": tune_cli.run, "report": report_cli.run,
                    "methods": cmd_methods, "convert-gguf": cmd_convert_gguf,
                    "verify": cmd_verify}
        return commands[args.command](args)
    except UnlearnkitError as exc:
        print(f"unlearnkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("unlearnkit: interrupted; finished cells are saved and a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
