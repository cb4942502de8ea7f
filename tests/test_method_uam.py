"""UAM (methods/minmax.py): the min–max step, checked against an independent flat-vector computation."""
import copy
import math

import pytest
import torch
from torch import nn

from unlearnkit import METHODS, ConfigError, build_model, fit, unlearn
from unlearnkit.data import iterate_batches
from unlearnkit.methods import RunContext, TrainConfig, build_config
from unlearnkit.methods.gradients import trainable
from unlearnkit.methods.loop import make_optimizer
from unlearnkit.methods.minmax import UAM, cosine_rho, uam_perturbation
from unlearnkit.methods.rosu import ROSU


@pytest.fixture(scope="module")
def trained_cnn(digits, task):
    """The bench's default architecture (BatchNorm CNN), trained briefly on all of digits."""
    model = build_model("cnn", digits.input_shape, digits.num_classes, seed=0)
    fit(model, task, digits.train, TrainConfig(epochs=6), RunContext())
    return model.eval()


def mean_loss(model, task, dataset):
    model.eval()
    with torch.no_grad():
        return float(torch.cat([task.loss(model, b) for b in iterate_batches(dataset, 512)]).mean())


def bn_mlp(seed=0):
    """A tiny MLP with BatchNorm: the merged-batch forward then changes the forget loss."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16, track_running_stats=False),
                         nn.ReLU(), nn.Linear(16, 10))


def batches_of(split, n_f=12, n_r=20):
    forget = next(iterate_batches(split.forget, n_f, shuffle=True, generator=torch.Generator().manual_seed(1)))
    retain = next(iterate_batches(split.retain, n_r, shuffle=True, generator=torch.Generator().manual_seed(2)))
    return {"forget": forget, "retain": retain}


def flat_reference_update(model, task, batches, rho, lr, *, concat, rosu):
    """θ − lr·∇L_r(θ+ε) with everything on one flat vector via torch.func (no library helpers)."""
    model = copy.deepcopy(model).train()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def unflat(v):
        out, i = {}, 0
        for n, s in zip(names, shapes):
            out[n] = v[i:i + math.prod(s)].reshape(s)
            i += math.prod(s)
        return out

    def ce(v, x, y):
        logits = torch.func.functional_call(model, unflat(v), (x,))
        return nn.functional.cross_entropy(logits, y, reduction="none")

    (xf, yf), (xr, yr) = batches["forget"], batches["retain"]
    if concat:
        g_f = torch.func.grad(lambda v: ce(v, torch.cat([xf, xr]), torch.cat([yf, yr]))[: len(yf)].mean())(theta)
    else:
        g_f = torch.func.grad(lambda v: ce(v, xf, yf).mean())(theta)
    g_r = torch.func.grad(lambda v: ce(v, xr, yr).mean())(theta)
    direction = g_f - (g_f @ g_r) / (g_r @ g_r) * g_r if rosu else g_f
    eps = rho * direction / direction.norm()
    d = torch.func.grad(lambda v: ce(v, xr, yr).mean())(theta + eps)
    return theta - lr * d


@pytest.mark.parametrize("concat", [True, False])
@pytest.mark.parametrize("method", [UAM, ROSU])
def test_applied_update_is_retain_gradient_at_surrogate(task, class_split, method, concat):
    model = bn_mlp()
    batches = batches_of(class_split)
    config = build_config(method.name, lr=0.1, momentum=0.0, weight_decay=0.0, rho=0.5, concat_forward=concat)
    expected = flat_reference_update(model, task, batches, 0.5, 0.1, concat=concat, rosu=method is ROSU)
    params = trainable(model.train())
    optimizer = make_optimizer(params, config)
    optimizer.zero_grad(set_to_none=True)
    method().gradient_step(model, task, batches, config, {"total": 1}, 0, RunContext())
    optimizer.step()
    got = torch.cat([p.detach().reshape(-1) for p in params])
    assert torch.allclose(got, expected, atol=1e-6, rtol=1e-5)
    # the merged forward matters with BatchNorm: the other choice gives another update
    other = flat_reference_update(model, task, batches, 0.5, 0.1, concat=not concat, rosu=method is ROSU)
    assert not torch.allclose(got, other, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", ["uam", "rosu"])
def test_parameters_restored_exactly_before_step(trained_mlp, task, class_split, name):
    # lr = 0, no momentum: the optimizer step is a no-op, so θ must come back bit-for-bit
    out = unlearn(trained_mlp, task, class_split, method=name, epochs=1, lr=0.0, momentum=0.0, rho=2.0)
    assert all(torch.equal(a, b) for a, b in zip(out.parameters(), trained_mlp.parameters()))
    # the code's restore (θ + ε − ε) is only exact up to rounding: the test can tell them apart
    out = unlearn(trained_mlp, task, class_split, method=name, epochs=1, lr=0.0, momentum=0.0, rho=2.0,
                  exact_restore=False)
    assert not all(torch.equal(a, b) for a, b in zip(out.parameters(), trained_mlp.parameters()))


def test_uam_perturbation_is_normalised_forget_gradient():
    torch.manual_seed(0)
    g = [torch.randn(3, 4), torch.randn(5), torch.randn(2, 2, 2)]
    eps = uam_perturbation(g, 0.7)
    flat_g = torch.cat([t.reshape(-1) for t in g])
    flat_eps = torch.cat([t.reshape(-1) for t in eps])
    assert torch.allclose(flat_eps, 0.7 * flat_g / flat_g.norm(), atol=1e-7)
    assert all(t.shape == e.shape for t, e in zip(g, eps))
    assert all(float(t.abs().sum()) == 0 for t in uam_perturbation([torch.zeros(3)], 1.0))  # g_f = 0: ε = 0


def test_cosine_rho_follows_reference_updater():
    assert cosine_rho(2.0, 0, 10) == 2.0
    assert cosine_rho(2.0, 5, 10) == pytest.approx(1.0)
    assert cosine_rho(2.0, 10, 10) == pytest.approx(0.0)
    assert cosine_rho(2.0, 3, 10, start=4) == 2.0  # before the start: ρ
    assert cosine_rho(2.0, 7, 10, start=4) == pytest.approx(1.0)
    assert cosine_rho(2.0, 4, 5, start=4) == 0.0  # one effective step: straight to 0, as the code


def test_cosine_schedule_is_applied(trained_mlp, task, class_split):
    ctx = RunContext()
    unlearn(trained_mlp, task, class_split, method="uam", epochs=1, rho=1.0, rho_schedule="cosine", ctx=ctx)
    rhos = ctx.trace["rho"]
    assert rhos[0] == 1.0 and rhos[-1] < 0.1 and all(a >= b for a, b in zip(rhos, rhos[1:]))
    assert ctx.trace["eps_norm"] == pytest.approx(rhos, rel=1e-5)


def test_config_validation():
    with pytest.raises(ConfigError, match="rho must be"):
        build_config("uam", rho=-1.0)
    with pytest.raises(ConfigError, match="rho_schedule"):
        build_config("uam", rho_schedule="step")
    assert "uam" in METHODS and METHODS.get("uam").summary


def test_end_to_end_raises_forget_loss(trained_cnn, task, class_split):
    ctx = RunContext()
    before = mean_loss(trained_cnn, task, class_split.forget)
    out = unlearn(trained_cnn, task, class_split, method="uam", epochs=1, rho=2.0, trace_retain_grad=True, ctx=ctx)
    assert mean_loss(out, task, class_split.forget) > before + 0.5
    steps = len(ctx.trace["loss_r_surrogate"])
    assert steps == -(-len(class_split.retain) // 64)  # one epoch = one pass over the retain set
    # with the diagnostic g_r: ⟨ε, g_r⟩ is UAM's first-order retain change ρ‖g_r‖cos(g_f, g_r)
    for dot_, norm_, cos_ in zip(ctx.trace["eps_dot_gr"], ctx.trace["gr_norm"], ctx.trace["cos_gf_gr"]):
        assert dot_ == pytest.approx(2.0 * norm_ * cos_, rel=1e-4, abs=1e-9)


def test_retain_gradient_diagnostic_changes_nothing(trained_cnn, task, class_split):
    # the extra retain forward at θ must leave BatchNorm running statistics alone
    plain = unlearn(trained_cnn, task, class_split, method="uam", epochs=1)
    traced = unlearn(trained_cnn, task, class_split, method="uam", epochs=1, trace_retain_grad=True)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), traced.state_dict().values()))


def reference_uam_steps(model, task, steps, *, rho, lr, momentum, weight_decay, exact):
    """Independent UAM steps with SGD(momentum, weight decay), written per parameter with
    torch.autograd.grad (no library helper): θ ← θ − lr·buf, buf ← μ·buf + ∇L_r(θ+ε) + wd·θ,
    ε = ρ·g_f/‖g_f‖ from the forget part of the merged forward. Returns θ and the per-step ‖ε‖."""
    model = copy.deepcopy(model).train()
    params = list(model.parameters())
    bufs, eps_norms = None, []
    for batches in steps:
        (xf, yf), (xr, yr) = batches["forget"], batches["retain"]
        logits = model(torch.cat([xf, xr]))
        g_f = torch.autograd.grad(nn.functional.cross_entropy(logits[: len(yf)], yf), params)
        g_norm = torch.sqrt(sum((g.double() ** 2).sum() for g in g_f))
        eps = [rho * g / (float(g_norm) + 1e-16) for g in g_f]
        eps_norms.append(float(torch.sqrt(sum((e.double() ** 2).sum() for e in eps))))
        theta = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, e in zip(params, eps):
                p.add_(e)
        d = torch.autograd.grad(nn.functional.cross_entropy(model(xr), yr), params)
        with torch.no_grad():
            for p, t, e in zip(params, theta, eps):
                if exact:
                    p.copy_(t)
                else:
                    p.sub_(e)
            step = [g + weight_decay * p for g, p in zip(d, params)]
            bufs = step if bufs is None else [momentum * b + s for b, s in zip(bufs, step)]
            for p, b in zip(params, bufs):
                p.sub_(lr * b)
    return [p.detach() for p in params], eps_norms


@pytest.mark.parametrize("exact", [True, False])
def test_optimized_steps_match_a_straightforward_computation(task, class_split, exact):
    """Regression guard for the per-step optimisations (foreach updates, reused anchor buffers,
    .grad handed over uncopied, chunked float64 inner products): three steps through the method's
    gradient_step and the loop's optimizer (momentum, weight decay) equal an independent
    per-parameter computation to float tolerance, and so does the traced ‖ε‖."""
    model = bn_mlp(3)
    steps = [batches_of(class_split, 10 + i, 14 + i) for i in range(3)]
    config = build_config("uam", lr=0.05, momentum=0.9, weight_decay=5e-4, rho=0.5, exact_restore=exact)
    expected, eps_norms = reference_uam_steps(model, task, steps, rho=0.5, lr=0.05, momentum=0.9,
                                              weight_decay=5e-4, exact=exact)
    model = copy.deepcopy(model).train()
    params = trainable(model)
    optimizer = make_optimizer(params, config)
    ctx, state = RunContext(), {"total": 3}
    for i, batches in enumerate(steps):
        optimizer.zero_grad(set_to_none=True)
        UAM().gradient_step(model, task, batches, config, state, i, ctx)
        optimizer.step()
    for got, want in zip(params, expected):
        torch.testing.assert_close(got.detach(), want, atol=1e-6, rtol=1e-5)
    assert ctx.trace["eps_norm"] == pytest.approx(eps_norms, rel=1e-6)


def test_inner_products_match_flat_float64_in_any_chunking(monkeypatch):
    from unlearnkit.methods import gradients

    gen = torch.Generator().manual_seed(0)
    shapes = [(5, 3), (7,), (2, 3, 4), (1,), (40,)]
    vectors = [[torch.randn(*s, generator=gen) for s in shapes] for _ in range(3)]
    flat = [torch.cat([t.reshape(-1) for t in v]).double() for v in vectors]
    pairs = [(0, 0), (0, 1), (2, 1), (2, 2)]
    want = [float(flat[i] @ flat[j]) for i, j in pairs]
    for chunk in (1, 10, 30, 1 << 16):  # one tensor at a time, several chunks, all in one
        monkeypatch.setattr(gradients, "INNER_PRODUCT_CHUNK", chunk)
        assert gradients.inner_products(vectors, pairs) == pytest.approx(want, rel=1e-13)
    assert gradients.inner_products([vectors[0], None], [(0, 0)]) == pytest.approx(want[:1], rel=1e-13)


@pytest.mark.parametrize("name", ["uam", "rosu"])
def test_relative_rho_is_a_fraction_of_the_starting_weight_norm(trained_mlp, task, class_split, name):
    theta0 = math.sqrt(sum(float((p.detach().double() ** 2).sum()) for p in trained_mlp.parameters()))
    ctx = RunContext()
    unlearn(trained_mlp, task, class_split, method=name, epochs=1, rho=0.01, rho_scale="relative", ctx=ctx)
    assert ctx.trace["rho"] == pytest.approx([0.01 * theta0] * len(ctx.trace["rho"]), rel=1e-9)
    assert ctx.trace["eps_norm"] == pytest.approx(ctx.trace["rho"], rel=1e-5)  # ‖ε‖ = ρ·‖θ₀‖
    # a model with 10× the weights gets a 10× radius: the same proportion
    big = copy.deepcopy(trained_mlp)
    with torch.no_grad():
        for p in big.parameters():
            p.mul_(10.0)
    ctx_big = RunContext()
    unlearn(big, task, class_split, method=name, epochs=1, rho=0.01, rho_scale="relative", ctx=ctx_big)
    assert ctx_big.trace["rho"][0] == pytest.approx(10.0 * ctx.trace["rho"][0], rel=1e-9)
    with pytest.raises(ConfigError, match="rho_scale"):
        build_config(name, rho_scale="percent")
