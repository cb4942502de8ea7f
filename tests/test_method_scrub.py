"""SCRUB (teacher–student max/min distillation). Every quantity is checked against an independent
route (raw logits → softmax at T → the KL written out), not the method's own helpers:

- the max objective is −T²·KL(p_T(teacher) ‖ p_T(student)) on a forget batch, and one SGD step on it
  RAISES that KL (a step on the opposite sign lowers it, so the test sees the sign);
- the min objective is α·T²·KL + γ·CE on a retain batch, and one SGD step on it lowers it;
- the schedule: a run makes a max pass over D_f in the first ``msteps`` epochs only, then a min
  pass over D_r in every epoch, in that order, with the configured batch sizes (step kinds read
  from ``ctx.trace`` at each ``ctx.on_step``);
- the min step reads the KL and the CE off one forward of the student (hooks count forwards);
- end to end on digits, the forget loss rises; on a tiny Llama one max and one min step run and
  stay finite.
"""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from lm_helpers import text_source, tiny_llama, tiny_tokenizer
from unlearnkit import ConfigError, build_model, make_split, unlearn
from unlearnkit.data.dataset import iterate_batches
from unlearnkit.methods import RunContext, build_config
from unlearnkit.methods.base import METHODS
from unlearnkit.methods.reference_model import frozen_copy


def first_batch(data, n=64):
    return next(iter(iterate_batches(data, n)))


@torch.no_grad()
def perturb_(model, scale, seed=0):
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.add_(scale * torch.randn(p.shape, generator=g))


@torch.no_grad()
def kl_teacher_student(teacher, student, batch, T):
    """(1/B) Σ_x Σ_c p_t log(p_t / p_s), softmaxes of raw logits at T (independent of the Task seam)."""
    p_t = torch.softmax(teacher(batch[0]) / T, dim=1)
    log_p_s = torch.log_softmax(student(batch[0]) / T, dim=1)
    return float((p_t * (p_t.log() - log_p_s)).sum(dim=1).mean())


def sgd_step(model, loss, lr):
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p.sub_(lr * p.grad)


@pytest.fixture
def pair(trained_mlp):
    """(teacher, student): the frozen original and a perturbed copy (KL > 0, so gradients are not zero)."""
    teacher = frozen_copy(trained_mlp)
    student = copy.deepcopy(trained_mlp).train()
    perturb_(student, 0.02)
    return teacher, student


def test_max_objective_is_minus_t2_kl_and_one_step_raises_the_forget_kl(pair, task, class_split):
    teacher, student = pair
    config = build_config("scrub")
    T = config.temperature
    batch = first_batch(class_split.forget)
    method = METHODS.get("scrub")()
    before = kl_teacher_student(teacher, student, batch, T)
    assert before > 1e-4

    loss = method.max_objective(student, task, batch, teacher, config)
    assert float(loss.detach()) == pytest.approx(-T ** 2 * before, rel=1e-5)     # −T²·KL

    ascended = copy.deepcopy(student)
    sgd_step(ascended, method.max_objective(ascended, task, batch, teacher, config), lr=0.005)
    descended = copy.deepcopy(student)
    sgd_step(descended, -method.max_objective(descended, task, batch, teacher, config), lr=0.005)
    assert kl_teacher_student(teacher, ascended, batch, T) > 1.5 * before       # the max step raises it
    assert kl_teacher_student(teacher, descended, batch, T) < before            # the opposite sign lowers it


def test_min_objective_is_alpha_kl_plus_gamma_ce_and_one_step_lowers_it(pair, task, class_split):
    teacher, student = pair
    config = build_config("scrub", alpha=0.3, gamma=0.7, temperature=2.0)
    batch = first_batch(class_split.retain)
    method = METHODS.get("scrub")()

    def independent(model):
        with torch.no_grad():
            ce = float(F.cross_entropy(model(batch[0]), batch[1]))
        return 0.3 * 4.0 * kl_teacher_student(teacher, model, batch, 2.0) + 0.7 * ce

    before = independent(student)
    loss = method.min_objective(student, task, batch, teacher, config)
    assert float(loss.detach()) == pytest.approx(before, rel=1e-5)
    sgd_step(student, loss, lr=0.05)
    assert independent(student) < before


def test_loss_and_log_probs_take_one_forward(trained_mlp, task, class_split):
    batch = first_batch(class_split.retain)
    calls = []
    handle = trained_mlp.register_forward_hook(lambda *_: calls.append(1))
    try:
        loss, log_p = task.loss_and_log_probs(trained_mlp, batch)
    finally:
        handle.remove()
    assert len(calls) == 1
    torch.testing.assert_close(log_p, task.log_probs(trained_mlp, batch))
    torch.testing.assert_close(loss, task.loss(trained_mlp, batch))


def step_kinds(model, task, split, **hp):
    """Run scrub and return the kind ("max"/"min") of every optimizer step, in order."""
    kinds = []
    ctx = RunContext(generator=torch.Generator().manual_seed(0), progress=False)
    seen = {"max_loss": 0, "min_loss": 0}

    def on_step(_model, _index):
        grown = [k for k in seen if len(ctx.trace.get(k, [])) > seen[k]]
        assert len(grown) == 1
        seen[grown[0]] += 1
        kinds.append(grown[0][:3])

    ctx.on_step = on_step
    METHODS.get("scrub")().run(copy.deepcopy(model), task, split, build_config("scrub", **hp), ctx)
    return kinds, ctx


@pytest.mark.parametrize("epochs,msteps", [(3, 2), (2, 5), (2, 0)])
def test_schedule_matches_the_config(trained_mlp, task, class_split, epochs, msteps):
    n_f, n_r = len(class_split.forget), len(class_split.retain)
    kinds, ctx = step_kinds(trained_mlp, task, class_split, epochs=epochs, msteps=msteps,
                            forget_batch_size=64, batch_size=512, lr=0.001)
    f_steps, r_steps = math.ceil(n_f / 64), math.ceil(n_r / 512)
    expected = []
    for epoch in range(epochs):
        expected += ["max"] * (f_steps if epoch < msteps else 0) + ["min"] * r_steps
    assert kinds == expected
    assert ctx.targets_seen == min(epochs, msteps) * n_f + epochs * n_r
    max_losses = ctx.trace.get("max_loss", [])
    assert all(v <= 0 for v in max_losses)                              # −KL ≤ 0
    if max_losses:                                                      # the student starts as the teacher
        assert max_losses[0] == pytest.approx(0.0, abs=1e-6)            # (an MLP: no batch statistics)
    assert all(math.isfinite(v) for v in ctx.trace["min_loss"])


def test_config_defaults_and_validation():
    config = build_config("scrub")
    assert (config.temperature, config.alpha, config.gamma, config.msteps, config.epochs) == (4.0, 0.001, 0.99, 2, 3)
    assert (config.optimizer, config.momentum, config.weight_decay) == ("sgd", 0.9, 5e-4)
    assert config.quick_overrides() == {"epochs": 1, "msteps": 1}
    for bad in ({"temperature": 0}, {"msteps": -1}, {"forget_batch_size": 0}):
        with pytest.raises(ConfigError):
            build_config("scrub", **bad)


def test_end_to_end_on_digits_raises_forget_loss(task, digits, class_split):
    model = build_model("cnn", digits.input_shape, digits.num_classes, seed=0)
    from unlearnkit.methods import TrainConfig, fit
    fit(model, task, digits.train, TrainConfig(epochs=3, lr=0.05), RunContext(progress=False))
    model.eval()

    def forget_loss(m):
        with torch.no_grad():
            return float(task.loss(m.eval(), first_batch(class_split.forget, 1000)).mean())

    before = forget_loss(model)
    out = unlearn(model, task, class_split, method="scrub", epochs=1, msteps=1)
    assert forget_loss(out) > before + 0.1
    assert forget_loss(model) == before                                  # input untouched


def test_tiny_llama_one_max_and_one_min_step():
    pytest.importorskip("transformers")
    tok = tiny_tokenizer()
    from unlearnkit.tasks.causal_lm import CausalLMTask

    task = CausalLMTask(tok)
    split = make_split(text_source(tok, n=12, n_forget=4), "forget")
    model = tiny_llama(tok, seed=0)
    ctx = RunContext(generator=torch.Generator().manual_seed(0), progress=False)
    config = build_config("scrub", epochs=1, msteps=1, batch_size=8, forget_batch_size=4,
                          optimizer="adamw", lr=1e-3)
    out = METHODS.get("scrub")().run(copy.deepcopy(model), task, split, config, ctx)
    assert len(ctx.trace["max_loss"]) == 1 and len(ctx.trace["min_loss"]) == 1
    assert all(math.isfinite(v) for v in ctx.trace["max_loss"] + ctx.trace["min_loss"])
    assert all(torch.isfinite(p).all() for p in out.parameters())
    assert any(not torch.equal(p, q) for p, q in zip(out.parameters(), model.parameters()))
    # one forward for the min step's two quantities, on text too
    batch = first_batch(split.retain, 4)
    loss, log_p = task.loss_and_log_probs(model, batch)
    torch.testing.assert_close(log_p, task.log_probs(model, batch))
    torch.testing.assert_close(loss, task.loss(model, batch))
