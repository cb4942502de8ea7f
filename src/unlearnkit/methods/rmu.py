"""RMU — representation misdirection for unlearning (Li, Pan, Gopal, …, Hendrycks 2024, "The WMDP
benchmark: measuring and reducing malicious use with unlearning", the RMU section).

At one layer ℓ, push the activations of forget data towards a fixed random direction scaled by a
steering coefficient c, and hold the activations of retain data where the frozen original put them:

    u = r/‖r‖,  r ~ U[0,1)^d drawn once                                   (fixed for the run)
    L_forget = E_{x∈D_F} (1/|x|) Σ_{t∈x} mean_d (h_θ(t) − c·u)²
    L_retain = E_{x∈D_R} (1/|x|) Σ_{t∈x} mean_d (h_θ(t) − h_ref(t))²
    min_θ  L_forget + α·L_retain,   θ restricted to ``trainable_layers``

h(t) = output of the submodule named ``layer`` (``task.hidden``). The paper writes squared L2 norms;
its code (and OpenUnlearning's port) average over the d hidden units instead (``mse_loss``), which is
what the published c and α were tuned with, so we do the same. For text, t runs over the labelled
tokens (answer tokens of QA rows, every real token of corpus rows), per example then over the batch
(OpenUnlearning's masked form; the WMDP code averages over every position of a batch it does not pad).
For a classifier the layer gives one vector per example (flattened), so |x| = 1.

Choices (each a config switch):
- ``layer="auto"``: for a model with a stack of identical blocks (the longest ``nn.ModuleList`` of
  one class: ``model.layers`` in HF Llama/Mistral, ``transformer.h`` in GPT-2) the middle block
  ``<stack>.{L//2}`` (the WMDP code steers layer 7 of Zephyr-7B's 32, OpenUnlearning layer 7 of
  Llama-3.2-1B's 16); otherwise the *penultimate module*: the leaf module registered just before
  the last leaf that holds parameters (the head), i.e. the features the head reads (``Flatten``
  in the digits ``cnn``, the last ``ReLU`` in ``mlp``).
- ``trainable_layers="auto"``: for a block stack, the MLP down-projection (``mlp.down_proj``; else
  ``mlp``; else the whole block) of blocks ℓ−2, ℓ−1, ℓ (WMDP code: ``layer_ids 5,6,7``,
  ``param_ids 6`` = ``mlp.down_proj.weight``); otherwise every parameterised module up to and
  including ``layer`` (parameters after ℓ cannot change the loss). ``"all"``: every parameter
  (OpenUnlearning's TOFU config). Or a comma-separated list of module/parameter names. Other
  parameters are frozen during the run and their ``requires_grad`` restored at the end.
- ``steering="relative"`` (default, our choice): c = ``steering_coeff`` × the mean L2 norm of the
  original model's forget activations at ℓ (over the first ``norm_batches`` forget batches). The
  paper's absolute c (6.5 in the published Zephyr run, 20 as the code default, 2 in OpenUnlearning's
  TOFU config) is in units of a 4096-wide layer of a 7B model and means nothing for a 64-wide
  feature layer or a 128-wide tiny LM; ``steering="absolute"`` uses ``steering_coeff`` as c itself.
  (Adaptive RMU, Dang et al., likewise scales c with the frozen activation norm, per example.)
- ``freeze_norm``: BatchNorm-type layers on running statistics (classifiers; see :mod:`.graddiff`),
  so the retain term is exactly 0 at the start.
- On a classifier steered at the penultimate layer, every forget input ends up with (nearly) the same
  features c·u, hence the same prediction: the head's choice for c·u, which may by chance be the
  forgotten class itself (then try another ``seed``, which redraws u, or an earlier layer).

Each step records its two terms in ``ctx.trace["rmu_forget"]`` and ``["rmu_retain"]`` (the
values to watch when tuning c and α, which the WMDP authors and OpenUnlearning call model-specific).

The text mask is read from the batch (labels ≠ -100 at the hidden positions), since the Task seam has
no "positions of a batch" query; see the module's ``token_mask``.

Defaults. The WMDP code: α = 100, c = 20 (published Zephyr run: α = 1200, c = 6.5, layer 7, layers
5–7 trained, AdamW lr 5e-5, batch 4, 150–250 steps); OpenUnlearning's TOFU config: α = 1, c = 2,
layer 7, all parameters. Ours for the digits CNN (measured on class:0 and random:0.1, 4 seeds):
relative c = 2 × the mean feature norm, α = 3, SGD lr 0.01, 10 epochs, clipping at norm 1
(α = 10 barely moves the forget set; α = 1 over-forgets random:0.1; without clipping it diverges).

Passes per step: 3 forward + 2 backward (forget and retain batches through the edited model, the
retain batch through the frozen original; the backwards run only from layer ℓ down to the first
trainable parameter, so a step costs less than this count).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..data.dataset import iterate_batches
from ..data.text import IGNORE
from ..errors import ConfigError
from .base import MethodConfig, register
from .loop import LoopMethod, log_term
from .reference_model import freeze_norm_layers, frozen_copy


@dataclass
class RMUConfig(MethodConfig):
    """``layer``: module name of ℓ, or auto.  ``trainable_layers``: auto | all | comma-separated
    names.  ``steering_coeff``: c (absolute) or its multiple of the mean activation norm (relative).
    ``steering``: relative | absolute.  ``alpha``: α, the retain weight.  ``norm_batches``: forget
    batches used to measure the activation norm.  ``freeze_norm``: BatchNorm on running statistics."""

    epochs: int = 10
    lr: float = 0.01
    grad_clip: float = 1.0
    layer: str = "auto"
    trainable_layers: str = "auto"
    steering_coeff: float = 2.0
    steering: str = "relative"
    alpha: float = 3.0
    norm_batches: int = 4
    freeze_norm: bool = True
    # ours: steering coefficient (relative) and retain weight around our digits defaults
    search_space = {"lr": ("log", 1e-4, 1e-1), "epochs": ("int", 1, 10), "steering_coeff": ("log", 0.5, 20.0),
                    "alpha": ("log", 0.1, 100.0)}
    # ours: its loss is a distance between hidden states, so a small LM trained here takes larger
    # steps than the Adam-sized range of the other methods (wmdp-mini's study chose lr 0.042; on
    # tofu-mini trials at 0.01 kept model utility 0.79-0.86): its own range on text
    scale_search_space = {("text", "small"): {"lr": ("log", 1e-4, 1e-1)}}

    def __post_init__(self):
        super().__post_init__()
        if self.steering not in ("relative", "absolute"):
            raise ConfigError(f"steering must be relative or absolute, got {self.steering!r}")
        if self.norm_batches < 1:
            raise ConfigError(f"norm_batches must be >= 1, got {self.norm_batches}")


# --- where to steer, what to train -----------------------------------------------------------

def block_stack(model: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """The longest ``nn.ModuleList`` whose children are all of one class (decoder layers), or None."""
    best = None
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) and len({type(m) for m in module}) == 1:
            if best is None or len(module) > len(best[1]):
                best = (name, module)
    return best


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if name and next(m.children(), None) is None]


def _has_parameters(module: nn.Module) -> bool:
    return next(module.parameters(recurse=False), None) is not None


def default_layer(model: nn.Module) -> str:
    """The middle block of a block stack, else the leaf module just before the head."""
    stack = block_stack(model)
    if stack is not None:
        return f"{stack[0]}.{len(stack[1]) // 2}"
    leaves = _leaves(model)
    heads = [i for i, (_, m) in enumerate(leaves) if _has_parameters(m)]
    if not heads or heads[-1] == 0:
        raise ConfigError("rmu: cannot choose a layer for this model; set layer=<module name>")
    return leaves[heads[-1] - 1][0]


def _block_index(model: nn.Module, layer: str) -> tuple[str, int] | None:
    stack = block_stack(model)
    if stack is None or not layer.startswith(stack[0] + "."):
        return None
    head = layer[len(stack[0]) + 1:].split(".")[0]
    return (stack[0], int(head)) if head.isdigit() else None


def default_trainable(model: nn.Module, layer: str) -> list[str]:
    """WMDP's choice for block stacks (MLP down-projections of blocks ℓ−2..ℓ); otherwise every
    parameterised leaf module up to and including ``layer``."""
    modules = dict(model.named_modules())
    found = _block_index(model, layer)
    if found is not None:
        stack, index = found
        names = []
        for j in range(max(0, index - 2), index + 1):
            block = f"{stack}.{j}"
            names.append(next(n for n in (f"{block}.mlp.down_proj", f"{block}.mlp", block) if n in modules))
        return names
    leaves = _leaves(model)
    inside = [i for i, (name, _) in enumerate(leaves) if name == layer or name.startswith(layer + ".")]
    if not inside:
        raise ConfigError(f"rmu: layer {layer!r} holds no leaf module of this model")
    return [name for name, module in leaves[: inside[-1] + 1] if _has_parameters(module)]


def trainable_names(model: nn.Module, config: RMUConfig, layer: str) -> set[str]:
    """Names of the parameters RMU may update."""
    all_names = [name for name, _ in model.named_parameters()]
    if config.trainable_layers == "all":
        return set(all_names)
    prefixes = (default_trainable(model, layer) if config.trainable_layers == "auto"
                else [p.strip() for p in config.trainable_layers.split(",") if p.strip()])
    chosen = set()
    for prefix in prefixes:
        hits = {n for n in all_names if n == prefix or n.startswith(prefix + ".")}
        if not hits:
            raise ConfigError(f"rmu: trainable_layers entry {prefix!r} matches no parameter; "
                              f"parameters: {all_names[:12]}…")
        chosen |= hits
    return chosen


# --- the activation losses ---------------------------------------------------------------------

def token_mask(batch, h: torch.Tensor) -> torch.Tensor | None:
    """``[B, T]`` bool of the positions that count (labels ≠ -100) when ``h`` is ``[B, T, H]`` and the
    batch is ``(input_ids, labels)`` of that shape; None when ``h`` is one vector per example."""
    if h.dim() != 3 or not isinstance(batch, (tuple, list)) or len(batch) != 2:
        return None
    labels = batch[1]
    if torch.is_tensor(labels) and labels.shape == h.shape[:2]:
        return labels != IGNORE
    return None


def activation_mse(h: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """E_x (1/|x|) Σ_{t∈x} mean_d (h(t) − target(t))²; ``target`` is per-position or a broadcast vector."""
    h = h.float()
    target = target.float()
    if mask is None:                                              # one vector per example
        h = h.flatten(1)
        target = target.flatten(1) if target.dim() > 1 else target
        return ((h - target) ** 2).mean(dim=1).mean()
    squared = ((h - target) ** 2).mean(dim=-1)                    # mean_d (·)², [B, T]
    weights = mask.to(squared.dtype)
    per_example = (squared * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)   # (1/|x|) Σ_t
    return per_example.mean()


def _features(h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The activation vectors that count, ``[N, d]``."""
    return h.flatten(1) if mask is None else h[mask]


@register
class RMU(LoopMethod):
    name = "rmu"
    summary = "RMU: steer forget activations at one layer to a random direction, keep retain activations"
    Config = RMUConfig
    streams = ("forget", "retain")
    epoch_stream = "forget"

    def prepare(self, model, task, split, config, ctx):
        layer = default_layer(model) if config.layer == "auto" else config.layer
        if layer not in dict(model.named_modules()):
            raise ConfigError(f"rmu: model has no layer {layer!r}")
        reference = frozen_copy(model)                                          # M_frozen
        keep = trainable_names(model, config, layer)
        if not keep:
            raise ConfigError(f"rmu: no trainable parameter up to layer {layer!r}; set trainable_layers")
        flags = {name: p.requires_grad for name, p in model.named_parameters()}
        for name, p in model.named_parameters():
            p.requires_grad_(flags[name] and name in keep)
        control = self._control_vector(reference, task, split, layer, config, ctx)
        return {"reference": reference, "layer": layer, "control": control, "requires_grad": flags, "ctx": ctx}

    @staticmethod
    @torch.no_grad()
    def _control_vector(reference, task, split, layer, config, ctx) -> torch.Tensor:
        """c·u: u uniform on [0,1)^d normalised, c absolute or relative to the mean activation norm."""
        norms, width = [], None
        for i, batch in enumerate(iterate_batches(split.forget, config.batch_size)):
            if i == config.norm_batches:
                break
            batch = task.to_device(batch, ctx.device)
            h = task.hidden(reference, batch, layer)
            features = _features(h.float(), token_mask(batch, h))
            width = features.shape[1]
            norms.append(features.norm(dim=1))
            if config.steering == "absolute":
                break
        u = torch.rand(width, generator=ctx.generator)
        u = u / u.norm()                                                        # u = r/‖r‖
        c = config.steering_coeff
        if config.steering == "relative":
            c = c * float(torch.cat(norms).mean())                              # c = k·mean‖h_ref‖
        if not math.isfinite(c):
            raise ConfigError("rmu: the steering coefficient is not finite")
        return (c * u).to(ctx.device)                                           # c·u

    def set_train_mode(self, model, config):
        model.train()
        if config.freeze_norm:
            freeze_norm_layers(model)

    def objective(self, model, task, batches, config, state):
        layer, forget, retain = state["layer"], batches["forget"], batches["retain"]
        h_f = task.hidden(model, forget, layer)                                 # M_updated(t), t ∈ x_f
        forget_term = activation_mse(h_f, state["control"], token_mask(forget, h_f))  # L_forget
        state["ctx"].record("rmu_forget", float(forget_term.detach()))
        log_term(state, "forget", forget_term)                                  # terms unweighted
        if not config.alpha:
            return forget_term
        h_r = task.hidden(model, retain, layer)                                 # M_updated(t), t ∈ x_r
        with torch.no_grad():
            h_ref = task.hidden(state["reference"], retain, layer)              # M_frozen(t)
        retain_term = activation_mse(h_r, h_ref, token_mask(retain, h_r))       # L_retain
        state["ctx"].record("rmu_retain", float(retain_term.detach()))
        log_term(state, "retain", retain_term)
        return forget_term + config.alpha * retain_term                         # L_forget + α·L_retain

    def finish(self, model, state, config, ctx):
        for name, p in model.named_parameters():
            p.requires_grad_(state["requires_grad"][name])
        return model
