"""The calibrated defaults: the resolver returns the committed study's values (no silent drift), the
relative step does what it says, and docs/calibration.md is what its generator writes."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from unlearnkit import explain_config, resolve_config
from unlearnkit.calibrated import CALIBRATED, STUDIES
from unlearnkit.methods.base import MethodConfig
from unlearnkit.methods.loop import make_optimizer

ROOT = Path(__file__).resolve().parent.parent


def _study(kind: str) -> dict:
    return json.loads((ROOT / STUDIES[kind]).read_text(encoding="utf-8"))


EMBEDDED_TEXT = ("wmdp-mini", "tofu-mini")  # embedded text benchmarks: a key of their own


@pytest.mark.parametrize("key", sorted(STUDIES))
def test_every_calibrated_default_is_the_committed_studys_best_value(key):
    assert key in ("image", "text") + EMBEDDED_TEXT, f"{key}: a calibration key is a kind or an embedded benchmark"
    kind, data = (key, None) if key in ("image", "text") else ("text", key)
    study = _study(key)["methods"]
    assert set(CALIBRATED[key]) == set(study), "a calibrated method without its study, or a study not applied"
    for method, found in study.items():
        assert CALIBRATED[key][method] == found["best"], f"{method}: calibrated.py drifted from {STUDIES[key]}"
        config = resolve_config(method, kind=kind, data=data)
        origin = explain_config(method, kind=kind, data=data)
        for name, value in found["best"].items():
            assert getattr(config, name) == value, f"{method}.{name}"
            assert origin[name] == "calibrated", f"{method}.{name} comes from {origin[name]}"
        if data is not None:  # a benchmark's own values reach only that benchmark
            assert "calibrated" not in explain_config(method, kind=kind, data="tofu").values() or \
                method in CALIBRATED.get("text", {})


def test_bench_and_api_take_a_benchmarks_own_calibration(capsys):
    import json as _json

    from unlearnkit.cli import main

    for key in [k for k in STUDIES if k in EMBEDDED_TEXT]:
        method, values = next(iter(CALIBRATED[key].items()))
        assert main(["bench", "--data", key, "--methods", method, "--dry-run", "--out", "unused"]) == 0
        cells = [_json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
        cells = [c for c in cells if c["method"] == method]
        assert cells and all(c["config"][k] == v for c in cells for k, v in values.items())
        assert all(c["from"][k] == "calibrated" for c in cells for k in values)


def test_the_calibrated_layer_sits_under_presets_and_the_user_and_can_be_skipped():
    method = next(iter(CALIBRATED["image"]), None)
    if method is None:
        pytest.skip("no calibrated image method")
    key, value = next(iter(CALIBRATED["image"][method].items()))
    papers = resolve_config(method, kind="image", calibrated=False)
    assert explain_config(method, kind="image", calibrated=False)[key] != "calibrated"
    assert getattr(resolve_config(method, kind="image", overrides={key: getattr(papers, key)}), key) == getattr(papers, key)
    # a pretrained language model never takes small-model calibrations
    for name in CALIBRATED.get("text", {}):
        origin = explain_config(name, kind="text", scale="pretrained")
        assert "calibrated" not in origin.values()


def test_relative_sgd_step_moves_each_tensor_by_lr_times_its_norm():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Linear(4, 3))
    with torch.no_grad():
        model[1].weight.mul_(30.0)  # tensors of very different scales
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = make_optimizer(model.parameters(), MethodConfig(step_size="relative", lr=0.01, momentum=0.0))
    (model(torch.randn(8, 5)) ** 2).sum().mul(1e-6).backward()  # a tiny gradient: the step does not care
    grads = [p.grad.detach().clone() for p in model.parameters()]
    optimizer.step()
    for p, p0, g in zip(model.parameters(), before, grads):
        step = p.detach() - p0
        assert torch.allclose(step.norm(), 0.01 * p0.norm(), rtol=1e-4)
        # along −g
        assert torch.allclose(step, -g * (0.01 * p0.norm() / g.norm()), rtol=1e-4, atol=1e-9)


def test_relative_adam_step_scales_each_tensors_learning_rate_by_its_rms():
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 2)
    with torch.no_grad():
        model.weight.fill_(2.0)
        model.bias.zero_()
    optimizer = make_optimizer(model.parameters(), MethodConfig(optimizer="adam", step_size="relative", lr=0.1))
    lrs = [group["lr"] for group in optimizer.param_groups]
    assert lrs == pytest.approx([0.1 * 2.0, 0.1 * 1e-3])  # RMS 2; a zero tensor gets the floor
    before = model.weight.detach().clone()
    model(torch.randn(4, 6)).sum().backward()
    optimizer.step()
    # Adam's first step is lr·sign(g) per coordinate
    assert torch.allclose((model.weight - before).abs(), torch.full_like(before, 0.2), rtol=1e-3)


def test_absolute_is_the_papers_step():
    model = torch.nn.Linear(3, 1)
    optimizer = make_optimizer(model.parameters(), MethodConfig(lr=0.5, momentum=0.0))
    before = model.weight.detach().clone()
    model(torch.ones(1, 3)).sum().backward()
    grad = model.weight.grad.detach().clone()
    optimizer.step()
    assert torch.allclose(model.weight, before - 0.5 * grad)


def test_calibration_page_is_generated_from_the_committed_files():
    spec = importlib.util.spec_from_file_location("gen_calibration", ROOT / "docs" / "gen_calibration.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    page = gen.PAGE.read_text(encoding="utf-8")
    assert gen.render(page) == page, "docs/calibration.md is stale or hand-edited: run python docs/gen_calibration.py"
