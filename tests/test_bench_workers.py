"""`bench --workers N`: groups of cells in worker processes; one writer; same results as one process."""
import json

from unlearnkit.cli import main


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_workers_give_the_sequential_results_each_cell_once_and_resume(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "cache"))
    common = ["bench", "--model", "mlp", "--methods", "ga,finetune", "--forget", "class:1", "--forget", "random:0.1",
              "--seeds", "2", "--audits", "accuracy", "--set", "train.epochs=3", "--set", "ga.epochs=1",
              "--set", "finetune.epochs=1"]
    assert main(common + ["--out", str(tmp_path / "one")]) == 0
    assert main(common + ["--workers", "2", "--out", str(tmp_path / "two")]) == 0
    one, two = _records(tmp_path / "one" / "results.jsonl"), _records(tmp_path / "two" / "results.jsonl")
    assert len(two) == len({r["cell"] for r in two}) == 2 * 2 * 3  # scenarios × seeds × (retrain, ga, finetune)
    by_cell = {r["cell"]: r["metrics"] for r in one}
    for record in two:  # same cells, same numbers: the cell seeds, not the process, decide the run
        for key in ("ua", "ra", "ta", "avg_gap"):
            assert record["metrics"][key] == by_cell[record["cell"]][key]
    capsys.readouterr()
    assert main(common + ["--workers", "2", "--out", str(tmp_path / "two")]) == 0  # resume: nothing left
    assert len(_records(tmp_path / "two" / "results.jsonl")) == 12


def test_bad_worker_count_is_refused(tmp_path, capsys):
    assert main(["bench", "--workers", "0", "--out", str(tmp_path)]) == 2
    assert "--workers" in capsys.readouterr().err


def test_submitit_local_executor_runs_the_groups(tmp_path):
    """The SLURM path (submitit) with submitit's local executor: each group is a job; results land once.
    Run as its own process: submitit's job handling and pytest's output capture do not mix (in one
    process, after the TOFU audit tests, pytest's capture file was found closed)."""
    import os
    import subprocess
    import sys

    import pytest

    pytest.importorskip("submitit")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "UNLEARNKIT_CACHE": str(tmp_path / "cache")}
    args = [sys.executable, "-m", "unlearnkit.cli", "bench", "--model", "mlp", "--methods", "ga", "--forget", "class:1",
            "--seeds", "2", "--audits", "accuracy", "--set", "train.epochs=2", "--set", "ga.epochs=1",
            "--workers", "2", "--executor", "submitit-local", "--out", str(tmp_path / "run")]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    records = _records(tmp_path / "run" / "results.jsonl")
    assert len(records) == len({r["cell"] for r in records}) == 4  # 2 seeds × (retrain, ga)
    assert any((tmp_path / "run" / "submitit").iterdir())  # the jobs' folder


def test_a_sweep_killed_midway_with_two_workers_loses_and_duplicates_nothing(tmp_path, monkeypatch):
    import os
    import signal
    import subprocess
    import sys
    import time

    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "cache"))
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('model = "mlp"\nscenarios = ["class:1", "random:0.1"]\nseeds = 2\naudits = ["accuracy"]\n'
                     '[train]\nepochs = 3\n[methods.ga]\nlr = [0.001, 0.01]\nepochs = 2\n')
    out = tmp_path / "run"
    command = [sys.executable, "-m", "unlearnkit.cli", "bench", "--sweep", str(sweep), "--workers", "2",
               "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    results = out / "results.jsonl"
    process = subprocess.Popen(command, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            if results.exists() and len(results.read_text().splitlines()) >= 3:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the run finished before it could be killed; make it longer"
        os.killpg(process.pid, signal.SIGKILL)  # the main process and its workers, mid-way
        process.wait()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    before = _records(results)
    assert 3 <= len(before) < 12
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = _records(results)
    cells = [r["cell"] for r in after]
    assert len(cells) == len(set(cells)) == 12  # 2 scenarios × 2 seeds × (retrain + 2 grid points)
    kept = {r["cell"]: r for r in after}
    assert all(kept[r["cell"]] == r for r in before)  # what landed before the kill is kept as it was
