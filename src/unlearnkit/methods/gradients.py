"""Gradients as flat lists of tensors: the pieces projection- and look-ahead-type methods share.

A "gradient" here is a list of tensors aligned with ``trainable(model)``. Inner products and
norms run over the whole parameter vector (as UAM/ROSU/entangle's reference code do), in
float64 accumulation for stability.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .. import distributed
from ..errors import ConfigError

Grads = list[torch.Tensor]


def trainable(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


def grads_of(loss: torch.Tensor, params: Sequence[torch.Tensor], *, create_graph: bool = False,
             retain_graph: bool | None = None) -> Grads:
    """∇loss w.r.t. ``params``; parameters the loss does not touch get zeros.

    Several processes (``unlearnkit.distributed``): the gradient of the *global* batch, the
    share-weighted mean over processes (of the batch last sharded, or the one scoped with
    ``distributed.weighted``), so what a method builds from it is the single-process quantity.
    With ``create_graph`` the value is global and the graph this process's (a later second
    backward gives a local term, which the loop's gradient reduction averages)."""
    grads = torch.autograd.grad(loss, list(params), create_graph=create_graph,
                                retain_graph=retain_graph, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]
    if not distributed.active():
        return grads
    if params and distributed.is_sharded_tensor(params[0]):
        raise ConfigError("grads_of: parameters sharded by FSDP are not supported (methods with extra "
                          "gradient passes run data-parallel only; see unlearnkit.distributed)")
    reduced = distributed.all_reduce_mean(grads)
    if create_graph:
        return [g + (r - g.detach()) for g, r in zip(grads, reduced)]
    return reduced


def dot(a: Grads, b: Grads) -> torch.Tensor:
    return sum((x.double() * y.double()).sum() for x, y in zip(a, b))


def norm(a: Grads) -> torch.Tensor:
    return dot(a, a).sqrt()


def cosine(a: Grads, b: Grads, eps: float = 1e-30) -> float:
    return float(dot(a, b) / (norm(a) * norm(b) + eps))


def scale(alpha: float | torch.Tensor, x: Grads) -> Grads:
    """alpha·x as a new list (one ``_foreach`` kernel launch)."""
    return list(torch._foreach_mul(list(x), float(alpha))) if x else []


@torch.no_grad()
def add_to_params(params: Sequence[torch.Tensor], delta: Grads, alpha: float = 1.0) -> None:
    for p, d in zip(params, delta):
        p.add_(d, alpha=alpha)


def set_grads(params: Sequence[torch.Tensor], grads: Grads, *, copy: bool = True) -> None:
    """Write ``grads`` into ``.grad`` so a torch optimizer can step with them: copies, or with
    ``copy=False`` the tensors themselves (fresh tensors no one else holds: clipping or a pre-step
    hook may scale ``.grad`` in place); cast where a dtype differs."""
    for p, g in zip(params, grads):
        g = g.detach()
        p.grad = g.to(p.dtype) if g.dtype != p.dtype else g.clone() if copy else g


def hvp(grads: Grads, params: Sequence[torch.Tensor], vector: Grads) -> Grads:
    """H·v, where ``grads`` = ∇L(params) was taken with ``create_graph=True`` (a second backward
    through that graph; parameters ``grads`` does not depend on get zeros)."""
    pairs = [(g, v) for g, v in zip(grads, vector) if g.requires_grad]
    if not pairs:
        return [torch.zeros_like(p) for p in params]
    out = torch.autograd.grad([g for g, _ in pairs], list(params), grad_outputs=[v for _, v in pairs],
                              allow_unused=True)
    return [torch.zeros_like(p) if h is None else h for h, p in zip(out, params)]


def stat_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """The buffers a forward pass mutates: running statistics of norm layers (BatchNorm,
    InstanceNorm with ``track_running_stats``), by their ``named_buffers`` names."""
    out = {}
    for prefix, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
            for name, buffer in module.named_buffers(recurse=False):
                if buffer is not None:
                    out[f"{prefix}.{name}" if prefix else name] = buffer
    return out


class _AtParams(nn.Module):
    def __init__(self, model: nn.Module, tensors: dict[str, torch.Tensor]):
        super().__init__()
        self.model = model
        self.tensors = tensors

    def forward(self, *args, **kwargs):
        return torch.func.functional_call(self.model, self.tensors, args, kwargs, strict=False)


def at_params(model: nn.Module, params: Sequence[torch.Tensor],
              buffers: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """A view of ``model`` that runs with ``trainable(model)`` replaced by ``params`` (an aligned
    list, e.g. a look-ahead θ − α·g that stays in the autograd graph) and the named ``buffers``
    replaced by the given tensors (others: the model's own). Nothing of ``model`` is modified
    unless its forward mutates a buffer not passed here. Pass it to the Task like a model:
    ``task.loss(at_params(model, fast), batch)`` (through ``torch.func.functional_call``)."""
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    if len(names) != len(params):
        raise ValueError(f"at_params: {len(params)} tensors for {len(names)} trainable parameters")
    return _AtParams(model, {**dict(zip(names, params)), **(buffers or {})})


# elements flattened together for :func:`inner_products` (512 KiB per vector in float64): few kernel
# launches for small models, cache-sized temporaries for large ones (measured on CPU: 64 Ki elements
# beat both one tensor at a time and 2 Mi-element chunks on the cnn and on tiny-llama)
INNER_PRODUCT_CHUNK = 1 << 16


def _chunks(tensors: Sequence[torch.Tensor], size: int) -> list[tuple[int, int]]:
    """Consecutive index ranges of ``tensors`` holding about ``size`` elements each (one tensor at least)."""
    ranges, start, count = [], 0, 0
    for i, t in enumerate(tensors):
        if count and count + t.numel() > size:
            ranges.append((start, i))
            start, count = i, 0
        count += t.numel()
    if start < len(tensors):
        ranges.append((start, len(tensors)))
    return ranges


def inner_products(vectors: Sequence[Grads | None], pairs: Sequence[tuple[int, int]]) -> list[float]:
    """⟨vectors[i], vectors[j]⟩ for each ``(i, j)`` in ``pairs``, over all tensors, in float64 (the
    products and their sums, as :func:`dot`), with one host read at the end. The tensors are
    flattened together in chunks of about ``INNER_PRODUCT_CHUNK`` elements, each chunk of each vector
    involved converted once, so a product costs one ``torch.dot`` per chunk (one for a small model),
    where :func:`dot` converts both sides tensor by tensor for every product. Vectors no pair names
    may be None. UAM, ROSU and LUR take their per-step inner products here."""
    if not pairs:
        return []
    used = sorted({i for pair in pairs for i in pair})
    rows = []
    for start, stop in _chunks(vectors[used[0]], INNER_PRODUCT_CHUNK):
        wide = {i: torch.cat([t.detach().reshape(-1) for t in vectors[i][start:stop]]).double() for i in used}
        rows.append(torch.stack([torch.dot(wide[i], wide[j]) for i, j in pairs]))
    if not rows:
        return [0.0] * len(pairs)
    return (rows[0] if len(rows) == 1 else torch.stack(rows).sum(0)).tolist()


def per_example_grads(model: nn.Module, task, batch) -> Grads:
    """∇_θ ℓ_i for every example i of ``batch``, aligned with ``trainable(model)``, each tensor of
    shape ``[B, *p.shape]``: one ``torch.func`` pass (``vmap`` over ``grad``), no loop over examples.

    ℓ_i is ``task.loss`` of example i as a batch of one (every tensor of the batch is sliced along
    dim 0 and unsqueezed back), on :func:`at_params` of ``model``; buffers are the model's own.
    Put the model in eval mode first: a BatchNorm in train mode would update its running statistics
    inside ``vmap`` (refused). Memory grows as ``B × (number of parameters)``: pass chunks.
    Raises ``RuntimeError`` from ``vmap`` when the task's loss uses data-dependent control flow or
    shapes (``.item()``, ``bool(tensor)``, boolean-mask indexing).
    """
    params = [p.detach() for p in trainable(model)]

    def loss_of_one(theta: list[torch.Tensor], example) -> torch.Tensor:
        one = tuple(t.unsqueeze(0) for t in example)  # ℓ_i on a batch of one
        return task.loss(at_params(model, theta), one).sum()

    return list(torch.func.vmap(torch.func.grad(loss_of_one), in_dims=(None, 0))(params, tuple(batch)))
