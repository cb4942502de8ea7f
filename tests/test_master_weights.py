"""fp32 master weights for low-precision parameters (``Precision.master_weights``, ``--fp32-master-weights``):
updates below bf16's resolution accumulate in fp32 instead of being rounded away."""
import torch
from torch import nn

from unlearnkit.methods.base import MethodConfig
from unlearnkit.methods.loop import make_optimizer
from unlearnkit.methods.precision import Precision


def _steps(master: bool, steps: int = 64) -> tuple[nn.Linear, torch.optim.Optimizer]:
    layer = nn.Linear(1, 1, bias=False).to(torch.bfloat16)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    config = MethodConfig(optimizer="sgd", lr=1e-3, momentum=0.0)
    optimizer = make_optimizer(layer.parameters(), config, Precision(master_weights=master))
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        layer.weight.grad = torch.ones_like(layer.weight)  # each step: w ← w − 1e-3, below bf16's 2^-8 at 1.0
        optimizer.step()
    return layer, optimizer


def test_small_updates_are_lost_in_bf16_and_kept_with_fp32_masters():
    plain, _ = _steps(master=False)
    assert plain.weight.item() == 1.0  # every update rounded away
    kept, optimizer = _steps(master=True)
    master = optimizer.param_groups[0]["params"][0]
    assert master.dtype == torch.float32 and kept.weight.dtype == torch.bfloat16
    assert abs(master.item() - (1.0 - 64e-3)) < 1e-6  # the exact fp32 trajectory
    assert kept.weight.item() == torch.tensor(1.0 - 64e-3).to(torch.bfloat16).item()  # the master, rounded
    assert kept.weight.grad is None  # the model's gradients are cleared after each step


def test_adam_state_is_fp32():
    layer = nn.Linear(4, 2).to(torch.bfloat16)
    optimizer = make_optimizer(layer.parameters(), MethodConfig(optimizer="adamw", lr=1e-3),
                               Precision(master_weights=True))
    layer(torch.randn(3, 4, dtype=torch.bfloat16)).sum().backward()
    optimizer.step()
    states = list(optimizer.state.values())
    assert states and all(s["exp_avg"].dtype == torch.float32 for s in states)
