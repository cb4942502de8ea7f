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

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the data's contents: what changes when any example, label or class does.

        Hashed, in this order: the kind, class count, input shape, class names, class→group map, the
        image pipeline's settings (normalisation, augmentation: how pixels become inputs), then for
        ``train`` and ``test`` every example in order — for in-memory data (:class:`TensorData`, all
        built-in loaders) the input and label tensors as stored (dtype, shape, raw bytes; an index
        view: the rows it selects); for any other ``Dataset`` each ``dataset[i]`` it yields (tensors,
        arrays, numbers, strings; other objects by type name only) — then ``fine_labels``, the named
        splits and the evaluation sets (text). Not hashed: the name and path the data was loaded
        from (the same contents elsewhere give the same fingerprint), the tokenizer (its effect is
        in the token ids), the default scenarios/audits. Computed once and kept on this object: a
        source's tensors are not changed after loading."""
        cached = self.__dict__.get("_fingerprint")
        if cached is not None:
            return cached
        import dataclasses
        import hashlib
        import json

        import numpy as np

        digest = hashlib.sha256(b"unlearnkit data fingerprint v1\n")

        def text(value) -> None:
            digest.update(json.dumps(value, sort_keys=True, default=str).encode() + b"\n")

        def tensor(t) -> None:
            t = torch.as_tensor(t).detach().to("cpu").contiguous()
            text(["tensor", str(t.dtype), list(t.shape)])
            if t.numel():
                digest.update(t.reshape(-1).view(torch.uint8).numpy())

        def value(v) -> None:  # one example, an eval set, a nested container
            if isinstance(v, TensorData):
                x, y = (v.x, v.y) if v.index is None else v.gather(torch.arange(len(v)))  # the rows it shows
                text("TensorData")
                tensor(x)
                tensor(y)
            elif isinstance(v, torch.Tensor):
                tensor(v)
            elif isinstance(v, np.ndarray):
                tensor(torch.from_numpy(np.ascontiguousarray(v)))
            elif isinstance(v, (str, int, float, bool)) or v is None:
                text([type(v).__name__, v])
            elif isinstance(v, dict):
                text(["dict", len(v)])
                for key in sorted(v, key=str):
                    text(str(key))
                    value(v[key])
            elif isinstance(v, (list, tuple)):
                text([type(v).__name__, len(v)])
                for item in v:
                    value(item)
            elif dataclasses.is_dataclass(v) and not isinstance(v, type):
                text(["dataclass", type(v).__name__])
                for f in dataclasses.fields(v):
                    text(f.name)
                    value(getattr(v, f.name))
            elif hasattr(v, "__array__"):  # e.g. a PIL image
                value(np.asarray(v))
            else:
                text(["object", type(v).__name__])

        def dataset(ds) -> None:
            if isinstance(ds, TensorData):
                value(ds)
                return
            text(["Dataset", type(ds).__name__, len(ds)])
            for i in range(len(ds)):
                value(ds[i])

        text({"kind": self.kind, "num_classes": self.num_classes, "input_shape": list(self.input_shape),
              "class_names": list(self.class_names),
              "groups": None if self.groups is None else sorted((int(k), int(g)) for k, g in self.groups.items()),
              "pipeline": None if self.pipeline is None else dataclasses.asdict(self.pipeline)})
        for part, ds in (("train", self.train), ("test", self.test)):
            text(part)
            dataset(ds)
        value(None if self.fine_labels is None else list(self.fine_labels))
        value({name: list(pair) for name, pair in self.named_splits.items()})
        value(dict(self.evals))
        self.__dict__["_fingerprint"] = digest.hexdigest()
        return self.__dict__["_fingerprint"]


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
