"""ROSU (methods/rosu.py): the retain-orthogonal surrogate and its defining properties."""
import copy

import pytest
import torch
from torch import nn

from unlearnkit import ConfigError, build_model, fit, unlearn
from unlearnkit.data import iterate_batches
from unlearnkit.methods import RunContext, TrainConfig, build_config
from unlearnkit.methods.gradients import add_to_params, grads_of, trainable
from unlearnkit.methods.minmax import uam_perturbation
from unlearnkit.methods.rosu import ROSU, retain_neutral_direction, retain_orthogonal_perturbation


@pytest.fixture(scope="module")
def trained_cnn(digits, task):
    """The bench's default architecture (BatchNorm CNN), trained briefly on all of digits."""
    model = build_model("cnn", digits.input_shape, digits.num_classes, seed=0)
    fit(model, task, digits.train, TrainConfig(epochs=6), RunContext())
    return model.eval()

SHAPES = [(4, 3), (7,), (2, 3, 2), (1,)]


def rand_grads(seed, shapes=SHAPES, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=dtype) for s in shapes]


def flat(grads):
    return torch.cat([t.reshape(-1) for t in grads]).double()


def unflat(vector, like):
    out, i = [], 0
    for t in like:
        out.append(vector[i:i + t.numel()].reshape(t.shape).to(t.dtype))
        i += t.numel()
    return out


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("rho", [0.05, 1.0, 3.0])
def test_perturbation_is_retain_orthogonal_with_norm_rho(seed, rho):
    g_f, g_r = rand_grads(seed), rand_grads(100 + seed)
    g_r = [r + 0.8 * f for r, f in zip(g_r, g_f)]  # positively coupled, as in the paper's regime
    eps = flat(retain_orthogonal_perturbation(g_f, g_r, rho))
    f, r = flat(g_f), flat(g_r)
    assert abs(float(eps @ r)) <= 1e-6 * rho * float(r.norm())  # ⟨ε, g_r⟩ = 0
    assert float(eps.norm()) == pytest.approx(rho, rel=1e-6)  # ‖ε‖ = ρ
    # optimal: the forget gain equals the closed-form maximum ρ‖g_f‖·sin∠(g_f, g_r)
    cos = float(f @ r / (f.norm() * r.norm()))
    assert float(eps @ f) == pytest.approx(rho * float(f.norm()) * (1 - cos**2) ** 0.5, rel=1e-5)
    # and beats any other feasible direction (random ones projected on g_r's complement)
    for k in range(5):
        v = flat(rand_grads(1000 + k))
        v = v - (v @ r) / (r @ r) * r
        assert float(rho * v / v.norm() @ f) <= float(eps @ f) + 1e-6


def test_per_layer_projection_is_orthogonal_per_tensor_and_globally():
    g_f, g_r = rand_grads(1), rand_grads(2)
    eps = retain_orthogonal_perturbation(g_f, g_r, 0.5, per_layer=True)
    for e, r in zip(eps, g_r):
        assert abs(float((e.double() * r.double()).sum())) < 1e-6
    assert float(flat(eps).norm()) == pytest.approx(0.5, rel=1e-6)
    # not the same as the global projection
    assert not torch.allclose(flat(eps), flat(retain_orthogonal_perturbation(g_f, g_r, 0.5)), atol=1e-4)


def test_equals_uam_when_gradients_are_orthogonal():
    g_f, g_r = rand_grads(3), rand_grads(4)
    f, r = flat(g_f), flat(g_r)
    g_r = unflat(r - (r @ f) / (f @ f) * f, g_r)  # g_r ⟂ g_f
    rosu = flat(retain_orthogonal_perturbation(g_f, g_r, 0.3))
    assert torch.allclose(rosu, flat(uam_perturbation(g_f, 0.3)), atol=1e-6)
    assert torch.allclose(rosu, 0.3 * f / f.norm(), atol=1e-6)


@pytest.mark.parametrize("factor", [3.0, -2.0])
def test_parallel_gradients_fall_back(factor):
    g_f = rand_grads(5)
    g_r = [factor * t for t in g_f]  # g_f ∥ g_r: no retain-neutral ascent direction
    assert retain_neutral_direction(g_f, g_r) is None
    zero = retain_orthogonal_perturbation(g_f, g_r, 1.0, fallback="zero")
    assert all(float(t.abs().max()) == 0.0 for t in zero)
    uam = retain_orthogonal_perturbation(g_f, g_r, 1.0, fallback="uam")
    assert torch.allclose(flat(uam), flat(uam_perturbation(g_f, 1.0)))


def test_nearly_parallel_but_above_tolerance_is_still_neutral():
    g_f, noise = rand_grads(6), rand_grads(7)
    g_r = [2.0 * f + 1e-3 * n for f, n in zip(g_f, noise)]  # sin∠ ≈ 1e-3 > tol 1e-4
    eps = flat(retain_orthogonal_perturbation(g_f, g_r, 1.0))
    assert float(eps.norm()) == pytest.approx(1.0, rel=1e-5)
    assert abs(float(eps @ flat(g_r))) <= 1e-5 * float(flat(g_r).norm())


def test_zero_retain_gradient_gives_uam_and_zero_forget_gradient_gives_zero():
    g_f = rand_grads(8)
    zeros = [torch.zeros_like(t) for t in g_f]
    assert torch.allclose(flat(retain_orthogonal_perturbation(g_f, zeros, 0.4)), flat(uam_perturbation(g_f, 0.4)))
    assert float(flat(retain_orthogonal_perturbation(zeros, g_f, 0.4)).abs().max()) == 0.0


def test_surrogate_retain_loss_first_order(digits, task):
    """At θ+ε the retain loss moves by ≈ ρ‖g_r‖cos for UAM and only O(ρ²) for ROSU."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10)).double()
    x, y = next(iterate_batches(digits.train, 200))
    forget, retain = (x[:60].double(), y[:60]), (x[60:].double(), y[60:])  # same distribution: coupled
    params = trainable(model)
    g_f = grads_of(task.loss(model, forget).mean(), params)
    loss_r = task.loss(model, retain).mean()
    g_r = grads_of(loss_r, params)
    f, r = flat(g_f), flat(g_r)
    cos = float(f @ r / (f.norm() * r.norm()))
    assert cos > 0.3  # an untrained model: forget and retain gradients align

    def rise(eps):
        m = copy.deepcopy(model)
        add_to_params(trainable(m), eps)
        with torch.no_grad():
            return float(task.loss(m, retain).mean() - loss_r)

    for rho in (1e-3, 1e-4):
        predicted = rho * float(r.norm()) * cos  # first-order change under UAM's ε
        uam = rise(uam_perturbation(g_f, rho))
        rosu = rise(retain_orthogonal_perturbation(g_f, g_r, rho))
        assert uam == pytest.approx(predicted, rel=0.02)
        assert abs(rosu) < 0.01 * abs(uam)
    # ROSU's change is second order: it shrinks ≈ 100× when ρ shrinks 10×
    big = rise(retain_orthogonal_perturbation(g_f, g_r, 1e-2))
    small = rise(retain_orthogonal_perturbation(g_f, g_r, 1e-3))
    assert 50 < big / small < 200


def test_config_validation():
    with pytest.raises(ConfigError, match="parallel_fallback"):
        build_config("rosu", parallel_fallback="skip")
    with pytest.raises(ConfigError, match="amp"):
        build_config("rosu", amp=-1.0)


def mean_loss(model, task, dataset):
    model.eval()
    with torch.no_grad():
        return float(torch.cat([task.loss(model, b) for b in iterate_batches(dataset, 512)]).mean())


def test_end_to_end_on_digits(trained_cnn, task, class_split):
    ctx = RunContext()
    before = mean_loss(trained_cnn, task, class_split.forget)
    out = unlearn(trained_cnn, task, class_split, method="rosu", epochs=1, rho=2.0, ctx=ctx)
    assert mean_loss(out, task, class_split.forget) > before + 0.5
    trace = ctx.trace
    n = len(trace["loss_r_surrogate"])
    assert len(trace["cos_gf_gr"]) == len(trace["eps_dot_gr"]) == n  # fresh g_r on every step
    for dot_, norm_, size in zip(trace["eps_dot_gr"], trace["gr_norm"], trace["eps_norm"]):
        assert abs(dot_) <= 1e-5 * 2.0 * norm_  # ⟨ε, g_r⟩ ≈ 0
        assert size == pytest.approx(2.0, rel=1e-5)  # ‖ε‖ = ρ
    assert len(trace["cos_gr_stale"]) == n - 1


def test_reuse_and_amplification_switches(trained_cnn, task, class_split):
    ctx = RunContext()
    plain = unlearn(trained_cnn, task, class_split, method="rosu", epochs=1, rho=2.0, reuse_retain_grad=True, ctx=ctx)
    assert len(ctx.trace["cos_gf_gr"]) == 1  # fresh g_r only on the first step, then the stale d
    amplified = unlearn(trained_cnn, task, class_split, method="rosu", epochs=1, rho=2.0,
                        reuse_retain_grad=True, amp=1.0)
    # amplification ascends along the retain-neutral direction: more forgetting
    assert mean_loss(amplified, task, class_split.forget) > mean_loss(plain, task, class_split.forget)


def bn_mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))


def batches_of(split, n_f, n_r, seed):
    gen = torch.Generator().manual_seed(seed)
    forget = next(iterate_batches(split.forget, n_f, shuffle=True, generator=gen))
    retain = next(iterate_batches(split.retain, n_r, shuffle=True, generator=gen))
    return {"forget": forget, "retain": retain}


def reference_rosu_steps(model, steps, *, rho, lr, amp, per_layer, reuse):
    """Independent ROSU steps (plain SGD) on flat float64 vectors via torch.autograd.grad: ε = ρ·u,
    u = P g_f/‖P g_f‖ with P projecting out the basis (g_r at θ, or the previous d with ``reuse``
    from the second step on), globally or block by block; θ ← θ − lr·(∇L_r(θ+ε) − κ·u). BatchNorm
    running statistics: only the merged forward and the surrogate forward update them."""
    model = copy.deepcopy(model).train()
    params = list(model.parameters())
    sizes = [p.numel() for p in params]
    flat = lambda grads: torch.cat([g.reshape(-1) for g in grads]).double()  # noqa: E731

    def loss_grad(x, y, keep_buffers=False):
        saved = [b.clone() for b in model.buffers()]
        g = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), params)
        if keep_buffers:
            with torch.no_grad():
                for b, s in zip(model.buffers(), saved):
                    b.copy_(s)
        return flat(g)

    last_d = None
    for batches in steps:
        (xf, yf), (xr, yr) = batches["forget"], batches["retain"]
        logits = model(torch.cat([xf, xr]))
        g_f = flat(torch.autograd.grad(nn.functional.cross_entropy(logits[: len(yf)], yf), params))
        basis = last_d if reuse and last_d is not None else loss_grad(xr, yr, keep_buffers=True)
        blocks = list(zip(g_f.split(sizes), basis.split(sizes))) if per_layer else [(g_f, basis)]
        p = torch.cat([f - (f @ r) / (r @ r) * r for f, r in blocks])
        u = p / p.norm()
        theta = flat([q.detach() for q in params])
        with torch.no_grad():
            for q, e in zip(params, (rho * u).split(sizes)):
                q.add_(e.reshape(q.shape).float())
        d = loss_grad(xr, yr)
        with torch.no_grad():
            for q, t, step in zip(params, theta.split(sizes), (theta - lr * (d - amp * u)).split(sizes)):
                q.copy_(step.reshape(q.shape).float())
        last_d = d
    return [q.detach() for q in params], [b.detach() for b in model.buffers()]


@pytest.mark.parametrize("amp,per_layer,reuse", [(0.0, False, False), (0.5, False, False), (0.5, True, False),
                                                 (0.0, False, True)])
def test_optimized_steps_match_a_straightforward_computation(task, class_split, amp, per_layer, reuse):
    """Regression guard for the per-step optimisations (fused projection passes, ε scaled once,
    .grad handed over uncopied but d kept apart from it): three steps through gradient_step and the
    loop's optimizer equal an independent flat float64 computation, BatchNorm buffers included."""
    model = bn_mlp(4)
    steps = [batches_of(class_split, 10 + i, 16 + i, seed=i) for i in range(3)]
    config = build_config("rosu", lr=0.1, momentum=0.0, weight_decay=0.0, rho=0.5, amp=amp,
                          per_layer=per_layer, reuse_retain_grad=reuse)
    expected, buffers = reference_rosu_steps(model, steps, rho=0.5, lr=0.1, amp=amp, per_layer=per_layer,
                                             reuse=reuse)
    model = copy.deepcopy(model).train()
    params = trainable(model)
    optimizer = torch.optim.SGD(params, lr=0.2)
    ctx, state = RunContext(), {"total": 3}
    for i, batches in enumerate(steps):
        optimizer.zero_grad(set_to_none=True)
        ROSU().gradient_step(model, task, batches, config, state, i, ctx)
        kept = [d.clone() for d in state["last_d"]]
        # an in-place change of .grad (as clipping or a pre-step hook makes) must not reach the kept d;
        # halved here and stepped at twice the learning rate: the same update
        torch._foreach_mul_([p.grad for p in params], 0.5)
        assert all(torch.equal(a, b) for a, b in zip(kept, state["last_d"]))
        optimizer.step()
    for got, want in zip(params, expected):
        torch.testing.assert_close(got.detach(), want, atol=2e-6, rtol=1e-5)
    for got, want in zip(model.buffers(), buffers):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    assert ctx.trace["parallel_fallback"] == [0.0, 0.0, 0.0]
    assert ctx.trace["eps_norm"] == pytest.approx([0.5] * 3, rel=1e-6)
