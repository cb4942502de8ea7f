"""Where examples come from: a registry of loaders, selected by ``NAME[:PATH]``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch.utils.data import Dataset

from ..errors import ConfigError
from ..registry import Registry
from ..values import parse_bool
from .dataset import TensorData, labels_of
from .transforms import ImagePipeline


@dataclass
class DataSource:
    """A train/test pair for one classification problem.

    ``groups`` optionally maps each class to a coarse group (a class→superclass map); methods
    that need semantically adjacent data (``entangle``) use it.
    """

    name: str
    train: Dataset
    test: Dataset
    num_classes: int
    input_shape: tuple[int, ...]
    class_names: list[str] = field(default_factory=list)
    groups: dict[int, int] | None = None
    # For a source relabelled to coarse groups: the fine labels of (train, test).
    fine_labels: tuple[torch.Tensor, torch.Tensor] | None = None
    # "image" (classification) or "text" (causal language modelling; see data/text.py).
    kind: str = "image"
    # Text sources: the tokenizer the rows were encoded with.
    tokenizer: Any = None
    # Forget specs given by name (e.g. TOFU's "forget05"): name -> (forget_idx, retain_idx) into train.
    named_splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    # Evaluation sets by name (text: EvalSet / ChoiceSet, e.g. "forget05", "retain", "real_authors").
    evals: dict[str, Any] = field(default_factory=dict)
    # What `unlearnkit bench` runs on this data when the user does not say (empty: the kind's defaults).
    default_scenarios: tuple[str, ...] = ()
    default_audits: tuple[str, ...] = ()
    # Image sources: how a stored batch (often uint8 pixels) becomes a model input — scaling,
    # normalisation, and the training augmentation (data/transforms.py). None: inputs are used as stored.
    pipeline: ImagePipeline | None = None

    def coarse(self) -> "DataSource":
        """The same examples labelled with their group (``groups``); fine labels kept in ``fine_labels``."""
        if not self.groups:
            raise ConfigError(f"{self.name} has no class→group map; sub-class forgetting needs one")
        if not (isinstance(self.train, TensorData) and isinstance(self.test, TensorData)):
            raise ConfigError(f"{self.name}: coarse relabelling needs in-memory (TensorData) datasets")
        missing = [k for k in range(self.num_classes) if k not in self.groups]
        if missing:
            raise ConfigError(f"{self.name}: classes {missing} have no group in the class→group map")
        group_ids = sorted(set(self.groups.values()))
        lookup = torch.tensor([group_ids.index(self.groups[k]) for k in range(self.num_classes)])
        return DataSource(
            name=f"{self.name}-groups",
            train=TensorData(self.train.x, lookup[self.train.y], self.train.index),
            test=TensorData(self.test.x, lookup[self.test.y], self.test.index),
            num_classes=len(group_ids), input_shape=self.input_shape,
            class_names=[f"group{g}" for g in group_ids], groups=None,
            fine_labels=(labels_of(self.train), labels_of(self.test)), pipeline=self.pipeline,
        )

    def describe(self) -> str:
        return f"{self.name}: {len(self.train)} train / {len(self.test)} test, {self.num_classes} classes"


# A loader takes the optional PATH part of ``NAME:PATH`` and returns a DataSource.
DATA_SOURCES: Registry[Callable[[str | None], DataSource]] = Registry("data source")
# The options each loader takes (``--data-option KEY=VALUE``, keyword arguments of ``load_data``),
# with their types: name -> {option: bool | int | float | str}
DATA_OPTIONS: dict[str, dict[str, type]] = {}


def data_source(name: str, options: dict[str, type] | None = None):
    """Decorator: register a loader under ``name`` with the typed options it takes."""

    def decorate(loader):
        DATA_SOURCES.register(name)(loader)
        DATA_OPTIONS[name] = dict(options or {})
        return loader

    return decorate


def typed_data_options(data: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` for the loader of ``data`` (``NAME[:PATH]``), typed as it declares them (CLI text
    becomes bool/int/float); an option it does not take, or a value of the wrong type, is an error
    naming the option."""
    name, _ = parse_data_arg(data)
    DATA_SOURCES.get(name)
    declared = DATA_OPTIONS.get(name, {})
    unknown = sorted(set(options) - set(declared))
    if unknown:
        raise ConfigError(f"{name} does not take the option(s) {', '.join(unknown)}; "
                          f"it takes: {', '.join(declared) or 'none'}")
    return {key: _typed_option(name, key, value, declared[key]) for key, value in options.items()}


def _typed_option(loader: str, key: str, value: Any, kind: type) -> Any:
    if not isinstance(value, str) or kind is str:
        return value
    text = value.strip()
    try:
        return parse_bool(text) if kind is bool else kind(text)
    except ValueError:
        raise ConfigError(f"--data-option {key}={value}: {loader}'s {key} must be a {kind.__name__}") from None


def parse_data_arg(arg: str) -> tuple[str, str | None]:
    name, sep, path = arg.partition(":")
    if not name:
        raise ConfigError(f"data argument {arg!r} has no name; expected NAME or NAME:PATH")
    return name, (path if sep else None)


def load_data(arg: str, **options) -> DataSource:
    """Load ``NAME`` or ``NAME:PATH`` (e.g. ``digits``, ``tofu:/data/TOFU``). ``options`` go to the
    loader (text loaders take ``tokenizer=``: encode with a given model's tokenizer)."""
    name, path = parse_data_arg(arg)
    loader = DATA_SOURCES.get(name)
    return loader(path, **options)
