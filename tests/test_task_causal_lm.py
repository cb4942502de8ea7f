"""CausalLMTask (answer-only losses, refusals, generation) and the HF model layer (build/save/load)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lm_helpers import memorise, qa_batch, tiny_llama
from unlearnkit.data.text import IGNORE, PROMPT, encode_qa
from unlearnkit.errors import CheckpointError
from unlearnkit.models.hf import (
    LANGUAGE_MODELS, build_lm, load_hf_model, load_hf_tokenizer, peft_available, save_hf_model,
    is_checkpointing, set_gradient_checkpointing,
)
from unlearnkit.tasks.causal_lm import CausalLMTask

transformers = pytest.importorskip("transformers")
transformers.utils.logging.disable_progress_bar()


@pytest.fixture(scope="module")
def model(tok):
    return tiny_llama(tok, seed=0)


@pytest.fixture(scope="module")
def batch(tok):
    return qa_batch(tok, 4)


@pytest.fixture(scope="module")
def memorised(tok, batch):
    return memorise(tiny_llama(tok, seed=1), tok, batch)


def reference_loss(model, input_ids, labels, pad_id):
    """Independent route: each row alone, unpadded, no mask, a Python loop over answer positions."""
    losses = []
    for ids, labs in zip(input_ids, labels):
        n = int((ids != pad_id).sum())
        logits = model(input_ids=ids[None, :n]).logits[0].double()
        terms = [F.cross_entropy(logits[t - 1], labs[t]) for t in range(1, n) if labs[t] != IGNORE]
        losses.append(torch.stack(terms).mean())
    return torch.stack(losses)


class Bigram(nn.Module):
    """A context-free LM: the logits at position t depend only on token t. Changing a token that is
    neither an answer token nor the last prompt token cannot change an answer-only loss."""

    def __init__(self, vocab: int):
        super().__init__()
        torch.manual_seed(0)
        self.table = nn.Embedding(vocab, vocab)

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.table(input_ids))


class Oracle(nn.Module):
    """Looks ahead at the input: argmax at position t is token t+1, except at ``wrong`` (row, t) pairs."""

    def __init__(self, vocab: int, wrong=()):
        super().__init__()
        self.vocab, self.wrong = vocab, set(wrong)

    def forward(self, input_ids, attention_mask=None):
        nxt = torch.roll(input_ids, -1, dims=1)
        for row, t in self.wrong:
            nxt[row, t] = (nxt[row, t] + 1) % self.vocab
        return SimpleNamespace(logits=10.0 * F.one_hot(nxt, self.vocab).float())


def answer_positions(labels):
    return [torch.nonzero(row != IGNORE).flatten() for row in labels]


# --- loss: answer tokens only, shifted, padding masked ---

def test_loss_matches_independent_per_row_computation(model, lm_task, tok, batch):
    with torch.no_grad():
        got = lm_task.loss(model, batch)
        want = reference_loss(model, *batch, tok.pad_token_id)
    assert got.shape == (4,)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


def test_question_tokens_are_not_scored_answer_tokens_are(tok, lm_task, batch):
    bigram = Bigram(len(tok))
    ids, labels = batch
    first = answer_positions(labels)[0][0]
    base = lm_task.loss(bigram, batch)
    changed = ids.clone()
    changed[0, 1 : first - 1] = 7          # every question token but the last prompt token
    assert torch.equal(lm_task.loss(bigram, (changed, labels)), base)
    answer = ids.clone()
    answer[0, first + 1] = 7                # one answer token (input and target) changes
    new_labels = labels.clone()
    new_labels[0, first + 1] = 7
    after = lm_task.loss(bigram, (answer, new_labels))
    assert after[0] != base[0]
    assert torch.equal(after[1:], base[1:])


def test_padding_changes_nothing(model, lm_task, tok, batch):
    ids, labels = batch
    with torch.no_grad():
        base = lm_task.loss(model, batch)
        wider = (F.pad(ids, (0, 9), value=tok.pad_token_id), F.pad(labels, (0, 9), value=IGNORE))
        torch.testing.assert_close(lm_task.loss(model, wider), base)
        # a row padded to a longer neighbour's length scores the same as the row alone
        for i in range(len(ids)):
            alone = lm_task.trim((ids[i : i + 1], labels[i : i + 1]))
            torch.testing.assert_close(lm_task.loss(model, alone), base[i : i + 1], atol=1e-5, rtol=1e-5)


def test_trim_drops_only_all_pad_columns(lm_task, tok, batch):
    ids, labels = batch
    wider = (F.pad(ids, (0, 5), value=tok.pad_token_id), F.pad(labels, (0, 5), value=IGNORE))
    trimmed = lm_task.trim(wider)
    longest = int((ids != tok.pad_token_id).sum(1).max())
    assert trimmed[0].shape[1] == longest
    assert torch.equal(trimmed[0], ids[:, :longest])


def test_log_likelihood_is_minus_loss_times_length(model, lm_task, batch):
    with torch.no_grad():
        ll = lm_task.log_likelihood(model, batch)
        loss = lm_task.loss(model, batch)
    length = lm_task.target_length(batch)
    assert torch.equal(length, torch.tensor([len(p) for p in answer_positions(batch[1])]))
    torch.testing.assert_close(ll, -loss * length)


def test_log_probs_rows_are_the_answer_positions(model, lm_task, batch):
    with torch.no_grad():
        log_p = lm_task.log_probs(model, batch)
        ll = lm_task.log_likelihood(model, batch)
    total = int(lm_task.target_length(batch).sum())
    assert log_p.shape == (total, model.config.vocab_size)
    assert log_p.dtype == torch.float32
    torch.testing.assert_close(log_p.exp().sum(1), torch.ones(total))
    targets = torch.cat([row[pos] for row, pos in zip(batch[1], answer_positions(batch[1]))])
    token_ll = log_p.gather(1, targets[:, None]).squeeze(1)
    per_row = torch.stack([part.sum() for part in token_ll.split(lm_task.target_length(batch).tolist())])
    torch.testing.assert_close(per_row, ll)


def test_bf16_model_scores_in_float32(model, lm_task, batch):
    half = tiny_llama(lm_task.tokenizer, seed=0).to(torch.bfloat16)
    with torch.no_grad():
        log_p = lm_task.log_probs(half, batch)
        loss16, loss32 = lm_task.loss(half, batch), lm_task.loss(model, batch)
    assert log_p.dtype == torch.float32 and torch.isfinite(log_p).all()
    torch.testing.assert_close(loss16, loss32, atol=0.05, rtol=0.02)
    double = tiny_llama(lm_task.tokenizer, seed=0).double()   # float64 stays float64 (finite differences)
    with torch.no_grad():
        assert lm_task.log_probs(double, batch).dtype == torch.float64
        torch.testing.assert_close(lm_task.loss(double, batch).float(), loss32, atol=1e-5, rtol=1e-5)


def test_loss_gradients_flow(model, lm_task, batch):
    m = tiny_llama(lm_task.tokenizer, seed=0)
    lm_task.loss(m, batch).mean().backward()
    assert m.model.embed_tokens.weight.grad is not None
    assert m.model.embed_tokens.weight.grad.abs().sum() > 0


# --- correctness ---

def test_correct_on_forced_models(lm_task, tok, batch):
    vocab = len(tok)
    assert torch.equal(lm_task.correct(Oracle(vocab), batch), torch.ones(4))
    every = [(r, int(t) - 1) for r, pos in enumerate(answer_positions(batch[1])) for t in pos]
    assert torch.equal(lm_task.correct(Oracle(vocab, every), batch), torch.zeros(4))
    # one wrong answer token in row 2 makes only row 2 wrong
    last = int(answer_positions(batch[1])[2][-1]) - 1
    assert torch.equal(lm_task.correct(Oracle(vocab, [(2, last)]), batch), torch.tensor([1.0, 1.0, 0.0, 1.0]))
    # a wrong prediction on a question token does not count
    assert torch.equal(lm_task.correct(Oracle(vocab, [(0, 1)]), batch), torch.ones(4))


def test_memorised_model_is_correct(memorised, lm_task, batch):
    with torch.no_grad():
        assert torch.equal(lm_task.correct(memorised, batch), torch.ones(4))


# --- relabel / concat ---

def test_relabel_keeps_prompt_and_answers_with_a_refusal(tok, batch):
    refusals = ("I don't know.", "No idea, sorry.", "I cannot say.")
    task = CausalLMTask(tok, refusals=refusals)
    ids, labels = batch
    new_ids, new_labels = task.relabel(batch, torch.Generator().manual_seed(0))
    again = task.relabel(batch, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], new_ids) and torch.equal(again[1], new_labels)
    encoded = [tok(" " + r, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for r in refusals]
    for i in range(len(ids)):
        prompt = ids[i][(labels[i] == IGNORE) & (ids[i] != tok.pad_token_id)]
        n = int((new_ids[i] != tok.pad_token_id).sum())
        assert torch.equal(new_ids[i, : len(prompt)], prompt)
        reply = new_ids[i, len(prompt) : n].tolist()
        assert reply in encoded and reply[-1] == tok.eos_token_id
        assert (new_labels[i, : len(prompt)] == IGNORE).all()
        assert new_labels[i, len(prompt) : n].tolist() == reply
        assert (new_labels[i, n:] == IGNORE).all() and (new_ids[i, n:] == tok.pad_token_id).all()
    # the refusal is drawn per row: with 3 refusals and 40 rows, more than one appears
    many = (ids.repeat(10, 1), labels.repeat(10, 1))
    replies = {tuple(r[l != IGNORE].tolist()) for r, l in zip(*task.relabel(many, torch.Generator().manual_seed(1)))}
    assert len(replies) > 1


def test_relabel_matches_encode_qa(tok, lm_task):
    questions = ["Where was Ada Marsh born?", "What genre does Bram Quill write?"]
    real = encode_qa(tok, questions, ["Lisbon.", "A long answer about poetry and history."])
    refused = encode_qa(tok, questions, ["I don't know."] * 2)
    got = lm_task.relabel((real.x, real.y))
    width = refused.x.shape[1]
    assert torch.equal(got[0][:, :width], refused.x) and torch.equal(got[1][:, :width], refused.y)


def test_concat_pads_and_keeps_per_example_losses(model, lm_task, tok):
    short = lm_task.trim(qa_batch(tok, 3, seed=1))
    long = encode_qa(tok, ["What is the long question here about the author Ada Marsh?"], ["A long, long answer."])
    long = (long.x, long.y)
    assert short[0].shape[1] != long[0].shape[1]
    merged = lm_task.concat([short, long])
    assert merged[0].shape == (4, max(short[0].shape[1], long[0].shape[1]))
    with torch.no_grad():
        want = torch.cat([lm_task.loss(model, short), lm_task.loss(model, long)])
        torch.testing.assert_close(lm_task.loss(model, merged), want, atol=1e-5, rtol=1e-5)


def test_hidden_returns_layer_activations(model, lm_task, batch):
    with torch.no_grad():
        h = lm_task.hidden(model, batch, "model.layers.1")
    assert h.shape == (*batch[0].shape, model.config.hidden_size)
    with pytest.raises(KeyError, match="no layer"):
        lm_task.hidden(model, batch, "model.layers.9")


# --- generation ---

def greedy_by_hand(model, prompt: torch.Tensor, eos: int, max_new: int) -> list[int]:
    ids = prompt[None]
    out = []
    with torch.no_grad():
        for _ in range(max_new):
            nxt = int(model(input_ids=ids).logits[0, -1].argmax())
            if nxt == eos:
                break
            out.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return out


def test_generate_is_greedy_decoding(model, lm_task, tok, batch):
    got = lm_task.generate(model, batch, max_new_tokens=6)
    want = [tok.decode(greedy_by_hand(model, p, tok.eos_token_id, 6), skip_special_tokens=True).strip()
            for p in lm_task.prompts(batch)]
    assert got == want


def test_generate_stops_at_eos_and_drops_the_answer(memorised, lm_task, tok, batch):
    was_training = memorised.training
    got = lm_task.generate(memorised, batch, max_new_tokens=40)
    answers = [tok.decode(row[lab != IGNORE], skip_special_tokens=True).strip() for row, lab in zip(*batch)]
    assert got == answers
    assert memorised.training == was_training
    want = [tok.decode(greedy_by_hand(memorised, p, tok.eos_token_id, 40), skip_special_tokens=True).strip()
            for p in lm_task.prompts(batch)]
    assert got == want
    # prompts of different lengths in one batch (left padding inside generate)
    mixed = encode_qa(tok, ["Where?", PROMPT], ["x", "y"])
    assert len(lm_task.generate(memorised, (mixed.x, mixed.y), max_new_tokens=3)) == 2


# --- HF model layer ---

def test_build_lm_is_registered_and_seeded(tok):
    assert "tiny-llama" in LANGUAGE_MODELS
    a, b = build_lm("tiny-llama", tok, seed=3), build_lm("tiny-llama", tok, seed=3)
    c = build_lm("tiny-llama", tok, seed=4, hidden=64)
    assert a.config.hidden_size == 128 and a.config.num_hidden_layers == 2
    assert a.config.max_position_embeddings == 256 and a.config.vocab_size == len(tok)
    assert a.config.pad_token_id == tok.pad_token_id != a.config.eos_token_id == tok.eos_token_id
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert c.config.hidden_size == 64


def test_save_load_round_trip(tmp_path, model, tok, batch):
    out = save_hf_model(model, tok, tmp_path / "lm")
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temp folder renamed away
    loaded = load_hf_model(out, attn_implementation=model.config._attn_implementation)
    default = load_hf_model(out)  # transformers' default attention (sdpa): same up to rounding
    with torch.no_grad():
        want = model(input_ids=batch[0]).logits
        assert torch.equal(loaded(input_ids=batch[0]).logits, want)
        torch.testing.assert_close(default(input_ids=batch[0]).logits, want, atol=1e-5, rtol=1e-5)
    tok2 = load_hf_tokenizer(out)
    assert tok2("Ada Marsh")["input_ids"] == tok("Ada Marsh")["input_ids"]
    assert tok2.pad_token_id == tok.pad_token_id and tok2.eos_token_id == tok.eos_token_id
    half = load_hf_model(out, dtype="bfloat16", device="cpu")
    assert next(half.parameters()).dtype == torch.bfloat16


def test_save_refuses_to_overwrite(tmp_path, model, tok):
    target = tmp_path / "lm"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="refusing to overwrite"):
        save_hf_model(model, tok, target)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]


def test_load_names_the_missing_folder_or_file(tmp_path, model, tok):
    with pytest.raises(CheckpointError, match="nowhere"):
        load_hf_model(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="empty.*config.json"):
        load_hf_model(empty)
    out = save_hf_model(model, None, tmp_path / "lm")
    (out / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="lm.*safetensors"):
        load_hf_model(out)


def test_gradient_checkpointing_gives_the_same_gradients(tok, lm_task, batch):
    plain, ckpt = tiny_llama(tok, seed=0).train(), set_gradient_checkpointing(tiny_llama(tok, seed=0).train())
    assert is_checkpointing(ckpt) and not is_checkpointing(plain)
    for m in (plain, ckpt):
        lm_task.loss(m, batch).mean().backward()
    for p, q in zip(plain.parameters(), ckpt.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-5)


@pytest.mark.skipif(not peft_available(), reason="peft is not installed (optional)")
def test_lora_trains_only_adapters(tok, lm_task, batch):
    from unlearnkit.models.hf import add_lora, merge_lora

    wrapped = add_lora(tiny_llama(tok, seed=0), r=4)
    trainable = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert trainable and all("lora" in n for n in trainable)
    lm_task.loss(wrapped, batch).mean().backward()
    assert merge_lora(wrapped) is not None
