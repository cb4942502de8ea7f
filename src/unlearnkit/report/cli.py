"""The ``unlearnkit report`` subcommand: ``add_arguments(parser)`` and ``run(args) -> int``."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write one self-contained HTML page (table, trade-off, relearning, MIA ROC, run time) from a bench results folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", type=Path, metavar="RESULTS_DIR",
                        help="a folder written by `unlearnkit bench --out` (or its results.jsonl)")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="the HTML file to write (default: RESULTS_DIR/report.html)")
    parser.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    parser.add_argument("--title", help="the page title (default: 'unlearnkit report: DATA')")


def run(args: argparse.Namespace) -> int:
    from . import build_report

    results = Path(args.results)
    output = args.output or (results if results.is_dir() else results.parent) / "report.html"
    path = build_report(results, output, force=args.force, title=args.title)
    print(f"report: {path}")
    return 0
