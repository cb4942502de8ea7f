"""How a language model is loaded, prompted and generated from: the options every command shares.

:class:`LMOptions` gathers what the CLI flags ``--dtype``, ``--trust-remote-code``,
``--prompt-format``, ``--system-prompt``, ``--max-length``, ``--max-new-tokens`` and
``--reference-device`` set (``cli_options.lm_options_of``); ``BenchPlan``, ``ForgetRequest`` and
``TuneRequest`` carry one as ``lm``. Each field goes where it acts:

- the model: ``dtype`` and ``trust_remote_code`` (:func:`unlearnkit.models.hf.load_hf_model`), and
  ``reference_device``, where the frozen reference copies of the methods that keep one live
  (:func:`unlearnkit.methods.reference_model.set_reference_device`);
- the text data: ``prompt_format``, ``system_prompt``, ``max_length`` become the loader's options
  (``tofu``, ``tofu-mini``, ``wmdp``, ``wmdp-mini`` declare them; :meth:`LMOptions.loader_options`);
- the task: ``max_new_tokens`` (and the prompt format, for refusals) —
  :meth:`LMOptions.task_options`, the keyword arguments of ``CausalLMTask``.

Defaults. ``max_length``: the loader's own (256, enough for the embedded data's ~25-token rows)
for data trained here; for a user's model (``--hf-model``) ``min(its max positions, 512)`` (ours:
512 is OpenUnlearning's TOFU ``max_length``; research/llm-stack.md §B.1). ``max_new_tokens``: 200,
OpenUnlearning's TOFU generation setting. ``system_prompt``: TOFU's chat rows get OpenUnlearning's
"You are a helpful assistant." unless given (``data/tofu.py`` ``TOFU_SYSTEM_PROMPT``; "" drops it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

DTYPES = ("auto", "bf16", "fp16", "fp32")
PROMPT_FORMATS = ("auto", "chat", "plain")
MAX_LENGTH_CAP = 512  # OpenUnlearning's TOFU max_length


@dataclass(frozen=True)
class LMOptions:
    """Loading, prompting and generation options of a language model (module docstring)."""

    dtype: str = "auto"                  # auto (the checkpoint's) | bf16 | fp16 | fp32
    trust_remote_code: bool = False
    prompt_format: str = "auto"          # auto (chat iff the tokenizer has a chat template) | chat | plain
    system_prompt: str | None = None
    max_length: int | None = None        # None: the loader's default, or min(model max positions, 512)
    max_new_tokens: int | None = None    # None: CausalLMTask's default (200)
    reference_device: str | None = None  # None: the model's device
    # LoRA (peft, the [llm] extra): rank 0 = off; alpha None = 2·rank (ours: peft's examples' usual
    # choice); targets None = the attention and MLP projections of Llama-style models
    lora: int = 0
    lora_alpha: int | None = None
    lora_targets: tuple[str, ...] | None = None
    lora_save: str = "merged"            # what `forget` writes: the merged model, or the adapter alone

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ConfigError(f"--dtype {self.dtype!r}: use one of {', '.join(DTYPES)}")
        if self.prompt_format not in PROMPT_FORMATS:
            raise ConfigError(f"--prompt-format {self.prompt_format!r}: use one of {', '.join(PROMPT_FORMATS)}")
        if self.max_length is not None and (not isinstance(self.max_length, int) or self.max_length < 2):
            raise ConfigError(f"--max-length must be an integer >= 2, got {self.max_length!r}")
        if self.max_new_tokens is not None and (not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1):
            raise ConfigError(f"--max-new-tokens must be a positive integer, got {self.max_new_tokens!r}")
        if not isinstance(self.lora, int) or self.lora < 0:
            raise ConfigError(f"--lora is a rank >= 1 (0: off), got {self.lora!r}")
        if self.lora_save not in ("merged", "adapter"):
            raise ConfigError(f"--lora-save {self.lora_save!r}: use merged or adapter")
        if not self.lora and (self.lora_targets or self.lora_alpha is not None or self.lora_save != "merged"):
            raise ConfigError("--lora-alpha / --lora-targets / --lora-save need --lora RANK")
        if self.reference_device is not None:
            import torch

            try:
                torch.device(self.reference_device)
            except (RuntimeError, TypeError):
                raise ConfigError(f"--reference-device {self.reference_device!r} is not a device "
                                  "(e.g. cpu, cuda, cuda:1)") from None

    def loader_options(self, data: str, data_options: dict[str, Any] | None = None, model=None) -> dict[str, Any]:
        """``data_options`` plus the text options set here, for the loader of ``data`` (``NAME[:PATH]``).

        A field left at its default adds nothing (the loader's own default holds), except
        ``max_length`` with a user's ``model``: ``min(its max positions, 512)``. An option set both
        here and in ``data_options`` with different values, or one the loader does not take (image
        data), is a :class:`ConfigError`."""
        from ..data.sources import DATA_OPTIONS, DATA_SOURCES, parse_data_arg

        name, _ = parse_data_arg(data)
        DATA_SOURCES.get(name)
        declared = DATA_OPTIONS.get(name, {})
        out = dict(data_options or {})
        chosen = {"prompt_format": None if self.prompt_format == "auto" else self.prompt_format,
                  "system_prompt": self.system_prompt, "max_length": self.max_length}
        for key, value in chosen.items():
            if value is None:
                continue
            flag = "--" + key.replace("_", "-")
            if key not in declared:
                raise ConfigError(f"{flag} is an option of text data; {name} does not take it")
            if key in out and out[key] != value:
                raise ConfigError(f"{flag} {value!r} and --data-option {key}={out[key]!r} disagree; give one")
            out[key] = value
        if "max_length" in declared and "max_length" not in out and model is not None:
            out["max_length"] = default_max_length(model)
        return out

    def task_options(self) -> dict[str, Any]:
        """Keyword arguments of ``CausalLMTask`` (generation cap, the prompt format refusals use)."""
        out: dict[str, Any] = {"prompt_format": self.prompt_format, "system_prompt": self.system_prompt}
        if self.max_new_tokens is not None:
            out["max_new_tokens"] = self.max_new_tokens
        return out

    def lora_settings(self) -> dict[str, Any] | None:
        """What a run's identity records of its LoRA adapters (None without LoRA)."""
        if not self.lora:
            return None
        return {"r": self.lora, "alpha": self.lora_alpha or 2 * self.lora,
                "targets": list(self.lora_targets) if self.lora_targets else "llama projections"}

    def model_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`unlearnkit.models.hf.load_hf_model` (and ``trust_remote_code``
        of :func:`~unlearnkit.models.hf.load_hf_tokenizer`)."""
        return {"dtype": self.dtype, "trust_remote_code": self.trust_remote_code}


def default_max_length(model) -> int:
    """``min(the model's max positions, 512)`` (512 when the config names none)."""
    from .hf import max_positions

    limit = max_positions(model)
    return min(limit, MAX_LENGTH_CAP) if limit else MAX_LENGTH_CAP


def load_lm_source(data: str, hf_model, lm: LMOptions | None = None, data_options: dict[str, Any] | None = None,
                   device=None):
    """(the text/image source of ``data``, the user's model or None): what ``bench``, ``forget`` and
    ``tune`` load. With ``hf_model`` (a folder or Hub id) the model is loaded with ``lm``'s dtype and
    trust setting and moved to ``device``, its references kept on ``lm.reference_device``, and its
    tokenizer encodes the data with ``lm``'s text options."""
    from ..data.sources import load_data

    lm = lm or LMOptions()
    if not hf_model:
        if lm.lora:
            raise ConfigError("--lora adapts a pretrained --hf-model; give one")
        return load_data(data, **lm.loader_options(data, data_options)), None
    from ..methods.reference_model import set_reference_device
    from .hf import load_hf_model, load_hf_tokenizer

    model = load_hf_model(hf_model, device=device, **lm.model_options())
    if lm.lora:
        from .hf import add_lora

        model = add_lora(model, r=lm.lora, alpha=lm.lora_alpha or 2 * lm.lora,
                         target_modules=list(lm.lora_targets) if lm.lora_targets else None)
    set_reference_device(model, lm.reference_device)
    tokenizer = load_hf_tokenizer(hf_model, trust_remote_code=lm.trust_remote_code)
    return load_data(data, tokenizer=tokenizer, **lm.loader_options(data, data_options, model=model)), model
