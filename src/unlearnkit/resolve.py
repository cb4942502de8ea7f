"""The one resolver of hyper-parameters: every method's config and the original's training recipe.

The Python API (:func:`unlearnkit.unlearn`, :func:`unlearnkit.fit`), ``bench``, ``forget``, ``tune``,
sweeps and ``--dry-run`` all call :func:`resolve_config` / :func:`resolve_recipe`; no other code merges
defaults. A method's config is built from these layers, each later one over the earlier:

1. ``defaults`` — the method's ``Config`` dataclass (each field's docstring cites the paper, or says
   "ours" where the paper's setting is for another scale);
2. ``kind`` — what every method takes on one kind of data (:data:`KIND_DEFAULTS`; only the fields a
   method has);
3. ``method kind`` — the method's own per-kind defaults (``Config.kind_defaults``, declared next to
   its config with the reason);
3a. ``calibrated`` — at the small scale (a model trained on small data, not a pretrained LM), the
   values a committed study chose (:mod:`unlearnkit.calibrated`, each citing its study file): for
   ``data`` an embedded benchmark with its own study (e.g. ``wmdp-mini``), that study's; else the
   kind's, chosen to hold on models unlearnkit did not train; ``calibrated=False`` skips it (the
   papers' values);
3b. ``scale`` — text only, for a user's pretrained model (``scale="pretrained"``, i.e. ``--hf-model``):
   OpenUnlearning's published recipe (:data:`PRETRAINED_TEXT`, :data:`PRETRAINED_METHODS`, each value
   citing its config file);
4. ``preset`` — a paper's protocol (``bench/presets.py``, each value citing its source);
5. ``quick`` — ``--quick``: fewer epochs (``Config.quick_overrides``) unless the user set them;
6. ``overrides`` — the user's ``--set`` / keyword arguments (strings are typed from the dataclass);
7. ``seed`` — the run's seed, where the caller gives one.

``retrain`` repeats the original's recipe (:func:`resolve_recipe`) on the retain set, under its own
overrides. :func:`explain_config` tells which layer each value came from.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .calibrated import calibrated_values
from .errors import ConfigError
from .methods.base import METHODS, MethodConfig, coerce_overrides, make_config
from .methods.base import accumulates as _accumulates
from .methods.training import LMTrainConfig, TrainConfig

KINDS = ("image", "text")
REFERENCE = "retrain"

# Layer 2: what every method takes on one kind of data unless the user sets it (only the fields a
# method's config has). Method defaults are tuned for small image models trained with SGD; a
# transformer needs Adam-type steps.
KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "image": {},
    # ours: AdamW at 1e-3, batch 32, no weight decay — measured on tofu-mini's 0.7 M-parameter Llama
    # (the embedded text benchmarks take their own tune studies over these: calibrated.py)
    "text": {"optimizer": "adamw", "lr": 1e-3, "batch_size": 32, "momentum": 0.9, "weight_decay": 0.0},
}

# Layer 3b, text only: the recipe for a user's *pretrained* language model (``--hf-model``), where
# the small-model values above (lr 1e-3 for a 0.7 M-parameter Llama trained from scratch) would
# destroy it. OpenUnlearning's published TOFU unlearning settings (locuslab/open-unlearning):
PRETRAINED_TEXT: dict[str, Any] = {
    "optimizer": "adamw",     # configs/trainer/finetune.yaml: optim paged_adamw_32bit (AdamW)
    "lr": 1e-5,               # configs/experiment/unlearn/tofu/default.yaml: learning_rate 1e-5
    "weight_decay": 0.01,     # configs/experiment/unlearn/tofu/default.yaml: weight_decay 0.01
    "epochs": 10,             # configs/experiment/unlearn/tofu/default.yaml: num_train_epochs 10
    "batch_size": 8,          # configs/trainer/finetune.yaml: per_device_train_batch_size 8 ...
    "grad_accum": 4,          # ... × gradient_accumulation_steps 4 = effective batch 32
    "warmup": 0.1,            # tofu/default.yaml: warmup_epochs 1.0 (of 10 epochs = 10 % of the steps)
    "schedule": "linear",     # the Hugging Face Trainer's default lr_scheduler_type (linear decay)
    "grad_clip": 1.0,         # the Hugging Face Trainer's default max_grad_norm
}
# ... and each method's own values there (only fields the method has; the rest keep the method's
# defaults, which already follow these configs: NPO β 0.1, SimNPO β 4.5 γ 0.125 δ 0, GradDiff α γ 1)
PRETRAINED_METHODS: dict[str, dict[str, Any]] = {
    "rmu": {"alpha": 1.0, "steering_coeff": 2.0},   # configs/trainer/RMU.yaml: alpha 1, steering_coeff 2
    # ours: the seed methods' own learning rates follow the recipe's (their papers' vision values
    # are 1e-4..1e-2 for SGD on ResNets)
    "entangle": {"phase1_lr": 1e-5, "phase2_lr": 1e-5, "epochs": 0},  # epochs 0: its own phase counts
    "ieu": {"repair_lr": 1e-5},
}
SCALES = ("small", "pretrained")

# The original model's training recipe per kind of data (what ``retrain`` repeats on the retain set)
RECIPES: dict[str, type[MethodConfig]] = {"image": TrainConfig, "text": LMTrainConfig}
# Finetuning a pretrained language model (the target and the retain model of a TOFU run):
# OpenUnlearning's configs/trainer/finetune.yaml (lr 1e-5, 10 epochs, batch 8 × 4, no weight decay)
PRETRAINED_FINETUNE: dict[str, Any] = {"optimizer": "adamw", "lr": 1e-5, "weight_decay": 0.0, "epochs": 10,
                                       "batch_size": 8, "grad_accum": 4, "warmup": 0.0, "schedule": "linear",
                                       "grad_clip": 1.0}
# ``--quick``: the original (and retrain) trained this many epochs (ours: a smoke run)
QUICK_TRAIN_EPOCHS = 10


@dataclass(frozen=True)
class Layer:
    """One layer of a resolution: its name, where its values come from, and the values."""

    name: str
    source: str
    values: dict[str, Any]


def _check_kind(kind: str, scale: str | None = None) -> None:
    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if scale is not None and scale not in SCALES:
        raise ConfigError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if scale == "pretrained" and kind != "text":
        raise ConfigError("scale='pretrained' is the recipe for a pretrained language model (kind='text')")


def _preset(preset):
    if preset is None:
        return None
    if not isinstance(preset, str):
        return preset
    from .bench.presets import PRESETS  # a preset is a paper's protocol: the bench owns them

    return PRESETS.get(preset)


def _fields(config_cls: type[MethodConfig]) -> set[str]:
    return {f.name for f in dataclasses.fields(config_cls)}


def recipe_layers(*, kind: str = "image", scale: str | None = None, preset=None, overrides: dict | None = None,
                  quick: bool = False, seed: int | None = None) -> list[Layer]:
    """The layers of the original model's training recipe (``train.KEY`` overrides); for a
    pretrained language model (``scale="pretrained"``), OpenUnlearning's finetuning recipe."""
    _check_kind(kind, scale)
    preset = _preset(preset)
    config_cls = RECIPES[kind]
    overrides = dict(overrides or {})
    layers = [Layer("defaults", f"{config_cls.__name__} (its docstring says where each value comes from)", {})]
    if scale == "pretrained":
        layers.append(Layer("scale", "OpenUnlearning configs/trainer/finetune.yaml", dict(PRETRAINED_FINETUNE)))
    if preset is not None and preset.train:
        values = {k: v for k, v in preset.values("train").items() if not (quick and k == "epochs")}
        layers.append(Layer("preset", f"preset {preset.name} (bench/presets.py)", values))
    if quick and "epochs" not in overrides:
        layers.append(Layer("quick", "--quick (ours: a smoke run)", {"epochs": QUICK_TRAIN_EPOCHS}))
    if overrides:
        layers.append(Layer("overrides", "the user (--set train.KEY=VALUE)", overrides))
    if seed is not None:
        layers.append(Layer("seed", "the train seed", {"seed": seed}))
    return layers


def resolve_recipe(*, kind: str = "image", scale: str | None = None, preset=None, overrides: dict | None = None,
                   quick: bool = False, seed: int | None = None) -> MethodConfig:
    """The original model's training recipe for ``kind`` data (``TrainConfig`` / ``LMTrainConfig``),
    after the preset, ``--quick`` and ``overrides`` (``--set train.KEY=VALUE``)."""
    layers = recipe_layers(kind=kind, scale=scale, preset=preset, overrides=overrides, quick=quick, seed=seed)
    return _build(RECIPES[kind], layers, "train")


def config_layers(method: str, *, kind: str = "image", scale: str | None = None, preset=None,
                  overrides: dict | None = None, quick: bool = False, seed: int | None = None,
                  recipe: dict | None = None, calibrated: bool = True, data: str | None = None) -> list[Layer]:
    """The layers :func:`resolve_config` merges, in order (see the module docstring)."""
    _check_kind(kind, scale)
    config_cls = METHODS.get(method).Config
    preset = _preset(preset)
    overrides = dict(overrides or {})
    if method == REFERENCE:
        # retrain repeats the original's recipe on the retain set
        base = recipe if recipe is not None else resolve_recipe(kind=kind, scale=scale, preset=preset,
                                                                quick=quick).to_dict()
        layers = [Layer("recipe", "the original's training recipe (retrain repeats it)", dict(base))]
    else:
        known = _fields(config_cls)
        layers = [Layer("defaults", f"{config_cls.__name__} (its docstring cites the paper, or says ours)", {})]
        kind_values = {k: v for k, v in KIND_DEFAULTS[kind].items() if k in known}
        if kind_values and method != "original":
            layers.append(Layer("kind", f"{kind} data (resolve.KIND_DEFAULTS: ours)", kind_values))
        own = dict(config_cls.kind_defaults.get(kind, {}))
        if own:
            layers.append(Layer("method kind", f"{config_cls.__name__}.kind_defaults[{kind!r}]", own))
        study, tuned = calibrated_values(method, kind, data)
        tuned = {k: v for k, v in tuned.items() if k in known}
        if calibrated and tuned and scale != "pretrained":
            layers.append(Layer("calibrated", f"{study} (unlearnkit/calibrated.py)", tuned))
        if scale == "pretrained" and method != "original":
            values = {k: v for k, v in PRETRAINED_TEXT.items() if k in known}
            values.update({k: v for k, v in PRETRAINED_METHODS.get(method, {}).items() if k in known})
            if not accumulates(method) and values.get("grad_accum", 1) > 1:
                # a method with its own loop: the same effective batch in one step (more memory)
                values["batch_size"] = values["batch_size"] * values.pop("grad_accum")
            layers.append(Layer("scale", "a pretrained language model (resolve.PRETRAINED_TEXT: OpenUnlearning's "
                                         "TOFU settings)", values))
    if preset is not None and method in preset.methods:
        values = {k: v for k, v in preset.values(method).items() if not (quick and k == "epochs")}
        if values:
            layers.append(Layer("preset", f"preset {preset.name} (bench/presets.py)", values))
    if quick and method != REFERENCE and "epochs" not in overrides:
        partial = _build(config_cls, layers, method)
        values = partial.quick_overrides()
        if values:
            layers.append(Layer("quick", "--quick (ours: a smoke run)", values))
    if overrides:
        layers.append(Layer("overrides", "the user (--set / keyword arguments)", overrides))
    if seed is not None:
        layers.append(Layer("seed", "the run's seed", {"seed": seed}))
    return layers


def accumulates(method: str) -> bool:
    """Whether ``method`` accumulates ``grad_accum`` micro-batches (the shared loop does; methods with
    their own loop reject ``grad_accum > 1``)."""
    return _accumulates(METHODS.get(method))


def _build(config_cls: type[MethodConfig], layers: list[Layer], name: str) -> MethodConfig:
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer.values)
    return make_config(config_cls, merged, name)


def resolve_config(method: str, *, kind: str = "image", scale: str | None = None, preset=None,
                   overrides: dict | None = None, quick: bool = False, seed: int | None = None,
                   recipe: dict | None = None, calibrated: bool = True, data: str | None = None) -> MethodConfig:
    """The config ``method`` runs with on ``kind`` data ("image" or "text"), after every layer.
    ``scale``: "small" (default; a model trained here) or "pretrained" (a user's pretrained language
    model: OpenUnlearning's recipe, :data:`PRETRAINED_TEXT`).

    ``preset``: a preset name (``bench --preset``) or object; ``overrides``: the user's values (strings
    are typed from the config dataclass, a wrong type is a :class:`ConfigError` naming the key);
    ``quick``: ``--quick``'s shorter runs; ``seed``: the run's seed; ``recipe``: for ``retrain``, the
    original's recipe as a dict (default: :func:`resolve_recipe` for ``kind``); ``calibrated=False``:
    without the calibrated layer (the papers' values, :mod:`unlearnkit.calibrated`); ``data``: the data
    source's name (an embedded benchmark's own calibration, where it has one)."""
    layers = config_layers(method, kind=kind, scale=scale, preset=preset, overrides=overrides, quick=quick,
                           seed=seed, recipe=recipe, calibrated=calibrated, data=data)
    return _build(METHODS.get(method).Config, layers, method)


def explain_config(method: str, **kwargs) -> dict[str, str]:
    """Which layer each value of ``resolve_config(method, **kwargs)`` comes from: ``{field: layer}``,
    the last layer that set it ("defaults" for the dataclass's own value)."""
    origin = {f: "defaults" for f in _fields(METHODS.get(method).Config)}
    for layer in config_layers(method, **kwargs):
        for key in layer.values:
            origin[key] = layer.name
    return origin


def typed_overrides(target: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (e.g. strings from ``--set``) typed from ``target``'s config dataclass — a method
    name or ``train`` (the original's recipe) — with an error naming an unknown key or a bad value."""
    config_cls = TrainConfig if target == "train" else METHODS.get(target).Config
    return coerce_overrides(config_cls, values, target)
