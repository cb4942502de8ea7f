"""Presets carry each paper's hyper-parameters, each value with its source: ``bench --preset P
--dry-run`` shows them with ``from = "preset"``; every value types into its method's config; the
documentation page prints the same tables."""
import json
import re
from pathlib import Path

import pytest

from test_data_vision import write_cifar10, write_cifar100, write_tiny
from unlearnkit.bench.presets import PRESETS, Cited, markdown_table
from unlearnkit.cli import main
from unlearnkit.methods import METHODS
from unlearnkit.resolve import explain_config, resolve_config, resolve_recipe

DOCS = Path(__file__).resolve().parents[1] / "docs" / "presets.md"

# The SalUn / Unlearn-Sparse CIFAR-10 protocol, written out (not read from the preset)
SGD_256 = {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 256, "schedule": "constant",
           "augment": True}
CIFAR10_EXPECTED = {
    "retrain": {"epochs": 160, "lr": 0.1},
    "finetune": {"lr": 0.01, "epochs": 10, **SGD_256},
    "ga": {"lr": 1e-4, "epochs": 5, **SGD_256},
    "random_label": {"lr": 0.013, "epochs": 10, **SGD_256, "feed": "union", "label_draw": "any"},
    "salun": {"lr": 0.013, "epochs": 10, **SGD_256, "feed": "union", "label_draw": "any",
              "saliency_fraction": 0.5, "mask_scope": "global"},
    "l1_sparse": {"lr": 0.01, "epochs": 10, **SGD_256, "gamma": 5e-4, "gamma_schedule": "epoch", "no_l1_epochs": 0},
    "scrub": {"optimizer": "sgd", "lr": 5e-4, "momentum": 0.9, "weight_decay": 5e-4, "epochs": 3, "msteps": 2,
              "temperature": 4.0, "alpha": 0.001, "gamma": 0.99, "batch_size": 256, "forget_batch_size": 512,
              "schedule": "constant"},
    "ssd": {"alpha": 10.0, "lam": 1.0, "importance": "per_batch"},
}
CIFAR10_TRAIN = {"epochs": 182, "lr": 0.1, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 5e-4,
                 "batch_size": 256, "warmup": 0.0, "schedule": "cosine", "augment": True}


def _dry_run(args, capsys):
    assert main(["bench", *args, "--dry-run"]) == 0, capsys.readouterr().err
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def _first_cell_per_method(cells):
    out = {}
    for cell in cells:
        out.setdefault(cell["method"], cell)
    return out


def test_cifar10_dry_run_shows_the_papers_values_from_the_preset(tmp_path, capsys):
    folder = write_cifar10(tmp_path, per_batch=6)
    cells = _dry_run(["--preset", "cifar10-resnet18", "--data", f"cifar10:{folder}", "--out", str(tmp_path / "o")],
                     capsys)
    assert {c["scenario"] for c in cells} == {"class:0", "random:0.1"}
    assert {c["seed"] for c in cells} == {0, 1, 2}
    by_method = _first_cell_per_method(cells)
    for method, want in CIFAR10_EXPECTED.items():
        cell = by_method[method]
        for key, value in want.items():
            assert cell["config"][key] == value, (method, key)
            assert cell["from"][key] == "preset", (method, key)
    # the original's recipe: the paper's (its multi-step decay replaced by cosine, documented as ours)
    for key, value in CIFAR10_TRAIN.items():
        assert by_method["ga"]["train_config"][key] == value, key
    # retrain repeats the recipe, then the preset's retrain values
    assert by_method["retrain"]["from"]["momentum"] == "recipe" and by_method["retrain"]["config"]["momentum"] == 0.9
    # a method the preset does not list keeps its own defaults
    assert "preset" not in by_method["entangle"]["from"].values()


def test_set_wins_over_the_preset_and_quick_leaves_epochs_to_quick(tmp_path, capsys):
    folder = write_cifar10(tmp_path, per_batch=6)
    cells = _dry_run(["--preset", "cifar10-resnet18", "--data", f"cifar10:{folder}", "--methods", "salun",
                      "--set", "salun.lr=0.05", "--quick", "--out", str(tmp_path / "o")], capsys)
    salun = _first_cell_per_method(cells)["salun"]
    assert salun["config"]["lr"] == 0.05 and salun["from"]["lr"] == "overrides"
    assert salun["from"]["batch_size"] == "preset" and salun["from"]["epochs"] == "quick"


@pytest.mark.parametrize("preset,writer,prefix", [("cifar100-subclass", write_cifar100, "cifar100"),
                                                  ("cifar100-resnet18", write_cifar100, "cifar100"),
                                                  ("tinyimagenet-resnet18", write_tiny, "tinyimagenet")])
def test_other_presets_dry_run(tmp_path, capsys, preset, writer, prefix):
    folder = writer(tmp_path)
    cells = _dry_run(["--preset", preset, "--data", f"{prefix}:{folder}", "--out", str(tmp_path / "o")], capsys)
    by_method = _first_cell_per_method(cells)
    p = PRESETS.get(preset)
    for method in p.methods:
        for key, value in p.values(method).items():
            assert by_method[method]["config"][key] == value and by_method[method]["from"][key] == "preset"
    for key, value in p.values("train").items():
        assert cells[0]["train_config"][key] == value


def test_entangle_protocol_values():
    p = PRESETS.get("cifar100-subclass")
    assert p.scenarios == ("subclass:1",)  # aquarium fish, superclass fish
    config = resolve_config("entangle", preset="cifar100-subclass")
    assert (config.phase1_epochs, config.phase1_lr, config.mu, config.gamma, config.clip) == \
        (1, 2.5e-6, 10.0, 1.0, 10.0)
    assert (config.p1_remote_batch, config.p1_forget_batch) == (128, 16)
    assert (config.phase2_epochs, config.phase2_lr, config.alpha, config.momentum2, config.basis_batches) == \
        (6, 2e-5, 0.5, 0.9, 10)
    assert (config.p2_adjacent_batch, config.p2_forget_batch, config.p2_remote_batch) == (128, 128, 512)
    recipe = resolve_recipe(preset="cifar100-subclass")
    assert (recipe.epochs, recipe.lr, recipe.batch_size, recipe.schedule) == (30, 1e-3, 256, "cosine")
    ssd = resolve_config("ssd", preset="cifar100-subclass")
    assert (ssd.alpha, ssd.lam, ssd.importance) == (10.0, 1.0, "per_batch")


@pytest.mark.parametrize("name", PRESETS.names())
def test_every_value_is_cited_and_types_into_its_config(name):
    p = PRESETS.get(name)
    assert p.train and p.methods
    for target in p.targets():
        cited = p.train if target == "train" else p.methods[target]
        for key, c in cited.items():
            assert isinstance(c, Cited), (target, key)
            # a file of the paper's code (a path, a README, a notebook) or our own reason
            assert re.search(r"\.(py|md|MD|ipynb)\b|^ours: ", c.source), (target, key, c.source)
    resolve_recipe(preset=name)
    for method in p.methods:
        assert method in METHODS.names()
        config = resolve_config(method, preset=name)
        origin = explain_config(method, preset=name)
        for key, value in p.values(method).items():
            assert getattr(config, key) == value and origin[key] == "preset", (method, key)


def test_the_documentation_prints_every_preset_table():
    page = DOCS.read_text()
    for name in PRESETS.names():
        assert f"`{name}`" in page
        assert markdown_table(PRESETS.get(name)) in page, f"docs/presets.md: regenerate the {name} table"
