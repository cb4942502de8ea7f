"""ℓ1-sparse: the penalty coefficient follows its configured schedule step by step (against the closed
form written out here), and one update equals the gradient of retain loss + γ_t·‖θ‖₁ taken by
autograd on the explicit penalised objective."""
import copy
import math

import pytest
import torch

from unlearnkit import ConfigError, unlearn
from unlearnkit.data import Split, iterate_batches
from unlearnkit.methods import RunContext, build_config
from unlearnkit.methods.l1_sparse import L1Sparse


def mean_loss(model, task, dataset):
    model.eval()
    with torch.no_grad():
        return float(torch.cat([task.loss(model, b) for b in iterate_batches(dataset, 512)]).mean())


def expected_gammas(gamma, epochs, steps, schedule, no_l1=0):
    """The schedule in closed form: Unlearn-Sparse's FT_l1 sets γ·(1 − e/(E − E₀)) once per epoch."""
    out = []
    penalised = epochs - no_l1
    for e in range(epochs):
        for s in range(steps):
            t = e * steps + s
            if schedule == "constant":
                out.append(gamma)
            elif schedule == "epoch":
                out.append(gamma * (1 - e / penalised) if e < penalised else 0.0)
            else:
                out.append(gamma * (1 - t / (penalised * steps)) if e < penalised else 0.0)
    return out


@pytest.mark.parametrize("schedule,no_l1", [("epoch", 0), ("epoch", 1), ("step", 0), ("constant", 0)])
def test_penalty_coefficient_follows_the_schedule(trained_mlp, task, class_split, schedule, no_l1):
    ctx = RunContext()
    batch = 512
    unlearn(trained_mlp, task, class_split, method="l1_sparse", ctx=ctx, epochs=4, batch_size=batch,
            gamma=0.01, gamma_schedule=schedule, no_l1_epochs=no_l1, lr=0.001)
    steps = math.ceil(len(class_split.retain) / batch)
    want = expected_gammas(0.01, 4, steps, schedule, no_l1)
    assert ctx.trace["l1_gamma"] == pytest.approx(want, rel=1e-12, abs=0)
    if schedule == "epoch" and no_l1 == 0:  # constant within an epoch: γ, ¾γ, ½γ, ¼γ
        assert ctx.trace["l1_gamma"][:: steps] == pytest.approx([0.01, 0.0075, 0.005, 0.0025])
    if no_l1:  # the last epoch trains without the penalty
        assert ctx.trace["l1_gamma"][-steps:] == [0.0] * steps


def test_one_update_is_the_gradient_of_the_penalised_retain_loss(trained_mlp, task, class_split):
    """Plain SGD (no momentum), one full-batch step: θ₁ = θ₀ − lr·∇(L_r(θ₀) + γ‖θ₀‖₁), with the
    gradient from autograd on the explicit objective (abs() gives sign, 0 at 0)."""
    lr, gamma = 0.5, 0.02
    retain = class_split.retain
    out = unlearn(trained_mlp, task, class_split, method="l1_sparse", epochs=1, batch_size=len(retain),
                  lr=lr, momentum=0.0, gamma=gamma, augment=False, step_size="absolute")  # a plain SGD step
    reference = [p.detach().clone().requires_grad_(True) for p in trained_mlp.parameters()]
    model = copy.deepcopy(trained_mlp).train()
    loss = task.loss(model, next(iterate_batches(retain, len(retain)))).mean()
    loss = loss + gamma * sum(p.abs().sum() for p in model.parameters())  # L_r + γ‖θ‖₁
    grads = torch.autograd.grad(loss, list(model.parameters()))
    for p0, g, p1 in zip(reference, grads, out.parameters()):
        torch.testing.assert_close(p1.detach(), p0.detach() - lr * g, rtol=1e-5, atol=1e-6)
    # and the penalty mattered: plain fine-tuning lands elsewhere
    plain = unlearn(trained_mlp, task, class_split, method="l1_sparse", epochs=1, batch_size=len(retain),
                    lr=lr, momentum=0.0, gamma=0.0, augment=False, step_size="absolute")
    assert max((a - b).abs().max().item() for a, b in zip(plain.parameters(), out.parameters())) > 0.5 * lr * gamma


def test_gradient_step_adds_gamma_sign_to_every_parameter(task):
    """A parameter the retain loss never reaches still gets γ_t·sign(θ) (the code penalises all)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    unused = torch.nn.Parameter(torch.tensor([1.5, -2.0, 0.0]))
    model.register_parameter("unused", unused)
    batch = (torch.randn(5, 1, 8, 8), torch.randint(0, 10, (5,)))
    config = build_config("l1_sparse", gamma=0.3, epochs=2)
    L1Sparse().gradient_step(model, task, {"retain": batch}, config, {"steps_per_epoch": 3}, 4, RunContext())
    gamma_t = 0.3 * (1 - 1 / 2)  # step 4 with 3 steps per epoch: epoch 1 of 2
    assert torch.equal(unused.grad, gamma_t * torch.tensor([1.0, -1.0, 0.0]))
    weight = model[1].weight
    want = torch.autograd.grad(task.loss(model, batch).mean() + gamma_t * weight.abs().sum(), weight)[0]
    torch.testing.assert_close(weight.grad, want)


class NoForgetSplit(Split):
    @property
    def forget(self):
        raise AssertionError("l1_sparse read the forget set")


def test_end_to_end_never_reads_forget_and_raises_its_loss(trained_mlp, task, class_split):
    guarded = NoForgetSplit(class_split.source, class_split.forget_idx, class_split.retain_idx, spec="class:0")
    before = mean_loss(trained_mlp, task, class_split.forget)
    out = unlearn(trained_mlp, task, guarded, method="l1_sparse", epochs=1)
    assert mean_loss(out, task, class_split.forget) > before
    assert mean_loss(out, task, class_split.retain) < 0.5


def test_config_is_validated():
    with pytest.raises(ConfigError, match="gamma_schedule"):
        build_config("l1_sparse", gamma_schedule="cosine")
    with pytest.raises(ConfigError, match="no_l1_epochs"):
        build_config("l1_sparse", epochs=2, no_l1_epochs=3)
    with pytest.raises(ConfigError, match="gamma"):
        build_config("l1_sparse", gamma=-1.0)
