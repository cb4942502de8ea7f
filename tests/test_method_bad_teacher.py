"""Bad Teacher (competent/incompetent teacher distillation), each property against an independent
route (raw logits → softmax at T → the KL written out):

- the incompetent teacher is a re-initialised copy of the same architecture: every parameter
  tensor differs from the original's, the same seed gives bit-identical weights, another seed
  other weights; it is frozen, in eval mode, and the original is untouched;
- the objective on a mixed batch is the KL to the incompetent teacher on forget rows and to the
  competent one on retain rows, averaged over the P × C entries ("mean", their code) or the P rows;
- a pass of the mixed stream visits D_f ∪ D_r' exactly once, |D_r'| = ⌊fraction·|D_r|⌋, drawn once
  (or per epoch with ``resample_retain``);
- after a run, on forget examples the student's distribution has moved towards the incompetent
  teacher (KL to it falls several-fold) while on retain it stays near the competent one;
- end to end on digits the forget loss rises; on a tiny Llama one step runs and stays finite.
"""
from __future__ import annotations

import copy
import math

import pytest
import torch

from lm_helpers import text_source, tiny_llama, tiny_tokenizer
from unlearnkit import ClassificationTask, ConfigError, build_model, make_split, unlearn
from unlearnkit.data.dataset import TensorData, iterate_batches
from unlearnkit.methods import RunContext, build_config
from unlearnkit.methods.bad_teacher import incompetent_teacher, mixed_batches, retain_subset
from unlearnkit.methods.base import METHODS


def first_batch(data, n=64):
    return next(iter(iterate_batches(data, n)))


@torch.no_grad()
def kl_rows(teacher, student, x, T):
    """KL(softmax(teacher/T) ‖ softmax(student/T)) per row, from raw logits."""
    p_t = torch.softmax(teacher(x) / T, dim=1)
    log_p_s = torch.log_softmax(student(x) / T, dim=1)
    return (p_t * (p_t.log() - log_p_s)).sum(dim=1)


def test_incompetent_teacher_is_a_seeded_reinitialised_copy(digits):
    model = build_model("cnn", digits.input_shape, digits.num_classes, seed=3)
    snapshot = copy.deepcopy(model.state_dict())
    bad = incompetent_teacher(model, seed=0)
    assert type(bad) is type(model) and not bad.training
    assert all(not p.requires_grad for p in bad.parameters())
    for (name, p), q in zip(model.named_parameters(), bad.parameters()):
        assert p.shape == q.shape
        if name.endswith("weight") and p.dim() > 1:              # conv/linear weights: redrawn
            assert not torch.equal(p, q), name
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), bad.state_dict().values()))
    again = incompetent_teacher(model, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(bad.state_dict().values(), again.state_dict().values()))
    other = incompetent_teacher(model, seed=1)
    assert any(not torch.equal(a, b) for a, b in zip(bad.parameters(), other.parameters()))
    assert all(torch.equal(snapshot[k], v) for k, v in model.state_dict().items())   # original untouched
    assert model.training and all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("reduction,T", [("mean", 1.0), ("batchmean", 2.0)])
def test_objective_is_the_kl_to_the_bad_teacher_on_forget_and_the_good_one_on_retain(trained_mlp, task, class_split,
                                                                                        reduction, T):
    config = build_config("bad_teacher", kl_reduction=reduction, temperature=T)
    method = METHODS.get("bad_teacher")()
    state = method.prepare(trained_mlp, task, class_split, config, RunContext())
    student = copy.deepcopy(trained_mlp)
    forget, retain = first_batch(class_split.forget, 7), first_batch(class_split.retain, 13)
    loss = method.objective(student, task, forget, retain, config, state)
    rows = torch.cat([kl_rows(state["incompetent"], student, forget[0], T),
                      kl_rows(state["competent"], student, retain[0], T)])
    C = 10                                                        # digits classes
    expected = rows.mean() / C if reduction == "mean" else rows.mean()
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    # a batch with one kind only
    only_forget = method.objective(student, task, forget, None, config, state)
    expected_f = kl_rows(state["incompetent"], student, forget[0], T).mean()
    expected_f = expected_f / C if reduction == "mean" else expected_f
    assert float(only_forget.detach()) == pytest.approx(float(expected_f), rel=1e-5)


def test_mixed_stream_visits_forget_and_the_retain_subset_once():
    # inputs carry their own id so the test can see which examples each batch holds
    forget = TensorData(torch.arange(10.0)[:, None], torch.zeros(10, dtype=torch.long))
    retain = TensorData(100 + torch.arange(50.0)[:, None], torch.ones(50, dtype=torch.long))
    task = ClassificationTask(2)
    g = torch.Generator().manual_seed(0)
    sub = retain_subset(retain, 0.3, g)
    assert len(sub) == 15
    ctx = RunContext(generator=g)
    seen_f, seen_r, sizes = [], [], []
    for f_part, r_part in mixed_batches(forget, sub, 8, task, ctx):
        f_ids = [] if f_part is None else f_part[0].flatten().tolist()
        r_ids = [] if r_part is None else r_part[0].flatten().tolist()
        assert all(i < 100 for i in f_ids) and all(i >= 100 for i in r_ids)
        seen_f += f_ids
        seen_r += r_ids
        sizes.append(len(f_ids) + len(r_ids))
    assert sorted(seen_f) == list(range(10))
    assert sorted(seen_r) == sorted(first_batch(sub, 100)[0].flatten().tolist())
    assert len(set(seen_r)) == 15 and sizes == [8, 8, 8, 1]


@pytest.mark.parametrize("resample", [False, True])
def test_retain_subset_drawn_once_or_per_epoch(task, class_split, trained_mlp, resample, monkeypatch):
    import unlearnkit.methods.bad_teacher as bt

    drawn = []
    original = bt.retain_subset
    monkeypatch.setattr(bt, "retain_subset", lambda *a: drawn.append(1) or original(*a))
    ctx = RunContext(generator=torch.Generator().manual_seed(0), progress=False)
    config = build_config("bad_teacher", epochs=3, resample_retain=resample)
    METHODS.get("bad_teacher")().run(copy.deepcopy(trained_mlp), task, class_split, config, ctx)
    assert len(drawn) == (3 if resample else 1)
    n = len(class_split.forget) + int(0.3 * len(class_split.retain))
    assert len(ctx.trace["loss"]) == 3 * math.ceil(n / 256) and ctx.targets_seen == 3 * n


def test_student_moves_towards_the_bad_teacher_on_forget_and_stays_near_the_good_one_on_retain(trained_mlp, task,
                                                                                               class_split):
    config = build_config("bad_teacher", epochs=10)
    bad = incompetent_teacher(trained_mlp, config.seed)          # the teacher the run builds (same seed)
    x_f = first_batch(class_split.forget, 1000)[0]
    x_r = first_batch(class_split.retain, 2000)[0]
    before = float(kl_rows(bad, trained_mlp, x_f, 1.0).mean())
    out = unlearn(trained_mlp, task, class_split, method="bad_teacher", epochs=10).eval()
    after = float(kl_rows(bad, out, x_f, 1.0).mean())
    assert after < 0.25 * before                                  # forget: towards the incompetent teacher
    retain_kl = float(kl_rows(trained_mlp, out, x_r, 1.0).mean())
    assert retain_kl < 0.2 and retain_kl < 0.25 * after           # retain: near the competent teacher
    assert float(kl_rows(trained_mlp, out, x_f, 1.0).mean()) > 1.0  # forget: away from the original


def test_config_defaults_and_validation():
    config = build_config("bad_teacher")
    assert (config.temperature, config.retain_fraction, config.kl_reduction, config.optimizer,
            config.batch_size) == (1.0, 0.3, "mean", "adam", 256)
    for bad in ({"temperature": 0}, {"retain_fraction": 1.5}, {"kl_reduction": "sum"}):
        with pytest.raises(ConfigError):
            build_config("bad_teacher", **bad)


def test_end_to_end_on_digits_raises_forget_loss(trained_mlp, task, class_split):
    batch = first_batch(class_split.forget, 1000)
    before = float(task.loss(trained_mlp, batch).mean().detach())
    out = unlearn(trained_mlp, task, class_split, method="bad_teacher", epochs=2).eval()
    assert float(task.loss(out, batch).mean().detach()) > before + 0.3
    assert float(task.loss(trained_mlp, batch).mean().detach()) == before


def test_tiny_llama_one_step():
    pytest.importorskip("transformers")
    tok = tiny_tokenizer()
    from unlearnkit.tasks.causal_lm import CausalLMTask

    task = CausalLMTask(tok)
    split = make_split(text_source(tok, n=12, n_forget=4), "forget")
    model = tiny_llama(tok, seed=0)
    bad = incompetent_teacher(model, 0)
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), bad.parameters()))
    ctx = RunContext(generator=torch.Generator().manual_seed(0), progress=False)
    config = build_config("bad_teacher", epochs=1, batch_size=16, optimizer="adamw", lr=1e-3, retain_fraction=0.5)
    out = METHODS.get("bad_teacher")().run(copy.deepcopy(model), task, split, config, ctx)
    assert len(ctx.trace["loss"]) == 1 and math.isfinite(ctx.trace["loss"][0])
    assert all(torch.isfinite(p).all() for p in out.parameters())
    assert any(not torch.equal(p, q) for p, q in zip(out.parameters(), model.parameters()))
