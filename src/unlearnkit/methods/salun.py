"""SalUn — saliency unlearning (Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based
Weight Saliency", ICLR 2024; official code OPTML-Group/Unlearn-Saliency, ``Classification/
generate_mask.py`` and ``unlearn/RL.py``).

1. Weight saliency at the original model θ_o, from the forget loss's gradient:
       m_S = 1( |∇_θ ℓ_f(θ; D_f)|_{θ=θ_o} ≥ γ )
   with the threshold γ set so that the top ``saliency_fraction`` of all weights by magnitude are
   kept (code: ``with_0.5.pt``, ranked over every parameter jointly — ``mask_scope="global"``;
   ``mask_scope="layer"`` ranks within each parameter tensor instead). As in the code, the
   gradient is the sum over forget batches of the batch-mean loss's gradient, in eval mode; we
   take it on un-augmented inputs (deterministic; the code's forget loader carries the training
   transform).
2. Random-label unlearning (RL, :mod:`random_label`'s objective, imported) updating only the
   salient weights:
       θ_u = m_S ⊙ (Δθ + θ_o) + (1 − m_S) ⊙ θ_o
   The gradient is masked before the step (so clipping sees only salient coordinates), and after
   every optimizer step the non-salient weights are put back to θ_o exactly (m_S ⊙ θ + (1 − m_S) ⊙ θ_o
   in two batched ``_foreach`` kernels: 0·θ + θ_o is θ_o bit for bit while θ is finite), so
   weight decay, momentum or Adam moments cannot move them: they stay bit-identical. (The
   reference code also does both since its Feb 2026 fix "Fix weight decay (#33)", and zeroes the
   momentum there; restoring every step makes that unnecessary. Normalisation-layer running
   statistics are buffers, not weights: they update in train mode as in the code.)

Defaults: 10 epochs, lr 0.013, SGD momentum 0.9, ``saliency_fraction`` 0.5 are the README's
ResNet-18/CIFAR-10 command (``--unlearn RL --unlearn_epochs 10 --unlearn_lr 0.013 --mask_path
with_0.5.pt``); they also run well on the embedded digits data. Weight decay 0 (the code's global
5e-4 is available through ``weight_decay``; the presets set it). Data feed and random targets are
``random_label``'s (``feed``, ``label_draw``; see that module): by default one shuffled pass per
epoch over D_f (random targets drawn over all classes, the true one included, as the code's
``randint``) ∪ D_r, the code's CIFAR-100 / Tiny-ImageNet branch; its CIFAR-10 branch takes a forget
pass then a retain pass (not available yet); ``feed=paired`` pairs one forget with one retain batch.

Passes per step: 1 forward + 1 backward (``random_label``'s default union feed; the saliency mask is
built once before the first step, one forward + backward per forget batch).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.dataset import iterate_batches
from ..errors import ConfigError
from .base import register
from .gradients import Grads, grads_of, trainable
from .random_label import RandomLabel, RandomLabelConfig


@dataclass
class SalUnConfig(RandomLabelConfig):
    """``saliency_fraction``: fraction of the weights kept trainable (the most salient), 0 < f ≤ 1.
    ``mask_scope``: global (rank all weights jointly, the code) | layer (rank within each tensor)."""

    epochs: int = 10
    lr: float = 0.013
    saliency_fraction: float = 0.5
    mask_scope: str = "global"
    # saliency_fraction: the SalUn code generates masks at thresholds 10 %…100 %; lr and epochs ours
    search_space = {"lr": ("log", 1e-4, 1e-1), "epochs": ("int", 1, 10),
                    "saliency_fraction": ("float", 0.1, 1.0)}

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 < self.saliency_fraction <= 1.0:
            raise ConfigError(f"saliency_fraction must be in (0, 1], got {self.saliency_fraction}")
        if self.mask_scope not in ("global", "layer"):
            raise ConfigError(f"mask_scope must be global or layer, got {self.mask_scope!r}")


def forget_gradient(model, task, forget, batch_size: int, device) -> Grads:
    """∇_θ ℓ_f at the current θ: Σ over forget batches of ∇ (batch-mean loss), eval mode, no augmentation."""
    params = trainable(model)
    total = [torch.zeros_like(p) for p in params]
    was_training = model.training
    model.eval()
    with task.augmenting(None):
        for batch in iterate_batches(forget, batch_size):
            loss = task.loss(model, task.to_device(batch, device)).mean()  # ℓ_f on one batch
            torch._foreach_add_(total, grads_of(loss, params))
    model.train(was_training)
    return total


def top_fraction_mask(saliency: Grads, fraction: float, scope: str = "global") -> list[torch.Tensor]:
    """Boolean masks, True on the ``int(fraction · n)`` largest entries of ``saliency`` (n: all
    entries for ``global``, each tensor's for ``layer``); ties at the threshold are broken arbitrarily."""
    def top(values: torch.Tensor) -> torch.Tensor:
        flat = values.reshape(-1)
        keep = int(flat.numel() * fraction)
        mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
        if keep:
            mask[torch.topk(flat, keep, sorted=False).indices] = True
        return mask

    if scope == "layer":
        return [top(s).view_as(s) for s in saliency]
    flat = top(torch.cat([s.reshape(-1) for s in saliency]))
    return [m.view_as(s) for m, s in zip(flat.split([s.numel() for s in saliency]), saliency)]


@register
class SalUn(RandomLabel):
    name = "salun"
    summary = "SalUn: random labels on the forget set, updating only forget-gradient-salient weights"
    Config = SalUnConfig

    def prepare(self, model, task, split, config, ctx):
        state = super().prepare(model, task, split, config, ctx)
        g_f = forget_gradient(model, task, split.forget, config.batch_size, ctx.device)  # ∇ℓ_f(θ_o)
        masks = top_fraction_mask(torch._foreach_abs(g_f), config.saliency_fraction, config.mask_scope)  # m_S
        params = trainable(model)
        state["masks"] = masks
        state["mask_values"] = [m.to(p.dtype) for m, p in zip(masks, params)]
        # θ_o of the tensors that have frozen entries (the only ones to restore)
        state["frozen"] = [(i, p.detach().clone()) for i, (p, m) in enumerate(zip(params, masks)) if not bool(m.all())]
        # for the restore: per such tensor m_S (as numbers) and (1 − m_S) ⊙ θ_o
        state["restore"] = ([state["mask_values"][i] for i, _ in state["frozen"]],
                            [torch.where(masks[i], torch.zeros_like(t), t) for i, t in state["frozen"]])
        kept = sum(int(m.sum()) for m in masks)
        ctx.record("salun_mask_fraction", kept / max(1, sum(m.numel() for m in masks)))
        return state

    def gradient_step(self, model, task, batches, config, state, step, ctx):
        loss = super().gradient_step(model, task, batches, config, state, step, ctx)  # ∇ of RL's objective
        pairs = [(p.grad, m) for p, m in zip(trainable(model), state["mask_values"]) if p.grad is not None]
        if pairs:
            torch._foreach_mul_([g for g, _ in pairs], [m for _, m in pairs])  # m_S ⊙ ∇
        return loss

    @torch.no_grad()
    def after_step(self, model, state, step, config, ctx):
        params = trainable(model)
        touched = [params[i] for i, _ in state["frozen"]]
        if touched:  # θ ← m_S ⊙ θ + (1 − m_S) ⊙ θ_o in two batched kernels: θ_o exactly where m_S = 0
            mask, frozen_part = state["restore"]
            torch._foreach_mul_(touched, mask)
            torch._foreach_add_(touched, frozen_part)
