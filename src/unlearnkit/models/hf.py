"""Hugging Face causal language models: build tiny ones, load and save real ones.

Language models do not fit the classifier signature ``build_model(name, input_shape, num_classes)``
(their size is set by a tokenizer), so they have their own registry, :data:`LANGUAGE_MODELS`, and
builder :func:`build_lm` ``(name, tokenizer, *, seed=None, **overrides)``. ``--model tiny-llama``
names :func:`tiny_llama`; a checkpoint is read with :func:`load_hf_model` / :func:`load_hf_tokenizer`.

**Loading** (:func:`load_hf_model`): a local folder written by ``save_pretrained`` — one
``model.safetensors`` or shards ``model-0000k-of-0000n.safetensors`` with their
``model.safetensors.index.json``, tied embeddings, any dtype — always, and never over the network.
A Hugging Face Hub id (``org/name``) is looked up in the local Hugging Face cache first and
downloaded only when that fails and the hub is reachable (not with ``HF_HUB_OFFLINE=1``); when it
cannot be had, the error is one line saying so and asking for a local folder. ``dtype="auto"``
keeps the checkpoint's own dtype (``torch_dtype``/``dtype`` in its ``config.json``; float32 when
it names none), ``"bf16"``/``"fp16"``/``"fp32"`` convert. ``trust_remote_code`` stays off unless
asked. A tokenizer without a pad token pads with its EOS token (:mod:`unlearnkit.data.text`).

**Converting a GGUF file** (:func:`convert_gguf`, ``unlearnkit convert-gguf FILE OUT_DIR``): the
file is de-quantised by transformers (needs the ``gguf`` and ``accelerate`` packages), its weights
are loaded into a plain model built from its config, and model and tokenizer are written with
``save_pretrained`` into a new folder, which :func:`load_hf_model` then reads like any other.

:func:`save_hf_model` writes the model and its tokenizer into a temporary sibling folder and
renames it into place, and never replaces an existing folder. ``transformers`` is imported lazily
so ``import unlearnkit`` stays fast.

Optional extras: :func:`set_gradient_checkpointing` (trade compute for activation memory) and
:func:`add_lora` / :func:`merge_lora` through ``peft`` (the ``[llm]`` extra).
"""
from __future__ import annotations

import copy
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..extras import require
from ..registry import Registry
from ..seeding import seeded

log = logging.getLogger(__name__)

LANGUAGE_MODELS: Registry[Callable[..., nn.Module]] = Registry("language model")

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
DTYPES = ("auto", "bf16", "fp16", "fp32")
# a Hugging Face Hub repository id: NAME or OWNER/NAME (letters, digits, '-', '_', '.')
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


def _silence_progress() -> None:
    require("transformers", "llm", "language models need")
    from transformers.utils import logging

    logging.disable_progress_bar()


@LANGUAGE_MODELS.register("tiny-llama")
def tiny_llama(
    tokenizer,
    hidden: int = 128,
    layers: int = 2,
    heads: int = 4,
    max_positions: int = 256,
    *,
    seed: int | None = None,
    attn_implementation: str = "eager",
) -> nn.Module:
    """The tofu-mini architecture (research/llm-stack.md §A.2): a Llama with ``hidden`` width,
    ``layers`` decoder layers, ``heads`` attention heads (no grouped KV), a 4× MLP, tied input/output
    embeddings and the tokenizer's vocabulary and special ids. 0.7 M parameters at the defaults with
    a 1.5 k-token vocabulary; it memorises 1,000 synthetic QA pairs in ~30–40 epochs on CPU.

    ``attn_implementation`` defaults to ``"eager"``: as fast as SDPA at this size on CPU (measured,
    69 vs 67 ms per train step at batch 32), and, unlike the fused SDPA kernels, twice
    differentiable, which methods that take Hessian-vector products (``lur``) need."""
    require("transformers", "llm", "language models need")
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden % heads:
        raise ConfigError(f"tiny-llama: hidden size {hidden} is not divisible by {heads} heads")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        attn_implementation=attn_implementation,
    )
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def build_lm(name: str, tokenizer, *, seed: int | None = None, **overrides) -> nn.Module:
    """A freshly initialised language model from :data:`LANGUAGE_MODELS` sized for ``tokenizer``."""
    return LANGUAGE_MODELS.get(name)(tokenizer, seed=seed, **overrides)


def is_hf_model_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding ``config.json`` and safetensors weights."""
    path = Path(path)
    return (path / "config.json").is_file() and any((path / name).is_file() for name in WEIGHT_FILES)


def _dtype(dtype) -> torch.dtype | str:
    """``"auto"`` (also ``None``: the checkpoint's dtype) or a ``torch.dtype`` from a name
    (``bf16``/``bfloat16``, ``fp16``/``float16``/``half``, ``fp32``/``float32``) or a dtype."""
    if dtype is None or dtype == "auto":
        return "auto"
    if isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype).removeprefix("torch.")
    aliases = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
    value = getattr(torch, aliases.get(name, name), None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ConfigError(f"unknown dtype {dtype!r}; use {', '.join(DTYPES)}")
    return value


def _dtype_key(transformers) -> str:
    major_minor = tuple(int(p) for p in re.findall(r"\d+", transformers.__version__)[:2])
    return "dtype" if major_minor >= (4, 56) else "torch_dtype"


def hub_offline() -> bool:
    """Whether the environment forbids the Hugging Face Hub (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _is_hub_id(text: str) -> bool:
    """A string that names a Hub repository (``NAME`` or ``OWNER/NAME``) rather than a local path:
    relative, in the Hub's alphabet, and no file or folder exists under that name."""
    return bool(_HUB_ID.match(text)) and not text.startswith(".") and not Path(text).exists()


def _check_folder(path: Path) -> None:
    if not path.is_dir():
        raise CheckpointError(f"model folder not found: {path}")
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path} has no config.json; expected a folder written by save_pretrained")
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise CheckpointError(f"{path} has no safetensors weights ({' or '.join(WEIGHT_FILES)})")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub endpoint (``HF_ENDPOINT``) opens within ``timeout``
    seconds; True when a proxy is configured (the hub library then goes through it)."""
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=timeout).close()
        return True
    except OSError:
        return False


def hub_folder(hub_id: str, *, trust_remote_code: bool = False) -> Path:
    """The local folder of Hub repository ``hub_id``: its snapshot in the Hugging Face cache, else
    downloaded (config, safetensors weights, tokenizer files; Python files only with
    ``trust_remote_code``) when the hub is reachable and ``HF_HUB_OFFLINE`` is not set. Otherwise a
    one-line :class:`CheckpointError` asking for a local folder."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(hub_id, local_files_only=True))   # the cache only: no network
    except Exception:  # noqa: BLE001  not cached (the hub library raises several kinds)
        pass
    ask = "download it where the hub is reachable and pass the local folder (save_pretrained layout)"
    if hub_offline():
        raise CheckpointError(f"{hub_id!r} is neither a local folder nor in the Hugging Face cache, and "
                              f"HF_HUB_OFFLINE is set so it cannot be downloaded here; {ask}")
    if not _hub_reachable():
        raise CheckpointError(f"{hub_id!r} is neither a local folder nor in the Hugging Face cache, and the "
                              f"Hugging Face Hub cannot be reached from here to download it; {ask}")
    patterns = ["*.json", "*.safetensors", "*.jinja", "*.model", "*.txt", "*.tiktoken"] + \
        (["*.py"] if trust_remote_code else [])
    try:
        return Path(snapshot_download(hub_id, allow_patterns=patterns))
    except Exception as exc:  # noqa: BLE001  network, authentication, missing repository…
        raise CheckpointError(f"{hub_id!r} is not a local folder and cannot be downloaded from the Hugging Face "
                              f"Hub here ({_first_line(exc)[:160]}); {ask}") from None


def load_hf_model(path_or_id: str | os.PathLike, dtype="auto", device=None, attn_implementation: str | None = None,
                  *, trust_remote_code: bool = False) -> nn.Module:
    """A causal LM from a local ``save_pretrained`` folder, or a Hub id (module docstring).

    ``dtype``: ``"auto"`` (default; also ``None``) keeps the checkpoint's dtype, ``"bf16"``,
    ``"fp16"``, ``"fp32"`` (or a ``torch.dtype`` / ``"bfloat16"``…) converts at load. ``device``
    moves the model after loading. ``attn_implementation`` (``"eager"``, ``"sdpa"``…) overrides the
    one saved in the config; use ``"eager"`` for methods that differentiate twice (the fused SDPA
    kernels have no double backward). ``trust_remote_code`` lets transformers run the checkpoint's
    own Python code (off unless asked).
    Raises :class:`CheckpointError` naming the folder when it, its ``config.json`` or its safetensors
    weights are missing, or when transformers cannot read them; for a Hub id that is not in the
    local cache and cannot be downloaded, a one-line :class:`CheckpointError` saying so.
    """
    text = os.fspath(path_or_id)
    transformers = require("transformers", "llm", "language models need")
    from transformers import AutoModelForCausalLM

    folder = hub_folder(text, trust_remote_code=trust_remote_code) if _is_hub_id(text) else Path(text)
    _check_folder(folder)
    _silence_progress()
    kwargs: dict = {"local_files_only": True, "use_safetensors": True, "trust_remote_code": bool(trust_remote_code),
                    _dtype_key(transformers): _dtype(dtype)}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"cannot load the model in {folder}: {exc}") from None
    if device is not None:
        model = model.to(device)
    return model


def load_hf_tokenizer(path_or_id: str | os.PathLike, *, trust_remote_code: bool = False):
    """The tokenizer saved beside a model (a local folder, or a Hub id as :func:`load_hf_model`).
    One without a pad token gets its EOS token as pad (OpenUnlearning does the same); masks never
    rely on the pad id (:mod:`unlearnkit.data.text`)."""
    text = os.fspath(path_or_id)
    require("transformers", "llm", "language models need")
    from transformers import AutoTokenizer

    from ..data.text import ensure_pad_token

    folder = hub_folder(text, trust_remote_code=trust_remote_code) if _is_hub_id(text) else Path(text)
    if not folder.is_dir():
        raise CheckpointError(f"tokenizer folder not found: {folder}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True,
                                                  trust_remote_code=bool(trust_remote_code))
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"cannot load a tokenizer from {folder}: {exc}") from None
    if tokenizer.eos_token_id is None:
        raise CheckpointError(f"the tokenizer in {folder} has no EOS token; answers end with it")
    return ensure_pad_token(tokenizer)


def max_positions(model: nn.Module) -> int | None:
    """The longest input the model's config allows (``max_position_embeddings`` or an equivalent)."""
    config = getattr(model, "config", None)
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def reference_copy(model: nn.Module, reference_device=None) -> nn.Module:
    """A frozen copy of ``model`` in its dtype on ``reference_device`` (default: where
    ``set_reference_device`` put the model's references, else the model's device); see
    :mod:`unlearnkit.methods.reference_model`."""
    from ..methods.reference_model import frozen_copy

    return frozen_copy(model, reference_device)


def convert_gguf(gguf_file: str | os.PathLike, out_dir: str | os.PathLike, *, dtype="auto") -> Path:
    """Convert a GGUF checkpoint into a new ``save_pretrained`` folder ``out_dir`` (model + tokenizer).

    transformers de-quantises the file (``from_pretrained(folder, gguf_file=NAME)``; needs the
    ``gguf`` and ``accelerate`` packages); such a model refuses ``save_pretrained``, so its weights
    are loaded into a fresh model built from its config without ``quantization_config``, which is
    saved with the GGUF's tokenizer (chat template included). ``dtype``: ``"auto"`` keeps what the
    de-quantisation gives, or ``"bf16"``/``"fp16"``/``"fp32"``. ``out_dir`` must not exist (nothing
    is ever overwritten). Offline: reads only the local file. Returns ``out_dir``.

    Measured on SmolLM2-135M-Instruct (Q4_1, 98 MB, one CPU thread): 18–52 s (most of it transformers'
    de-quantisation), 1.6 GB peak memory, a 538 MB float32 folder (``dtype="bf16"``: half that).
    """
    gguf_file, out_dir = Path(gguf_file), Path(out_dir)
    if not gguf_file.is_file():
        raise CheckpointError(f"GGUF file not found: {gguf_file}")
    if out_dir.exists():
        raise CheckpointError(f"refusing to overwrite existing folder {out_dir}; choose a new output folder")
    transformers = require("transformers", "llm", "language models need")
    import importlib.util

    missing = [name for name in ("gguf", "accelerate") if importlib.util.find_spec(name) is None]
    if missing:
        from ..errors import MissingExtraError

        raise MissingExtraError(f"converting a GGUF file needs the {' and '.join(missing)} package"
                                f"{'s' if len(missing) > 1 else ''}: pip install {' '.join(missing)}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _silence_progress()
    folder, name = str(gguf_file.parent), gguf_file.name
    try:
        quantised = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"cannot read the GGUF file {gguf_file}: {_first_line(exc)}") from None
    config = copy.deepcopy(quantised.config)   # the architecture, without the GGUF quantisation
    if "quantization_config" in config.__dict__:
        del config.__dict__["quantization_config"]
    state = quantised.state_dict()
    target = _dtype(dtype)
    if target == "auto":
        target = next(iter(state.values())).dtype
    with torch.random.fork_rng(devices=[]):  # the random init is overwritten; leave the caller's RNG alone
        plain = AutoModelForCausalLM.from_config(config, **{_dtype_key(transformers): target})
    missing_keys, unexpected = plain.load_state_dict({k: v.to(target) for k, v in state.items()}, strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing_keys) - tied or unexpected:
        raise CheckpointError(f"{gguf_file}: its weights do not match the model its config describes "
                              f"(missing {sorted(missing_keys)[:5]}, unexpected {sorted(unexpected)[:5]})")
    del quantised, state
    log.info("converted %s to a %s model with %.1f M parameters", gguf_file.name, type(plain).__name__,
             sum(p.numel() for p in plain.parameters()) / 1e6)
    return save_hf_model(plain, tokenizer, out_dir)


def save_hf_model(model: nn.Module, tokenizer, path: str | os.PathLike) -> Path:
    """Write ``model`` (safetensors) and ``tokenizer`` (if given) to the new folder ``path``, atomically.

    Files go to a temporary sibling folder that is renamed to ``path`` once complete, so a crash
    never leaves a half-written model under the final name. An existing ``path`` is never replaced.
    A LoRA-wrapped model is saved with its adapters merged (on a copy; ``model`` is not changed).
    """
    path = Path(path)
    if path.exists():
        raise CheckpointError(f"refusing to overwrite existing model folder {path}; choose another output path")
    path.parent.mkdir(parents=True, exist_ok=True)
    _silence_progress()
    if hasattr(model, "merge_and_unload"):  # peft wrapper: save a plain model, not just the adapter
        import copy

        model = copy.deepcopy(model).merge_and_unload()
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        model.save_pretrained(str(tmp))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        if path.exists():
            raise CheckpointError(f"refusing to overwrite existing model folder {path} (created while saving)")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
        os.rename(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def set_gradient_checkpointing(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Recompute activations in the backward pass instead of storing them (less memory, ~1.3× time)."""
    if hasattr(model, "activation_checkpointing_enable"):   # transformers >= 5 names
        enable, disable, kwargs = model.activation_checkpointing_enable, model.activation_checkpointing_disable, \
            {"activation_checkpointing_kwargs": {"use_reentrant": False}}
    else:                                                   # transformers 4.x names
        enable, disable, kwargs = model.gradient_checkpointing_enable, model.gradient_checkpointing_disable, \
            {"gradient_checkpointing_kwargs": {"use_reentrant": False}}
    if enabled:
        enable(**kwargs)
        if getattr(model, "config", None) is not None:
            model.config.use_cache = False
    else:
        disable()
    return model


def is_checkpointing(model: nn.Module) -> bool:
    """Whether activation (gradient) checkpointing is on."""
    flag = "is_activation_checkpointing" if hasattr(type(model), "is_activation_checkpointing") else "is_gradient_checkpointing"
    return bool(getattr(model, flag, False))


def peft_available() -> bool:
    """Whether the ``peft`` package (the ``[llm]`` extra; LoRA) is installed."""
    import importlib.util

    return importlib.util.find_spec("peft") is not None


def add_lora(model: nn.Module, r: int = 8, alpha: int = 16, dropout: float = 0.0, target_modules=None,
             seed: int = 0) -> nn.Module:
    """Wrap ``model`` with LoRA adapters (only they stay trainable). Needs ``peft`` (the ``[llm]`` extra).

    ``target_modules`` defaults to the attention and MLP projections of Llama-style models. The
    adapters' random initialisation is drawn from ``seed`` (the caller's random state is untouched),
    so the same request gives the same adapters.
    """
    require("peft", "llm", "LoRA needs")
    from peft import LoraConfig, get_peft_model

    targets = target_modules or ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM")
    with seeded(seed):
        return get_peft_model(model, config)


def save_lora_adapter(model: nn.Module, tokenizer, path: str | os.PathLike) -> Path:
    """Write only the LoRA adapter of a peft-wrapped ``model`` (``adapter_model.safetensors`` +
    ``adapter_config.json``, loadable with ``peft.PeftModel.from_pretrained(base, path)``) and the
    tokenizer into the new folder ``path``; never replaces an existing one."""
    path = Path(path)
    if not hasattr(model, "peft_config"):
        raise CheckpointError("an adapter can only be saved from a LoRA-wrapped model (--lora RANK)")
    if path.exists():
        raise CheckpointError(f"refusing to overwrite existing folder {path}; choose another output path")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        model.save_pretrained(str(tmp))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        os.chmod(tmp, 0o755)
        tmp.rename(path)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def merge_lora(model: nn.Module) -> nn.Module:
    """The plain model with LoRA adapters folded into its weights (no-op for a model without adapters)."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
