"""SalUn: the saliency mask keeps exactly the top fraction of |∇ forget loss| (globally or per
tensor), weights outside it stay bit-identical through every step even with momentum, weight decay
and Adam, and with the whole network salient SalUn is exactly random_label (its objective, reused)."""
import copy

import pytest
import torch

from unlearnkit import ConfigError, unlearn
from unlearnkit.data import iterate_batches
from unlearnkit.methods import RunContext, build_config
from unlearnkit.methods.salun import SalUn, forget_gradient, top_fraction_mask


def mean_loss(model, task, dataset):
    model.eval()
    with torch.no_grad():
        return float(torch.cat([task.loss(model, b) for b in iterate_batches(dataset, 512)]).mean())


def reference_saliency(model, task, forget, batch_size=64):
    """|Σ_batches ∇ mean-batch forget loss|, accumulated in .grad as the reference code does."""
    m = copy.deepcopy(model).eval()
    m.zero_grad()
    for batch in iterate_batches(forget, batch_size):
        (-task.loss(m, batch).mean()).backward()  # the code's sign; |·| removes it
    return [p.grad.abs() for p in m.parameters()]


def method_mask(model, task, split, fraction=0.5, scope="global", batch_size=64):
    g = forget_gradient(copy.deepcopy(model), task, split.forget, batch_size, "cpu")
    return top_fraction_mask([x.abs() for x in g], fraction, scope)


@pytest.mark.parametrize("fraction", [0.5, 0.1])
def test_global_mask_keeps_the_top_fraction_of_forget_gradient_magnitude(trained_mlp, task, class_split, fraction):
    saliency = reference_saliency(trained_mlp, task, class_split.forget)
    masks = method_mask(trained_mlp, task, class_split, fraction)
    flat_s = torch.cat([s.flatten() for s in saliency])
    flat_m = torch.cat([m.flatten() for m in masks])
    assert int(flat_m.sum()) == int(fraction * flat_s.numel())
    # every kept weight is at least as salient as every frozen one (up to float summation order)
    assert flat_s[flat_m].min() >= flat_s[~flat_m].max() * (1 - 1e-5)
    # the k-th largest by an independent sort sits at the threshold
    kth = torch.sort(flat_s, descending=True).values[int(fraction * flat_s.numel()) - 1]
    assert flat_s[flat_m].min() == pytest.approx(float(kth), rel=1e-5)


def test_layer_mask_keeps_the_top_fraction_of_each_tensor(trained_mlp, task, class_split):
    saliency = reference_saliency(trained_mlp, task, class_split.forget)
    masks = method_mask(trained_mlp, task, class_split, 0.5, "layer")
    for s, m in zip(saliency, masks):
        assert int(m.sum()) == int(0.5 * s.numel())
        assert s[m].min() >= s[~m].max() * (1 - 1e-5)
    # the global mask is not per-tensor balanced on this model (so the switch changes something)
    global_masks = method_mask(trained_mlp, task, class_split, 0.5, "global")
    assert any(abs(float(m.float().mean()) - 0.5) > 0.05 for m in global_masks)


@pytest.mark.parametrize("optimizer,extra", [("sgd", {"momentum": 0.9, "weight_decay": 5e-3}),
                                             ("adamw", {"weight_decay": 0.1, "lr": 1e-3}),
                                             ("adam", {"weight_decay": 1e-2, "lr": 1e-3})])
def test_weights_outside_the_mask_stay_bit_identical_every_step(trained_mlp, task, class_split, optimizer, extra):
    masks = method_mask(trained_mlp, task, class_split, batch_size=32)  # the mask the run below builds
    start = [p.detach().clone() for p in trained_mlp.parameters()]
    checked = []

    def on_step(model, steps_done):
        for p, p0, m in zip(model.parameters(), start, masks):
            assert torch.equal(p[~m], p0[~m]), f"a frozen weight moved at step {steps_done}"
        checked.append(steps_done)

    ctx = RunContext(on_step=on_step)
    hp = {"epochs": 3, "batch_size": 32, "optimizer": optimizer, "grad_clip": 1.0, **extra}
    out = unlearn(trained_mlp, task, class_split, method="salun", ctx=ctx, **hp)
    n = len(class_split.forget) + len(class_split.retain)
    assert len(checked) == 3 * -(-n // 32)  # the union feed: 3 passes over D_f ∪ D_r in batches of 32
    moved = 0
    for p, p0, m in zip(out.parameters(), start, masks):
        assert torch.equal(p[~m].view(torch.int32), p0[~m].view(torch.int32))  # bit-level
        moved += int((p[m] != p0[m]).sum())
    assert moved > 0.9 * sum(int(m.sum()) for m in masks)  # the salient half did train


def test_masking_the_gradient_alone_would_let_weight_decay_leak(trained_mlp, task, class_split, monkeypatch):
    """Negative control: without the after-step restore, SGD weight decay and momentum move frozen
    weights (the reference code's bug before its 2026 fix); the test above would catch it."""
    masks = method_mask(trained_mlp, task, class_split)
    monkeypatch.setattr(SalUn, "after_step", lambda self, *a, **k: None)
    out = unlearn(trained_mlp, task, class_split, method="salun", epochs=1, weight_decay=5e-3)
    leaked = sum(int((p[~m] != p0[~m]).sum()) for p, p0, m in zip(out.parameters(), trained_mlp.parameters(), masks))
    assert leaked > 0


def test_full_mask_is_exactly_random_label(trained_mlp, task, class_split):
    a = unlearn(trained_mlp, task, class_split, method="salun", epochs=2, lr=0.01, saliency_fraction=1.0)
    b = unlearn(trained_mlp, task, class_split, method="random_label", epochs=2, lr=0.01)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_end_to_end_raises_forget_loss(trained_mlp, task, class_split):
    before_f = mean_loss(trained_mlp, task, class_split.forget)
    ctx = RunContext()
    out = unlearn(trained_mlp, task, class_split, method="salun", epochs=1, ctx=ctx)
    assert ctx.trace["salun_mask_fraction"] == [pytest.approx(0.5, abs=1e-4)]
    assert mean_loss(out, task, class_split.forget) > before_f + 1.0
    assert mean_loss(out, task, class_split.retain) < 1.0


def test_config_is_validated():
    with pytest.raises(ConfigError, match="saliency_fraction"):
        build_config("salun", saliency_fraction=0.0)
    with pytest.raises(ConfigError, match="mask_scope"):
        build_config("salun", mask_scope="row")
