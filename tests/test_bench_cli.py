import json
import os
import signal
import subprocess
import sys
import time

import pytest

from unlearnkit.bench import BenchPlan, ResultStore, run_bench
from unlearnkit.cli import main
from unlearnkit.errors import DataError

TINY = ["--model", "mlp", "--set", "train.epochs=3", "--set", "retrain.epochs=3"]


def read_results(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_bench_end_to_end_through_cli(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["bench", "--quick", "--forget", "class:1", "--forget", "random:0.1",
                 "--methods", "ga,finetune,original", "--out", str(out), *TINY])
    assert code == 0
    printed = capsys.readouterr().out
    assert "avg_gap" in printed and "finetune" in printed
    records = read_results(out)
    assert len(records) == 2 * 4  # retrain is always added as the reference
    for record in records:
        for key in ("method", "scenario", "seed", "config", "versions", "metrics"):
            assert key in record
        for key in ("ua", "ra", "ta", "mia_efficacy", "avg_gap", "seconds"):
            assert isinstance(record["metrics"][key], float)
        assert record["seeds"] == {"train": 0, "split": 0, "unlearn": 0}
    retrain = [r for r in records if r["method"] == "retrain"]
    assert all(r["metrics"]["avg_gap"] == 0.0 for r in retrain)
    assert all(r["metrics"]["targets_per_s"] > 0 for r in records if r["method"] in ("ga", "finetune"))
    assert all("targets_per_s" not in r["metrics"] for r in records if r["method"] == "original")
    assert all(r["metrics"]["peak_rss_mib"] > 0 for r in records if r["status"] == "ok")
    assert {r["scenario"] for r in records} == {"class:1", "random:0.1"}


def test_rerun_skips_finished_cells_and_resumes(tmp_path):
    plan = BenchPlan(model="mlp", scenarios=["class:3"], methods=["ga", "finetune", "original"], seeds=2,
                     out=tmp_path, overrides={"train": {"epochs": "3"}, "retrain": {"epochs": "3"}})
    first = run_bench(plan, max_cells=3)  # "killed" after three cells
    assert len(first) == 3
    assert len(read_results(tmp_path)) == 3
    full = run_bench(plan)
    records = read_results(tmp_path)
    assert len(records) == 8  # 4 methods × 2 seeds, none duplicated, none lost
    assert len({r["cell"] for r in records}) == 8
    assert [r["cell"] for r in full] == [r["cell"] for r in records]
    again = run_bench(plan)
    assert len(read_results(tmp_path)) == 8 and len(again) == 8


def test_changed_config_is_a_new_cell(tmp_path):
    plan = BenchPlan(model="mlp", scenarios=["class:3"], methods=["ga"], seeds=1, out=tmp_path,
                     overrides={"train": {"epochs": "2"}, "retrain": {"epochs": "2"}})
    run_bench(plan)
    plan.overrides["ga"] = {"lr": "0.001"}
    run_bench(plan)
    records = read_results(tmp_path)
    assert [r["method"] for r in records] == ["retrain", "ga", "ga"]
    assert records[2]["config"]["lr"] == 0.001


def test_killed_process_resumes_without_loss(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "unlearnkit.cli", "bench", "--forget", "class:2", "--seeds", "2",
           "--methods", "finetune,random_label,neggrad_plus,original", "--out", str(tmp_path), *TINY]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = tmp_path / "results.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if results.exists() and len(results.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = read_results(tmp_path)
    assert all("metrics" in r for r in partial)  # every stored line is complete
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = read_results(tmp_path)
    assert len(records) == 10 and len({r["cell"] for r in records}) == 10
    assert [r["cell"] for r in records[: len(partial)]] == [r["cell"] for r in partial]


def test_original_model_is_cached(tmp_path, monkeypatch):
    import unlearnkit.bench.originals as originals

    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "cache"))  # not the session's shared cache

    trainings = []
    real_fit = originals.fit
    monkeypatch.setattr(originals, "fit", lambda *a, **k: trainings.append(1) or real_fit(*a, **k))
    plan = BenchPlan(model="mlp", scenarios=["class:4"], methods=["original"], seeds=1, out=tmp_path,
                     overrides={"train": {"epochs": "2"}, "retrain": {"epochs": "1"}})
    first = run_bench(plan)
    assert len(trainings) == 1
    plan.out = tmp_path / "second"
    second = run_bench(plan)
    assert len(trainings) == 1  # the second run trained no original: it loaded the cached one
    a, b = (r["metrics"] for r in first + second if r["method"] == "original")
    assert all(a[k] == b[k] for k in ("ua", "ra", "ta"))  # the same model


@pytest.mark.parametrize("args, message", [
    (["bench", "--methods", "nope"], "unknown method 'nope'"),
    (["bench", "--audits", "accuracy,nope"], "unknown audit 'nope'"),
    (["bench", "--forget", "class:99"], "unknown class"),
    (["bench", "--data", "mnist2"], "unknown data source"),
    (["bench", "--model", "resnet1000"], "unknown model"),
    (["bench", "--set", "ga.lr"], "expected METHOD.KEY=VALUE"),
    (["bench", "--set", "ga.lrr=1"], "no hyper-parameter"),
    (["bench", "--seeds", "0"], "--seeds must be >= 1"),
])
def test_cli_bad_input_is_a_clear_error(tmp_path, capsys, args, message):
    assert main([*args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_corrupt_results_file_is_named(tmp_path):
    (tmp_path / "results.jsonl").write_text('{"cell": "a"}\n{not json\n')
    with pytest.raises(DataError, match="results.jsonl line 2"):
        ResultStore(tmp_path / "results.jsonl")


def test_methods_command_lists_every_method(capsys):
    from unlearnkit import METHODS

    assert main(["methods"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line and not line.startswith(" ")]
    assert [line.split()[0] for line in lines] == METHODS.names()


def test_console_script_runs():
    result = subprocess.run(["unlearnkit", "methods"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("original")


def test_subclass_scenario_trains_a_coarse_original(tmp_path):
    """Regression: a subclass:K scenario must be benchmarked on the group labels, not the fine ones."""
    plan = BenchPlan(model="mlp", scenarios=["subclass:3", "class:1"], methods=["original"], seeds=1, out=tmp_path,
                     overrides={"train": {"epochs": "8"}, "retrain": {"epochs": "3"}})
    records = {(r["scenario"], r["method"]): r for r in run_bench(plan)}
    coarse = records[("subclass:3", "original")]["metrics"]
    # the original was trained on 3 group labels: it classifies the forgotten digit 3 into its group
    assert coarse["ua"] < 20 and coarse["ta"] > 80
    assert records[("class:1", "original")]["metrics"]["ua"] < 20


def test_original_cache_key_depends_on_architecture():
    """Regression: a cached original of another width must not be loaded (shape mismatch)."""
    from unlearnkit.bench.originals import original_path
    from unlearnkit.methods import TrainConfig
    from unlearnkit.models.classifiers import small_cnn

    recipe = TrainConfig()
    narrow = original_path("digits", small_cnn((1, 8, 8), 10, width=16), "cnn", recipe)
    wide = original_path("digits", small_cnn((1, 8, 8), 10, width=32), "cnn", recipe)
    assert narrow != wide


def test_full_profile_runs_lira_once_per_scenario_and_seed(tmp_path, capsys, monkeypatch):
    import unlearnkit.bench.runner as runner
    from unlearnkit.audits.lira import SHADOWS

    shadow_trainings = []  # the shadow trainer's fits (retrain and the original train elsewhere)
    real_fit = runner.fit
    monkeypatch.setattr(runner, "fit", lambda *a, **k: shadow_trainings.append(1) or real_fit(*a, **k))
    out = tmp_path / "full"
    code = main(["bench", "--quick", "--audits", "accuracy,mia,lira,relearn,weights", "--forget", "random:0.05",
                 "--methods", "ga,original", "--out", str(out), *TINY])
    assert code == 0
    # three cells (retrain, ga, original) of one scenario and seed share one set of shadows
    assert len(shadow_trainings) == SHADOWS
    assert "lira_auc" in capsys.readouterr().out
    records = read_results(out)
    for record in records:
        metrics = record["metrics"]
        assert 0.0 <= metrics["lira_auc"] <= 1.0 and "rcd" in metrics and "w_l2_original" in metrics
    retrain = next(r for r in records if r["method"] == "retrain")["metrics"]
    assert retrain["lira_auc_gap"] == 0.0 and retrain["rcd_rel"] == 1.0
    assert "w_l2_retrain" in next(r for r in records if r["method"] == "ga")["metrics"]
