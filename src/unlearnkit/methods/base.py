"""What a method is: a name, a one-line summary, a typed config, and ``run``.

Every method is registered in :data:`METHODS` under its name. Its hyper-parameters live in a
dataclass (``Config``) whose defaults are documented where they come from (the paper, or our
choice for the embedded data when the paper's setting is for another scale).
"""
from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from .. import distributed
from ..data.split import Split
from ..errors import ConfigError
from ..registry import Registry
from ..seeding import deterministic_algorithms, generator_for, seeded
from ..values import parse_bool
from ..tasks.base import Task
from .precision import Precision


@dataclass
class MethodConfig:
    """Hyper-parameters shared by every loop-shaped method.

    ``optimizer``: sgd | adam | adamw.  ``schedule``: constant | cosine | linear (decay to 0),
    after a linear ``warmup`` over that fraction of the steps (0 = none).
    ``grad_clip``: max global gradient norm, 0 disables.  ``grad_accum``: micro-batches of
    ``batch_size`` per optimizer step (effective batch ``batch_size × grad_accum``; the gradient is
    the one of the whole effective batch).  ``seed``: the unlearning-run seed
    (data order, random labels, noise), separate from the seeds of the original training and
    of the forget-set draw.  ``augment``: apply the data's training augmentation (random crop/flip
    on images, drawn from a generator seeded by ``seed``) to the batches the method sees, as the
    reference code's unlearning loaders do; False feeds inputs as stored.
    ``step_size``: "absolute" — ``lr`` is the optimizer's learning rate, as in the papers; "relative"
    (ours, scale-free) — ``lr`` is each step's size as a fraction of each parameter tensor's norm, so
    the same value moves a model by the same proportion whatever the scale of its weights and of its
    loss's gradients (which depend on how the model was trained: optimizer, normalisation, label
    smoothing, how confident it became). SGD steps along g·‖θ‖/‖g‖ per tensor (the LARS trust ratio,
    You et al. 2017); Adam/AdamW take a per-tensor learning rate lr·RMS(θ).
    """

    epochs: int = 5
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    schedule: str = "constant"
    grad_clip: float = 0.0
    warmup: float = 0.0
    seed: int = 0
    augment: bool = True
    grad_accum: int = 1
    step_size: str = "absolute"

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", int) and isinstance(value, float) and value.is_integer():
                setattr(self, f.name, int(value))
        if self.epochs < 0:
            raise ConfigError(f"epochs must be >= 0, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.grad_accum < 1:
            raise ConfigError(f"grad_accum must be >= 1, got {self.grad_accum}")
        if self.lr < 0:
            raise ConfigError(f"lr must be >= 0, got {self.lr}")
        if self.optimizer not in ("sgd", "adam", "adamw"):
            raise ConfigError(f"optimizer must be sgd, adam or adamw, got {self.optimizer!r}")
        if not 0.0 <= self.warmup < 1.0:
            raise ConfigError(f"warmup is a fraction of the steps in [0, 1), got {self.warmup}")
        if self.step_size not in ("absolute", "relative"):
            raise ConfigError(f"step_size must be absolute or relative, got {self.step_size!r}")
        if self.schedule not in ("constant", "cosine", "linear"):
            raise ConfigError(f"schedule must be constant, cosine or linear, got {self.schedule!r}")

    # Defaults this method takes on one kind of data ("image" / "text"), over the benchmark
    # workload's shared method defaults and under the user's --set: e.g. fewer epochs over a text
    # retain set. Declared next to each method's config, with the reason.
    kind_defaults: ClassVar[dict[str, dict[str, Any]]] = {}

    # The ranges `unlearnkit tune` searches, declared next to each method's config with where they
    # come from (the paper's sweep, else ours): field -> ("log", low, high) | ("float", low, high) |
    # ("int", low, high) | ("choice", [options]) or a Dimension. Read through `search_dimensions`.
    search_space: ClassVar[dict[str, Any]] = {}
    # A method's own ranges on one (kind, scale) of model, over SCALE_SEARCH_SPACE's shared ones (below)
    scale_search_space: ClassVar[dict[tuple[str, str], dict[str, Any]]] = {}

    def quick_overrides(self) -> dict[str, Any]:
        """What ``--quick`` changes for a smoke run: half the epochs (at least one).
        Methods with phase-specific epoch counts extend this."""
        return {"epochs": max(1, self.epochs // 2)} if self.epochs else {}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FloatRange:
    """A float in [low, high]: uniform, or log-uniform when ``log``."""

    low: float
    high: float
    log: bool = False

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high


@dataclass(frozen=True)
class IntRange:
    """An integer in [low, high] (both included)."""

    low: int
    high: int

    def contains(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high


@dataclass(frozen=True)
class Choice:
    """One of ``options`` (str, int, float, bool)."""

    options: tuple

    def contains(self, value: Any) -> bool:
        return value in self.options


Dimension = FloatRange | IntRange | Choice


def _dimension(spec: Any, field_type: Any, where: str) -> Dimension:
    """One search-space entry as a typed Dimension, checked against its field's type."""
    if isinstance(spec, (FloatRange, IntRange, Choice)):
        dim = spec
    elif isinstance(spec, tuple) and spec and spec[0] in ("log", "float", "int") and len(spec) == 3:
        kind, low, high = spec
        dim = IntRange(low, high) if kind == "int" else FloatRange(low, high, log=kind == "log")
    elif isinstance(spec, tuple) and len(spec) == 2 and spec[0] == "choice" and isinstance(spec[1], (list, tuple)):
        dim = Choice(tuple(spec[1]))
    else:
        raise ConfigError(f"{where}: expected ('log'|'float'|'int', low, high) or ('choice', [options]), got {spec!r}")
    is_int, is_float = field_type in ("int", int), field_type in ("float", float)
    if isinstance(dim, Choice):
        if not dim.options or len(set(dim.options)) != len(dim.options):
            raise ConfigError(f"{where}: a choice needs distinct options, got {list(dim.options)}")
        if not all(isinstance(o, (str, int, float, bool)) for o in dim.options):
            raise ConfigError(f"{where}: choice options must be str, int, float or bool, got {list(dim.options)}")
        return dim
    numbers = (dim.low, dim.high)
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in numbers) or not dim.low < dim.high:
        raise ConfigError(f"{where}: needs numbers low < high, got {dim.low!r}, {dim.high!r}")
    if isinstance(dim, IntRange) and not (is_int and all(isinstance(v, int) for v in numbers)):
        raise ConfigError(f"{where}: an int range needs an int field and int bounds")
    if isinstance(dim, FloatRange):
        if not is_float:
            raise ConfigError(f"{where}: a float range needs a float field")
        if dim.log and dim.low <= 0:
            raise ConfigError(f"{where}: a log range needs low > 0, got {dim.low}")
    return dim


# Ranges that replace a method's own for the fields it searches, on one kind and scale of model
# (ours). The methods' learning-rate ranges (1e-4 … 1e-1) are for SGD on image classifiers; an
# Adam-type step on a language model collapses far below their top. Measured on tofu-mini's
# 0.7 M-parameter Llama (trained at a peak AdamW lr of 3e-3; issue 17's first tofu-mini studies, 12
# trials each of npo, graddiff, mox, simnpo, rmu, lur): of the trials above lr 5e-3 all but one of
# the five gradient-on-the-loss methods' left model utility below 0.35 (most at 0), so half of each
# study was spent on destroyed models (rmu, whose loss is on hidden states, kept 0.79-0.86 there and
# declares its own range: ``scale_search_space``). A pretrained model is finetuned at 1e-5
# (OpenUnlearning's TOFU default), so its range is centred there.
SCALE_SEARCH_SPACE: dict[tuple[str, str], dict[str, Any]] = {
    ("text", "small"): {"lr": ("log", 1e-4, 5e-3)},
    ("text", "pretrained"): {"lr": ("log", 1e-6, 1e-4)},
}


def search_dimensions(config_cls: type[MethodConfig], method: str | None = None, *, kind: str | None = None,
                      scale: str | None = None) -> dict[str, Dimension]:
    """``config_cls.search_space`` as typed dimensions; every key must be a field of the config. With a
    ``kind`` (and ``scale``, default "small"), :data:`SCALE_SEARCH_SPACE`'s ranges, and the method's own
    ``scale_search_space`` over them, replace the method's ranges for the fields it searches."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    where = method or config_cls.__name__
    key = (kind, scale or "small")
    replaced = {**SCALE_SEARCH_SPACE.get(key, {}), **config_cls.scale_search_space.get(key, {})} if kind else {}
    out = {}
    for key, spec in config_cls.search_space.items():
        if key not in fields:
            raise ConfigError(f"{where}: search space names {key!r}, which is not a hyper-parameter; "
                              f"known: {', '.join(fields)}")
        out[key] = _dimension(replaced.get(key, spec), fields[key].type, f"{where}.search_space[{key!r}]")
    return out


def coerce_overrides(config_cls: type[MethodConfig], overrides: dict[str, Any], method: str) -> dict[str, Any]:
    """``overrides`` typed from ``config_cls``'s fields (CLI strings become int/float/bool/list), with
    a :class:`ConfigError` naming an unknown key or a value of the wrong type."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ConfigError(f"method {method!r} has no hyper-parameter {unknown}; known: {', '.join(fields)}")
    return {key: _coerce(value, fields[key], f"{method}.{key}") for key, value in overrides.items()}


def make_config(config_cls: type[MethodConfig], overrides: dict[str, Any], method: str) -> MethodConfig:
    """Build a config, rejecting unknown keys and converting CLI strings to the field's type."""
    return config_cls(**coerce_overrides(config_cls, overrides, method))


_TYPE_NAMES = {bool: "bool (true/false)", int: "int", float: "float", str: "str", list: "list (comma-separated)"}


def _field_type(f: dataclasses.Field) -> type | None:
    default = f.default if f.default is not dataclasses.MISSING else (
        f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
    if default is not None:
        return list if isinstance(default, (list, tuple)) else type(default)
    names = {"bool": bool, "int": int, "float": float, "str": str}
    return names.get(str(f.type).split("|")[0].strip())


def _coerce(value: Any, f: dataclasses.Field, where: str) -> Any:
    kind = _field_type(f)
    if kind is None or kind is str or value is None:
        return value
    if not isinstance(value, str):
        ok = (isinstance(value, bool) if kind is bool else
              isinstance(value, (list, tuple)) if kind is list else
              isinstance(value, (int, float)) and not isinstance(value, bool))
        if ok and kind is int and isinstance(value, float) and not value.is_integer():
            ok = False
        if not ok:
            raise ConfigError(f"{where}: expected {_TYPE_NAMES.get(kind, kind.__name__)}, got {value!r}")
        return int(value) if kind is int else float(value) if kind is float else value
    text = value.strip()
    try:
        if kind is bool:
            return parse_bool(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is list:
            return [part.strip() for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{where}: expected {_TYPE_NAMES.get(kind, kind.__name__)}, got {value!r}") from None
    return value


@dataclass
class RunContext:
    """What a run needs besides the model and data: device, data-order generator, progress, trace.

    ``trace`` collects per-step diagnostics a method chooses to record (e.g. gradient cosines),
    as lists under named keys; benchmarks and claim scripts read it.

    ``callbacks`` watch the run (``methods/callbacks.py``: ``on_run_start``, ``on_step(step, logs)``,
    ``on_run_end``; e.g. ``CSVLogger``): each step's loss, the objective terms the method names
    with :meth:`log`, and the learning rate. ``progress`` shows the same values on the bar.
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    # the run's data order and draws; None: seeded from the config's seed when the run starts
    generator: torch.Generator | None = None
    progress: bool = field(default_factory=lambda: sys.stderr.isatty() and not os.environ.get("CI"))
    trace: dict[str, list] = field(default_factory=dict)
    on_step: Callable[[nn.Module, int], None] | None = None
    # targets the optimizer steps consumed (answer tokens for text, examples for images), counted
    # by the shared loop: the benchmark reports throughput from it
    targets_seen: int = 0
    # mixed precision / channels-last / torch.compile for the shared loop (methods/precision.py)
    precision: Precision = field(default_factory=Precision)
    # the multi-process layer's state for this run (current share, last shard sizes, local scopes):
    # made current by run_method, so concurrent runs in one process never share it
    distributed: distributed.DistributedState = field(default_factory=distributed.DistributedState)
    # watchers of every step (methods/callbacks.py), called by the loops' StepCounter
    callbacks: list = field(default_factory=list)
    # the current step's named objective terms (``log``), taken by the StepCounter when the step ends
    terms: dict[str, Any] = field(default_factory=dict, repr=False)

    def record(self, key: str, value: float) -> None:
        self.trace.setdefault(key, []).append(float(value))

    def log(self, name: str, value: torch.Tensor | float) -> None:
        """Report objective term ``name`` of the current step (progress bar, callbacks), as it enters
        the objective before its weight. A tensor is kept detached (no host sync here)."""
        self.terms[name] = value.detach() if isinstance(value, torch.Tensor) else float(value)


class Method:
    """Base class. Subclasses set ``name``, ``summary``, ``Config`` and implement ``run``.

    ``run`` receives a model it owns (the public ``unlearn`` passes a copy) and returns the
    unlearned model (usually the same object, edited).
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Config: ClassVar[type[MethodConfig]] = MethodConfig

    def run(self, model: nn.Module, task: Task, split: Split, config: MethodConfig, ctx: RunContext) -> nn.Module:
        raise NotImplementedError


METHODS: Registry[type[Method]] = Registry("method")


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: register under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    return METHODS.register(cls.name)(cls)


def describe_config(config_cls: type[MethodConfig]) -> str:
    parts = []
    for f in dataclasses.fields(config_cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        parts.append(f"{f.name}={default}")
    return " ".join(parts)


def augmentation_generator(config: MethodConfig) -> torch.Generator | None:
    """The generator of a run's augmentation draws (``None`` when ``config.augment`` is off); its own
    stream, so switching augmentation on or off leaves the method's other random draws unchanged."""
    if not getattr(config, "augment", True):
        return None
    return torch.Generator().manual_seed(1_000_003 * int(config.seed) + 17)


def run_method(name: str, model: nn.Module, task: Task, split: Split, config: MethodConfig,
               ctx: RunContext) -> nn.Module:
    """Run the registered method ``name`` on ``model`` (edited in place), with the data's training
    augmentation switched on as ``config.augment`` says. Every caller goes through here."""
    cls = METHODS.get(name)
    if getattr(config, "grad_accum", 1) > 1 and not accumulates(cls):
        raise ConfigError(f"{name} runs its own training loop, which does not accumulate gradients; set "
                          f"grad_accum=1 and batch_size={config.batch_size * config.grad_accum} for the same "
                          "effective batch")
    if ctx.generator is None:  # the run's own draws: from its seed, never from the global state
        ctx.generator = generator_for(config.seed)
    with task.augmenting(augmentation_generator(config)), distributed.using(ctx.distributed), \
            seeded(config.seed), deterministic_algorithms(ctx.precision.deterministic):
        return cls().run(model, task, split, config, ctx)


def accumulates(cls: type[Method]) -> bool:
    """Whether the method steps through the shared loop (``LoopMethod.run``), which accumulates
    ``grad_accum`` micro-batches per optimizer step; a method may say so itself (``accumulates_grads``)."""
    from .loop import LoopMethod

    declared = getattr(cls, "accumulates_grads", None)
    if declared is not None:
        return bool(declared)
    return issubclass(cls, LoopMethod) and cls.run is LoopMethod.run
