"""Tune methods on an embedded text benchmark with ``unlearnkit tune`` and record the study the
resolver's calibrated layer cites for that benchmark (``unlearnkit/calibrated.py``).

    OMP_NUM_THREADS=1 python benchmarks/tune_embedded.py --data wmdp-mini --methods npo,graddiff --trials 12
    OMP_NUM_THREADS=1 python benchmarks/tune_embedded.py --data wmdp-mini --collect DIR   # DIR/<method>/best.json

Each method is one ``unlearnkit tune --data DATA --method M --trials N --utility-floor F --out
DIR/M`` study (Optuna TPE, seeded; the untuned default is its first trial): trials are scored on the
**validation** half of the held-out data and the best configuration is measured once on the
**final-test** half (``bench/tune.py``). The objective is the data's: WMDP-style data minimises
hazard accuracy at general accuracy ≥ F × the original's; TOFU-style data maximises forget quality
at model utility ≥ F × the original's. Each study's ``best.json`` is copied whole into
``benchmarks/studies/DATA.json`` (``methods.M.tune``) with its best values (``methods.M.best``).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def study_path(data: str) -> Path:
    return HERE / "studies" / f"{data}.json"


def record(data: str, method: str, summary: dict, command: str) -> None:
    """Merge one method's tune summary into the benchmark's study file."""
    path = study_path(data)
    study = json.loads(path.read_text()) if path.exists() else {"data": data, "methods": {}}
    study["protocol"] = __doc__
    study["methods"][method] = {"best": summary["params"], "command": command, "tune": summary}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(study, indent=1, sort_keys=True) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="an embedded text benchmark: wmdp-mini or tofu-mini")
    parser.add_argument("--methods", default="", help="comma-separated")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--utility-floor", type=float, default=0.95)
    parser.add_argument("--out", default="tune-embedded", help="where the studies run (DIR/<method>)")
    parser.add_argument("--collect", metavar="DIR", help="only record DIR/<method>/best.json of studies already run")
    args = parser.parse_args(argv)
    root = Path(args.collect or args.out)
    methods = args.methods.split(",") if args.methods else sorted(p.parent.name for p in root.glob("*/best.json"))
    for method in methods:
        command = (f"unlearnkit tune --data {args.data} --method {method} --trials {args.trials} "
                   f"--utility-floor {args.utility_floor} --out {root / method}")
        if not args.collect:
            subprocess.run(command.split(), check=True)
        best = root / method / "best.json"
        if not best.exists():
            print(f"{method}: no {best} (the study did not finish)", file=sys.stderr)
            continue
        summary = json.loads(best.read_text())
        record(args.data, method, summary, "OMP_NUM_THREADS=1 " + command)
        print(f"{method}: {summary['params']} → validation {summary['validation']['value']:.3g}, "
              f"test {summary['test']['value']:.3g} (default: test {summary['default']['test']['value']:.3g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
