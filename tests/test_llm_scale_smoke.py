"""``benchmarks/llm_scale.py --smoke`` runs every method on the tiny Llama config and writes its figures.

The script is run as a user runs it (a subprocess, one thread); ~15–25 s on one CPU thread.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "llm_scale.py"
METHODS = {"ga", "graddiff", "npo", "simnpo", "rmu", "entangle", "lur", "ieu", "mox", "rosu"}


def test_llm_scale_smoke(tmp_path):
    out = tmp_path / "llm_scale.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "UNLEARNKIT_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| bare HF loop" in proc.stdout  # the markdown table is printed

    results = json.loads(out.read_text())
    assert results["config"] == "tiny" and results["device"]["type"] == "cpu"
    assert results["device"]["name"] and results["torch"] and results["transformers"]
    assert results["steps"] == 3

    bare = results["bare"]
    assert bare["status"] == "ok", bare
    assert bare["tokens_per_s"] > 0 and bare["seconds_per_step"] > 0
    assert bare["peak_memory_mib"] > 0

    rows = results["methods"].values()
    assert {row["method"] for row in rows} == METHODS
    assert {row["row"] for row in rows if row["method"] == "entangle"} == {"entangle:alm", "entangle:wpgd"}
    for row in rows:
        assert row["status"] == "ok", row
        assert row["tokens_per_s"] > 0, row
        assert row["steps_timed"] == 3, row
        assert row["passes"] > 0
        for key in ("x_bare", "ratio", "seconds_per_step"):
            assert math.isfinite(row[key]) and row[key] > 0, (row["row"], key, row[key])
