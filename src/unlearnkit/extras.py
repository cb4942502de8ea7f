"""Optional dependencies: one place that imports them and says which extra to install.

The core install (``pip install unlearnkit``) runs image classifiers end to end: every method, the
audits, ``bench`` and ``forget`` (its ``record.html`` needs no extra). The rest is in extras::

    llm     transformers, tokenizers, rouge-score, peft   language models, text data, TOFU/WMDP audits, LoRA
    tune    optuna                                        unlearnkit tune
    report  matplotlib                                    unlearnkit report (its figures)
    hf      datasets                                      Hugging Face dataset folders (save_to_disk), parquet
    dist    accelerate                                    Accelerate launches (torchrun works without it)
    slurm   submitit                                      bench --executor slurm / submitit-local
    docs    mkdocs, mkdocs-material, mkdocstrings         building the documentation site
    all     every extra above;  test: all + pytest, playwright, build

:func:`require` imports a module or raises :class:`~unlearnkit.errors.MissingExtraError` with a
one-line message (``language models need the [llm] extra: pip install "unlearnkit[llm]"``) that
the CLI prints as ``unlearnkit: error: …``; :func:`optional` returns ``None`` instead, for the few
places that work without the package.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

__all__ = ["EXTRAS", "MissingExtraError", "hint", "optional", "require"]

#: the extra that provides each optional top-level module
EXTRAS: dict[str, str] = {
    "transformers": "llm",
    "tokenizers": "llm",
    "rouge_score": "llm",
    "peft": "llm",
    "optuna": "tune",
    "matplotlib": "report",
    "datasets": "hf",
    "pandas": "hf",
    "pyarrow": "hf",
    "accelerate": "dist",
    "submitit": "slurm",
}


def hint(extra: str, feature: str) -> str:
    """The one-line message: ``FEATURE need(s) the [EXTRA] extra: pip install "unlearnkit[EXTRA]"``."""
    return f'{feature} the [{extra}] extra: pip install "unlearnkit[{extra}]"'


def require(module: str, extra: str, feature: str) -> ModuleType:
    """``import module`` and return it, or raise :class:`MissingExtraError` naming ``extra``.

    ``feature`` starts the message and carries its verb, e.g. ``"language models need"``. When the
    package is present but fails to import (a broken or partial install), the message adds why."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        message = hint(extra, feature)
        missing = getattr(exc, "name", None)
        if not (missing and (module == missing or module.startswith(missing + "."))):
            # installed but broken (e.g. one of its own dependencies is missing): say what failed
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            message += f" (importing {module} failed: {reason})"
        raise MissingExtraError(message) from None


def optional(module: str) -> ModuleType | None:
    """``import module`` and return it, or ``None`` when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None
