"""`unlearnkit tune`: search spaces, the validation/test halves, the objective, and the Optuna study
(writes best.json, resumes, exact budget across worker processes, optional PostgreSQL)."""
import json
import os
import shutil
import subprocess
import sys
import uuid

import optuna
import pytest
import torch

from unlearnkit import load_data
from unlearnkit.bench.holdout import halve, holdout_halves
from unlearnkit.bench.study import (TrialSeededSampler, best_trial, complete_count, ensure_study, open_storage,
                                    run_trials, suggest)
from unlearnkit.bench.tune import TuneRequest, score, tune
from unlearnkit.bench.tune_cli import parse_sets
from unlearnkit.data.dataset import TensorData, labels_of
from unlearnkit.data.sources import DataSource
from unlearnkit.data.text import ChoiceSet, EvalSet
from unlearnkit.errors import ConfigError
from unlearnkit.methods.api import build_config
from unlearnkit.methods.base import METHODS, FloatRange, MethodConfig, search_dimensions
from unlearnkit.resolve import resolve_config

optuna.logging.set_verbosity(optuna.logging.WARNING)
TrialState = optuna.trial.TrialState

# a tiny, fast tuning setup: mlp on digits, a 3-epoch original and retrain
TINY = dict(method="ga", model="mlp", forget="class:0", quick=True,
            overrides={"train": {"epochs": "3"}})
TINY_ARGS = ["--method", "ga", "--model", "mlp", "--forget", "class:0", "--quick", "--set", "train.epochs=3"]


def load(storage, name):
    return optuna.load_study(study_name=name, storage=storage)


# --- search spaces ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [n for n in METHODS.names() if n not in ("original", "retrain")])
def test_every_method_declares_a_valid_search_space(name):
    config_cls = METHODS.get(name).Config
    dims = search_dimensions(config_cls, name)  # raises on a key that is not a field, or a bad range
    assert dims, f"{name} declares no search space"
    default = config_cls()
    for key, dim in dims.items():
        assert dim.contains(getattr(default, key)), f"{name}.{key}: the default lies outside {dim}"
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(8):  # sampled points build a valid config
        trial = study.ask()
        config = build_config(name, **{k: suggest(trial, k, d) for k, d in dims.items()})
        for key, dim in dims.items():
            assert dim.contains(getattr(config, key))
        study.tell(trial, 0.0)


def test_text_models_search_adam_scale_learning_rates():
    """SCALE_SEARCH_SPACE replaces the SGD-sized learning-rate range of the methods' own spaces on
    language models (a small one trained here, a pretrained one), and nothing else."""
    config_cls = METHODS.get("npo").Config
    image = search_dimensions(config_cls, "npo")
    assert search_dimensions(config_cls, "npo", kind="image") == image
    small = search_dimensions(config_cls, "npo", kind="text")
    pretrained = search_dimensions(config_cls, "npo", kind="text", scale="pretrained")
    assert image["lr"] == FloatRange(1e-4, 1e-1, log=True)
    assert small["lr"] == FloatRange(1e-4, 5e-3, log=True) and pretrained["lr"] == FloatRange(1e-6, 1e-4, log=True)
    assert {k: v for k, v in small.items() if k != "lr"} == {k: v for k, v in image.items() if k != "lr"}
    # a method may declare its own range on a kind of model (rmu: a loss on hidden states)
    rmu = METHODS.get("rmu").Config
    assert search_dimensions(rmu, "rmu", kind="text")["lr"] == FloatRange(1e-4, 1e-1, log=True)
    assert search_dimensions(rmu, "rmu", kind="text", scale="pretrained")["lr"] == FloatRange(1e-6, 1e-4, log=True)
    for name in METHODS.names():  # every text default learning rate lies inside the range its tune searches
        if name in ("original", "retrain"):
            continue
        for scale in ("small", "pretrained"):
            dims = search_dimensions(METHODS.get(name).Config, name, kind="text", scale=scale)
            config = resolve_config(name, kind="text", scale=scale, calibrated=False)
            if "lr" in dims:
                assert dims["lr"].contains(config.lr), f"{name}.lr at {scale}: {config.lr} outside {dims['lr']}"


@pytest.mark.parametrize("space, message", [
    ({"lrr": ("log", 1e-4, 1e-1)}, "not a hyper-parameter"),
    ({"lr": ("log", 0.0, 1e-1)}, "low > 0"),
    ({"lr": ("float", 1.0, 0.5)}, "low < high"),
    ({"lr": ("int", 1, 5)}, "int field"),
    ({"epochs": ("float", 1.0, 5.0)}, "float field"),
    ({"optimizer": ("choice", [])}, "distinct options"),
    ({"lr": ("uniform", 0.1, 1.0)}, "expected"),
])
def test_bad_search_spaces_are_refused(space, message):
    class Config(MethodConfig):
        search_space = space

    with pytest.raises(ConfigError, match=message):
        search_dimensions(Config, "toy")


# --- validation and final-test halves ---------------------------------------------------------------

def test_image_halves_are_disjoint_and_stratified():
    source = load_data("digits")
    val, final = holdout_halves(source, seed=3)
    assert val.train is source.train and final.train is source.train and val.name == source.name
    a, b = val.test.index, final.test.index
    assert not set(a.tolist()) & set(b.tolist())
    assert sorted(a.tolist() + b.tolist()) == list(range(len(source.test)))
    labels = labels_of(source.test)
    for c in range(source.num_classes):
        n_val, n_final = int((labels[a] == c).sum()), int((labels[b] == c).sum())
        assert n_val - n_final in (0, 1)  # each class split in half (the odd one to validation)
    assert torch.equal(holdout_halves(source, seed=3)[0].test.index, a)  # seeded
    assert not torch.equal(holdout_halves(source, seed=4)[0].test.index, a)


def test_text_eval_sets_are_halved_row_wise():
    n = 6
    x = torch.arange(n * 3).view(n, 3)
    rows = TensorData(x, x.clone())
    questions = [f"q{i}" for i in range(n)]
    evalset = EvalSet("forget", questions, [f"a{i}" for i in range(n)], rows, rows, [rows, rows])
    choices = ChoiceSet("hazard", questions, [["x", "y"]] * n, torch.arange(n) % 2, [rows, rows])
    source = DataSource("toy", rows, rows, num_classes=10, input_shape=(3,), kind="text",
                        evals={"forget": evalset, "hazard": choices})
    val, final = holdout_halves(source, seed=0)
    for name in ("forget", "hazard"):
        first, second = val.evals[name], final.evals[name]
        assert len(first) == len(second) == 3
        assert not set(first.questions) & set(second.questions)
    e = val.evals["forget"]
    for i, question in enumerate(e.questions):  # every field stays aligned with its question
        row = int(question[1:])
        assert e.answers[i] == f"a{row}"
        assert torch.equal(e.correct[i][0], x[row]) and torch.equal(e.perturbed[1][i][0], x[row])
    c = val.evals["hazard"]
    assert [int(v) for v in c.answer] == [int(q[1:]) % 2 for q in c.questions]


def test_halve_of_one_class_gives_all_but_nothing_to_the_second_half():
    first, second = halve(5, 0, torch.tensor([0, 0, 0, 1, 2]))
    assert sorted(first.tolist() + second.tolist()) == [0, 1, 2, 3, 4]
    assert len(first) == 4 and len(second) == 1  # ⌈3/2⌉ + 1 + 1


# --- the objective -----------------------------------------------------------------------------------

def test_objective_scores_images_and_text():
    assert score({"status": "ok", "metrics": {"avg_gap": 3.5}}, "image") == (3.5, None)
    assert score({"status": "diverged", "metrics": {"seconds": 1.0}}, "image") == (100.0, None)
    ok = {"status": "ok", "metrics": {"forget_quality": 0.4, "model_utility": 0.5}}
    value, constraint = score(ok, "text", floor=0.45)
    assert value == 0.4 and constraint == pytest.approx(-0.05)  # feasible: utility above the floor
    value, constraint = score(ok, "text", floor=0.6)
    assert value == 0.4 and constraint == pytest.approx(0.1)  # infeasible
    assert score({"status": "diverged", "metrics": {}}, "text", floor=0.6) == (0.0, 0.6)
    # WMDP-style data: hazard accuracy (lower is better) at a general-accuracy floor
    wmdp = {"status": "ok", "metrics": {"hazard_acc": 24.0, "general_acc": 90.0}}
    assert score(wmdp, "wmdp", floor=86.0) == (24.0, pytest.approx(-4.0))
    assert score(wmdp, "wmdp", floor=95.0) == (24.0, pytest.approx(5.0))
    assert score({"status": "diverged", "metrics": {}}, "wmdp", floor=86.0) == (100.0, 86.0)


def test_wmdp_data_is_tuned_for_hazard_accuracy(tmp_path):
    from unlearnkit.bench.tune import OBJECTIVES, UTILITY, TuneRequest, prepare

    tuning = prepare(TuneRequest(method="rmu", data="wmdp-mini", trials=0, out=str(tmp_path), quick=True,
                                 overrides={"train": {"epochs": 1}}))
    assert (tuning.metric, tuning.direction) == OBJECTIVES["wmdp"][:2] == ("hazard_acc", "minimize")
    assert tuning.objective_name == "wmdp" and UTILITY["wmdp"] == "general_acc"
    from unlearnkit.audits.api import audit

    val = tuning.halves["validation"]
    general = audit(tuning.original, tuning.task, val.split, ["wmdp"], ctx=val.ctx)["general_acc"]
    assert tuning.floor == pytest.approx(0.9 * general)  # the default floor, of the original's general accuracy


def test_best_trial_prefers_feasible_trials():
    study = optuna.create_study(direction="maximize")
    for value, constraint in ((0.9, 0.2), (0.5, -0.1), (0.6, 0.0), (0.95, 0.05)):
        trial = study.ask()
        trial.set_constraint("floor", constraint)
        study.tell(trial, value)
    best, feasible = best_trial(study)
    assert feasible and best.value == 0.6
    infeasible = optuna.create_study(direction="maximize")
    for value, constraint in ((0.9, 0.2), (0.1, 0.05)):
        trial = infeasible.ask()
        trial.set_constraint("floor", constraint)
        infeasible.tell(trial, value)
    best, feasible = best_trial(infeasible)
    assert not feasible and best.value == 0.1  # the least violating


# --- the Optuna study --------------------------------------------------------------------------------

def toy(trial):
    x = trial.suggest_float("x", -2.0, 2.0)
    kind = trial.suggest_categorical("kind", ["a", "b", "c"])
    return (x - 0.7) ** 2 + (0.0 if kind == "b" else 1.0)


def test_tpe_finds_a_planted_optimum_and_is_reproducible():
    def search(seed):
        study = optuna.create_study(sampler=TrialSeededSampler(seed))
        run_trials(study, toy, 40)
        return study

    study = search(0)
    assert complete_count(study) == 40
    assert study.best_params["kind"] == "b" and abs(study.best_params["x"] - 0.7) < 0.15
    assert [t.params for t in search(0).trials] == [t.params for t in study.trials]  # one worker: reproducible


def test_a_resumed_study_does_not_replay_its_start_up_trials(tmp_path):
    storage = open_storage(None, tmp_path / "s.journal")
    study = ensure_study(storage, "toy", "minimize", {"x": 1}, sampler=TrialSeededSampler(0))
    run_trials(study, toy, 3)
    again = ensure_study(storage, "toy", "minimize", {"x": 1}, sampler=TrialSeededSampler(0))  # a new process
    run_trials(again, toy, 6)
    xs = [t.params["x"] for t in load(storage, "toy").trials]
    assert len(xs) == 6 and len(set(xs)) == 6


def test_a_study_refuses_a_worker_with_another_setup(tmp_path):
    storage = open_storage(str(tmp_path / "s.journal"), tmp_path / "unused")
    ensure_study(storage, "s", "minimize", {"method": "ga", "seed": 0})
    with pytest.raises(ConfigError, match="differs in: seed"):
        ensure_study(storage, "s", "minimize", {"method": "ga", "seed": 1})
    with pytest.raises(ConfigError, match="minimize"):
        ensure_study(storage, "s", "maximize", {"method": "ga", "seed": 0})


def test_running_trials_of_dead_workers_are_failed_and_the_budget_is_met(tmp_path):
    storage = open_storage(None, tmp_path / "s.journal")
    study = ensure_study(storage, "toy", "minimize", {}, sampler=TrialSeededSampler(0))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = study.ask()  # a worker killed mid-trial leaves its trial RUNNING
    orphan.set_user_attr("worker", f"{__import__('socket').gethostname()}:{dead.pid}")
    assert run_trials(study, toy, 3) == 3
    states = [t.state for t in load(storage, "toy").trials]
    assert states[0] == TrialState.FAIL and states.count(TrialState.COMPLETE) == 3


def test_tune_writes_best_json_and_resumes(tmp_path):
    out = tmp_path / "tune"
    first = tune(TuneRequest(trials=2, out=out, **TINY))
    assert first["study"]["trials_complete"] == 2
    best = json.loads((out / "best.json").read_text())
    assert best["method"] == "ga" and set(best["params"]) == {"lr", "epochs"}
    assert best["config"]["lr"] == best["params"]["lr"] and best["config"]["seed"] == 0
    for part in (best["validation"], best["test"], best["default"]["validation"], best["default"]["test"]):
        assert "avg_gap" in part["metrics"] and part["value"] == part["metrics"]["avg_gap"]
    assert best["held_out"]["validation"] + best["held_out"]["test"] == 360 - 36  # digits test minus class 0
    assert best["validation"]["value"] <= best["default"]["validation"]["value"]  # the default is trial 0
    storage = open_storage(None, out / "study.journal")
    trials = load(storage, best["study"]["name"]).trials
    assert trials[0].user_attrs["untuned_default"] and trials[0].params == best["default"]["params"]
    assert (out / "references").is_dir()  # the retrain reference, reused by the rerun

    again = tune(TuneRequest(trials=4, out=out, **TINY))  # resumed: two more, not four
    assert again["study"]["trials_complete"] == 4
    trials = load(storage, best["study"]["name"]).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 4


def test_two_worker_processes_share_one_study(tmp_path):
    out = tmp_path / "tune"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "unlearnkit.bench.tune_cli", *TINY_ARGS, "--trials", "6", "--out", str(out)]
    prepared = subprocess.run([*command, "--workers-note"], env=env, capture_output=True, text=True, timeout=120)
    assert prepared.returncode == 0, prepared.stderr
    assert "unlearnkit tune --method ga" in prepared.stdout
    workers = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    outputs = [w.communicate(timeout=180) for w in workers]
    assert all(w.returncode == 0 for w in workers), [o[1][-2000:] for o in outputs]
    storage = open_storage(None, out / "study.journal")
    trials = load(storage, "ga-digits-class_0-seed0").trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 6  # exactly the budget, across both workers
    assert len({t.number for t in complete}) == 6
    assert all(t.user_attrs.get("surplus") for t in trials if t.state != TrialState.COMPLETE)
    assert json.loads((out / "best.json").read_text())["study"]["trials_complete"] == 6


def test_cli_sets_and_bad_input():
    assert parse_sets(["lr=0.001", "ga.epochs=3", "train.epochs=2"], "ga") == \
        {"ga": {"lr": 0.001, "epochs": 3}, "train": {"epochs": 2}}  # typed from the configs
    with pytest.raises(ConfigError):
        parse_sets(["npo.beta=1"], "ga")
    with pytest.raises(ConfigError, match="no hyper-parameters"):
        tune(TuneRequest(method="retrain"))
    with pytest.raises(ConfigError, match="no search space left"):
        tune(TuneRequest(method="ga", overrides={"ga": {"lr": "0.01", "epochs": "2"}}))


def test_the_printed_worker_command_rebuilds_the_same_request():
    """Regression: --workers-note printed a command without the pretrained model's reference and its
    language-model and precision flags, so a worker started from it refused to run or joined with
    another setup. Parsing the printed command must give the request back."""
    import argparse
    import shlex

    from unlearnkit.bench.tune import worker_command
    from unlearnkit.bench.tune_cli import add_arguments, request_from_args

    argv = ["--method", "npo", "--data", "tofu-mini", "--hf-model", "m", "--retain-model", "r", "--forget", "forget05",
            "--trials", "7", "--seed", "2", "--out", "o", "--study", "s", "--utility-floor", "0.8",
            "--set", "npo.beta=0.2", "--set", "train.epochs=3", "--amp", "bf16", "--gradient-checkpointing",
            "--dtype", "bf16", "--prompt-format", "chat", "--system-prompt", "Be brief, please.", "--max-length", "128",
            "--max-new-tokens", "32", "--reference-device", "cpu", "--lora", "8", "--lora-targets", "q_proj,v_proj",
            "--trust-remote-code", "--log-dir", "curves", "--train-seed", "1", "--audits", "tofu"]

    def parse(args):
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        return request_from_args(parser.parse_args(args))

    request = parse(argv)
    printed = shlex.split(worker_command(request, "s"))
    assert printed[:2] == ["unlearnkit", "tune"]
    assert parse(printed[2:]) == request


# --- optional: a PostgreSQL server --------------------------------------------------------------------

def _psql(sql):
    return subprocess.run(["su", "postgres", "-c", f'psql -v ON_ERROR_STOP=1 -c "{sql}"'],
                          capture_output=True, text=True, timeout=30)


@pytest.fixture
def postgres_url():
    if shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        pytest.skip("no PostgreSQL cluster here (pg_ctlcluster) or not root")
    pytest.importorskip("psycopg2")
    running = subprocess.run(["pg_ctlcluster", "15", "main", "status"], capture_output=True).returncode == 0
    if not running and subprocess.run(["pg_ctlcluster", "15", "main", "start"], capture_output=True).returncode != 0:
        pytest.skip("the PostgreSQL 15 cluster does not start")
    name = f"uk_{uuid.uuid4().hex[:8]}"
    if _psql(f"CREATE USER {name} PASSWORD '{name}'").returncode != 0 or \
            subprocess.run(["su", "postgres", "-c", f"createdb -O {name} {name}"], capture_output=True).returncode:
        pytest.skip("cannot create a PostgreSQL user and database")
    yield f"postgresql+psycopg2://{name}:{name}@127.0.0.1:5432/{name}"
    subprocess.run(["su", "postgres", "-c", f"dropdb --if-exists {name}"], capture_output=True)
    _psql(f"DROP USER IF EXISTS {name}")
    if not running:
        subprocess.run(["pg_ctlcluster", "15", "main", "stop"], capture_output=True)


@pytest.mark.slow  # ~25 s with the cluster's start and stop
def test_two_workers_share_a_postgresql_study(postgres_url):
    storage = open_storage(postgres_url, None)
    ensure_study(storage, "toy", "minimize", {"x": 1})  # created once, before the workers
    code = ("import sys, optuna; from unlearnkit.bench.study import *; from test_tune import toy; "
            "optuna.logging.set_verbosity(optuna.logging.WARNING); "
            "s = ensure_study(open_storage(sys.argv[1], None), 'toy', 'minimize', {'x': 1}, TrialSeededSampler(0)); "
            "run_trials(s, toy, 12)")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.path.dirname(__file__)}
    workers = [subprocess.Popen([sys.executable, "-c", code, postgres_url], env=env, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    errors = [w.communicate(timeout=120)[1] for w in workers]
    assert all(w.returncode == 0 for w in workers), errors
    trials = load(open_storage(postgres_url, None), "toy").trials
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 12


@pytest.mark.slow  # ~35 s: a retrain of a tiny Llama on tofu-mini and TOFU measures per trial
def test_text_tuning_maximises_forget_quality_at_a_utility_floor(tmp_path):
    pytest.importorskip("transformers")
    from lm_helpers import tiny_llama, tiny_tokenizer

    from unlearnkit.models.hf import save_hf_model

    tok = tiny_tokenizer()
    folder = save_hf_model(tiny_llama(tok, seed=0), tok, tmp_path / "model")
    retain = save_hf_model(tiny_llama(tok, seed=1), tok, tmp_path / "retain")  # a pretrained model's reference
    summary = tune(TuneRequest(method="ga", data="tofu-mini", hf_model=str(folder), retain_model=str(retain),
                               forget="forget05", trials=3,
                               quick=True, overrides={"train": {"epochs": "1"}, "ga": {"epochs": "1"}},
                               out=tmp_path / "tune"))
    assert summary["objective"]["metric"] == "forget_quality" and summary["objective"]["direction"] == "maximize"
    assert summary["objective"]["utility_floor"] is not None
    # a pretrained language model searches learning rates around OpenUnlearning's 1e-5, not SGD's range
    assert summary["setup"]["space"]["lr"] == repr(FloatRange(1e-6, 1e-4, log=True))
    for part in (summary["validation"], summary["test"]):
        assert {"forget_quality", "model_utility"} <= set(part["metrics"])
    assert summary["retrain"]["validation"]["forget_quality"] == 1.0  # retrain against itself
    assert summary["validation"]["value"] >= summary["default"]["validation"]["value"]


def test_bench_holdout_reports_on_the_half_tune_never_sees():
    from unlearnkit import load_data
    from unlearnkit.bench.holdout import holdout_halves
    from unlearnkit.bench.runner import BenchPlan

    source = load_data("digits")
    validation, test = holdout_halves(source, seed=0)  # what `tune --seed 0` scores on / never sees
    assert BenchPlan(holdout="all").holdout_half(source) is source
    for half, expected in (("validation", validation), ("test", test)):
        got = BenchPlan(holdout=half).holdout_half(source)
        assert torch.equal(torch.stack([got.test[i][0] for i in range(len(got.test))]),
                           torch.stack([expected.test[i][0] for i in range(len(expected.test))]))
        assert len(got.train) == len(source.train)
        assert BenchPlan(holdout=half).data_key == f"digits@{half}"  # results and originals keyed apart
    assert len(validation.test) + len(test.test) == len(source.test)
