"""Exact memorisation and extraction strength (OpenUnlearning's teacher-forced definitions) against a
hand computation on a model whose logits are fixed, then inside the TOFU audit."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import unlearnkit.audits.tofu as tofu
from unlearnkit.audits import AuditContext, audit
from unlearnkit.data.dataset import TensorData

PAD, BOS, EOS, WRONG = 0, 1, 2, 99
IGNORE = -100


ROW_ID = 20   # the second token of row r is ROW_ID + r: how the fixed model finds the row's logits


class FixedLogits(nn.Module):
    """Returns chosen logits ``[T, V]`` per row whatever else the input holds (the row is recognised by
    its second token, ``ROW_ID + r``), cut to the input length."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.register_buffer("table", logits)
        self.anchor = nn.Parameter(torch.zeros(()))   # a parameter, so the model has a device

    def forward(self, input_ids, attention_mask=None, **kwargs):
        rows = input_ids[:, 1] - ROW_ID
        return SimpleNamespace(logits=self.table[rows, : input_ids.shape[1]] + 0.0 * self.anchor)


def planted(predictions: list[list[int]], vocab: int = 128):
    """Rows ``prompt (3 tokens) + answer (5 tokens) + EOS`` and logits whose argmax at the position before
    answer token j is ``predictions[row][j]`` (j = 0..4), and WRONG before the EOS (which must not count)."""
    answer = [10, 11, 12, 13, 14]
    ids = torch.tensor([[BOS, ROW_ID + r, 6] + answer + [EOS] for r in range(len(predictions))])
    labels = torch.tensor([[IGNORE] * 3 + answer + [EOS]] * len(predictions))
    logits = torch.zeros(len(predictions), ids.shape[1], vocab)
    for r, preds in enumerate(predictions):
        for j, p in enumerate(preds):
            logits[r, 2 + j, p] = 5.0          # logits at t score the label at t + 1: answer token j sits at 3 + j
        logits[r, 7, WRONG] = 5.0              # the EOS is mispredicted in every row
    return (ids, labels), FixedLogits(logits)


CASES = [  # predictions for the 5 answer tokens, hand EM, hand ES (n = 5; k = first index of the correct suffix)
    ([10, 11, 12, 13, 14], 1.0, 1.0),             # all right: k = 0
    ([10, WRONG, 12, 13, 14], 4 / 5, 1 - 2 / 5),  # last miss at 1: k = 2
    ([WRONG, 11, 12, 13, 14], 4 / 5, 1 - 1 / 5),  # k = 1
    ([10, 11, 12, 13, WRONG], 4 / 5, 0.0),        # the last token missed: k = n (OpenUnlearning's loop: 1/n)
    ([WRONG] * 5, 0.0, 0.0),
    ([10, WRONG, 12, WRONG, 14], 3 / 5, 1 - 4 / 5),
]


@pytest.fixture(scope="module")
def task():
    pytest.importorskip("transformers")
    from lm_helpers import tiny_tokenizer
    from unlearnkit.tasks.causal_lm import CausalLMTask

    tok = tiny_tokenizer()
    assert (tok.pad_token_id, tok.eos_token_id) == (PAD, EOS)
    return CausalLMTask(tok)


def test_hits_drop_the_final_eos(task):
    batch, model = planted([c[0] for c in CASES])
    hits, lengths = tofu.teacher_forced_hits(task, model, batch)
    assert lengths.tolist() == [5] * len(CASES)
    assert hits[1, :5].tolist() == [True, False, True, True, True]


def test_em_and_es_match_the_hand_computation(task):
    batch, model = planted([c[0] for c in CASES])
    with torch.no_grad():
        got = tofu.memorisation_batch(task, model, batch)
    assert got[:, 0].tolist() == pytest.approx([c[1] for c in CASES])
    assert got[:, 1].tolist() == pytest.approx([c[2] for c in CASES])
    # the dataset means (as the audit reports them)
    ctx = AuditContext(batch_size=4)                  # two batches: the order of rows is kept
    m = tofu.memorisation_measures(model, task, TensorData(*batch), ctx, "forget")
    assert m == pytest.approx({"forget_em": np.mean([c[1] for c in CASES]),
                               "forget_es": np.mean([c[2] for c in CASES])})


def test_pure_functions_on_ragged_rows():
    hits = torch.tensor([[True, True, False, True], [False, True, True, False], [True, False, False, False]])
    lengths = torch.tensor([4, 3, 0])                 # row 1: only its first 3 positions count; row 2: empty
    em = tofu.exact_memorization(hits, lengths)
    es = tofu.extraction_strength(hits, lengths)
    assert em[:2].tolist() == pytest.approx([3 / 4, 2 / 3]) and torch.isnan(em[2])
    assert es[:2].tolist() == pytest.approx([1 - 3 / 4, 1 - 1 / 3]) and torch.isnan(es[2])


def test_tofu_audit_reports_em_and_es(task):
    from lm_helpers import tiny_llama
    from test_audits_llm import _text_source
    from unlearnkit.tasks.causal_lm import CausalLMTask

    task = CausalLMTask(task.tokenizer, max_new_tokens=4)   # short generations: ROUGE is not under test here
    split = _text_source(task.tokenizer)
    model = tiny_llama(task.tokenizer, seed=1)
    m = audit(model, task, split, ["tofu"], ctx=AuditContext(batch_size=16))
    for key in ("forget_em", "forget_es", "retain_em", "retain_es"):
        assert 0.0 <= m[key] <= 1.0
    forget = split.source.evals["forget25"].correct
    with torch.no_grad():
        per_item = tofu.memorisation_batch(task, model, (forget.x, forget.y)).double()
    assert m["forget_em"] == pytest.approx(float(per_item[:, 0].mean()))
    assert m["forget_es"] == pytest.approx(float(per_item[:, 1].mean()))
