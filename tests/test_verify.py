"""`unlearnkit verify RECORD`: a deletion record anyone can check (verify.py, data/split.py)."""
import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from unlearnkit import build_model, load_data, make_split
from unlearnkit.checkpoints import save_weights
from unlearnkit.cli import main
from unlearnkit.data.split import canonical_ids, forget_ids_sha256
from unlearnkit.deletion import sha256_ids


@pytest.fixture
def forgotten(tmp_path, monkeypatch, capsys, write_images):
    """A forget run on an image folder from a checkpoint: (output folder, data folder)."""
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "cache"))
    data = write_images(tmp_path / "pets")
    ckpt = save_weights(build_model("mlp", (3, 8, 8), 3, seed=1), tmp_path / "mine.safetensors")
    out = tmp_path / "out"
    code = main(["forget", "--data", f"imagefolder:{data}", "--checkpoint", str(ckpt), "--model", "mlp",
                 "--forget", "class:1", "--method", "ga", "--set", "epochs=1", "--audits", "accuracy",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    return out, data


def _verify(path, capsys):
    code = main(["verify", str(path)])
    return code, capsys.readouterr().out


def test_a_forget_record_verifies_and_says_how(forgotten, capsys):
    out, data = forgotten
    code, printed = _verify(out / "record.json", capsys)
    assert code == 0, printed
    for name in ("forget_ids_sha256", "forget_examples", "data_fingerprint", "input_model", "output_model"):
        assert f"ok       {name}:" in printed
    assert "verified: 5 ok, 0 failed" in printed
    record = json.loads((out / "record.json").read_text())
    how = record["request"]["how_to_verify"]
    assert how["command"] == f"unlearnkit verify {out / 'record.json'}"
    assert len(how["python"]) == 3
    namespace: dict = {}
    exec(how["python"][0], namespace)  # the record's own three lines recompute its hashes
    exec(how["python"][1], namespace)
    split = namespace["split"]
    assert namespace["forget_ids_sha256"](split.forget_idx) == record["request"]["forget_ids_sha256"]
    assert split.source.fingerprint() == record["request"]["data_fingerprint"]
    assert _verify(out, capsys)[0] == 0  # the folder works too


def test_a_tampered_output_model_fails_naming_the_check(forgotten, capsys):
    out, _ = forgotten
    model = out / "model.safetensors"
    blob = bytearray(model.read_bytes())
    blob[-1] ^= 0xFF  # one weight's last byte
    model.write_bytes(bytes(blob))
    code, printed = _verify(out / "record.json", capsys)
    assert code == 1
    assert "MISMATCH output_model:" in printed and "ok       input_model:" in printed
    assert "NOT verified" in printed and "(output_model)" in printed


def test_a_tampered_id_hash_fails_naming_the_check(forgotten, capsys):
    out, _ = forgotten
    path = out / "record.json"
    record = json.loads(path.read_text())
    record["request"]["forget_ids_sha256"] = hashlib.sha256(b"[1,2,3]").hexdigest()
    path.write_text(json.dumps(record))
    code, printed = _verify(path, capsys)
    assert code == 1 and "MISMATCH forget_ids_sha256:" in printed
    assert "ok       output_model:" in printed  # the other checks still run and pass


def test_changed_data_fails_the_fingerprint(forgotten, capsys):
    out, data = forgotten
    image = data / "train" / "ant" / "0.png"
    pixels = np.asarray(Image.open(image)).copy()
    pixels[0, 0] = 255 - pixels[0, 0]  # one pixel; same name, same size
    Image.fromarray(pixels).save(image)
    code, printed = _verify(out / "record.json", capsys)
    assert code == 1 and "MISMATCH data_fingerprint:" in printed
    assert "ok       forget_ids_sha256:" in printed  # the same rows are forgotten; their contents changed


def test_missing_files_are_not_verified(forgotten, capsys, tmp_path):
    out, data = forgotten
    (out / "model.safetensors").unlink()
    (tmp_path / "mine.safetensors").unlink()
    code, printed = _verify(out / "record.json", capsys)
    assert code == 1 and "MISSING  output_model:" in printed and "MISSING  input_model:" in printed
    assert main(["verify", str(tmp_path / "nowhere")]) == 2
    assert "no deletion record" in capsys.readouterr().err


def test_the_two_former_hash_forms_now_agree():
    split = make_split(load_data("digits"), "class:2")
    ids = split.forget_idx.tolist()
    by_hand = hashlib.sha256(json.dumps(sorted(ids), separators=(",", ":")).encode("utf-8")).hexdigest()
    assert split.forget_ids_sha256() == sha256_ids(split.forget_idx) == forget_ids_sha256(ids) == by_hand
    assert canonical_ids([17, 3, 3]) == "[3,17]" and forget_ids_sha256([17, 3]) == forget_ids_sha256([3, 17])


def test_a_language_model_record_verifies(tmp_path, monkeypatch, capsys):
    """A save_pretrained output: its hash is sha256_state of the folder's weights; the data is encoded
    by the input model's tokenizer."""
    pytest.importorskip("transformers").utils.logging.disable_progress_bar()
    from lm_helpers import tiny_llama, tiny_tokenizer
    from unlearnkit.models.hf import save_hf_model

    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "cache"))
    tok = tiny_tokenizer()
    folder = save_hf_model(tiny_llama(tok, seed=0), tok, tmp_path / "llm")
    out = tmp_path / "out"
    assert main(["forget", "--hf-model", str(folder), "--data", "tofu-mini", "--forget", "forget05",
                 "--method", "ga", "--set", "epochs=1", "--audits", "accuracy", "--out", str(out)]) == 0
    capsys.readouterr()
    code, printed = _verify(out, capsys)
    assert code == 0, printed
    assert "sha256_state of the model in" in printed and "verified: 5 ok" in printed
