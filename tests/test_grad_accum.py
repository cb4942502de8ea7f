"""Gradient accumulation in the shared loop: ``grad_accum`` micro-batches of ``batch_size`` give the
same step as one batch of ``batch_size × grad_accum`` (mean-reduced objectives, no batch-norm)."""
import copy

import pytest
import torch

import unlearnkit as uk
from unlearnkit import TensorData
from unlearnkit.data.split import Split
from unlearnkit.methods import RunContext
from unlearnkit.methods.loop import LoopMethod, total_steps


def _split(digits, n_forget=96):
    """A forget set whose size is a multiple of the large batch (so every step is a full one)."""
    forget_idx = torch.arange(n_forget)
    retain_idx = torch.arange(n_forget, len(digits.train))
    return Split(digits, forget_idx, retain_idx)


def _run(method, model, task, split, **hparams):
    return uk.unlearn(model, task, split, method=method, config=uk.resolve_config(method, overrides=hparams))


def _max_difference(a, b) -> float:
    return max(float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("method", ["ga", "graddiff", "salun"])
def test_accumulated_micro_batches_equal_one_large_batch(method, digits, trained_mlp, task):
    split = _split(digits)
    # SGD: Adam divides by √v, which turns rounding-level gradient differences near 0 into visible ones
    common = dict(epochs=2, lr=0.01, optimizer="sgd", augment=False, momentum=0.0)
    large = _run(method, trained_mlp, task, split, batch_size=32, **common)
    accumulated = _run(method, trained_mlp, task, split, batch_size=8, grad_accum=4, **common)
    one_micro = _run(method, trained_mlp, task, split, batch_size=8, **common)
    moved = _max_difference(large, trained_mlp)
    assert moved > 1e-3  # the runs do something
    assert _max_difference(large, accumulated) < 1e-5 * max(1.0, moved)
    assert _max_difference(large, one_micro) > 1e-3  # small batches without accumulation differ


class _ManualGradient(LoopMethod):
    """A method that sets .grad itself (autograd.grad, not backward): the loop's buffer path."""

    name = "manual-gradient-test"
    streams = ("forget",)

    def gradient_step(self, model, task, batches, config, state, step, ctx):
        loss = -task.loss(model, batches["forget"]).mean()
        params = [p for p in model.parameters() if p.requires_grad]
        for p, g in zip(params, torch.autograd.grad(loss, params)):
            p.grad = g
        return loss.detach()


def test_a_custom_gradient_step_is_accumulated_too(digits, trained_mlp, task):
    split = _split(digits)
    config = uk.resolve_config("ga", overrides=dict(epochs=1, lr=0.05, augment=False, optimizer="sgd"))
    runs = []
    for batch, accum in ((32, 1), (8, 4)):
        model = copy.deepcopy(trained_mlp)
        cfg = type(config)(**{**config.to_dict(), "batch_size": batch, "grad_accum": accum})
        _ManualGradient().run(model, task, split, cfg, RunContext(generator=torch.Generator().manual_seed(0)))
        runs.append(model)
    assert _max_difference(runs[0], trained_mlp) > 1e-3
    assert _max_difference(*runs) < 1e-6


def test_steps_count_the_accumulated_step(digits):
    split = _split(digits, n_forget=100)  # 13 micro-batches of 8: 4 steps of 4 (the last takes 1)
    config = uk.resolve_config("ga", overrides=dict(epochs=3, batch_size=8, grad_accum=4))
    assert total_steps(uk.METHODS.get("ga")(), {"forget": split.forget}, config) == 3 * 4


def test_uneven_last_step_is_weighted_by_its_examples(digits, trained_mlp, task):
    """100 examples, micro-batches of 8 accumulated by 13: one step over all 100 = one batch of 100."""
    split = _split(digits, n_forget=100)
    common = dict(epochs=1, lr=0.01, optimizer="sgd", augment=False, momentum=0.0)
    large = _run("ga", trained_mlp, task, split, batch_size=100, **common)
    accumulated = _run("ga", trained_mlp, task, split, batch_size=8, grad_accum=13, **common)
    assert _max_difference(large, accumulated) < 1e-6
    assert isinstance(split.forget, TensorData)
