"""The text membership-inference suite: the ROC helpers against scikit-learn, the zlib and Min-K%++
scores and the gradient norm against hand computations, the reference attack's convention, and the
family end to end (a memorising model is caught; tofu-mini's tiny model in < 10 s)."""
import time
import zlib

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve

import unlearnkit.audits.text_mia as tm
from test_memorisation import EOS, FixedLogits, planted
from unlearnkit.audits import AuditContext, audit
from unlearnkit.audits.metrics import METRICS

KEYS = {f"mia_{a}_{m}" for a in tm.ATTACKS for m in ("auc", "tpr1", "tpr01")}


# --- ROC helpers vs scikit-learn --------------------------------------------------------------

@pytest.mark.parametrize("seed, ties", [(0, False), (1, True), (2, True)])
def test_auc_and_tpr_match_sklearn(seed, ties):
    rng = np.random.default_rng(seed)
    members = rng.normal(0.7, 1.0, 300)
    others = rng.normal(0.0, 1.0, 1200)
    if ties:                                            # coarse scores: many ties across the two sides
        members, others = np.round(members, 1), np.round(others, 1)
    labels = np.r_[np.ones(len(members)), np.zeros(len(others))]
    scores = np.r_[members, others]
    assert tm.roc_auc(members, others) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    fpr, tpr, _ = roc_curve(labels, scores)
    for level in (0.0, 0.001, 0.01, 0.05, 0.1, 0.5, 1.0):
        assert tm.tpr_at_fpr(members, others, level) == pytest.approx(float(np.interp(level, fpr, tpr)), abs=1e-12)
    got = tm.attack_metrics("loss", members, others)
    assert got == pytest.approx({"mia_loss_auc": roc_auc_score(labels, scores),
                                 "mia_loss_tpr1": 100 * np.interp(0.01, fpr, tpr),
                                 "mia_loss_tpr01": 100 * np.interp(0.001, fpr, tpr)})


def test_roc_extremes():
    assert tm.roc_auc([3.0, 4.0], [1.0, 2.0]) == 1.0
    assert tm.roc_auc([1.0, 2.0], [3.0, 4.0]) == 0.0
    assert tm.roc_auc([1.0, 1.0], [1.0]) == 0.5
    assert tm.tpr_at_fpr([3.0, 4.0], [1.0, 2.0], 0.0) == 1.0        # separable: all members before any FP
    with pytest.raises(ValueError):
        tm.roc_auc([], [1.0])


def test_every_metric_is_registered():
    assert KEYS <= set(METRICS)
    for key in KEYS:
        assert METRICS[key][0] == "retrain"


# --- scores on one example, by hand -------------------------------------------------------------

@pytest.fixture(scope="module")
def lm_task():
    pytest.importorskip("transformers")
    from lm_helpers import tiny_tokenizer
    from unlearnkit.tasks.causal_lm import CausalLMTask

    return CausalLMTask(tiny_tokenizer())


def _random_logits_model(vocab=128, seed=0):
    """One planted row (prompt 3 + answer 10..14 + EOS) with random logits everywhere."""
    batch, _ = planted([[10, 11, 12, 13, 14]], vocab=vocab)
    logits = torch.randn(1, batch[0].shape[1], vocab, generator=torch.Generator().manual_seed(seed)) * 3
    return batch, FixedLogits(logits), logits[0].double()


def test_zlib_score_by_hand(lm_task):
    batch, model, logits = _random_logits_model()
    log_p = torch.log_softmax(logits, dim=-1)
    targets = [10, 11, 12, 13, 14, EOS]                               # scored at positions 2..7
    nll = -np.mean([float(log_p[2 + j, t]) for j, t in enumerate(targets)])   # EOS included, as the LOSS attack
    text = lm_task.tokenizer.decode([10, 11, 12, 13, 14, EOS], skip_special_tokens=True)
    expected = -nll / len(zlib.compress(text.encode("utf-8")))      # higher = member
    from unlearnkit.data.dataset import TensorData

    data = TensorData(*batch)
    assert tm.answer_texts(lm_task, data) == [text]
    with torch.no_grad():
        loss_score = tm.likelihood_scores(lm_task, model, batch)[0, 0]
    assert float(loss_score) == pytest.approx(-nll, rel=1e-6)
    assert tm.zlib_scores([nll], [text])[0] == pytest.approx(expected, rel=1e-12)
    scores = tm.text_mia_scores(model, lm_task, _SameRows(lm_task, batch), AuditContext(), tm.TextMIAConfig(attacks=("zlib",)))
    assert scores["zlib"][0][0] == pytest.approx(expected, rel=1e-5)


def test_min_k_plus_plus_by_hand(lm_task):
    batch, model, logits = _random_logits_model(seed=3)
    p = torch.softmax(logits, dim=-1).numpy()
    log_p = np.log(p)
    z = []
    for j, t in enumerate([10, 11, 12, 13, 14]):                   # the final EOS is left out
        row = log_p[2 + j]
        mu = float((p[2 + j] * row).sum())
        var = max(float((p[2 + j] * row ** 2).sum()) - mu ** 2, 1e-6)
        z.append((row[t] - mu) / np.sqrt(var))
    k = max(1, int(0.4 * len(z)))                                    # 2 of 5
    expected = float(np.mean(np.sort(z)[:k]))                        # higher = member (OpenUnlearning: −this)
    with torch.no_grad():
        got = tm.likelihood_scores(lm_task, model, batch, k=0.4)[0]
        z_got = tm.token_statistics(lm_task, model, batch)[1][0, :5]
    assert z_got.tolist() == pytest.approx(z, rel=1e-6)
    assert float(got[2]) == pytest.approx(expected, rel=1e-6)
    # Min-K on the raw log-probabilities, the same selection
    mink = float(np.mean(np.sort([log_p[2 + j, t] for j, t in enumerate([10, 11, 12, 13, 14])])[:k]))
    assert float(got[1]) == pytest.approx(mink, rel=1e-6)


def test_min_k_plus_plus_z_is_standardised():
    # a uniform distribution has σ = 0: the variance floor keeps z finite (OpenUnlearning's clamp at 1e-6)
    log_p = torch.log_softmax(torch.zeros(2, 8), dim=-1)
    assert torch.isfinite(tm.min_k_plus_plus_z(log_p, torch.tensor([0, 3]))).all()
    # a peaked one: the argmax token has a positive z, a rare token a negative one
    log_p = torch.log_softmax(torch.tensor([[4.0, 0.0, 0.0, -2.0]]), dim=-1).repeat(2, 1)
    z = tm.min_k_plus_plus_z(log_p, torch.tensor([0, 3]))
    assert z[0] > 0 > z[1]


class _SameRows:
    """A duck-typed split whose forget set and holdout are the same rows (to read per-item scores)."""

    def __init__(self, task, batch):
        from unlearnkit.data.dataset import TensorData
        from unlearnkit.data.sources import DataSource

        data = TensorData(*batch)
        self.source = DataSource(name="t", train=data, test=data, num_classes=len(task.tokenizer),
                                 input_shape=tuple(batch[0].shape[1:]), kind="text", tokenizer=task.tokenizer)
        self.spec, self.forget, self.test = "custom", data, data


def test_gradient_norm_by_hand(lm_task):
    from lm_helpers import qa_batch, tiny_llama

    model = tiny_llama(lm_task.tokenizer, seed=0)
    x, y = qa_batch(lm_task.tokenizer, n=2)
    from unlearnkit.data.dataset import TensorData

    got = tm.gradient_norms(model, lm_task, TensorData(x, y), AuditContext(), p=2.0)
    for i in range(2):
        row = (x[i:i + 1], y[i:i + 1])
        logits = model(input_ids=row[0], attention_mask=(row[0] != 0).long()).logits
        log_p = torch.log_softmax(logits.float(), dim=-1)
        picks = [log_p[0, t - 1, row[1][0, t]] for t in range(1, y.shape[1]) if row[1][0, t] != -100]
        loss = -torch.stack(picks[:-1]).mean()                        # final EOS left out
        model.zero_grad()
        loss.backward()
        norms = [p.grad.norm(2) for p in model.parameters() if p.grad is not None]
        assert got[i] == pytest.approx(float(torch.stack(norms).mean()), rel=1e-4)
        model.zero_grad()


# --- the family ---------------------------------------------------------------------------------

def test_family_catches_a_memorising_model_and_uses_the_retrain_reference(lm_task):
    from lm_helpers import memorise, tiny_llama
    from test_audits_llm import _text_source

    split = _text_source(lm_task.tokenizer)           # forget25 (8 items) vs holdout25 (8 items)
    before = tiny_llama(lm_task.tokenizer, seed=0)
    forget = split.forget.gather(torch.arange(len(split.forget)))
    model = memorise(tiny_llama(lm_task.tokenizer, seed=0), lm_task.tokenizer, forget, optimizer=torch.optim.Adam)
    plain = audit(model, lm_task, split, ["text_mia"], ctx=AuditContext(batch_size=16))
    assert set(plain) == KEYS - {"mia_ref_auc", "mia_ref_tpr1", "mia_ref_tpr01"}   # no retrain model: no ref attack
    for attack in ("loss", "zlib", "mink", "minkpp", "gradnorm"):
        assert plain[f"mia_{attack}_auc"] > 0.9, attack
    ctx = AuditContext(batch_size=16, retrain=before)
    m = audit(model, lm_task, split, ["text_mia"], ctx=ctx)
    assert set(m) == KEYS and m["mia_ref_auc"] > 0.9
    assert ctx.cache[("text_mia", split.spec)][0] is before
    # the retrained model against itself: the reference score is 0 for every item -> AUC 0.5
    same = audit(before, lm_task, split, ["text_mia"], ctx=AuditContext(batch_size=16, retrain=before))
    assert same["mia_ref_auc"] == pytest.approx(0.5)


def test_family_on_tofu_mini_runs_in_under_10_s():
    pytest.importorskip("transformers")
    from unlearnkit import load_data, make_split
    from unlearnkit.models.hf import build_lm
    from unlearnkit.tasks.causal_lm import CausalLMTask

    source = load_data("tofu-mini")
    task = CausalLMTask(source.tokenizer)
    split = make_split(source, "forget05")
    model = build_lm("tiny-llama", source.tokenizer, seed=0).eval()
    start = time.perf_counter()
    m = audit(model, task, split, ["text_mia"], ctx=AuditContext(batch_size=64, retrain=model))
    elapsed = time.perf_counter() - start
    assert set(m) == KEYS and all(np.isfinite(v) for v in m.values())
    assert m["mia_ref_auc"] == pytest.approx(0.5)
    assert elapsed < 10.0, f"text_mia took {elapsed:.1f} s on tofu-mini (forget05 vs holdout05)"
