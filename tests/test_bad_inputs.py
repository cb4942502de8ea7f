"""A catalogue of bad inputs (issue 18 §6). For each: the command exits 2, prints one line that names
the culprit (the file, value or option), and no file that existed before changed.

Elsewhere in the suite: a ``kill -9`` in the middle of a bench (tests/test_bench_cli.py
``test_killed_process_resumes_without_loss``), a pickled custom class as a checkpoint
(tests/test_own_checkpoints.py), a NaN loss (below: the cell is recorded as diverged, the run goes on).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from unlearnkit import build_model
from unlearnkit.checkpoints import save_weights
from unlearnkit.cli import main


def _hashes(root: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("unlearnkit: error:")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


def _checkpoint(path: Path) -> Path:
    return save_weights(build_model("mlp", (1, 8, 8), 10, seed=0), path)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _truncated(path: Path) -> Path:
    data = _checkpoint(path.with_suffix(".full.safetensors")).read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def _foreign(path: Path) -> Path:
    return save_weights(build_model("cnn", (1, 8, 8), 10, seed=0), path)


def _tofu_missing_field(folder: Path) -> Path:
    from unlearnkit.data.tofu_mini import generate_tofu_mini, write_tofu_layout

    folder.mkdir()
    splits = generate_tofu_mini(0, n_people=10, qa_per_person=2)
    splits["forget10_perturbed"] = [{k: v for k, v in row.items() if k != "perturbed_answer"}
                                    for row in splits["forget10_perturbed"]]
    write_tofu_layout(splits, folder)
    return folder


def _corrupt_image_folder(root: Path) -> Path:
    from test_data_vision import write_imagefolder

    write_imagefolder(root)
    victim = sorted((root / "train").rglob("*.png"))[0]
    victim.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    return victim


def _truncated_arrow(folder: Path) -> Path:
    datasets = pytest.importorskip("datasets")
    rows = {"question": [f"q{i}" for i in range(40)], "answer": [f"a{i}" for i in range(40)]}
    datasets.Dataset.from_dict(rows).save_to_disk(str(folder / "full"))
    arrow = sorted((folder / "full").rglob("*.arrow"))[0]
    arrow.write_bytes(arrow.read_bytes()[:200])
    return arrow


# (name, build(tmp) -> (args, culprit text in the message)); every case runs `unlearnkit ARGS --out OUT`
CASES = {
    "empty forget set": lambda t: (["bench", "--forget", f"indices:{_write(t / 'ids.txt', '')}"], "ids.txt"),
    "duplicate forget ids": lambda t: (["bench", "--forget", "indices:" + str(_write(t / "ids.txt", "3\n3\n"))],
                                       "ids.txt"),
    "out-of-range forget id": lambda t: (["bench", "--forget", f"indices:{_write(t / 'ids.txt', '999999')}"],
                                         "999999"),
    "every example forgotten": lambda t: (["bench", "--forget", "class:0,1,2,3,4,5,6,7,8,9"], "class:0,1"),
    "unknown class": lambda t: (["bench", "--forget", "class:42"], "42"),
    "duplicate --set key": lambda t: (["bench", "--set", "ga.lr=0.1", "--set", "ga.lr=0.2"], "ga.lr"),
    "wrong --set type": lambda t: (["bench", "--set", "ga.epochs=some"], "ga.epochs"),
    "unknown --set key": lambda t: (["bench", "--set", "ga.colour=red"], "colour"),
    "unknown device": lambda t: (["bench", "--device", "tpu"], "tpu"),
    "truncated safetensors": lambda t: (["forget", "--checkpoint", str(_truncated(t / "cut.safetensors")),
                                         "--model", "mlp", "--forget", "class:1", "--method", "ga"], "cut.safetensors"),
    "foreign safetensors": lambda t: (["forget", "--checkpoint", str(_foreign(t / "cnn.safetensors")),
                                       "--model", "mlp", "--forget", "class:1", "--method", "ga"], "cnn.safetensors"),
    "missing checkpoint": lambda t: (["forget", "--checkpoint", str(t / "nope.safetensors"), "--model", "mlp",
                                      "--forget", "class:1", "--method", "ga"], "nope.safetensors"),
    "corrupt image": lambda t: (["bench", "--data", f"imagefolder:{t / 'imgs'}", "--model", "mlp"],
                                _corrupt_image_folder(t / "imgs").name),
    "TOFU file missing a field": lambda t: (["bench", "--data", f"tofu:{_tofu_missing_field(t / 'tofu')}"],
                                            "forget10_perturbed"),
    "truncated arrow shard": lambda t: (["bench", "--data", f"tofu:{t / 'hf'}"],
                                        _truncated_arrow(t / "hf").name),
    "unknown data option": lambda t: (["bench", "--data-option", "colour=red"], "colour"),
    "mistyped data option": lambda t: (["bench", "--data", "imagefolder:x", "--data-option", "workers=lots"],
                                       "workers"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_fails_in_one_line_and_changes_nothing(name, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "cache"))
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    args, culprit = CASES[name](inputs)
    before = _hashes(tmp_path)
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    message = _one_line_error(capsys)
    assert culprit in message, message
    after = _hashes(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing that existed changed
    assert not any(Path(k).is_relative_to(tmp_path / "out") and Path(k).name == "results.jsonl" for k in after)


def test_an_existing_output_folder_is_never_replaced(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "cache"))
    ckpt = _checkpoint(tmp_path / "m.safetensors")
    out = tmp_path / "out"
    out.mkdir()
    (out / "record.json").write_text('{"mine": true}')
    before = _hashes(tmp_path)
    assert main(["forget", "--checkpoint", str(ckpt), "--model", "mlp", "--forget", "class:1", "--method", "ga",
                 "--out", str(out)]) == 2
    assert "record.json" in _one_line_error(capsys)
    assert _hashes(tmp_path) == before


def test_a_nan_loss_is_a_diverged_cell_and_the_run_goes_on(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "cache"))
    code = main(["bench", "--model", "mlp", "--methods", "ga,finetune", "--forget", "class:1", "--seeds", "1",
                 "--audits", "accuracy", "--set", "train.epochs=2", "--set", "retrain.epochs=1",
                 "--set", "ga.lr=1e30", "--set", "finetune.epochs=1", "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    records = {r["method"]: r for r in map(json.loads, (tmp_path / "out" / "results.jsonl").read_text().splitlines())}
    assert records["ga"]["status"] == "diverged" and "non-finite" in records["ga"]["error"] or \
        "loss became" in records["ga"]["error"]
    assert records["finetune"]["status"] == "ok"


@pytest.mark.skipif(shutil.which("mount") is None or os.geteuid() != 0, reason="needs root to mount a tmpfs")
def test_a_full_disk_fails_cleanly(tmp_path, capsys, monkeypatch):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], capture_output=True).returncode:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "cache"))
        out = small / "out"
        code = main(["forget", "--forget", "class:1", "--method", "ga", "--set", "epochs=1", "--audits", "accuracy",
                     "--out", str(out)])
        assert code != 0
        err = capsys.readouterr().err
        assert "No space left" in err or "space" in err.lower()
        assert not (out / "record.json").exists()  # no half-written record under the final name
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)


def test_a_misconfigured_cell_fails_the_bench_but_a_declared_inapplicability_does_not(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "cache"))
    common = ["bench", "--model", "mlp", "--seeds", "1", "--audits", "accuracy",
              "--set", "train.epochs=2", "--set", "retrain.epochs=1"]
    out = tmp_path / "out"
    # scrub runs its own loop: grad_accum=2 is a ConfigError when the cell runs → the cell fails
    code = main([*common, "--forget", "class:1", "--methods", "ga,scrub", "--set", "ga.epochs=1", "--set", "scrub.grad_accum=2",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "1 cell(s) failed" in err and "scrub" in err and "grad_accum=1" in err
    stored = [json.loads(line)["method"] for line in (out / "results.jsonl").read_text().splitlines()]
    assert stored == ["retrain", "ga"]  # the failed cell is not stored: a rerun retries it
    # entangle asked for the split's adjacent examples on a split that has none: not applicable, exit 0
    code = main([*common, "--forget", "random:0.1", "--methods", "entangle", "--set", "entangle.adjacency=split",
                 "--out", str(tmp_path / "b")])
    assert code == 0, capsys.readouterr().err
    records = [json.loads(line) for line in (tmp_path / "b" / "results.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok", "not applicable"]
