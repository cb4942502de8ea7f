"""The ``unlearnkit tune`` subcommand: arguments and the command function (wired into ``cli.py``)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..cli_options import add_run_options, configure_logging, lm_options_of, parse_data_options, precision_of
from ..cli_options import parse_sets as _parse_sets

if TYPE_CHECKING:
    from .tune import TuneRequest

HELP = "tune a method's hyper-parameters against the retrained model (Optuna; resumable, multi-worker)"


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_sets(items: list[str], method: str) -> dict[str, dict]:
    """``--set KEY=VALUE`` (the method's), ``METHOD.KEY=VALUE`` or ``train.KEY=VALUE`` (the original's
    recipe): the one ``--set`` grammar, typed from the configs."""
    return _parse_sets(items, method, allowed={method, "train"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_options(parser, out_default=Path("tune"),
                    out_help="folder for best.json, the default journal storage and the retrain reference (default: tune)")
    parser.add_argument("--method", required=True, help="the method to tune (its declared search space)")
    parser.add_argument("--forget", metavar="SPEC", help="the forget scenario (default: the data's first, e.g. class:0)")
    parser.add_argument("--trials", type=int, default=20,
                        help="the study's total number of complete trials, counted across workers (default: 20)")
    parser.add_argument("--storage", metavar="URL|FILE",
                        help="an Optuna storage: sqlite:///f.db, postgresql+psycopg2://user:pw@host/db, or a journal "
                             "file path (default: OUT/study.journal); the same storage lets several workers share a study")
    parser.add_argument("--study", metavar="NAME", help="the study's name (default: METHOD-DATA-SCENARIO-seedS)")
    parser.add_argument("--seed", type=int, default=0,
                        help="unlearning and retrain seed, sampler seed, and the validation/test halving seed")
    parser.add_argument("--audits", type=_csv,
                        help="audit families per trial (default: accuracy,mia for images; tofu for text)")
    parser.add_argument("--utility-floor", type=float, default=0.9,
                        help="text: a trial is feasible when its model utility is at least this fraction of the "
                             "original's (default: 0.9)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: the original and retrain trained with fewer epochs (as bench --quick)")
    parser.add_argument("--workers-note", action="store_true",
                        help="create the study and the retrain reference, print the command that starts a worker "
                             "on it, and exit (run this once before starting several workers)")


def request_from_args(args) -> TuneRequest:
    from .tune import TuneRequest

    return TuneRequest(
        method=args.method, trials=args.trials, data=args.data, forget=args.forget, storage=args.storage,
        study=args.study, seed=args.seed, out=args.out, overrides=parse_sets(args.sets, args.method),
        model=args.model, audits=args.audits, quick=args.quick, utility_floor=args.utility_floor,
        device=args.device, train_seed=args.train_seed, split_seed=args.split_seed,
        data_options=parse_data_options(args.data_options, args.data), hf_model=args.hf_model,
        precision=precision_of(args), log_dir=args.log_dir,
        retain_model=args.retain_model, retain_logs=args.retain_logs, lm=lm_options_of(args),
    )


def run(args) -> int:
    from .tune import format_summary, prepare_study, tune, worker_command

    request = request_from_args(args)
    if args.workers_note:
        name = prepare_study(request)
        print(f"study {name} is ready ({request.storage or Path(request.out) / 'study.journal'}); "
              f"start each worker with:\n\n  {worker_command(request, name)}\n\n"
              "--trials is the study's total: the workers stop together when it holds that many complete trials; "
              "the last to finish writes best.json. Across machines, use a storage every worker reaches "
              "(a PostgreSQL URL, or a journal file on a shared file system).")
        return 0
    summary = tune(request)
    if summary is None:
        print("this worker is done; other workers are still running trials (the last writes best.json)")
        return 0
    print(format_summary(summary))
    print(f"\nbest: {Path(request.out) / 'best.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m unlearnkit.bench.tune_cli …``: the subcommand on its own (same as ``unlearnkit tune``)."""
    import sys

    from ..errors import UnlearnkitError

    parser = argparse.ArgumentParser(prog="unlearnkit tune", description=HELP)
    add_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(getattr(args, "verbose", False))
    try:
        return run(args)
    except UnlearnkitError as exc:
        print(f"unlearnkit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
