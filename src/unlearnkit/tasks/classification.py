"""Classification: batches are ``(inputs, labels)``; the loss is per-example cross-entropy."""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from ..data.transforms import ImagePipeline
from ..errors import DataError
from .base import Task


class ClassificationTask(Task):
    """``pipeline`` (the source's :class:`ImagePipeline`) turns stored inputs into model inputs in
    ``to_device``; its random crop/flip apply only inside :meth:`augmenting`."""

    def __init__(self, num_classes: int, pipeline: ImagePipeline | None = None):
        self.num_classes = num_classes
        self.pipeline = pipeline
        self._augment: torch.Generator | None = None

    @contextmanager
    def augmenting(self, generator):
        previous, self._augment = self._augment, generator
        try:
            yield
        finally:
            self._augment = previous

    kind = "image"

    def to_device(self, batch, device):
        x, y = batch
        if self.pipeline is None and x.dtype == torch.uint8:
            raise DataError("inputs are stored as uint8 pixels and this task has no image pipeline to scale them: "
                            "build the task with "
                            "unlearnkit.make_task(source) (or ClassificationTask(num_classes, source.pipeline))")
        x = x.to(device, non_blocking=True)
        if self.pipeline is not None:
            x = self.pipeline(x, augment=self._augment is not None and self.pipeline.augments,
                              generator=self._augment)
        return x, y.to(device, non_blocking=True)

    def batch_size(self, batch) -> int:
        return len(batch[1])

    def logits(self, model: nn.Module, batch) -> torch.Tensor:
        return model(batch[0])

    def loss(self, model, batch) -> torch.Tensor:
        return F.cross_entropy(self.logits(model, batch), batch[1], reduction="none")

    def log_probs(self, model, batch) -> torch.Tensor:
        return F.log_softmax(self.logits(model, batch), dim=-1)

    def loss_and_log_probs(self, model, batch):
        log_p = self.log_probs(model, batch)
        return F.nll_loss(log_p, batch[1], reduction="none"), log_p

    def relabel(self, batch, generator=None):
        """Each label replaced by a uniformly drawn *different* class (SalUn/Unlearn-Sparse's RL)."""
        x, y = batch
        # several processes: drawn for the whole global batch, each keeping its rows' draws
        offset = distributed.draw_for(batch, lambda n: torch.randint(1, self.num_classes, (n,), generator=generator))
        offset = offset.to(y.device)
        return x, (y + offset) % self.num_classes

    def concat(self, batches):
        return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])

    def correct(self, model, batch) -> torch.Tensor:
        return (self.logits(model, batch).argmax(dim=-1) == batch[1]).float()

    def confidence(self, model, batch) -> torch.Tensor:
        """Softmax probability of the true label, ``[B]`` (the feature of the SVC membership attack)."""
        return self.log_probs(model, batch).gather(1, batch[1][:, None]).squeeze(1).exp()
