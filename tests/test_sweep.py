"""`bench --sweep FILE.toml`: grids become labelled, resumable cells; a bad file fails before anything runs."""
import json
from dataclasses import replace

import pytest

from unlearnkit.bench import BenchPlan, run_bench
from unlearnkit.bench import runner
from unlearnkit.bench.runner import print_table
from unlearnkit.bench.sweep import load_sweep
from unlearnkit.errors import ConfigError

HEAD = """
model = "mlp"
scenarios = ["class:0"]
seeds = 1
audits = ["accuracy"]
quick = true

[train]
epochs = 3
"""


def write(tmp_path, body, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(HEAD + body)
    return path


def test_a_sweep_runs_every_grid_point_once_and_resumes(tmp_path, monkeypatch):
    (tmp_path / "tuned").mkdir()
    (tmp_path / "tuned" / "best.json").write_text(json.dumps({"method": "ga", "params": {"lr": 0.004, "epochs": 2}}))
    path = write(tmp_path, """
[methods.ga]
lr = [0.001, 0.01]
epochs = [1, 2]
momentum = 0.5

[methods.original]

[methods.ga_tuned]
method = "ga"
best = "tuned/best.json"
""")
    plan = replace(load_sweep(path), out=tmp_path / "out")
    labels = [v.label for v in plan.variants]
    assert labels == ["ga[lr=0.001,epochs=1]", "ga[lr=0.001,epochs=2]", "ga[lr=0.01,epochs=1]",
                      "ga[lr=0.01,epochs=2]", "original", "ga_tuned[best]"]
    records = run_bench(plan)
    assert [r.get("label", r["method"]) for r in records] == ["retrain", *labels]
    grid = [r for r in records if r.get("label", "").startswith("ga[")]
    assert [(r["config"]["lr"], r["config"]["epochs"]) for r in grid] == [(0.001, 1), (0.001, 2), (0.01, 1), (0.01, 2)]
    assert all(r["config"]["momentum"] == 0.5 and r["method"] == "ga" for r in grid)
    tuned = records[-1]
    assert (tuned["config"]["lr"], tuned["config"]["epochs"], tuned["label"]) == (0.004, 2, "ga_tuned[best]")
    assert len({r["cell"] for r in records}) == 7
    table = print_table(records)
    for label in labels:
        assert label in table

    def no_more_runs(*args, **kwargs):
        raise AssertionError("a finished cell ran again")

    monkeypatch.setattr(runner, "run_cell", no_more_runs)
    again = run_bench(replace(load_sweep(path), out=tmp_path / "out"))
    assert [r["cell"] for r in again] == [r["cell"] for r in records]
    assert [r.get("label") for r in again] == [r.get("label") for r in records]
    assert len((tmp_path / "out" / "results.jsonl").read_text().splitlines()) == 7


def test_command_line_settings_win_over_the_file(tmp_path):
    path = write(tmp_path, "[methods.ga]\nlr = 0.001\n")
    plan = load_sweep(path, BenchPlan(seeds=2, overrides={"train": {"epochs": "5"}}))
    assert plan.seeds == 2 and plan.model == "mlp" and plan.quick
    assert plan.overrides["train"] == {"epochs": "5"}
    assert [(v.label, v.overrides) for v in plan.variants] == [("ga", {"lr": 0.001})]
    with pytest.raises(ConfigError, match="--methods"):
        load_sweep(path, BenchPlan(methods=["ga"]))


@pytest.mark.parametrize("body, key, message", [
    ("[methods.gaa]\nlr = [0.1]\n", "methods.gaa", "unknown method 'gaa'"),
    ("[methods.ga]\nlr = [0.1]\nlrr = [0.2, 0.3]\n", "methods.ga.lrr", "no hyper-parameter 'lrr'"),
    ("[methods.ga]\nlr = [0.01, -1.0]\n", "methods.ga.lr", "lr must be >= 0"),
    ("[methods.ga]\noptimizer = \"sgdd\"\n", "methods.ga.optimizer", "optimizer must be"),
    ("[methods.ga]\nepochs = [\"many\"]\n", "methods.ga.epochs", "expected int, got 'many'"),
    ("[methods.ga]\nlr = []\n", "methods.ga.lr", "empty grid axis"),
    ("[methods.ga]\nseed = [1, 2]\n", "methods.ga.seed", "seeds"),
    ("[methods.l1_sparse]\nepochs = [2, 4]\nno_l1_epochs = 3\n", "methods.l1_sparse", "no_l1_epochs"),
    ("[methods.retrain]\n", "methods.retrain", "reference"),
    ("[methods.x]\nmethod = \"nope\"\n", "methods.x.method", "unknown method 'nope'"),
    ("[methods.ga]\nbest = \"missing/best.json\"\n", "methods.ga.best", "file not found"),
    ("[methods]\n", "methods", "needs a [methods.NAME] table"),
])
def test_a_bad_sweep_names_file_line_and_key(tmp_path, body, key, message):
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as raised:
        load_sweep(path)
    text = str(raised.value)
    assert str(path) in text and f": {key}: " in text and message in text
    assert " line " in text  # the line the key is on
    line = int(text.split(" line ")[1].split(":")[0])
    assert key.split(".")[-1] in path.read_text().splitlines()[line - 1]


@pytest.mark.parametrize("head, key, message", [
    ('scenarios = ["klass:0"]', "scenarios", "unknown kind"),
    ('audits = ["accurasy"]', "audits", "unknown audit"),
    ("seeds = 0", "seeds", ">= 1"),
    ('seeds = "3"', "seeds", "must be int"),
    ('data = "nope"', "data", "unknown data source"),
    ("seedz = 2", "seedz", "unknown setting"),
])
def test_bad_settings_are_named(tmp_path, head, key, message):
    path = tmp_path / "s.toml"
    path.write_text(head + "\n[methods.ga]\n")
    with pytest.raises(ConfigError, match=message) as raised:
        load_sweep(path)
    assert f"{path} line 1: {key}:" in str(raised.value)


def test_bad_train_key_best_file_and_syntax(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text("[train]\nepochz = 3\n[methods.ga]\n")
    with pytest.raises(ConfigError, match=r"line 2: train.epochz: the original's recipe has no such key"):
        load_sweep(path)
    (tmp_path / "best.json").write_text(json.dumps({"method": "npo", "params": {"beta": 0.5}}))
    path.write_text("[methods.ga]\nbest = \"best.json\"\n")
    with pytest.raises(ConfigError, match="tuned 'npo', not 'ga'"):
        load_sweep(path)
    path.write_text("[methods.ga\nlr = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML.*line 1"):
        load_sweep(path)
    with pytest.raises(ConfigError, match="not found"):
        load_sweep(tmp_path / "absent.toml")
