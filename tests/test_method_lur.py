"""LUR: the step's gradient is ∇ of the look-ahead objective J, checked by an independent route
(J evaluated from scratch with first derivatives only, differentiated by finite differences)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from unlearnkit import build_model, unlearn
from unlearnkit.data.dataset import iterate_batches
from unlearnkit.methods.base import RunContext
from unlearnkit.methods.gradients import stat_buffers
from unlearnkit.methods.lur import LURConfig, lookahead_gradient

ALPHA, W_R, W_F = 0.5, 0.7, 0.4


def tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.Tanh(), nn.Linear(12, 10)).double()


def batches(class_split, dtype=torch.float64, n=24):
    f = next(iterate_batches(class_split.forget, n))
    r = next(iterate_batches(class_split.retain, n))
    return {"forget": (f[0].to(dtype), f[1]), "retain": (r[0].to(dtype), r[1])}


def ce_at(model, names, theta, batch):
    return F.cross_entropy(functional_call(model, dict(zip(names, theta)), (batch[0],)), batch[1])


def objective(model, b, theta, lookahead="retain"):
    """J computed from scratch: only a first derivative (for θ'), no graph kept."""
    names = [n for n, _ in model.named_parameters()]
    theta = [t.detach().requires_grad_() for t in theta]
    L_r = lambda th: ce_at(model, names, th, b["retain"])  # noqa: E731
    L_u = lambda th: -ce_at(model, names, th, b["forget"])  # noqa: E731
    inner, outer, w_in, w_out = (L_r, L_u, W_R, W_F) if lookahead == "retain" else (L_u, L_r, W_F, W_R)
    loss_in = inner(theta)
    g = torch.autograd.grad(loss_in, theta)
    fast = [t.detach() - ALPHA * gi for t, gi in zip(theta, g)]
    return float(w_in * loss_in.detach() + w_out * outer(fast))


def directional_fd(model, b, direction, lookahead="retain", eps=1e-5):
    theta = [p.detach() for p in model.parameters()]
    plus = [t + eps * d for t, d in zip(theta, direction)]
    minus = [t - eps * d for t, d in zip(theta, direction)]
    return (objective(model, b, plus, lookahead) - objective(model, b, minus, lookahead)) / (2 * eps)


def config(**kw):
    return LURConfig(alpha=ALPHA, retain_weight=W_R, forget_weight=W_F, **kw)


def dot(a, b):
    return float(sum((x * y).sum() for x, y in zip(a, b)))


def check_gradient_by_finite_differences(class_split, task, lookahead):
    model, b = tiny_model(), batches(class_split)
    J, grad, _ = lookahead_gradient(model, task, b, config(lookahead=lookahead))
    assert abs(float(J) - objective(model, b, list(model.parameters()), lookahead)) < 1e-12
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        v = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in model.parameters()]
        fd = directional_fd(model, b, v, lookahead)
        assert abs(dot(grad, v) - fd) <= 1e-6 * max(1.0, abs(fd)), (dot(grad, v), fd)


def test_second_order_gradient_matches_finite_differences_of_J(class_split, task):
    check_gradient_by_finite_differences(class_split, task, "retain")


def test_reverse_lookahead_computes_reversed_J_and_its_gradient(class_split, task):
    # J = w_f·L_u(θ) + w_r·L_r(θ − α∇L_u(θ)), value and gradient
    check_gradient_by_finite_differences(class_split, task, "forget")
    model, b = tiny_model(), batches(class_split)
    J_fwd, _, _ = lookahead_gradient(model, task, b, config(lookahead="retain"))
    J_rev, _, _ = lookahead_gradient(model, task, b, config(lookahead="forget"))
    assert abs(float(J_fwd) - float(J_rev)) > 1e-3  # the two orders are different objectives


def test_first_order_drops_exactly_the_hessian_term(class_split, task):
    model, b = tiny_model(), batches(class_split)
    _, g_first, _ = lookahead_gradient(model, task, b, config(first_order=True))
    _, g_second, _ = lookahead_gradient(model, task, b, config())
    # independent formula: w_r·∇L_r(θ) + w_f·∇L_u(θ'), θ' = θ − α∇L_r(θ)
    names = [n for n, _ in model.named_parameters()]
    theta = [p.detach().requires_grad_() for p in model.parameters()]
    g_r = torch.autograd.grad(ce_at(model, names, theta, b["retain"]), theta)
    fast = [(t - ALPHA * g).detach().requires_grad_() for t, g in zip(theta, g_r)]
    g_u = torch.autograd.grad(-ce_at(model, names, fast, b["forget"]), fast)
    expected = [W_R * a + W_F * c for a, c in zip(g_r, g_u)]
    for got, want in zip(g_first, expected):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    diff = sum(float((a - c).norm() ** 2) for a, c in zip(g_first, g_second)) ** 0.5
    size = sum(float(a.norm() ** 2) for a in g_second) ** 0.5
    assert diff > 1e-3 * size  # the Hessian term is really there in second-order mode


def test_cosine_is_between_the_forget_and_retain_gradients(class_split, task):
    model, b = tiny_model(), batches(class_split)
    _, _, cos = lookahead_gradient(model, task, b, config(first_order=True))
    names = [n for n, _ in model.named_parameters()]
    theta = [p.detach().requires_grad_() for p in model.parameters()]
    g_r = torch.autograd.grad(ce_at(model, names, theta, b["retain"]), theta)
    fast = [(t - ALPHA * g).detach().requires_grad_() for t, g in zip(theta, g_r)]
    g_u = torch.autograd.grad(-ce_at(model, names, fast, b["forget"]), fast)
    flat_u, flat_r = torch.cat([g.flatten() for g in g_u]), torch.cat([g.flatten() for g in g_r])
    assert abs(cos - float(F.cosine_similarity(flat_u, flat_r, dim=0))) < 1e-9


def test_lookahead_forward_leaves_batchnorm_buffers_alone(digits, class_split, task):
    """Running stats after a step's gradient = those after one plain forward of the inner batch at θ."""
    b = batches(class_split, torch.float32)
    for lookahead, inner in (("retain", "retain"), ("forget", "forget")):
        for bn in ("batch", "eval"):
            model = build_model("cnn", digits.input_shape, digits.num_classes, seed=0).train()
            expected = build_model("cnn", digits.input_shape, digits.num_classes, seed=0).train()
            with torch.no_grad():
                task.loss(expected, b[inner])
            lookahead_gradient(model, task, b, LURConfig(lookahead=lookahead, lookahead_bn=bn))
            got, want = stat_buffers(model), stat_buffers(expected)
            assert got.keys() == want.keys() and got
            for name in got:
                assert torch.equal(got[name], want[name]), (lookahead, bn, name)
            assert all(m.training for m in model.modules())


def test_rl_mode_uses_relabelled_forget_targets(class_split, task):
    model, b = tiny_model(), batches(class_split)
    J, _, _ = lookahead_gradient(model, task, b, config(unlearn_loss="rl", lookahead="forget"),
                                 torch.Generator().manual_seed(3))
    x, y = task.relabel(b["forget"], torch.Generator().manual_seed(3))
    assert (y != b["forget"][1]).all()
    names = [n for n, _ in model.named_parameters()]
    # J = w_f·CE(relabelled) + w_r·L_r(θ − α∇CE(relabelled)) recomputed by hand
    t = [p.detach().requires_grad_() for p in model.parameters()]
    loss_u = ce_at(model, names, t, (x, y))
    g = torch.autograd.grad(loss_u, t)
    fast = [a.detach() - ALPHA * gi for a, gi in zip(t, g)]
    expected = W_F * float(loss_u.detach()) + W_R * float(ce_at(model, names, fast, b["retain"]))
    assert abs(float(J) - expected) < 1e-10


def mean_forget_loss(model, task, split):
    with torch.no_grad():
        return float(torch.cat([task.loss(model.eval(), batch) for batch in iterate_batches(split.forget, 256)]).mean())


def test_end_to_end_raises_forget_loss_and_records_cosines(trained_mlp, task, class_split):
    ctx = RunContext()
    out = unlearn(trained_mlp, task, class_split, method="lur", epochs=3, ctx=ctx)
    assert mean_forget_loss(out, task, class_split) > 2 * mean_forget_loss(trained_mlp, task, class_split)
    steps = 3 * -(-len(class_split.forget_idx) // LURConfig().batch_size)
    cos = ctx.trace["cos_unlearn_retain"]
    assert len(cos) == steps and all(-1.0 <= c <= 1.0 for c in cos)


def straightforward_gradient(model, b, lookahead="retain", first_order=False):
    """∇J by the direct route: J built with torch.autograd.grad(create_graph=True) for θ' and
    differentiated in one backward (no separate HVP); first order: θ' = θ − α·stop_grad(∇L_in).
    Also returns cos(∇L_u, ∇L_r) from the same two gradients the method reads."""
    names = [n for n, _ in model.named_parameters()]
    theta = [p.detach().clone().requires_grad_() for p in model.parameters()]
    L_r = lambda th: ce_at(model, names, th, b["retain"])  # noqa: E731
    L_u = lambda th: -ce_at(model, names, th, b["forget"])  # noqa: E731
    inner, outer, w_in, w_out = (L_r, L_u, W_R, W_F) if lookahead == "retain" else (L_u, L_r, W_F, W_R)
    loss_in = inner(theta)
    g_in = torch.autograd.grad(loss_in, theta, create_graph=not first_order, retain_graph=True)
    fast = [t - ALPHA * g for t, g in zip(theta, g_in)]
    loss_out = outer(fast)
    J = w_in * loss_in + w_out * loss_out
    grad = torch.autograd.grad(J, theta, retain_graph=True)
    g_out = torch.autograd.grad(loss_out, fast)
    g_u, g_r = (g_out, g_in) if lookahead == "retain" else (g_in, g_out)
    flat_u, flat_r = torch.cat([g.detach().flatten() for g in g_u]), torch.cat([g.detach().flatten() for g in g_r])
    return grad, float(F.cosine_similarity(flat_u, flat_r, dim=0))


@pytest.mark.parametrize("lookahead", ["retain", "forget"])
@pytest.mark.parametrize("first_order", [False, True])
def test_optimized_step_matches_a_straightforward_computation(class_split, task, lookahead, first_order):
    """Regression guard for the per-step optimisations (∇J assembled in place with _foreach ops, the
    cosine from one chunked float64 pass, .grad handed over uncopied): the method's gradient_step
    leaves in .grad exactly ∇J computed the direct way, and the SGD step applies it."""
    from unlearnkit.methods.lur import LUR

    model, b = tiny_model(), batches(class_split)
    want, want_cos = straightforward_gradient(model, b, lookahead, first_order)
    cfg = config(lookahead=lookahead, first_order=first_order, lr=0.1)
    ctx = RunContext()
    theta = [p.detach().clone() for p in model.parameters()]
    LUR().gradient_step(model, task, b, cfg, {}, 0, ctx)
    for p, g in zip(model.parameters(), want):
        torch.testing.assert_close(p.grad, g, rtol=1e-10, atol=1e-12)
    assert abs(ctx.trace["cos_unlearn_retain"][0] - want_cos) < 1e-12
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    for p, t, g in zip(model.parameters(), theta, want):
        torch.testing.assert_close(p.detach(), t - 0.1 * g, rtol=1e-12, atol=1e-14)
