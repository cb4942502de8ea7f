"""A retain model's evaluation, kept as a file: what forget quality and privleak compare with.

The field compares an unlearned model with the published *retain-finetuned* model (TOFU's
``retain90`` model), or with that model's evaluation log when the model itself is not at hand:
OpenUnlearning's ``TOFU_EVAL.json`` (``eval.tofu.retain_logs_path``; configs/eval/tofu_metrics/
forget_quality.yaml and privleak.yaml read its ``forget_truth_ratio`` and ``mia_min_k`` entries).

The format, OpenUnlearning's and ours alike (we write the same keys)::

    {"forget_truth_ratio": {"agg_value": …, "value_by_index": {"0": {"score": R_0}, "1": …}},
     "mia_min_k": {"agg_value": AUC}}

``R_i`` is the per-item truth ratio P_wrong / P_correct on the forget set (src/evals/metrics/
memorization.py ``truth_ratio``; ours: ``audits.tofu.truth_ratio``) and ``AUC`` the Min-K% (k = 0.4)
membership AUC of forget vs holdout (``audits.tofu.min_k_auc``).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import DataError

TRUTH_RATIO = "forget_truth_ratio"
MIN_K = "mia_min_k"


def read_retain_logs(path: str | Path) -> dict:
    """``{"truth_ratios": array, "mink_auc": float | None, "path": str}`` from a retain model's
    evaluation file; an error naming the file when it holds no per-item truth ratios."""
    path = Path(path)
    try:
        logs = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"--retain-logs {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"--retain-logs {path}: not a JSON evaluation log ({exc})") from None
    entry = logs.get(TRUTH_RATIO) if isinstance(logs, dict) else None
    by_index = entry.get("value_by_index") if isinstance(entry, dict) else None
    if not isinstance(by_index, dict) or not by_index:
        raise DataError(f"--retain-logs {path}: no per-item '{TRUTH_RATIO}.value_by_index' (an OpenUnlearning "
                        "TOFU_EVAL.json of the retain model, or one unlearnkit wrote, has it)")
    try:
        ratios = [float(item["score"]) for _, item in sorted(by_index.items(), key=lambda kv: int(kv[0]))
                  if item is not None and item.get("score") is not None]
    except (TypeError, ValueError, KeyError) as exc:
        raise DataError(f"--retain-logs {path}: unreadable '{TRUTH_RATIO}' entry ({exc!r})") from None
    auc = logs.get(MIN_K, {}).get("agg_value") if isinstance(logs.get(MIN_K), dict) else None
    auc = None if auc is None or (isinstance(auc, float) and math.isnan(auc)) else float(auc)
    return {"truth_ratios": np.asarray(ratios, dtype=np.float64), "mink_auc": auc, "path": str(path)}


def retain_logs_json(truth_ratios, mink_auc: float | None) -> str:
    """The evaluation file of a retain model (the format above), for a later ``--retain-logs``."""
    ratios = [float(r) for r in np.asarray(truth_ratios, dtype=np.float64)]
    logs = {TRUTH_RATIO: {"agg_value": float(np.mean(np.minimum(ratios, 1.0 / (np.asarray(ratios) + 1e-10))))
                          if ratios else None,
                          "value_by_index": {str(i): {"score": r} for i, r in enumerate(ratios)}},
            MIN_K: {"agg_value": mink_auc}}
    return json.dumps(logs, indent=1)
