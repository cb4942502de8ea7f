"""TOFU- and WMDP-style audits: the pure measures on hand-made numbers, then both audits end to end
on a tiny random Llama and a hand-built text source."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp

import unlearnkit.audits.tofu as tofu
import unlearnkit.audits.wmdp as wmdp
from lm_helpers import CITIES, GENRES, memorise, qa_pairs, tiny_llama, tiny_tokenizer
from unlearnkit.audits import AuditContext, audit
from unlearnkit.data.sources import DataSource
from unlearnkit.data.split import Split
from unlearnkit.data.text import ChoiceSet, EvalSet, encode_qa
from unlearnkit.errors import ConfigError
from unlearnkit.tasks.causal_lm import CausalLMTask


# --- pure functions ---------------------------------------------------------------------------

def test_truth_ratio_is_geometric_mean_of_wrong_over_correct():
    correct = np.array([0.1, 2.0])
    wrong = np.array([[0.5, 1.5], [1.0, 1.0]])
    r = tofu.truth_ratio(correct, wrong)
    # P_wrong = exp(-mean NLL) = sqrt(P1 * P2): a geometric, not arithmetic, mean of the perturbed probabilities
    p_wrong0 = math.sqrt(math.exp(-0.5) * math.exp(-1.5))
    assert r[0] == pytest.approx(p_wrong0 / (math.exp(-0.1) + 1e-10))
    assert r[0] != pytest.approx((math.exp(-0.5) + math.exp(-1.5)) / 2 / math.exp(-0.1))
    assert r[1] == pytest.approx(math.exp(-1.0) / math.exp(-2.0))  # prefers the wrong answers: R > 1


def test_truth_ratio_scores():
    r = np.array([0.5, 2.0, 1.0])
    assert tofu.truth_ratio_score(r, "closer_to_1") == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert tofu.truth_ratio_score(r, "true_better") == pytest.approx((0.5 + 0.0 + 0.0) / 3)
    with pytest.raises(ValueError):
        tofu.truth_ratio_score(r, "mean")


def test_normalised_probability():
    # P_c = 0.5, P_wrong = 0.25 + 0.25 -> 0.5 / (0.5 + 0.5)
    correct = -np.log([0.5])
    wrong = -np.log([[0.25, 0.25]])
    assert tofu.normalised_probability(correct, wrong)[0] == pytest.approx(0.5)
    assert tofu.answer_probability(correct)[0] == pytest.approx(0.5)


def test_forget_quality_identical_and_shifted():
    rng = np.random.default_rng(0)
    a = rng.lognormal(0.0, 1.0, 100)
    assert tofu.forget_quality(a, a) == pytest.approx(1.0)
    assert tofu.forget_quality(a, a * 50.0) < 1e-10
    b = rng.lognormal(0.0, 1.0, 100)
    assert tofu.forget_quality(a, b) > 0.01   # two samples of one distribution


def test_model_utility_is_harmonic_mean():
    values = [1.0, 0.5, 0.25]
    assert tofu.model_utility(values) == pytest.approx(3 / (1 + 2 + 4))
    assert tofu.model_utility([0.9] * 8 + [0.0]) == 0.0


def test_rouge_l_recall_known_strings():
    got = tofu.rouge_l_recall(["the cats sat", "", "The cat sat on the mat"],
                              ["The cat sat on the mat"] * 3)
    # LCS(the cat sat) = 3 of 6 reference tokens (stemmer: cats -> cat); empty -> 0; identical -> 1
    assert got.tolist() == pytest.approx([0.5, 0.0, 1.0])
    assert tofu.rouge_l_recall(["Paris"], ["Paris, France"])[0] == pytest.approx(0.5)


def test_min_k_on_planted_log_probs():
    token_ll = torch.tensor([
        [-1.0, -5.0, -2.0, -9.0, -3.0, -0.5, -0.1, -4.0, -0.2, -0.3],  # n=10: k=4 lowest: -9,-5,-4,-3
        [-7.0, -1.0, 99.0, 99.0, 99.0, 99.0, 99.0, 99.0, 99.0, 99.0],  # n=2: max(1, 0) = 1 lowest: -7 (rest ignored)
        [99.0] * 10,                                                     # n=0 -> 0
    ])
    lengths = torch.tensor([10, 2, 0])
    scores = tofu.min_k_scores(token_ll, lengths, 0.4)
    assert scores.tolist() == pytest.approx([-21.0 / 4, -7.0, 0.0])
    assert tofu.min_k_scores(token_ll[:1], lengths[:1], 0.2).item() == pytest.approx(-7.0)  # k=2: -9,-5


def test_privleak_and_auc_conventions():
    assert tofu.membership_auc([2.0, 3.0], [0.0, 1.0]) == 1.0
    assert tofu.privleak(0.5, 0.5) == pytest.approx(0.0)
    assert tofu.privleak(1.0, 0.5) == pytest.approx(-100.0)   # fully memorised vs retrain at chance
    assert tofu.privleak(0.25, 0.5) == pytest.approx(50.0)    # over-unlearned


def test_choice_accuracy_from_matrix():
    ll = torch.tensor([[-1.0, -2.0, -3.0, -4.0], [-5.0, -0.5, -2.0, -9.0], [-1.0, -1.0, -3.0, -3.0]])
    assert wmdp.choice_accuracy(ll, torch.tensor([0, 1, 0])) == pytest.approx(100.0)   # tie -> first
    assert wmdp.choice_accuracy(ll, torch.tensor([3, 1, 1])) == pytest.approx(100.0 / 3)
    with pytest.raises(ValueError):
        wmdp.choice_accuracy(ll[0], torch.tensor([0]))


# --- model side -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tok():
    import transformers
    transformers.utils.logging.disable_progress_bar()
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def lm_task(tok):
    return CausalLMTask(tok, max_new_tokens=8)


def _reference_token_ll(model, batch, pad_id):
    """Per-row token log-probs of the labelled tokens, computed directly from the logits (test route)."""
    input_ids, labels = batch
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=(input_ids != pad_id).long()).logits
    log_p = torch.log_softmax(logits.float(), dim=-1)
    rows = []
    for b in range(len(input_ids)):
        rows.append([float(log_p[b, t - 1, labels[b, t]]) for t in range(1, labels.shape[1]) if labels[b, t] != -100])
    return rows


def test_token_log_likelihoods_match_logits(tok, lm_task):
    model = tiny_llama(tok)
    data = encode_qa(tok, *qa_pairs(5))
    batch = (data.x, data.y)
    token_ll, targets, lengths = tofu.token_log_likelihoods(lm_task, model, batch)
    ref = _reference_token_ll(model, batch, tok.pad_token_id)
    assert lengths.tolist() == [len(r) for r in ref] == lm_task.target_length(batch).tolist()
    for b, r in enumerate(ref):
        assert token_ll[b, : len(r)].tolist() == pytest.approx(r, abs=1e-5)
        assert targets[b, len(r) - 1] == tok.eos_token_id                      # the answer ends with EOS
    with torch.no_grad():
        assert token_ll.sum(1).tolist() == pytest.approx(lm_task.log_likelihood(model, batch).tolist(), abs=1e-4)
        # Min-K drops the final EOS, then averages the lowest 40 %
        expected = [np.mean(np.sort(r[:-1])[: max(1, int(0.4 * (len(r) - 1)))]) for r in ref]
        assert tofu.min_k_batch(lm_task, model, batch).tolist() == pytest.approx(expected, abs=1e-5)
        # WMDP continuation log-likelihood: the sum without the EOS
        cont = wmdp.continuation_log_likelihood(lm_task, model, batch)
        assert cont.tolist() == pytest.approx([sum(r[:-1]) for r in ref], abs=1e-4)


# --- end to end -------------------------------------------------------------------------------

def _swap_last_word(answer: str, pool: list[str], shift: int) -> str:
    head, last = answer[:-1].rsplit(" ", 1)
    return f"{head} {pool[(pool.index(last) + shift) % len(pool)]}."


def _eval_set(tok, name, questions, answers, *, paraphrase=True, k=3):
    perturbed = []
    for shift in range(1, k + 1):
        wrong = [_swap_last_word(a, CITIES if a.split()[-1][:-1] in CITIES else GENRES, shift) for a in answers]
        perturbed.append(encode_qa(tok, questions, wrong))
    para = encode_qa(tok, questions, [f"In short, {a}" for a in answers]) if paraphrase else None
    return EvalSet(name, list(questions), list(answers), encode_qa(tok, questions, answers), para, perturbed)


def _text_source(tok, n=24, n_forget=8, n_holdout=8):
    questions, answers = qa_pairs(n + n_holdout + 16, seed=3)
    train = encode_qa(tok, questions[:n], answers[:n])
    hq, ha = questions[n:n + n_holdout], answers[n:n + n_holdout]
    extra_q, extra_a = questions[n + n_holdout:], answers[n + n_holdout:]
    evals = {
        "forget25": _eval_set(tok, "forget25", questions[:n_forget], answers[:n_forget]),
        "retain": _eval_set(tok, "retain", questions[n_forget:n_forget + 8], answers[n_forget:n_forget + 8]),
        "real_authors": _eval_set(tok, "real_authors", extra_q[:8], extra_a[:8], paraphrase=False),
        "world_facts": _eval_set(tok, "world_facts", extra_q[8:], extra_a[8:], paraphrase=False),
        "holdout25": _eval_set(tok, "holdout25", hq, ha, paraphrase=False, k=0),
    }
    choices = [[CITIES[(i + j) % len(CITIES)] for j in range(4)] for i in range(len(hq))]
    options = [encode_qa(tok, hq, [c[j] for c in choices]) for j in range(4)]
    evals["hazard"] = ChoiceSet("hazard", hq, choices, torch.tensor([i % 4 for i in range(len(hq))]), options)
    source = DataSource(name="tiny-tofu", train=train, test=encode_qa(tok, hq, ha), num_classes=len(tok),
                        input_shape=tuple(train.x.shape[1:]), kind="text", tokenizer=tok, evals=evals)
    return Split(source, torch.arange(n_forget), torch.arange(n_forget, n), spec="forget25")


@pytest.fixture(scope="module")
def split(tok):
    return _text_source(tok)


TOFU_KEYS = {"forget_prob", "forget_rouge", "forget_truth_ratio", "retain_prob", "retain_rouge", "retain_truth_ratio",
             "ra_prob", "ra_rouge", "ra_truth_ratio", "wf_prob", "wf_rouge", "wf_truth_ratio", "model_utility",
             "mia_auc_mink", "forget_em", "forget_es", "retain_em", "retain_es"}


def test_tofu_audit_values_and_retrain_reference(tok, lm_task, split):
    model = tiny_llama(tok, seed=1)
    ctx = AuditContext(batch_size=16)
    m = audit(model, lm_task, split, ["tofu"], ctx=ctx)
    assert set(m) == TOFU_KEYS                        # no retrain model: no forget quality, no privleak
    # forget_prob by an independent route: exp(-mean answer NLL) averaged over the forget EvalSet
    forget = split.source.evals["forget25"]
    with torch.no_grad():
        nll = lm_task.loss(model, (forget.correct.x, forget.correct.y))
    assert m["forget_prob"] == pytest.approx(float(torch.exp(-nll).mean()), rel=1e-5)
    parts = [m[f"{p}_{q}"] for p in ("retain", "ra", "wf") for q in ("prob", "rouge", "truth_ratio")]
    assert m["model_utility"] == pytest.approx(tofu.model_utility(parts))
    assert all(0.0 <= m[k] <= 1.0 for k in m)

    # the retrained model itself: forget quality 1, privleak 0; its values are cached in ctx.cache
    ctx.retrain = model
    same = audit(model, lm_task, split, ["tofu"], ctx=ctx)
    assert same["forget_quality"] == pytest.approx(1.0) and same["privleak"] == pytest.approx(0.0, abs=1e-6)
    assert ctx.cache[("tofu", "forget25")][0] is model

    # another model: the KS p-value against the retrain model's per-item forget truth ratios
    other = tiny_llama(tok, seed=2)
    got = audit(other, lm_task, split, ["tofu"], ctx=ctx)
    mine = tofu.forget_truth_ratios(other, lm_task, forget, ctx)
    theirs = tofu.forget_truth_ratios(model, lm_task, forget, ctx)
    assert got["forget_quality"] == pytest.approx(ks_2samp(mine, theirs).pvalue)
    assert got["privleak"] == pytest.approx(tofu.privleak(got["mia_auc_mink"], m["mia_auc_mink"]))


def test_tofu_rouge_uses_gold_answers(tok, lm_task, split, monkeypatch):
    # a model that answers every question with its gold answer scores ROUGE-L recall 1 on every set
    gold = {}
    for eval_set in split.source.evals.values():
        if isinstance(eval_set, EvalSet):
            for row, answer in zip(eval_set.correct.x, eval_set.answers):
                gold[tuple(row.tolist())] = answer
    monkeypatch.setattr(lm_task, "generate", lambda model, batch, max_new_tokens=None:
                        [gold[tuple(row.tolist())] for row in batch[0]])
    m = audit(tiny_llama(tok), lm_task, split, ["tofu"], ctx=AuditContext(batch_size=5))
    assert m["forget_rouge"] == m["retain_rouge"] == m["ra_rouge"] == m["wf_rouge"] == 1.0


def test_tofu_separates_a_memorising_model(tok, lm_task, split):
    """Fitting the forget rows raises forget probability and makes them recognisable (Min-K AUC → 1)."""
    before = tiny_llama(tok, seed=0)
    forget = split.forget.gather(torch.arange(len(split.forget)))
    model = memorise(tiny_llama(tok, seed=0), tok, forget, optimizer=torch.optim.Adam)
    ctx = AuditContext(batch_size=16, retrain=before)
    m = audit(model, lm_task, split, ["tofu"], ctx=ctx)
    base = audit(before, lm_task, split, ["tofu"], ctx=AuditContext(batch_size=16))
    assert m["forget_prob"] > base["forget_prob"] + 0.3
    assert m["mia_auc_mink"] > 0.9 and m["privleak"] < -50
    assert m["forget_quality"] < 0.05                 # its forget truth ratios no longer look like "retrain"'s


def test_tofu_needs_forget_eval_set(tok, lm_task, split):
    bad = Split(split.source, split.forget_idx, split.retain_idx, spec="forget99")
    with pytest.raises(ConfigError, match="forget99"):
        audit(tiny_llama(tok), lm_task, bad, ["tofu"], ctx=AuditContext())


def test_wmdp_audit_matches_argmax_of_continuations(tok, lm_task, split):
    model = tiny_llama(tok, seed=1)
    hazard = split.source.evals["hazard"]
    ll = torch.stack([torch.tensor([sum(r[:-1]) for r in _reference_token_ll(model, (o.x, o.y), tok.pad_token_id)])
                      for o in hazard.options], dim=1)
    expected = 100.0 * float((ll.argmax(1) == hazard.answer).double().mean())
    got = audit(model, lm_task, split, ["wmdp"], ctx=AuditContext(batch_size=3))
    assert got == {"hazard_acc": pytest.approx(expected)}
    # planted answers: the model's own argmax -> 100 %, any other choice -> 0 %
    for answer, acc in ((ll.argmax(1), 100.0), ((ll.argmax(1) + 1) % 4, 0.0)):
        planted = ChoiceSet("hazard", hazard.questions, hazard.choices, answer, hazard.options)
        source = DataSource(**{**split.source.__dict__, "evals": {"hazard": planted, "general": planted}})
        s = Split(source, split.forget_idx, split.retain_idx, spec=split.spec)
        assert audit(model, lm_task, s, ["wmdp"], ctx=AuditContext()) == {"hazard_acc": acc, "general_acc": acc}


def test_wmdp_needs_hazard_set(tok, lm_task, split):
    source = DataSource(**{**split.source.__dict__, "evals": {}})
    with pytest.raises(ConfigError, match="hazard"):
        audit(tiny_llama(tok), lm_task, Split(source, split.forget_idx, split.retain_idx), ["wmdp"],
              ctx=AuditContext())


def test_tofu_membership_attack_compares_qa_rows_with_qa_rows(tok, lm_task, split):
    """Regression: a forget split that trains more rows than its QA EvalSet (tofu-mini v2's biography
    rows) must not count those rows as members: the holdout side is QA rows only, and OpenUnlearning's
    attack compares TOFU's forget QA with its holdout QA. Here the extra rows are memorised and the QA
    rows are not: the attack on the QA rows cannot tell them from the holdout, the old one could."""
    source = split.source
    wide = Split(source, torch.arange(20), torch.arange(20, 24), spec="forget25")  # its 8 QA rows + 12 more
    model = memorise(tiny_llama(tok, seed=0), tok, source.train.gather(torch.arange(8, 20)), optimizer=torch.optim.Adam)
    members, non_members = tofu.membership_sets(wide)
    assert len(members) == len(source.evals["forget25"].correct) == 8 and len(non_members) == 8
    assert torch.equal(members.x, source.evals["forget25"].correct.x)
    ctx = AuditContext(batch_size=16)
    got = audit(model, lm_task, wide, ["tofu"], ctx=ctx)
    assert got["mia_auc_mink"] == pytest.approx(tofu.min_k_auc(model, lm_task, members, non_members, ctx))
    with_extra_rows = tofu.min_k_auc(model, lm_task, wide.forget, non_members, ctx)
    assert with_extra_rows > 0.65 and got["mia_auc_mink"] < with_extra_rows - 0.3  # measured 0.71 vs 0.28
    # a data source without a QA holdout keeps the whole forget split as members
    bare = Split(DataSource(name="bare", train=source.train, test=source.test, num_classes=source.num_classes,
                            input_shape=source.input_shape, kind="text", tokenizer=tok, evals={}),
                 torch.arange(16), torch.arange(16, 24), spec="forget25")
    assert torch.equal(tofu.membership_sets(bare)[0].x, bare.forget.x)
