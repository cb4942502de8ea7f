"""The cached original is keyed on the data's contents: changed files behind a path retrain it."""
import json
import logging

import numpy as np
from PIL import Image

from unlearnkit import load_data
from unlearnkit.cli import main


def _rows(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_changed_pixels_retrain_the_original_and_change_the_fingerprint(tmp_path, monkeypatch, caplog,
                                                                        write_images):
    cache = tmp_path / "cache"
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(cache))
    caplog.set_level(logging.INFO, logger="unlearnkit.bench.originals")
    data = write_images(tmp_path / "pets")
    command = ["bench", "--data", f"imagefolder:{data}", "--model", "mlp", "--methods", "ga", "--quick",
               "--audits", "accuracy", "--forget", "class:1", "--set", "train.epochs=2", "--set", "retrain.epochs=2"]

    assert main(command + ["--out", str(tmp_path / "first")]) == 0
    first = _rows(tmp_path / "first")
    assert sum("original model: training" in m for m in caplog.messages) == 1
    assert len(list((cache / "originals").iterdir())) == 1

    assert main(command + ["--out", str(tmp_path / "again")]) == 0  # same files: the cached original
    assert any("original model: cached" in m for m in caplog.messages)
    assert sum("original model: training" in m for m in caplog.messages) == 1

    image = data / "train" / "ant" / "0.png"
    pixels = np.asarray(Image.open(image)).copy()
    pixels[:, :, 0] = 255 - pixels[:, :, 0]  # new pixels; same name, same 8×8 size
    Image.fromarray(pixels).save(image)
    caplog.clear()
    assert main(command + ["--out", str(tmp_path / "changed")]) == 0
    changed = _rows(tmp_path / "changed")
    assert sum("original model: training" in m for m in caplog.messages) == 1  # retrained, not reused
    assert not any("original model: cached" in m for m in caplog.messages)
    assert len(list((cache / "originals").iterdir())) == 2

    # every results row carries the fingerprint of the data it was run on
    old, new = {r["data_fingerprint"] for r in first}, {r["data_fingerprint"] for r in changed}
    assert len(old) == len(new) == 1 and old != new
    assert new == {load_data(f"imagefolder:{data}").fingerprint()}


def test_fingerprint_is_of_contents_not_of_the_path(tmp_path, write_images):
    import shutil

    data = write_images(tmp_path / "a")
    shutil.copytree(data, tmp_path / "b")
    one, two = load_data(f"imagefolder:{data}", cache=False), load_data(f"imagefolder:{tmp_path / 'b'}", cache=False)
    assert one.fingerprint() == two.fingerprint() and len(one.fingerprint()) == 64
    assert one.fingerprint() is one.fingerprint()  # computed once, kept on the source
    relabelled = load_data("digits")
    assert relabelled.fingerprint() != relabelled.coarse().fingerprint()  # labels count
