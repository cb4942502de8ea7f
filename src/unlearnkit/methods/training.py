"""Plain supervised training: how the original model is made, and what ``retrain`` repeats on retain."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from torch.utils.data import Dataset

from ..tasks.base import Task
from ..seeding import deterministic_algorithms, generator_for, seeded
from .base import MethodConfig, RunContext, augmentation_generator
from .loop import LoopMethod, run_loop


@dataclass
class TrainConfig(MethodConfig):
    """The training recipe for the embedded default data and small models (our choice):
    SGD with momentum 0.9, weight decay 5e-4 and a cosine schedule, as in the ResNet-18/CIFAR
    recipes of the SalUn/Unlearn-Sparse papers, shortened to the scale of the data."""

    epochs: int = 30
    lr: float = 0.05
    weight_decay: float = 5e-4
    schedule: str = "cosine"


@dataclass
class LMTrainConfig(TrainConfig):
    """The tofu-mini recipe for small causal LMs (measured in ../shared/research/llm-stack.md: a
    2-layer Llama memorises 1,000 QA pairs): AdamW, weight decay 0.01, peak lr 3e-3 after a 5 %
    linear warm-up then linear decay, gradient clipping at 1, batch 32, 30 epochs."""

    epochs: int = 30
    lr: float = 3e-3
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    batch_size: int = 32
    schedule: str = "linear"
    warmup: float = 0.05
    grad_clip: float = 1.0


class _Fit(LoopMethod):
    name = "fit"
    streams = ("data",)
    epoch_stream = "data"

    def objective(self, model, task, batches, config, state):
        return task.loss(model, batches["data"]).mean()


def fit(model: nn.Module, task: Task, data: Dataset, config: MethodConfig | None = None,
        ctx: RunContext | None = None) -> nn.Module:
    """Minimise the mean task loss over ``data`` with ``config``'s recipe; edits ``model`` in place.
    ``config`` defaults to the recipe of the task's kind of data (``unlearnkit.resolve_recipe``: what
    ``bench`` trains its original with); ``ctx`` to a context on the model's device."""
    if config is None:
        from ..resolve import resolve_recipe

        config = resolve_recipe(kind=task.kind)
    if ctx is None:
        device = next((p.device for p in model.parameters()), None)
        ctx = RunContext(**({"device": device} if device is not None else {}))
    if ctx.generator is None:
        ctx.generator = generator_for(config.seed)
    with task.augmenting(augmentation_generator(config)), seeded(config.seed), \
            deterministic_algorithms(ctx.precision.deterministic):
        return run_loop(_Fit(), model, task, {"data": data}, config, ctx)
