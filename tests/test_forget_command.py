"""`unlearnkit forget`: the practitioner's command, end to end on tiny data."""
import json

import pytest
import torch

from unlearnkit import build_model, load_data, make_split
from unlearnkit.checkpoints import load_weights, save_weights, sha256_file
from unlearnkit.cli import main
from unlearnkit.deletion import sha256_ids


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "cache"))


def _mlp_checkpoint(path):
    model = build_model("mlp", (1, 8, 8), 10, seed=3)
    return save_weights(model, path), model


def test_forget_from_a_checkpoint_writes_model_and_a_complete_record(tmp_path, capsys, cache):
    ckpt, model = _mlp_checkpoint(tmp_path / "mine.safetensors")
    before = sha256_file(ckpt)
    out = tmp_path / "out"
    code = main(["forget", "--checkpoint", str(ckpt), "--model", "mlp", "--forget", "class:2", "--method", "ga",
                 "--set", "epochs=1", "--audits", "accuracy,mia", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert sha256_file(ckpt) == before  # the input is only read
    record = json.loads((out / "record.json").read_text())
    split = make_split(load_data("digits"), "class:2")
    assert record["request"]["forget_examples"] == len(split.forget_idx)
    assert record["request"]["forget_ids_sha256"] == sha256_ids(split.forget_idx)
    assert record["method"]["name"] == "ga" and record["method"]["config"]["epochs"] == 1
    assert record["input_model"]["sha256"] == before and record["input_model"]["arch"] == "mlp"
    assert record["output_model"]["sha256"] == sha256_file(out / "model.safetensors")
    assert {"ua", "ra", "ta", "mia_efficacy"} <= set(record["metrics"])
    # the record's accuracies are the saved model's and the input checkpoint's, audited independently
    digits_split = make_split(load_data("digits"), "class:2")
    for key, weights in (("metrics", out / "model.safetensors"), ("original_metrics", ckpt)):
        saved = load_weights(build_model("mlp", (1, 8, 8), 10), weights).eval()
        for metric, data in (("ua", digits_split.forget), ("ra", digits_split.retain)):
            x, y = data.gather(torch.arange(len(data)))
            with torch.no_grad():
                accuracy = 100.0 * float((saved(x).argmax(1) == y).float().mean())
            expected = 100.0 - accuracy if metric == "ua" else accuracy
            assert record[key][metric] == pytest.approx(expected, abs=1e-9), (key, metric)
    assert record["seeds"] == {"unlearn": 0, "split": 0, "train": 0}
    assert {"unlearnkit", "torch", "python"} <= set(record["versions"])
    assert record["command"].startswith("unlearnkit forget --checkpoint")
    assert record["run"]["seconds"] > 0 and record["retrain_reference"] is None
    # the written model loads into the architecture and differs from the input
    unlearned = load_weights(build_model("mlp", (1, 8, 8), 10), out / "model.safetensors")
    assert any(not torch.equal(a, b) for a, b in zip(unlearned.parameters(), model.parameters()))
    page = (out / "record.html").read_text()
    assert "Deletion record" in page and record["request"]["forget_ids_sha256"] in page
    assert "<script" not in page and "http" not in page


def test_forget_old_spelling_still_works_with_a_deprecation_warning(tmp_path, capsys, cache):
    ckpt, _ = _mlp_checkpoint(tmp_path / "m.safetensors")
    new, old = tmp_path / "new", tmp_path / "old"
    common = ["--forget", "class:1", "--method", "ga", "--set", "epochs=1", "--audits", "accuracy"]
    assert main(["forget", "--checkpoint", str(ckpt), "--model", "mlp", *common, "--out", str(new)]) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert main(["forget", "--model", str(ckpt), "--arch", "mlp", *common, "--out", str(old)]) == 0
    assert "forget --model CKPT is deprecated; use --checkpoint CKPT --model ARCH" in capsys.readouterr().err
    # the same request either way: the same unlearned weights
    assert sha256_file(new / "model.safetensors") == sha256_file(old / "model.safetensors")


def test_forget_never_replaces_an_earlier_result(tmp_path, capsys, cache):
    ckpt, _ = _mlp_checkpoint(tmp_path / "m.safetensors")
    args = ["forget", "--checkpoint", str(ckpt), "--model", "mlp", "--forget", "class:1", "--method", "ga",
            "--set", "epochs=1", "--audits", "accuracy", "--out", str(tmp_path / "out")]
    assert main(args) == 0
    first = (tmp_path / "out" / "record.json").read_bytes()
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "out" / "record.json").read_bytes() == first


def test_forget_on_the_embedded_default_with_a_retrain_reference(tmp_path, capsys, cache):
    out = tmp_path / "out"
    code = main(["forget", "--forget", "class:0", "--method", "random_label", "--set", "epochs=1",
                 "--audits", "accuracy", "--retrain", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    record = json.loads((out / "record.json").read_text())
    assert record["input_model"]["kind"].startswith("cached original")
    assert record["retrain_reference"]["kind"] == "trained here on the retain set"
    assert "avg_gap" in record["metrics"] and record["retrain_metrics"]["ua"] == 100.0
    assert "avg_gap" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--checkpoint", "nope.safetensors", "--model", "mlp"], "checkpoint not found"),
    (["--checkpoint", "CKPT"], "needs --model ARCH"),
    (["--checkpoint", "CKPT", "--model", "cnn"], "does not match the model"),
    (["--method", "retrain"], "does not unlearn"),
    (["--set", "npo.beta=1"], "KEY=VALUE"),
    (["--set", "colour=1"], "colour"),
    (["--set", "lr=fast"], "ga.lr: expected float, got 'fast'"),
    (["--set", "epochs=1.5"], "ga.epochs: expected int"),
    (["--device", "cuda:7"], "--device cuda:7"),
    # the deprecated spelling (one release): --model CKPT --arch NAME, with a warning
    (["--model", "nope.safetensors", "--arch", "mlp"], "checkpoint not found"),
    (["--model", "CKPT"], "needs --model ARCH"),
])
def test_forget_bad_input_is_named(tmp_path, capsys, cache, args, message):
    ckpt, _ = _mlp_checkpoint(tmp_path / "m.safetensors")
    args = [str(ckpt) if a == "CKPT" else a for a in args]
    base = ["forget", "--forget", "class:1", "--out", str(tmp_path / "out")]
    if "--method" not in args:
        base += ["--method", "ga"]
    assert main(base + args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "record.json").exists()


def test_forget_with_a_local_hf_model(tmp_path, capsys, cache):
    pytest.importorskip("transformers").utils.logging.disable_progress_bar()
    from lm_helpers import tiny_llama, tiny_tokenizer
    from unlearnkit.models.hf import save_hf_model

    tok = tiny_tokenizer()
    folder = save_hf_model(tiny_llama(tok, seed=0), tok, tmp_path / "llm")
    out = tmp_path / "out"
    code = main(["forget", "--hf-model", str(folder), "--data", "tofu-mini", "--forget", "forget05",
                 "--method", "npo", "--set", "epochs=1", "--audits", "accuracy", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    record = json.loads((out / "record.json").read_text())
    assert (out / "model" / "config.json").exists() and record["output_model"]["format"] == "save_pretrained"
    assert record["input_model"]["kind"] == "hf_model"
    assert record["output_model"]["sha256"] != record["input_model"]["sha256"]
    assert record["method"]["config"]["optimizer"] == "adamw"  # the text defaults apply


def test_forget_log_dir_keeps_the_training_curve(tmp_path, capsys, cache):
    import csv
    import math

    ckpt, _ = _mlp_checkpoint(tmp_path / "m.safetensors")
    out, logs = tmp_path / "out", tmp_path / "logs"
    code = main(["forget", "--checkpoint", str(ckpt), "--model", "mlp", "--forget", "class:1", "--method", "graddiff",
                 "--set", "epochs=2", "--set", "batch_size=32", "--audits", "accuracy", "--log-dir", str(logs),
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    rows = list(csv.DictReader((logs / "forget-graddiff.csv").open()))
    forget = len(make_split(load_data("digits"), "class:1").forget_idx)
    assert len(rows) == 2 * math.ceil(forget / 32)  # one row per optimizer step
    assert {"loss", "lr", "forget", "retain"} <= set(rows[0])
    record = json.loads((out / "record.json").read_text())
    assert record["curves"]["loss"]["steps"] == len(rows)
