"""Several writers on one results.jsonl lose nothing and duplicate nothing (bench/store.py)."""
import json
import os
import subprocess
import sys
import textwrap
import time

from unlearnkit.bench import ResultStore

WRITER = textwrap.dedent("""
    import os, random, sys, time
    from pathlib import Path
    from unlearnkit.bench.store import ResultStore

    path, name, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    store = ResultStore(path)          # opened before the other writer adds anything
    while not go.exists():             # start together
        time.sleep(0.001)
    rng = random.Random(name)
    for i in range(50):
        cell = f"shared-{i}" if i % 10 == 0 else f"{name}-{i}"   # every 10th cell both writers run
        if not store.has(cell):
            store.add({"cell": cell, "by": name, "i": i, "pad": "x" * rng.randrange(2000)})
        time.sleep(rng.random() * 0.004)
""")


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _env(tmp_path):
    return {**os.environ, "OMP_NUM_THREADS": "1", "UNLEARNKIT_CACHE": str(tmp_path / "cache")}


def test_two_processes_adding_50_records_each_lose_nothing(tmp_path):
    path, go = tmp_path / "results.jsonl", tmp_path / "go"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    writers = [subprocess.Popen([sys.executable, str(script), str(path), name, str(go)], env=_env(tmp_path),
                                stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    time.sleep(1.0)  # both imported and holding a store opened on the empty file
    go.touch()
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read()[-2000:]
    cells = [record["cell"] for record in _lines(path)]
    expected = {f"shared-{i}" for i in range(0, 50, 10)} | {f"{n}-{i}" for n in "ab" for i in range(50) if i % 10}
    assert len(cells) == len(set(cells)), "a cell is stored twice"
    assert set(cells) == expected  # 2 × 45 own cells + 5 shared ones, each exactly once
    assert (tmp_path / "results.jsonl.lock").exists()  # the lock file beside it, left in place


def test_a_store_sees_rows_another_writer_added_and_keeps_the_first_row_of_a_cell(tmp_path):
    path = tmp_path / "results.jsonl"
    first, second, late = ResultStore(path), ResultStore(path), ResultStore(path)
    first.add({"cell": "a", "by": "first"})
    assert second.has("a") and second.get("a")["by"] == "first"  # re-read on change
    second.add({"cell": "b", "by": "second"})
    first.add({"cell": "c", "by": "first"})
    late.add({"cell": "a", "by": "late"})  # opened before "a" was stored, never looked: the row on disk wins
    assert late.get("a")["by"] == "first" and [r["cell"] for r in late.records] == ["a", "b", "c"]
    rows = _lines(path)
    assert [r["cell"] for r in rows] == ["a", "b", "c"] and rows[0]["by"] == "first"
    assert [r["cell"] for r in ResultStore(path).records] == ["a", "b", "c"]


def test_two_bench_runs_on_one_out_folder_keep_every_cell_once(tmp_path):
    """`bench --methods ga` and `bench --methods finetune`, started together on the same --out: both
    run the retrain reference; every cell lands exactly once and neither run's rows are lost."""
    out = tmp_path / "run"
    common = [sys.executable, "-m", "unlearnkit.cli", "bench", "--model", "mlp", "--set", "train.epochs=2",
              "--set", "retrain.epochs=2", "--quick", "--audits", "accuracy", "--forget", "class:1",
              "--out", str(out)]
    runs = [subprocess.Popen(common + ["--methods", method], env=_env(tmp_path), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True) for method in ("ga", "finetune")]
    for run in runs:
        assert run.wait(timeout=300) == 0, run.stderr.read()[-2000:]
    records = _lines(out / "results.jsonl")
    cells = [r["cell"] for r in records]
    assert len(cells) == len(set(cells)) == 3, [r["method"] for r in records]
    assert sorted(r["method"] for r in records) == ["finetune", "ga", "retrain"]
