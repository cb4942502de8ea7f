"""IEU (methods/ieu.py): the noise scale and schedule, the decay, the bounded ascent, end to end."""
import copy

import pytest
import torch

from unlearnkit import unlearn
from unlearnkit.audits.base import AuditContext, per_example
from unlearnkit.errors import ConfigError
from unlearnkit.methods import METHODS, RunContext
from unlearnkit.methods.ieu import (
    IEU, IEUConfig, bounded_ascent, decay_weights_, inject_noise_, noise_scale, tensor_rms,
)


def _acc(model, task, data):
    return 100.0 * float(per_example(model, task, data, task.correct, AuditContext()).mean())


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def test_registered():
    assert METHODS.get("ieu") is IEU


def test_noise_has_the_configured_scale_per_tensor():
    g = torch.Generator().manual_seed(0)
    # two tensors with very different RMS (≈1 and ≈10) and one zero tensor
    params = [torch.randn(300, 200, generator=g), 10.0 * torch.randn(400, 150, generator=g), torch.zeros(50)]
    rms = [float(p.pow(2).mean().sqrt()) for p in params]  # RMS by hand
    before = [p.clone() for p in params]
    sigma = 0.05
    noise = inject_noise_(params, sigma, torch.Generator().manual_seed(1))
    for p, b, n, r in zip(params, before, noise, rms):
        assert torch.equal(p, b + n)  # the returned noise is exactly what was added
        if r == 0:
            assert torch.count_nonzero(n) == 0  # a zero tensor stays zero
        else:
            assert float(n.std()) == pytest.approx(sigma * r, rel=0.03)
            assert abs(float(n.mean())) < 0.01 * sigma * r * 10
    assert [float(x) for x in tensor_rms(before)] == pytest.approx(rms, rel=1e-5)


def test_noise_is_seeded():
    p1, p2 = [torch.ones(10, 10)], [torch.ones(10, 10)]
    inject_noise_(p1, 0.1, torch.Generator().manual_seed(7))
    inject_noise_(p2, 0.1, torch.Generator().manual_seed(7))
    assert torch.equal(p1[0], p2[0])
    p3 = [torch.ones(10, 10)]
    assert torch.equal(inject_noise_(p3, 0.0)[0], torch.zeros(10, 10)) and torch.equal(p3[0], torch.ones(10, 10))


def test_noise_schedule_and_injection_steps():
    assert noise_scale(0, 0.5, 0.9) == 0.5
    assert noise_scale(10, 0.5, 0.9) == pytest.approx(0.5 * 0.9**10)
    # the method injects only after every k-th step, with σ_t = σ₀γ^t (t = steps done); no decay here
    model = torch.nn.Linear(20, 20)
    config = IEUConfig(decay=0.0, noise_sigma=0.2, noise_gamma=0.9, noise_every=3)
    method, ctx = IEU(), RunContext(generator=torch.Generator().manual_seed(0))
    state = method.prepare(model, None, None, config, ctx)
    changed = []
    for step in range(10):
        before = _params(model)
        rms = [float(p.detach().pow(2).mean().sqrt()) for p in model.parameters()]
        method.after_step(model, state, step, config, ctx)
        deltas = [p.detach() - b for p, b in zip(model.parameters(), before)]
        if any(torch.count_nonzero(d) for d in deltas):
            changed.append(step + 1)
            sigma = noise_scale(step + 1, 0.2, 0.9)
            weight_delta = deltas[0]  # 400 entries: its std estimates σ_t·RMS(W)
            assert float(weight_delta.std()) == pytest.approx(sigma * rms[0], rel=0.15)
    assert changed == [3, 6, 9]
    assert ctx.trace["ieu_sigma"] == pytest.approx([0.2 * 0.9**3, 0.2 * 0.9**6, 0.2 * 0.9**9])


def test_decay_function_is_exact():
    params = [torch.randn(5, 5), torch.randn(5)]
    before = [p.clone() for p in params]
    decay_weights_(params, lr=0.1, decay=2.0)
    for p, b in zip(params, before):
        assert torch.allclose(p, 0.8 * b, rtol=0, atol=1e-7)  # θ ← (1 − ηλ)θ


def test_decay_exact_for_one_step_without_other_gradient(trained_mlp, task, class_split):
    # α = β = 0 and no noise: one phase-1 step only shrinks the weights, θ₁ = (1 − ηλ)θ₀ (SGD-momentum
    # sees a zero gradient), so every tensor's norm shrinks by exactly that factor
    before = _params(trained_mlp)
    out = unlearn(trained_mlp, task, class_split, method="ieu", epochs=1, batch_size=len(class_split.forget_idx),
                  lr=0.05, decay=3.0, ascent_weight=0.0, retain_weight=0.0, noise_sigma=0.0, repair_epochs=0)
    for p, b in zip(out.parameters(), before):
        assert torch.allclose(p.detach(), (1 - 0.05 * 3.0) * b, rtol=1e-6, atol=1e-7)
        assert float(p.detach().norm()) == pytest.approx(0.85 * float(b.norm()), rel=1e-6)


def test_bounded_ascent_values_and_gradient():
    losses = torch.tensor([1.0, 4.0, 12.0, 30.0], requires_grad=True)
    term = bounded_ascent(losses, cap=10.0)
    assert float(term.detach()) == pytest.approx(-(1 + 4 + 10 + 10) / 4)  # −mean min(ℓ, c)
    assert float(term.detach()) >= -10.0
    (grad,) = torch.autograd.grad(term, losses)
    assert grad.tolist() == [-0.25, -0.25, 0.0, 0.0]  # examples past the cap give no gradient
    unbounded = bounded_ascent(losses, cap=0.0)
    assert float(unbounded.detach()) == pytest.approx(-47 / 4)


def test_ascent_stops_once_every_forget_loss_is_past_the_cap(trained_mlp, task, class_split):
    # a model whose forget losses all exceed the cap: the ascent-only objective has zero gradient,
    # so phase 1 (no retain term, no decay, no noise) leaves the weights exactly unchanged
    model = copy.deepcopy(trained_mlp)
    with torch.no_grad():
        model[-1].bias[0] -= 100.0
    assert float(per_example(model, task, class_split.forget, task.loss, AuditContext()).min()) > 20.0
    out = unlearn(model, task, class_split, method="ieu", epochs=2, ascent_cap=20.0, retain_weight=0.0,
                  decay=0.0, noise_sigma=0.0, repair_epochs=0)
    assert all(torch.equal(p, q) for p, q in zip(out.parameters(), model.parameters()))
    # the unbounded ascent moves it
    out = unlearn(model, task, class_split, method="ieu", epochs=1, ascent_cap=0.0, retain_weight=0.0,
                  decay=0.0, noise_sigma=0.0, repair_epochs=0)
    assert not all(torch.equal(p, q) for p, q in zip(out.parameters(), model.parameters()))


def test_end_to_end_forgets_class_and_keeps_retain(trained_mlp, task, class_split):
    # defaults are tuned for the cnn; on the test's briefly trained MLP (RA ≈ 97) they keep RA ≈ 91
    assert _acc(trained_mlp, task, class_split.forget) > 90.0
    out = unlearn(trained_mlp, task, class_split, method="ieu", seed=0)
    assert _acc(out, task, class_split.forget) < 10.0
    assert _acc(out, task, class_split.retain) > _acc(trained_mlp, task, class_split.retain) - 10.0
    loss = lambda m: float(per_example(m, task, class_split.forget, task.loss, AuditContext()).mean())  # noqa: E731
    assert loss(out) > loss(trained_mlp) + 2.0


def test_deterministic_given_seed(trained_mlp, task, class_split):
    kw = dict(epochs=1, repair_epochs=1, seed=4)
    a = unlearn(trained_mlp, task, class_split, method="ieu", **kw)
    b = unlearn(trained_mlp, task, class_split, method="ieu", **kw)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    # the seed matters (the noise and the data order): another seed gives another model
    c = unlearn(trained_mlp, task, class_split, method="ieu", **{**kw, "seed": 5})
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_bad_config():
    for bad in (dict(noise_every=0), dict(noise_gamma=0.0), dict(noise_sigma=-1.0), dict(decay=-1.0),
                dict(lr=0.1, decay=10.0), dict(repair_epochs=-1)):
        with pytest.raises(ConfigError):
            IEUConfig(**bad)
