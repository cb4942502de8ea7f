"""``benchmarks/vision_scale.py --smoke`` runs every image method on ResNet-18 beside a bare loop and
writes its figures.

The script is run as a user runs it (a subprocess, one thread): CIFAR-shaped random data, batch 4,
1 warm-up + 2 timed steps per row; ≈ 45 s of CPU time (≈ 1 min on an idle 2-core machine, 2 min
when other jobs load it).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from unlearnkit.methods import METHODS as REGISTERED

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "vision_scale.py"
# what bench --preset cifar10-resnet18 compares, the seed methods among them
REQUIRED = {"retrain", "finetune", "ga", "random_label", "salun", "l1_sparse", "scrub", "ssd", "bad_teacher",
            "entangle", "lur", "ieu", "mox", "rosu"}


def test_vision_scale_smoke(tmp_path):
    out = tmp_path / "vision_scale.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "UNLEARNKIT_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| bare PyTorch loop (SGD)" in proc.stdout  # the markdown table is printed

    results = json.loads(out.read_text())
    assert results["device"]["type"] == "cpu" and results["device"]["name"] and results["torch"]
    assert results["input_shape"] == [3, 32, 32] and results["classes"] == 10
    assert results["parameters"] == 11_173_962  # our ResNet-18, CIFAR stem
    assert results["steps"] == 2 and results["warmup_steps"] == 1 and results["smoke"]

    bare = results["bare"]
    assert bare["status"] == "ok", bare
    assert bare["samples_per_s"] > 0 and bare["seconds_per_step"] > 0 and bare["peak_memory_mib"] > 0

    rows = results["methods"]
    methods = {row["method"] for row in rows.values()}
    assert REQUIRED <= methods
    assert methods == set(REGISTERED.names()) - {"original"}
    assert {name for name, row in rows.items() if row["method"] == "entangle"} == {"entangle:alm", "entangle:wpgd"}
    for name, row in rows.items():
        assert row["status"] == "ok", row
        assert row["samples_per_s"] > 0, row
        assert row["passes"] > 0 and row["peak_memory_mib"] > 0, row
        for key in ("x_bare", "ratio", "seconds_per_step"):
            assert math.isfinite(row[key]) and row[key] > 0, (name, key, row[key])
        if name != "ssd":  # ssd takes no optimizer steps: timed whole
            assert row["steps_timed"] == 2, row
    assert rows["ssd"]["examples"] == 2 * results["forget_rows"]
