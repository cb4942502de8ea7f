"""A user's own checkpoint (``checkpoints.load_into``): safetensors or a ``torch.save`` file read with
``weights_only=True``, as the unlearning papers' code writes them (SalUn's ``{"state_dict": …}`` with
``module.`` prefixes, torchvision's ResNet names, ``torch.compile``'s ``_orig_mod.``), used by
``bench --original`` and ``forget --checkpoint``; pickled classes are refused, never run."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from test_data_vision import write_cifar10
from unlearnkit import build_model, load_data
from unlearnkit.checkpoints import (LAYOUTS, from_layout, load_into, load_state_file, sha256_file, state_tensors,
                                    to_layout)
from unlearnkit.cli import main
from unlearnkit.errors import CheckpointError

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(folder))
    return folder


def torchvision_resnet18_keys() -> list[str]:
    """torchvision.models.resnet18().state_dict() names, written out from its module tree (BasicBlock:
    conv1, bn1, conv2, bn2, and ``downsample`` = Sequential(1×1 conv, BN) in the first block of
    layers 2–4); no torchvision import."""
    keys = ["conv1.weight", *(f"bn1.{p}" for p in BN)]
    for stage in range(1, 5):
        for block in range(2):
            pre = f"layer{stage}.{block}."
            keys += [pre + "conv1.weight", *(pre + f"bn1.{p}" for p in BN),
                     pre + "conv2.weight", *(pre + f"bn2.{p}" for p in BN)]
            if stage > 1 and block == 0:
                keys += [pre + "downsample.0.weight", *(pre + f"downsample.1.{p}" for p in BN)]
    return keys + ["fc.weight", "fc.bias"]


def _randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every tensor (BN running statistics and counters included) drawn at random, so that a
    loaded tensor left at its initial value would show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                t.copy_(torch.rand(t.shape, generator=g) + (0.5 if "running_var" in name else 0.0))
            else:
                t.fill_(int(torch.randint(1, 1000, (1,), generator=g)))
    return model


def _assert_same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def _salun_file(path, model: torch.nn.Module) -> None:
    """As SalUn's / Unlearn-Sparse's utils.save_checkpoint writes it under DataParallel: torchvision
    names (their ResNet is torchvision's code), ``module.`` prefixes, the in-model input
    normalisation buffers, and training state beside ``state_dict``."""
    state = to_layout(state_tensors(model), "torchvision")
    state["normalize.mean"] = torch.tensor([0.4914, 0.4822, 0.4465])
    state["normalize.std"] = torch.tensor([0.2470, 0.2435, 0.2616])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.save({"result": {"train_ta": [10.0, 42.5], "val_ta": [11.0, 40.0]}, "epoch": 3,
                "state_dict": {f"module.{k}": v for k, v in state.items()}, "best_sa": 40.0,
                "optimizer": optimizer.state_dict(),
                "scheduler": torch.optim.lr_scheduler.MultiStepLR(optimizer, [91, 136]).state_dict()}, path)


# --- the mapping ---------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["resnet18", "resnet18_imagenet"])
def test_torchvision_names_load_tensor_by_tensor(tmp_path, arch):
    source = _randomised(build_model(arch, (3, 8, 8), 10, seed=0), seed=1)
    named = to_layout(source.state_dict(), "torchvision")  # our mapping's inverse
    assert list(named) == torchvision_resnet18_keys()  # = torchvision's own names, in its order
    for saved in (tmp_path / "tv.safetensors", tmp_path / "tv.pth"):
        if saved.suffix == ".safetensors":
            save_file({k: v.contiguous() for k, v in named.items()}, str(saved))
        else:
            torch.save(named, saved)
        target = build_model(arch, (3, 8, 8), 10, seed=2)
        details = load_into(target, saved, arch=arch)
        _assert_same(source, target)
        assert details["layout"] == "torchvision" and details["sha256"] == sha256_file(saved)


def test_old_torchvision_files_without_bn_counters_load(tmp_path):
    source = _randomised(build_model("resnet18", (3, 8, 8), 10, seed=0), seed=3)
    named = {k: v for k, v in to_layout(source.state_dict(), "torchvision").items()
             if not k.endswith("num_batches_tracked")}  # as torchvision's published resnet18 weights
    torch.save(named, tmp_path / "old.pth")
    target = build_model("resnet18", (3, 8, 8), 10, seed=2)
    load_into(target, tmp_path / "old.pth", arch="resnet18")
    for name, tensor in source.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            assert torch.equal(tensor, target.state_dict()[name]), name


def test_pytorch_cifar100_layout_of_ssd_loads(tmp_path):
    source = _randomised(build_model("resnet18", (3, 8, 8), 100, seed=0), seed=4)
    named = to_layout(source.state_dict(), "pytorch-cifar100")
    for key in ("conv1.0.weight", "conv1.1.running_var", "conv2_x.0.residual_function.0.weight",
                "conv2_x.1.residual_function.4.bias", "conv3_x.0.shortcut.0.weight",
                "conv5_x.0.shortcut.1.running_mean", "fc.weight"):
        assert key in named, key  # the names of SSD's src/resnet.py
    assert not any(k.startswith(("layer", "bn1")) for k in named)
    torch.save(named, tmp_path / "ssd.pth")
    target = build_model("resnet18", (3, 8, 8), 100, seed=2)
    assert load_into(target, tmp_path / "ssd.pth", arch="resnet18")["layout"] == "pytorch-cifar100"
    _assert_same(source, target)


def test_layouts_round_trip_on_our_names():
    names = dict.fromkeys(build_model("resnet18", (3, 8, 8), 10).state_dict(), torch.zeros(1))
    for layout in LAYOUTS:
        theirs = to_layout(names, layout)
        assert len(theirs) == len(names)
        assert list(from_layout(theirs, layout)) == list(names)


# --- wrappers and prefixes ---------------------------------------------------------------------------

@pytest.mark.parametrize("wrap", [
    lambda s: s,
    lambda s: {"state_dict": s, "epoch": 3},
    lambda s: {"model_state_dict": s, "optimizer_state_dict": {}, "epoch": 1},
    lambda s: {"model": s, "args": {"lr": 0.1}},
    lambda s: {"net": s, "acc": 93.1},
    lambda s: {"model": {"state_dict": s}},  # nested once
    lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}},  # DataParallel
    lambda s: {f"_orig_mod.{k}": v for k, v in s.items()},  # torch.compile
    lambda s: {f"module._orig_mod.{k}": v for k, v in s.items()},  # both
])
def test_wrappers_and_prefixes_are_removed(tmp_path, wrap):
    source = _randomised(build_model("cnn", (3, 8, 8), 10, seed=0), seed=5)
    torch.save(wrap(state_tensors(source)), tmp_path / "m.pt")
    assert list(load_state_file(tmp_path / "m.pt")) == list(source.state_dict())
    target = build_model("cnn", (3, 8, 8), 10, seed=1)
    load_into(target, tmp_path / "m.pt", arch="cnn")
    _assert_same(source, target)


def test_compiled_model_state_dict_loads(tmp_path):
    source = _randomised(build_model("mlp", (1, 8, 8), 10, seed=0), seed=6)
    compiled = torch.compile(source)  # not run: its state_dict() already carries the prefix
    state = compiled.state_dict()
    assert all(k.startswith("_orig_mod.") for k in state)
    torch.save(state, tmp_path / "compiled.pt")
    target = build_model("mlp", (1, 8, 8), 10, seed=1)
    assert load_into(target, tmp_path / "compiled.pt", arch="mlp")["prefixes_removed"] == ["_orig_mod."]
    _assert_same(source, target)


def test_safetensors_is_recognised_by_content_and_junk_is_named(tmp_path):
    source = _randomised(build_model("mlp", (1, 8, 8), 10, seed=0), seed=7)
    save_file(state_tensors(source), str(tmp_path / "weights.pt"))  # safetensors under a .pt name
    target = build_model("mlp", (1, 8, 8), 10, seed=1)
    assert load_into(target, tmp_path / "weights.pt")["format"] == "safetensors"
    _assert_same(source, target)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pth is neither a safetensors file nor a readable torch.save"):
        load_into(target, tmp_path / "junk.pth")
    torch.save({"epoch": 3, "config": {"lr": 0.1}}, tmp_path / "notensors.pt")
    with pytest.raises(CheckpointError, match=r"notensors.pt holds no tensors \(keys: 'epoch', 'config'\)"):
        load_into(target, tmp_path / "notensors.pt")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_into(target, tmp_path / "absent.pt")


def test_salun_normalisation_buffers_are_dropped(tmp_path):
    source = _randomised(build_model("resnet18", (3, 8, 8), 10, seed=0), seed=8)
    _salun_file(tmp_path / "salun.pth.tar", source)
    target = build_model("resnet18", (3, 8, 8), 10, seed=1)
    details = load_into(target, tmp_path / "salun.pth.tar", arch="resnet18")
    assert details["dropped"] == ["normalize.mean", "normalize.std"]
    assert details["unwrapped"] == "state_dict" and details["prefixes_removed"] == ["module."]
    _assert_same(source, target)


# --- what does not match is named ---------------------------------------------------------------------

def test_missing_and_unexpected_keys_are_named(tmp_path):
    state = state_tensors(build_model("cnn", (3, 8, 8), 10, seed=0))
    del state["4.running_mean"]
    state["extra.weight"] = torch.zeros(3)
    torch.save({"state_dict": state}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as error:
        load_into(build_model("cnn", (3, 8, 8), 10), tmp_path / "bad.pt", arch="cnn")
    message = str(error.value)
    assert "bad.pt does not match the model (--model cnn)" in message
    assert "1 missing (4.running_mean)" in message and "1 unexpected (extra.weight)" in message
    assert "\n" not in message


def test_another_architecture_lists_the_first_names_and_counts(tmp_path):
    torch.save(state_tensors(build_model("mlp", (3, 8, 8), 10)), tmp_path / "mlp.pt")
    with pytest.raises(CheckpointError) as error:
        load_into(build_model("cnn", (3, 8, 8), 10), tmp_path / "mlp.pt", arch="cnn")
    message = str(error.value)  # the names the two share (1.weight, 1.bias, 3.weight) are neither
    assert "14 missing (0.weight, 1.running_mean, 1.running_var, 4.weight, …)" in message  # the model's order
    assert "3 unexpected (3.bias, 5.weight, 5.bias)" in message  # the file's order


def test_shape_mismatches_are_named_with_a_hint(tmp_path):
    torch.save(state_tensors(build_model("resnet18", (3, 8, 8), 10)), tmp_path / "cifar.pt")
    with pytest.raises(CheckpointError) as error:
        load_into(build_model("resnet18_imagenet", (3, 8, 8), 10), tmp_path / "cifar.pt", arch="resnet18_imagenet")
    assert "conv1.weight (64, 3, 3, 3) vs (64, 3, 7, 7)" in str(error.value)
    assert "the CIFAR stem (3×3 conv1): --model resnet18" in str(error.value)
    with pytest.raises(CheckpointError) as error:
        load_into(build_model("resnet18", (3, 8, 8), 100), tmp_path / "cifar.pt", arch="resnet18")
    assert "2 shape mismatch(es)" in str(error.value) and "fc.weight (10, 512) vs (100, 512)" in str(error.value)
    assert "has 10 outputs, the data has 100 classes" in str(error.value)


# --- pickled classes are refused, their code never runs ------------------------------------------------

def _touch(path: str) -> None:
    with open(path, "w") as handle:
        handle.write("unpickled: code ran")


class Payload:
    """Unpickling this calls ``_touch(marker)``: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return _touch, (self.marker,)


@pytest.mark.parametrize("zipped", [True, False])
def test_a_pickled_class_is_refused_and_never_run(tmp_path, zipped):
    marker = tmp_path / "marker"
    state = state_tensors(build_model("mlp", (1, 8, 8), 10))
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": state, "extra": Payload(marker)}, path, _use_new_zipfile_serialization=zipped)
    with pytest.raises(CheckpointError) as error:
        load_into(build_model("mlp", (1, 8, 8), 10), path, arch="mlp")
    message = str(error.value)
    assert str(path) in message and "_touch" in message and "\n" not in message
    assert "re-save it as a plain state dict" in message and "safetensors" in message
    with pytest.raises(CheckpointError):
        load_state_file(path)
    assert not marker.exists()
    if zipped:  # the control: a plain unpickling would have run the payload
        torch.load(path, weights_only=False)
        assert marker.exists()


def test_a_whole_pickled_model_is_refused_by_forget(tmp_path, capsys, cache):
    marker = tmp_path / "marker"
    model = build_model("mlp", (1, 8, 8), 10)
    model.payload = Payload(marker)  # a whole module pickled, with an attribute that runs code
    torch.save(model, tmp_path / "model.pt")
    out = tmp_path / "out"
    code = main(["forget", "--checkpoint", str(tmp_path / "model.pt"), "--model", "mlp", "--forget", "class:1",
                 "--method", "ga", "--set", "epochs=1", "--audits", "accuracy", "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "model.pt holds pickled Python objects" in err and "re-save it as a plain state dict" in err
    assert "torch.nn.modules" in err or "unlearnkit" in err or "test_own_checkpoints" in err  # names the class
    assert not marker.exists() and not (out / "record.json").exists()


# --- wired into the commands -----------------------------------------------------------------------

def test_salun_style_file_is_the_bench_original(tmp_path, capsys, cache):
    folder = write_cifar10(tmp_path, per_batch=6)
    labels = load_data(f"cifar10:{folder}").train.y
    forgotten = int(labels[0])
    model = _randomised(build_model("resnet18", (3, 8, 8), 10, seed=0), seed=9)  # any input size: same tensors
    ckpt = tmp_path / "0model_SA_best.pth.tar"
    _salun_file(ckpt, model)
    before = sha256_file(ckpt)
    out = tmp_path / "run"
    code = main(["bench", "--data", f"cifar10:{folder}", "--model", "resnet18", "--original", str(ckpt),
                 "--forget", f"class:{forgotten}", "--methods", "ga", "--audits", "accuracy", "--quick",
                 "--set", "retrain.epochs=1", "--set", "ga.epochs=1", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert sha256_file(ckpt) == before  # only read
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["method"] for r in records] == ["retrain", "ga"] and all(r["status"] == "ok" for r in records)
    for record in records:
        original = record["original"]
        assert original["sha256"] == before and original["path"] == str(ckpt) and original["kind"] == "file"
        assert original["layout"] == "torchvision" and original["unwrapped"] == "state_dict"
        assert original["prefixes_removed"] == ["module."] and original["arch"] == "resnet18"
    assert not (cache / "originals").exists()  # nothing trained or cached in its place
    # the original the cells start from is the file's, tensor by tensor
    from unlearnkit.bench.runner import BenchPlan, build_originals
    from unlearnkit.bench.workload import workload_for
    from unlearnkit.data.forget import make_split

    source = load_data(f"cifar10:{folder}")
    plan = BenchPlan(data=f"cifar10:{folder}", model="resnet18", original=str(ckpt)).resolve(source)
    work, info = workload_for(source), {}
    originals = build_originals(plan, [make_split(source, f"class:{forgotten}")], work, plan.recipe(work),
                                torch.device("cpu"), info=info)
    _assert_same(model, originals[source.name][1])
    assert info["sha256"] == before


def test_bench_original_of_another_architecture_is_refused(tmp_path, capsys, cache):
    folder = write_cifar10(tmp_path, per_batch=6)
    ckpt = tmp_path / "salun.pth.tar"
    _salun_file(ckpt, build_model("resnet18", (3, 8, 8), 10))
    out = tmp_path / "run"
    code = main(["bench", "--data", f"cifar10:{folder}", "--model", "resnet18_imagenet", "--original", str(ckpt),
                 "--forget", "class:1", "--methods", "ga", "--audits", "accuracy", "--quick", "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{ckpt} does not match the model (--model resnet18_imagenet)" in err and "--model resnet18" in err
    assert not (out / "results.jsonl").exists() and not (cache / "originals").exists()


def test_forget_reads_a_salun_style_checkpoint(tmp_path, capsys, cache):
    source = _randomised(build_model("cnn", (1, 8, 8), 10, seed=0), seed=10)
    ckpt = tmp_path / "checkpoint.pth.tar"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state_tensors(source).items()}, "epoch": 3}, ckpt)
    out = tmp_path / "out"
    code = main(["forget", "--checkpoint", str(ckpt), "--model", "cnn", "--forget", "class:2", "--method", "ga",
                 "--set", "epochs=1", "--audits", "accuracy", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    record = json.loads((out / "record.json").read_text())
    given = record["input_model"]
    assert given["kind"] == "checkpoint" and given["path"] == str(ckpt) and given["sha256"] == sha256_file(ckpt)
    assert given["arch"] == "cnn" and given["unwrapped"] == "state_dict" and given["prefixes_removed"] == ["module."]
    assert given["format"].startswith("torch.save")
    assert (out / "model.safetensors").is_file()
