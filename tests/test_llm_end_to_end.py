"""A user's pretrained language model end to end, on checkpoints saved the way real ones are (sharded
bf16 safetensors, tied embeddings, a chat template, no pad token) and a TOFU-layout folder:
``bench --hf-model M --retain-model R`` and ``forget --lora 8``."""
import json

import pytest
import torch

pytest.importorskip("transformers").utils.logging.disable_progress_bar()
peft = pytest.importorskip("peft")

from lm_helpers import chat_tokenizer, save_real_checkpoint  # noqa: E402
from unlearnkit.checkpoints import sha256_state  # noqa: E402
from unlearnkit.cli import main  # noqa: E402
from unlearnkit.data.tofu_mini import generate_tofu_mini, write_tofu_layout  # noqa: E402
from unlearnkit.models.hf import load_hf_model  # noqa: E402


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """(target folder, retain folder, TOFU folder)."""
    root = tmp_path_factory.mktemp("real")
    tok = chat_tokenizer()
    save_real_checkpoint(root / "target", tok, seed=0)
    save_real_checkpoint(root / "retain", tok, seed=1)
    (root / "tofu").mkdir()
    write_tofu_layout(generate_tofu_mini(0, n_people=10, qa_per_person=4), root / "tofu")
    return root / "target", root / "retain", root / "tofu"


def _records(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_bench_on_a_real_layout_checkpoint_against_its_retain_model(real, tmp_path, capsys, monkeypatch):
    from unlearnkit.methods.reference import Retrain

    target, retain, tofu = real
    monkeypatch.setattr(Retrain, "run", lambda *a, **k: pytest.fail("a pretrained model is never retrained"))
    out = tmp_path / "bench"
    code = main(["bench", "--data", f"tofu:{tofu}", "--hf-model", str(target), "--retain-model", str(retain),
                 "--forget", "forget10", "--methods", "npo", "--audits", "tofu", "--set", "npo.epochs=1",
                 "--workers", "1", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    retrain, npo = _records(out)
    assert retrain["method"] == "retrain" and retrain["config"] == {"retain_model": str(retain)}
    assert retrain["metrics"]["forget_quality"] == 1.0
    assert 0.0 <= npo["metrics"]["forget_quality"] <= 1.0 and "privleak" in npo["metrics"]
    assert npo["reference"]["sha256"] == sha256_state(load_hf_model(retain))
    # the pretrained recipe, its effective batch 8 × 4 through gradient accumulation
    assert (npo["config"]["lr"], npo["config"]["batch_size"], npo["config"]["grad_accum"]) == (1e-5, 8, 4)


def test_forget_through_lora_merged_or_adapter_only(real, tmp_path, capsys):
    target, _, tofu = real
    common = ["forget", "--data", f"tofu:{tofu}", "--hf-model", str(target), "--forget", "forget10",
              "--method", "graddiff", "--lora", "8", "--set", "epochs=2", "--set", "lr=0.01",
              "--audits", "accuracy"]
    assert main([*common, "--out", str(tmp_path / "merged")]) == 0, capsys.readouterr().err
    assert main([*common, "--lora-save", "adapter", "--out", str(tmp_path / "adapter")]) == 0, \
        capsys.readouterr().err
    base = load_hf_model(target)
    merged = load_hf_model(tmp_path / "merged" / "model")
    # a plain model again (no adapter weights), changed by the unlearning
    assert set(merged.state_dict()) == set(base.state_dict())
    assert any(not torch.equal(a, b) for a, b in zip(merged.state_dict().values(), base.state_dict().values()))
    record = json.loads((tmp_path / "merged" / "record.json").read_text())
    assert record["output_model"]["lora"]["r"] == 8
    # the adapter alone, applied to the untouched base, gives the same model as the merged save
    adapter = tmp_path / "adapter" / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    rebuilt = peft.PeftModel.from_pretrained(load_hf_model(target), str(adapter)).merge_and_unload()
    for key, value in merged.state_dict().items():
        torch.testing.assert_close(rebuilt.state_dict()[key], value, msg=key)
