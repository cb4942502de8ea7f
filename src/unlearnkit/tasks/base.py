"""The Task seam: everything a method may ask of a model and a batch, independent of modality.

A method never knows whether it edits an image classifier or a language model. It calls:

- ``loss(model, batch)``            per-example losses ``[B]`` (the training objective per example)
- ``log_likelihood(model, batch)``  per-example log-likelihood of the whole target ``[B]`` (NPO-style
                                    ratios; for text the sum over answer tokens)
- ``target_length(batch)``          tokens per target ``[B]`` (1 for a class label), to length-normalise
- ``log_probs(model, batch)``       output log-distributions over the positions the loss uses,
                                    flattened to ``[P, C]`` (KL to a reference model)
- ``loss_and_log_probs(model, batch)`` both of the above from one forward (distillation + CE)
- ``relabel(batch, generator)``     the batch with wrong targets (random labels / refusal answers)
- ``hidden(model, batch, layer)``   activations at a named submodule (representation steering)
- ``features(model, batch)``       one vector per example ``[B, D]``: the input of the output head
                                    (or a named layer's output), flattened for images, mean over real
                                    tokens for text
- ``correct(model, batch)``         per-example 0/1 correctness (accuracy audits)
- ``concat(batches)``                one batch holding the given batches in order (merged forwards)
- ``to_device(batch, device)``, ``batch_size(batch)``  (to_device also turns stored inputs into model
                                    inputs, e.g. uint8 pixels → normalised floats)
- ``augmenting(generator)``         context in which ``to_device`` applies the data's training
                                    augmentation (random crop/flip for images; nothing for text)
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch import nn

from ..errors import ConfigError

Batch = Any


class Task(ABC):
    # the kind of data the task serves ("image" / "text"): which defaults the resolver applies
    kind: str = "image"

    @abstractmethod
    def to_device(self, batch: Batch, device: torch.device | str) -> Batch: ...

    @abstractmethod
    def batch_size(self, batch: Batch) -> int: ...

    @contextmanager
    def augmenting(self, generator: torch.Generator | None) -> Iterator[None]:
        """Within this context ``to_device`` applies training augmentation drawn from ``generator``
        (``None``: no augmentation). Tasks without augmentation ignore it."""
        yield

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Per-example loss, shape ``[B]``."""

    def log_likelihood(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Per-example log-likelihood of the target, shape ``[B]`` (the negated loss by default)."""
        return -self.loss(model, batch)

    def target_length(self, batch: Batch) -> torch.Tensor:
        """Number of target tokens per example, ``[B]`` (one label per example by default)."""
        return torch.ones(self.batch_size(batch))

    @abstractmethod
    def log_probs(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Log-distributions ``[P, C]`` over the output positions the loss uses."""

    def loss_and_log_probs(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss(model, batch), log_probs(model, batch))`` — tasks override it to share one forward."""
        return self.loss(model, batch), self.log_probs(model, batch)

    @abstractmethod
    def relabel(self, batch: Batch, generator: torch.Generator | None = None) -> Batch:
        """The batch with every target replaced by a wrong one."""

    @abstractmethod
    def concat(self, batches: list[Batch]) -> Batch:
        """One batch holding ``batches`` in order (e.g. forget then retain, for one merged forward)."""

    @abstractmethod
    def correct(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Per-example correctness as a float tensor of 0/1, shape ``[B]``."""

    def hidden(self, model: nn.Module, batch: Batch, layer: str, *, inputs: bool = False) -> torch.Tensor:
        """Output (``inputs=True``: first input) of the submodule named ``layer`` (as in
        ``model.named_modules()``) on this batch."""
        return capture_output(model, layer, lambda: self.loss(model, batch), inputs=inputs)

    def features(self, model: nn.Module, batch: Batch, layer: str | None = None) -> torch.Tensor:
        """One feature vector per example, ``[B, D]``: the output of ``layer``, or by default the
        input of the model's output head (:func:`head_layer`: the penultimate features), flattened
        per example."""
        return self._hidden_or_head(model, batch, layer).flatten(1)

    def _hidden_or_head(self, model, batch, layer):
        if layer:
            return self.hidden(model, batch, layer)
        return self.hidden(model, batch, head_layer(model), inputs=True)


def head_layer(model: nn.Module) -> str:
    """Name of the model's output head: its last registered ``nn.Linear`` (a classifier's ``fc``, a
    language model's ``lm_head``). Its input is the penultimate representation."""
    heads = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not heads:
        raise ConfigError("the model has no nn.Linear output head; name a layer explicitly")
    return heads[-1]


def capture_output(model: nn.Module, layer: str, forward, *, inputs: bool = False) -> torch.Tensor:
    """Run ``forward()`` and return what the submodule named ``layer`` output (its first element
    when it returns a tuple, as transformer blocks do) — or, with ``inputs=True``, its first input."""
    module = dict(model.named_modules()).get(layer)
    if module is None:
        names = [name for name, _ in model.named_modules() if name]
        raise KeyError(f"model has no layer {layer!r}; layers: {names[:20]}")
    captured: list[torch.Tensor] = []
    hook = (lambda _m, args, _out: captured.append(args)) if inputs else (lambda _m, _i, out: captured.append(out))
    handle = module.register_forward_hook(hook)
    try:
        forward()
    finally:
        handle.remove()
    out = captured[-1]
    return out[0] if isinstance(out, tuple) else out
