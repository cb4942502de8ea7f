"""SSD — selective synaptic dampening (Foster, Schoepf & Brintrup, "Fast Machine Unlearning Without
Retraining Through Selective Synaptic Dampening", AAAI 2024; official code
if-loops/selective-synaptic-dampening, ``src/ssd.py`` and ``ssd_tuning`` in the strategy files).

No training. Importances are diagonals of the (empirical) Fisher information, the mean squared
gradient of the loss, on the full training data D = D_f ∪ D_r and on the forget set D_f:
    []_D  = E_{x∈D}  (∂ℓ(x; θ)/∂θ)²          []_Df = E_{x∈D_f} (∂ℓ(x; θ)/∂θ)²
Every parameter element whose forget importance dominates is dampened:
    θ_i ← β_i·θ_i   if []_Df,i > α·[]_D,i ,   β_i = min(λ·[]_D,i / []_Df,i , 1)
and every other element is left as it is.

``importance``: ``per_batch`` (default) is the reference code's estimator (``src/ssd.py``,
``ParameterPerturber.calc_importance``): the square of the gradient of each mini-batch's *mean*
CE, ``p.grad.pow(2)`` summed over the batches and divided by the number of batches
(``len(dataloader)``), in eval mode, batch 64 in the class and sub-class scripts
(``forget_full_class_main.py`` / ``forget_subclass_main.py``: ``-b`` 64), 128 in the random one.
``per_example`` (an option) is the paper's definition, the diagonal of the Fisher information
matrix: the expectation over examples of the squared per-example gradient, computed with
``torch.func`` (``vmap`` of ``grad``) in chunks of ``batch_size`` examples, never a loop over
examples. The code builds []_D from an unshuffled loader over ConcatDataset(retain, forget); we
batch retain and forget separately (the code's partition when n_r is a multiple of the batch size;
otherwise its forget-side batches are shifted by one batch that straddles the two sets), so the
forget pass serves both importances and D_f is never traversed twice. In ``per_example`` mode
[]_D = (n_f·[]_Df + n_r·[]_Dr)/(n_f + n_r) exactly.

Importances are taken in eval mode (as the code: ``model.eval()``; and BatchNorm cannot update its
statistics inside ``vmap``) on un-augmented inputs (the code's unlearning loaders use the test
transform). Every trainable parameter is eligible (the code's min/max layer options are unused).
On a causal LM ``per_example`` needs a task loss without data-dependent shapes under ``vmap``;
when the task's loss is not vmappable the method raises ``ConfigError`` (use ``per_batch``).

Defaults: α (``alpha``, selection weighting) = 10 and λ (``lam``, dampening constant) = 1 are the
paper's and the code's for ResNet-18 (``selection_weighting: 10 * model_size_scaler``,
``dampening_constant: 1`` in every ``forget_*_main.py``; the code halves α for ViT in its
class-forgetting scripts and uses α 50, λ 0.1 on PinsFaceRecognition); ``batch_size`` 64 is the
code's. They hold at the paper's scale, i.e. its forget fractions: a forget fraction f bounds the
selection ratio, because D contains D_f. Per batch, with k_f forget and k_r retain batches,
[]_D ≥ k_f/(k_f + k_r)·[]_Df, so []_Df > α·[]_D needs α < (k_f + k_r)/k_f ≈ 1/f (per example
likewise α < n/n_f). The paper's runs forget 0.2–5 % of the data (100 random CIFAR-10 images, one
CIFAR-100 class, one CIFAR-20 superclass or subclass; one of 105 faces with α = 50): α·f ≤ 0.5.
At 10 % (the digits bench's class:0 and random:0.1, or the SalUn protocol's CIFAR-10 scenarios)
α = 10 selects no weight at all and SSD returns the original model. Measured on digits class:0
(``cnn``, batch 64: k_f = 3, k_r = 21, bound 8): α 7.5 dampens 404 weights, UA 100, RA 97.2;
α 5 dampens 2,190, UA 100 but RA 53.5 (the squared batch-mean gradient of a one-class forget batch
is large, so the selection is wide and β small); ``importance=per_example`` with α 5 dampens 403,
UA 100, RA 97.2 (one seed). Above the paper's fractions pass α below the bound ≈ 1/f: just
under it the per-batch selection is narrow, far under it wide.

Passes per step: none, no optimizer steps (the importances take one forward + backward per batch of
the retain and of the forget set, once, or per-example gradients through ``vmap`` with
``per_example``; then one dampening pass over the parameters).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import distributed
from ..data.dataset import iterate_batches
from ..errors import ConfigError
from .base import Method, MethodConfig, register
from .gradients import Grads, grads_of, per_example_grads, trainable
from .loop import check_parameters_finite


@dataclass
class SSDConfig(MethodConfig):
    """``alpha``: α, selection weighting. ``lam``: λ, dampening constant. ``importance``:
    per_batch (the code's squared batch-mean gradients) | per_example (the paper's Fisher diagonal).
    ``batch_size``: examples per vmap chunk (per_example) or per mini-batch (per_batch).
    Training fields (epochs, lr, optimizer…) are unused: SSD does not train."""

    epochs: int = 0
    alpha: float = 10.0
    lam: float = 1.0
    importance: str = "per_batch"
    # alpha: 10 (paper, ResNet-18), 50 (faces) and the ≈ 0.5/f of larger forget fractions all inside;
    # lam around the paper's 1
    search_space = {"alpha": ("log", 1.0, 100.0), "lam": ("log", 0.1, 10.0)}
    # text: the causal-LM loss trims padding with data-dependent indexing, which vmap cannot trace,
    # so language models keep the code's squared batch gradients whatever the class default
    kind_defaults = {"text": {"importance": "per_batch"}}

    def __post_init__(self):
        super().__post_init__()
        if self.alpha <= 0 or self.lam <= 0:
            raise ConfigError(f"alpha and lam must be > 0, got alpha={self.alpha}, lam={self.lam}")
        if self.importance not in ("per_example", "per_batch"):
            raise ConfigError(f"importance must be per_example or per_batch, got {self.importance!r}")


def importance_sum(model, task, data, config: SSDConfig, device) -> tuple[Grads, int]:
    """Σ of squared gradients over ``data`` (float32, aligned with ``trainable(model)``) and the count
    it averages over: examples (per_example) or mini-batches (per_batch).

    Several processes: each takes its rows of every batch; per_batch squares the global batch
    gradient (``grads_of`` reduces it), per_example sums over all processes' examples."""
    params = trainable(model)
    total = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    count = 0
    for batch in iterate_batches(data, config.batch_size):
        batch = distributed.shard(task.to_device(batch, device))
        if config.importance == "per_batch":
            g = grads_of(task.loss(model, batch).mean(), params)  # ∂(mean_batch ℓ)/∂θ
            torch._foreach_add_(total, torch._foreach_mul(g, g))
            count += 1
            continue
        if not distributed.holds_rows(batch):
            continue  # a placeholder: this process holds no example of this batch
        try:
            per_example = per_example_grads(model, task, batch)  # [B, *θ.shape]: ∂ℓ(x_i)/∂θ
        except RuntimeError as exc:
            if "vmap" not in str(exc):
                raise
            raise ConfigError(
                f"ssd: per-example importances need a task loss that torch.func.vmap can trace; "
                f"{type(task).__name__}.loss cannot ({str(exc).splitlines()[0][:160]}). "
                "Use importance=per_batch (the reference code's squared batch gradients)."
            ) from None
        for acc, g in zip(total, per_example):
            acc.add_(g.float().square().sum(dim=0))  # Σ_i (∂ℓ_i/∂θ)²
        count += task.batch_size(batch)
    if config.importance == "per_example" and distributed.active():
        counted = torch.tensor([float(count)], dtype=torch.float64, device=total[0].device if total else "cpu")
        distributed.all_reduce_sum_(total + [counted])  # Σ over every process's examples
        count = int(counted.item())
    return total, count


def importances(model, task, split, config: SSDConfig, device) -> tuple[Grads, Grads]:
    """([]_D, []_Df): full-data and forget importances at the model's current parameters."""
    was_training = model.training
    model.eval()
    with task.augmenting(None):
        sum_f, n_f = importance_sum(model, task, split.forget, config, device)
        sum_r, n_r = importance_sum(model, task, split.retain, config, device)
    model.train(was_training)
    forget = [s / n_f for s in sum_f]                           # []_Df
    full = [(f + r) / (n_f + n_r) for f, r in zip(sum_f, sum_r)]  # []_D over D = D_f ∪ D_r
    return full, forget


@torch.no_grad()
def dampen(params, full: Grads, forget: Grads, alpha: float, lam: float) -> int:
    """θ ← β·θ where []_Df > α·[]_D, β = min(λ·[]_D/[]_Df, 1); returns how many elements were selected."""
    selected = 0
    for p, imp_d, imp_f in zip(params, full, forget):
        chosen = imp_f > alpha * imp_d                          # synapse selection
        beta = (lam * imp_d / imp_f).clamp(max=1.0)             # β = min(λ·[]_D/[]_Df, 1)
        p.copy_(torch.where(chosen, p * beta.to(p.dtype), p))   # dampening (others untouched)
        selected += int(chosen.sum())
    return selected


@register
class SSD(Method):
    name = "ssd"
    summary = "SSD: dampen weights whose forget Fisher importance exceeds α × the full-data one"
    Config = SSDConfig

    def run(self, model, task, split, config, ctx):
        model.to(ctx.device)
        full, forget = importances(model, task, split, config, ctx.device)
        params = trainable(model)
        selected = dampen(params, full, forget, config.alpha, config.lam)
        ctx.record("ssd_selected", selected)
        ctx.record("ssd_selected_fraction", selected / max(1, sum(p.numel() for p in params)))
        check_parameters_finite(model, self.name)
        return model
