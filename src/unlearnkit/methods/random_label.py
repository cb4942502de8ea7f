"""RL — random labels (Golatkar et al. 2020; the Unlearn-Sparse/SalUn baseline).

Fine-tune on the forget set with its targets replaced by random ones, together with the retain set:
    min_θ  E_{(x,ỹ): x∈D_f} CE(f_θ(x), ỹ) + E_{(x,y)∈D_r} CE(f_θ(x), y)

How the data is fed (``feed``), as the reference code does it:

- ``union`` (default) — every epoch is one shuffled pass over D_f ∪ D_r, each batch of
  ``batch_size`` mixing relabelled forget rows and retain rows; the step minimises the batch-mean CE.
  The forget targets are drawn once per epoch for the whole forget set. This is Unlearn-Sparse's
  ``unlearn/RL.py`` (last version 48d335e, before the file was removed: ``ConcatDataset([forget,
  retain])`` in a shuffled ``DataLoader``, targets redrawn at each epoch) and the CIFAR-100 /
  Tiny-ImageNet branch of Unlearn-Saliency's ``Classification/unlearn/RL.py``. (That file's
  CIFAR-10/SVHN branch instead steps through a forget pass, then a retain pass, every epoch — the
  maintainers confirm it in Unlearn-Saliency issue #21; the shared loop has no sequential feed yet.)
- ``paired`` — each step takes one forget batch and one retain batch (an epoch is one pass over
  D_f, the retain stream cycled); loss = CE_f + ``retain_weight``·CE_r, the targets drawn per batch.

Which random target (``label_draw``): ``any`` (default) draws uniformly over all C classes, the true
one included, as both reference files do (``np.random.randint(0, num_classes)`` /
``torch.randint(0, num_classes)``); ``other`` draws a uniformly random *wrong* class
(``task.relabel``, Golatkar et al.'s and our previous default). For text the random target is
``task.relabel``'s refusal answer either way (it has no "true class").

``union`` builds the epoch's stream as one dataset (:class:`RelabelledUnion`) and runs the shared
loop over it (``run_loop``: optimizer, schedule, accumulation, precision, several processes), so
SalUn (``salun.py``), which builds on this file, takes the same feed.

Passes per step: 1 forward + 1 backward (one batch of relabelled D_f ∪ D_r with the default
``feed="union"``; ``feed="paired"``: 2 + 2, a forget and a retain batch).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, default_collate

from .. import distributed
from ..data.dataset import TensorData, iterate_batches
from ..errors import ConfigError
from .base import MethodConfig, register
from .loop import LoopMethod, check_parameters_finite, log_term, run_loop

FEEDS = ("union", "paired")
LABEL_DRAWS = ("any", "other")
UNION = "union"  # the one stream of the union feed


@dataclass
class RandomLabelConfig(MethodConfig):
    """``feed``: union (one shuffled pass over relabelled D_f ∪ D_r per epoch, the reference code) |
    paired (one forget batch with one retain batch per step). ``label_draw``: any (uniform over all
    classes, the code) | other (a wrong class). ``retain_weight``: weight of the retain term of the
    paired feed (0 = relabelled forget only); the union feed is the code's plain batch mean (1)."""

    epochs: int = 10
    lr: float = 0.01
    retain_weight: float = 1.0
    feed: str = "union"
    label_draw: str = "any"
    # ours: lr and epochs as for fine-tuning
    search_space = {"lr": ("log", 1e-4, 1e-1), "epochs": ("int", 1, 10)}

    def __post_init__(self):
        super().__post_init__()
        if self.feed not in FEEDS:
            raise ConfigError(f"feed must be one of {', '.join(FEEDS)}, got {self.feed!r}")
        if self.label_draw not in LABEL_DRAWS:
            raise ConfigError(f"label_draw must be one of {', '.join(LABEL_DRAWS)}, got {self.label_draw!r}")
        if self.feed == "union" and self.retain_weight != 1.0:
            raise ConfigError(f"retain_weight={self.retain_weight} weighs the retain term of feed=paired; the "
                              "union feed takes one mean over mixed batches (set feed=paired)")


def random_targets(task, batch, generator: torch.Generator | None, draw: str = "any"):
    """``batch`` with random targets. ``draw="other"``: ``task.relabel`` (a uniformly drawn wrong
    class; a refusal answer for text). ``draw="any"``: uniform over all C classes, the true one
    included — the true label is kept with probability 1/C, otherwise relabel's wrong class, which
    gives each class 1/C. Only a task with ``num_classes`` (classification) has a true class to keep."""
    wrong = task.relabel(batch, generator=generator)
    classes = getattr(task, "num_classes", None)
    if draw == "other" or not classes:
        return wrong
    x, y = wrong
    keep = distributed.draw_for(batch, lambda n: torch.rand(n, generator=generator)) < 1.0 / classes
    return x, torch.where(keep.to(y.device), batch[1], y)  # ỹ ~ U{0..C−1}


def _rows(data: Dataset, positions: torch.Tensor):
    """Rows ``positions`` of ``data`` as one batch."""
    if isinstance(data, TensorData):
        return data.gather(positions)
    return default_collate([data[int(i)] for i in positions])


class RelabelledUnion(TensorData):
    """D_f ∪ D_r as one dataset — positions ``0 … n_f−1`` are the forget rows, the rest retain — whose
    forget rows carry random targets, drawn for the whole forget set at the first gather of every
    pass (each pass gathers every row once: one draw per example per epoch, as the reference code's
    per-epoch ``targets = randint(…)``; the draws do not depend on how a pass is cut into batches).

    A :class:`TensorData` so that ``iterate_batches`` gathers whole batches; a batch keeps the order
    of the positions it is given (the shuffled order)."""

    def __init__(self, task, forget: Dataset, retain: Dataset, generator: torch.Generator | None, draw: str):
        # no TensorData.__init__: the rows come from ``forget`` and ``retain``
        self.task, self.retain, self.generator, self.draw = task, retain, generator, draw
        self.n_forget = len(forget)
        self.forget = next(iterate_batches(forget, max(1, self.n_forget)))  # the whole forget set, one batch
        self.index = None
        self._served = 0       # rows gathered in the current pass
        self._relabelled = None  # the forget set with this pass's random targets

    def __len__(self) -> int:
        return self.n_forget + len(self.retain)

    def __getitem__(self, i: int):
        x, y = self.gather(torch.as_tensor([i]))
        return x[0], y[0]

    def gather(self, positions: torch.Tensor):
        positions = torch.as_tensor(positions, dtype=torch.long)
        if self._served == 0:  # a new pass: new targets for D_f
            self._relabelled = random_targets(self.task, self.forget, self.generator, self.draw)
        self._served = (self._served + len(positions)) % len(self)
        is_forget = positions < self.n_forget
        forget_at, retain_at = torch.nonzero(is_forget).flatten(), torch.nonzero(~is_forget).flatten()
        parts = []
        if len(forget_at):
            parts.append(tuple(t[positions[forget_at]] for t in self._relabelled))  # (x_f, ỹ)
        if len(retain_at):
            parts.append(_rows(self.retain, positions[retain_at] - self.n_forget))  # (x_r, y_r)
        batch = parts[0] if len(parts) == 1 else self.task.concat(parts)
        order = torch.argsort(torch.cat([forget_at, retain_at]))  # back to the shuffled order
        return tuple(t[order] for t in batch)


@register
class RandomLabel(LoopMethod):
    name = "random_label"
    summary = "RL: fine-tune on forget examples relabelled at random, together with retain"
    Config = RandomLabelConfig
    streams = ("forget", "retain")
    epoch_stream = "forget"
    accumulates_grads = True  # both feeds step through the shared loop

    def prepare(self, model, task, split, config, ctx):
        return {"generator": ctx.generator}

    def run(self, model, task, split, config, ctx):
        if config.feed == "paired":
            return super().run(model, task, split, config, ctx)
        # union: this run's one stream (an instance attribute; the class keeps the paired default)
        self.epoch_stream = UNION
        stream = RelabelledUnion(task, split.forget, split.retain, ctx.generator, config.label_draw)
        model.to(ctx.device)
        state = self.prepare(model, task, split, config, ctx)
        run_loop(self, model, task, {UNION: stream}, config, ctx, state)
        model = self.finish(model, state, config, ctx)
        check_parameters_finite(model, self.name)
        return model

    def objective(self, model, task, batches, config, state):
        if UNION in batches:
            loss = task.loss(model, batches[UNION]).mean()  # mean CE over D_f rows (ỹ) and D_r rows (y)
            log_term(state, "union", loss)
            return loss
        relabelled = random_targets(task, batches["forget"], state["generator"], config.label_draw)
        loss = task.loss(model, relabelled).mean()  # CE(f(x_f), ỹ)
        log_term(state, "forget", loss)  # terms unweighted: loss = forget + retain_weight·retain
        if config.retain_weight:
            retain = task.loss(model, batches["retain"]).mean()
            log_term(state, "retain", retain)
            loss = loss + config.retain_weight * retain
        return loss
