"""One resolver of hyper-parameters (unlearnkit.resolve) and one CLI grammar: the Python API and every
command get the same config for the same data kind, preset and overrides."""
import dataclasses
import json
import subprocess
import sys

import pytest
import torch
from torch import nn

import unlearnkit as uk
import unlearnkit.methods.api as api
from unlearnkit.cli import main
from unlearnkit.errors import ConfigError, DataError
from unlearnkit.methods.base import METHODS
from unlearnkit.resolve import KIND_DEFAULTS, RECIPES, explain_config, resolve_config, resolve_recipe


def _dry_run(capsys, *args) -> list[dict]:
    assert main(["bench", "--dry-run", *args]) == 0, capsys.readouterr().err
    lines = capsys.readouterr().out.splitlines()
    return [json.loads(line) for line in lines]  # every line is one JSON object


def _captured_unlearn_config(monkeypatch, task, split, method, **hparams):
    """The config ``uk.unlearn`` hands to the method (the method itself is not run)."""
    seen = {}

    def capture(name, model, task_, split_, config, ctx):
        seen["config"] = config
        return model

    monkeypatch.setattr(api, "run_method", capture)
    uk.unlearn(nn.Linear(2, 2), task, split, method=method, **hparams)
    return seen["config"].to_dict()


@pytest.mark.parametrize("data, kind", [("digits", "image"), ("tofu-mini", "text")])
def test_api_and_cli_resolve_identical_configs_for_every_method(data, kind, capsys, monkeypatch, class_split, tok):
    methods = METHODS.names()
    cells = _dry_run(capsys, "--data", data, "--methods", ",".join(methods), "--seeds", "1", "--out", "unused")
    first = cells[0]["scenario"]
    by_method = {c["method"]: c for c in cells if c["scenario"] == first}
    assert set(by_method) == set(methods)
    task = uk.ClassificationTask(10) if kind == "image" else uk.CausalLMTask(tok)
    assert task.kind == kind
    # the API reads the benchmark's name from the split's source (its calibrated values, e.g. tofu-mini's)
    named = dataclasses.replace(class_split, source=dataclasses.replace(class_split.source, name=data))
    for method in methods:
        cli = by_method[method]["config"]
        assert resolve_config(method, kind=kind, seed=0, data=data).to_dict() == cli, method
        assert _captured_unlearn_config(monkeypatch, task, named, method) == cli, method
        assert by_method[method]["kind"] == kind
    # the text layer really differs from the image one (so the test above could fail)
    assert by_method["ga"]["config"]["optimizer"] == ("adamw" if kind == "text" else "sgd")
    assert by_method["retrain"]["config"] == {**resolve_recipe(kind=kind).to_dict(), "seed": 0}


def test_overrides_and_presets_resolve_the_same_through_api_and_cli(capsys, monkeypatch, class_split):
    cells = _dry_run(capsys, "--methods", "ga,salun", "--seeds", "1", "--forget", "class:0", "--set", "ga.lr=0.002",
                     "--set", "salun.epochs=3", "--out", "unused")
    by_method = {c["method"]: c for c in cells}
    task = uk.ClassificationTask(10)
    assert _captured_unlearn_config(monkeypatch, task, class_split, "ga", lr="0.002") == by_method["ga"]["config"]
    assert _captured_unlearn_config(monkeypatch, task, class_split, "salun", epochs=3) == by_method["salun"]["config"]
    assert by_method["ga"]["from"]["lr"] == "overrides" and by_method["ga"]["config"]["lr"] == 0.002
    # a preset is one layer of the same resolver, under --set
    preset = uk.resolve_config("ga", preset="cifar10-resnet18")
    assert preset.epochs == 5 and explain_config("ga", preset="cifar10-resnet18")["epochs"] == "preset"
    assert uk.resolve_config("ga", preset="cifar10-resnet18", overrides={"epochs": "2"}).epochs == 2
    captured = _captured_unlearn_config(monkeypatch, task, class_split, "ga", preset="cifar10-resnet18")
    assert captured == {**preset.to_dict()}


def test_layers_apply_in_order_and_say_where_values_come_from():
    # defaults → kind → method kind → quick → overrides → seed
    scrub = resolve_config("scrub", kind="text", quick=True, overrides={"lr": "5e-4"}, seed=3)
    origin = explain_config("scrub", kind="text", quick=True, overrides={"lr": "5e-4"}, seed=3)
    assert scrub.optimizer == KIND_DEFAULTS["text"]["optimizer"] and origin["optimizer"] == "kind"
    assert scrub.epochs == 1 and origin["epochs"] in ("method kind", "quick")
    assert scrub.lr == 5e-4 and origin["lr"] == "overrides"
    assert scrub.seed == 3 and origin["seed"] == "seed"
    assert origin["temperature"] == "defaults"
    # the user's epochs survive --quick
    assert resolve_config("ga", quick=True, overrides={"epochs": 4}).epochs == 4
    assert resolve_config("ga", quick=True).epochs == max(1, METHODS.get("ga").Config().epochs // 2)
    # retrain repeats the recipe, under its own overrides
    assert resolve_config("retrain", kind="text").to_dict() == resolve_recipe(kind="text").to_dict()
    assert resolve_config("retrain", overrides={"epochs": 2}).epochs == 2
    assert resolve_recipe(quick=True).epochs == 10 and isinstance(resolve_recipe(kind="text"), RECIPES["text"])
    with pytest.raises(ConfigError, match="kind must be one of"):
        resolve_config("ga", kind="audio")


def test_dry_run_prints_one_json_object_per_planned_cell_and_trains_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    cells = _dry_run(capsys, "--methods", "ga,finetune", "--seeds", "2", "--out", str(out))
    assert len(cells) == 2 * 2 * 3  # scenarios × seeds × (retrain + 2 methods)
    assert {(c["scenario"], c["seed"]) for c in cells} == {(s, k) for s in ("class:0", "random:0.1") for k in (0, 1)}
    for cell in cells:
        assert {"method", "scenario", "seed", "config", "train_config", "cell", "from"} <= set(cell)
        assert cell["config"]["seed"] == cell["seed"]
    assert not out.exists()  # nothing trained, nothing written


def test_one_set_grammar_typed_everywhere(tmp_path, capsys):
    # bare KEY=VALUE means the only method being run
    cells = _dry_run(capsys, "--methods", "ga", "--seeds", "1", "--set", "lr=0.003", "--out", str(tmp_path))
    assert [c["config"]["lr"] for c in cells if c["method"] == "ga"] == [0.003, 0.003]
    for command, message in [
        (["bench", "--set", "lr=0.1"], "runs several methods; expected METHOD.KEY=VALUE"),
        (["bench", "--set", "ga.lr=fast"], "ga.lr: expected float, got 'fast'"),
        (["bench", "--set", "ga.augment=maybe"], "ga.augment: expected bool"),
        (["bench", "--set", "train.epochs=ten"], "train.epochs: expected int, got 'ten'"),
        (["tune", "--method", "ga", "--set", "lr=fast"], "ga.lr: expected float, got 'fast'"),
        (["tune", "--method", "ga", "--set", "npo.beta=1"], "KEY=VALUE"),
        (["bench", "--data-option", "x=1"], "digits does not take the option(s) x"),
        (["bench", "--data", "imagefolder:nowhere", "--data-option", "workers=many"], "workers must be a int"),
    ]:
        assert main([*command, "--out", str(tmp_path / "o")]) == 2, command
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (command, err)


def test_data_options_arrive_typed():
    from unlearnkit.data.sources import typed_data_options

    assert typed_data_options("imagefolder:x", {"resize": "yes", "workers": "3", "groups": "g.json"}) == \
        {"resize": True, "workers": 3, "groups": "g.json"}
    assert typed_data_options("tofu-mini", {"max_length": "64"}) == {"max_length": 64}


def test_verbose_version_and_module_entry_point(tmp_path, capsys):
    assert len(_dry_run(capsys, "-v", "--methods", "ga", "--seeds", "1", "--forget", "class:0",
                        "--out", str(tmp_path))) == 2
    assert main(["-v", "methods"]) == 0 and main(["methods", "-v"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"unlearnkit {uk.__version__}"
    done = subprocess.run([sys.executable, "-m", "unlearnkit", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"unlearnkit {uk.__version__}"


def test_methods_kind_text_shows_the_text_defaults(capsys):
    assert main(["methods", "--kind", "text"]) == 0
    lines = capsys.readouterr().out.splitlines()
    ga = lines[lines.index(next(l for l in lines if l.startswith("ga "))) + 1]
    assert "optimizer=adamw(kind)" in ga and "lr=0.001(kind)" in ga
    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    ga = lines[lines.index(next(l for l in lines if l.startswith("ga "))) + 1]
    assert "optimizer=sgd" in ga and "(kind)" not in ga


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_an_unavailable_device_is_a_clear_error(tmp_path, capsys):
    assert main(["bench", "--device", "cuda", "--methods", "ga", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--device cuda: this machine has no CUDA GPU" in err and "Traceback" not in err
    assert uk.resolve_config  # the API takes the same spellings
    from unlearnkit.devices import resolve_device

    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="expected auto, cpu"):
        resolve_device("gpu")


def test_format_switch_and_results_csv(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["bench", "--quick", "--forget", "class:1", "--methods", "ga", "--model", "mlp", "--audits", "accuracy",
            "--set", "train.epochs=2", "--set", "retrain.epochs=2", "--out", str(out)]
    assert main([*args, "--format", "csv"]) == 0
    printed = capsys.readouterr().out
    written = (out / "results.csv").read_text()
    assert printed.strip() == written.strip()  # the resumed run prints what the first one wrote
    header, *rows = written.strip().splitlines()
    assert header.startswith("scenario,method,seeds,status,ua,ua_std")
    assert [r.split(",")[1] for r in rows] == ["retrain", "ga"]
    assert main([*args, "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [row["method"] for row in summary] == ["retrain", "ga"]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert summary[1]["ua"]["mean"] == pytest.approx(records[1]["metrics"]["ua"])
    assert main([*args, "--format", "markdown"]) == 0
    assert capsys.readouterr().out.startswith("| scenario | method | ua |")


def test_image_task_without_its_pipeline_names_the_fix(tmp_path):
    """The README quick start on CIFAR: a task built without the source's pipeline gets uint8 pixels."""
    from test_data_vision import write_cifar10

    source = uk.load_data(f"cifar10:{write_cifar10(tmp_path, per_batch=4)}")
    model = uk.make_model(source, "mlp", seed=0)
    bare = uk.ClassificationTask(source.num_classes)
    with pytest.raises(DataError, match=r"unlearnkit\.make_task\(source\)"):
        uk.fit(model, bare, source.train, uk.resolve_recipe(overrides={"epochs": 1}))
    task = uk.make_task(source)
    assert task.pipeline is source.pipeline
    uk.fit(model, task, source.train, uk.resolve_recipe(overrides={"epochs": 1}))  # runs
    split = uk.make_split(source, f"class:{int(source.train.y[0])}")
    forgot = uk.unlearn(model, task, split, method="ga", epochs=1)
    assert "ua" in uk.audit(forgot, task, split, ["accuracy"])


def test_fit_defaults_to_the_kind_recipe(monkeypatch, digits):
    import unlearnkit.methods.training as training

    seen = {}
    monkeypatch.setattr(training, "run_loop", lambda method, model, task, streams, config, ctx: seen.update(c=config))
    uk.fit(nn.Linear(64, 10), uk.make_task(digits), digits.train)
    assert seen["c"].to_dict() == resolve_recipe(kind="image").to_dict()


def test_pretrained_text_recipe_is_openunlearnings(tmp_path, capsys, monkeypatch, class_split, tok):
    npo = resolve_config("npo", kind="text", scale="pretrained")
    # configs/experiment/unlearn/tofu/default.yaml + configs/trainer/{finetune,NPO}.yaml
    assert (npo.lr, npo.weight_decay, npo.epochs, npo.optimizer) == (1e-5, 0.01, 10, "adamw")
    assert (npo.batch_size, npo.grad_accum, npo.warmup, npo.beta) == (8, 4, 0.1, 0.1)
    assert explain_config("npo", kind="text", scale="pretrained")["lr"] == "scale"
    # a method with its own loop keeps the effective batch in one step
    scrub = resolve_config("scrub", kind="text", scale="pretrained")
    assert (scrub.batch_size, scrub.grad_accum) == (32, 1)
    assert resolve_config("rmu", kind="text", scale="pretrained").alpha == 1.0  # configs/trainer/RMU.yaml
    with pytest.raises(ConfigError, match="pretrained"):
        resolve_config("ga", kind="image", scale="pretrained")
    # --hf-model selects it on the command line; a from_pretrained model selects it in the API
    from lm_helpers import tiny_llama
    from unlearnkit.models.hf import load_hf_model, save_hf_model

    folder = save_hf_model(tiny_llama(tok, seed=0), tok, tmp_path / "llm")
    cells = _dry_run(capsys, "--data", "tofu-mini", "--hf-model", str(folder), "--methods", "ga,npo",
                     "--out", str(tmp_path / "o"))
    by_method = {c["method"]: c for c in cells}
    assert by_method["npo"]["config"] == npo.to_dict() and by_method["npo"]["from"]["lr"] == "scale"
    task = uk.CausalLMTask(tok)
    seen = {}
    monkeypatch.setattr(api, "run_method", lambda name, model, t, s, config, ctx: seen.update(c=config) or model)
    uk.unlearn(load_hf_model(folder), task, class_split, method="ga")
    assert seen["c"].to_dict() == by_method["ga"]["config"]
    uk.unlearn(tiny_llama(tok, seed=0), task, class_split, method="ga")  # built here: the small-model recipe
    assert seen["c"].to_dict() == resolve_config("ga", kind="text", seed=0).to_dict()


def test_a_method_with_its_own_loop_refuses_grad_accum(trained_mlp, task, class_split):
    with pytest.raises(ConfigError, match="does not accumulate gradients; set grad_accum=1 and batch_size=512"):
        uk.unlearn(trained_mlp, task, class_split, method="scrub", grad_accum=2)
