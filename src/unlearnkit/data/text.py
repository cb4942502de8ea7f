"""Text examples in the same in-memory form as images, so splits, subsets and batching are shared.

A question–answer example is a prompt followed by the answer and the EOS token, stored in
``TensorData(x=input_ids, y=labels)``, both ``[N, T]`` long tensors, right-padded: ``labels`` is
``IGNORE`` (-100) on the prompt and on padding, and the token id on answer tokens (EOS included).
Plain text (a corpus line) is stored the same way with every real token labelled.

**Prompt formats** (``prompt_format``):

- ``"plain"``: ``PROMPT.format(question=q)`` (``"Question: …\\nAnswer:"``), then ``" " + answer``
  (the format of the embedded data and of OpenUnlearning's non-chat models, e.g. phi-1_5).
- ``"chat"``: the tokenizer's own chat template (``apply_chat_template``) with a user turn holding
  the question (after an optional system turn holding ``system_prompt``) and
  ``add_generation_prompt=True``, so the prompt ends exactly where the assistant's answer starts;
  then the answer's tokens (stripped, no leading space) and EOS. OpenUnlearning formats TOFU the
  same way for chat models, with the system prompt "You are a helpful assistant." (research/
  llm-stack.md §B.1, its ``src/data/utils.py::preprocess_chat_instance``). Ours: with no
  ``system_prompt`` the messages hold no system turn, so the template's own default applies (SmolLM2
  and Qwen add a system prompt of their own); pass ``system_prompt`` to match OpenUnlearning. Ours
  too: no extra template variables (OpenUnlearning also passes a ``date_string`` to Llama-3.x
  templates; here their default date stays).
- ``"auto"`` (default): ``"chat"`` when the tokenizer has a chat template, else ``"plain"``.

**BOS** is added as the tokenizer adds it to plain text (its post-processor / ``add_bos_token``;
tokenizers that add none, like the embedded data's, get none), and never twice: a chat template
that writes the BOS itself (Llama-3, Mistral) is taken as it is. Prompt and answer are tokenised
separately (``add_special_tokens=False``) so the label boundary is exact.

**Padding.** A tokenizer without a pad token pads with its EOS token (as OpenUnlearning does). The
padding is therefore recognised by position and labels, never by the pad id alone: the padding of
a row is the trailing run of positions that carry no label and hold the pad id (see
:func:`attention_mask`); a row's real final EOS carries a label, and an EOS inside a prompt (chat
templates end turns with it) is never trailing.

**Truncation.** Rows longer than ``max_length`` tokens are cut at the right (QA, text) or lose the
start of their context (multiple choice); the rows cut are counted and reported in one warning per
dataset (its name, the count, the limit).

Evaluation sets that TOFU/WMDP-style measures need beside the training rows are
:class:`EvalSet` (gold, paraphrased and perturbed answers aligned row by row) and
:class:`ChoiceSet` (multiple choice); a text :class:`~unlearnkit.data.sources.DataSource` keeps
them by name in ``evals``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import torch

from ..errors import ConfigError, DataError
from .dataset import TensorData

log = logging.getLogger(__name__)

PROMPT = "Question: {question}\nAnswer:"
IGNORE = -100
PROMPT_FORMATS = ("auto", "chat", "plain")
DEFAULT_MAX_LENGTH = 256  # the embedded data's rows are ~25 tokens; a user's model: see models/lm_options.py


# --- the tokenizer's ids ---------------------------------------------------------------------

def pad_id_of(tokenizer) -> int:
    """The id padding uses: the tokenizer's pad token, else its EOS token (OpenUnlearning's choice)."""
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    if eos is None:
        raise DataError("the tokenizer needs an EOS token (answers end with it)")
    return int(eos if pad is None else pad)


def ensure_pad_token(tokenizer):
    """Give a tokenizer without a pad token its EOS token as pad (in place; returns it)."""
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise DataError("the tokenizer has neither a pad token nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
        log.debug("the tokenizer has no pad token; padding with its EOS token %r", tokenizer.eos_token)
    return tokenizer


def _check_tokenizer(tokenizer) -> tuple[int, int]:
    """(pad id, EOS id); pad falls back to EOS (see the module docstring)."""
    pad = pad_id_of(tokenizer)
    return pad, int(tokenizer.eos_token_id)


def adds_bos(tokenizer) -> bool:
    """Whether the tokenizer puts its BOS token in front of plain text by itself."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return False
    with_specials = tokenizer("a", add_special_tokens=True)["input_ids"]
    without = tokenizer("a", add_special_tokens=False)["input_ids"]
    return bool(with_specials) and with_specials[0] == bos and (not without or without[0] != bos)


def _with_bos(tokenizer, ids: list[int], bos_needed: bool) -> list[int]:
    if bos_needed and (not ids or ids[0] != tokenizer.bos_token_id):
        return [int(tokenizer.bos_token_id)] + ids
    return ids


def attention_mask(input_ids: torch.Tensor, labels: torch.Tensor | None, pad_id: int) -> torch.Tensor:
    """``[B, T]`` long, 0 on the padding of right-padded rows: the trailing positions that hold
    ``pad_id`` and (when ``labels`` are given) carry no label. With pad = EOS a row's final,
    labelled EOS stays attended and so does an EOS inside a prompt."""
    tail = input_ids == pad_id
    if labels is not None:
        tail = tail & (labels == IGNORE)
    padding = tail.flip(-1).long().cumprod(dim=-1).flip(-1)      # 1 from the last non-padding token on
    return 1 - padding


# --- prompt formats ---------------------------------------------------------------------------

def resolve_prompt_format(tokenizer, prompt_format: str = "auto", system_prompt: str | None = None) -> str:
    """``"chat"`` or ``"plain"`` for ``prompt_format`` (``"auto"``: chat iff the tokenizer has a chat template)."""
    if prompt_format not in PROMPT_FORMATS:
        raise ConfigError(f"unknown prompt format {prompt_format!r}; use one of {', '.join(PROMPT_FORMATS)}")
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if prompt_format == "chat" and not has_template:
        raise ConfigError("prompt format 'chat' needs a tokenizer with a chat template; this one has none "
                          "(use prompt_format=plain)")
    resolved = prompt_format if prompt_format != "auto" else ("chat" if has_template else "plain")
    if system_prompt is not None and resolved == "plain":
        raise ConfigError("a system prompt needs the chat format (a tokenizer with a chat template); "
                          "the plain 'Question: …\\nAnswer:' format has no system turn")
    return resolved


@dataclass(frozen=True)
class PromptFormat:
    """How a question becomes a prompt and an answer becomes labelled tokens, for one tokenizer.

    ``PromptFormat.of(tokenizer, "auto", system_prompt)`` resolves the format once;
    :meth:`prompt_ids` and :meth:`answer_ids` then encode (see the module docstring)."""

    kind: str                      # "chat" | "plain"
    system_prompt: str | None = None
    bos: bool = False              # whether prompts start with BOS (the tokenizer adds it to plain text)

    @classmethod
    def of(cls, tokenizer, prompt_format: str = "auto", system_prompt: str | None = None) -> "PromptFormat":
        return cls(resolve_prompt_format(tokenizer, prompt_format, system_prompt), system_prompt, adds_bos(tokenizer))

    def messages(self, question: str) -> list[dict[str, str]]:
        turns = [{"role": "system", "content": self.system_prompt}] if self.system_prompt is not None else []
        return turns + [{"role": "user", "content": question}]

    def prompt_text(self, tokenizer, question: str) -> str:
        if self.kind == "plain":
            return PROMPT.format(question=question)
        try:
            return tokenizer.apply_chat_template(self.messages(question), tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # jinja2 errors: e.g. a template that refuses a system turn
            raise ConfigError(f"the tokenizer's chat template cannot format a "
                              f"{'system + ' if self.system_prompt is not None else ''}user turn: {exc}") from None

    def prompt_ids(self, tokenizer, question: str) -> list[int]:
        ids = tokenizer(self.prompt_text(tokenizer, question), add_special_tokens=False)["input_ids"]
        return _with_bos(tokenizer, list(ids), self.bos)

    def answer_ids(self, tokenizer, answer: str, eos: int | None = None) -> list[int]:
        """The answer's tokens (plain: after a space; chat: stripped, as the assistant turn's
        content), then EOS (``eos=None``: the tokenizer's)."""
        text = " " + answer if self.kind == "plain" else answer.strip()
        eos = tokenizer.eos_token_id if eos is None else eos
        return list(tokenizer(text, add_special_tokens=False)["input_ids"]) + [int(eos)]


# --- packing and truncation -------------------------------------------------------------------

def _pack(rows: list[tuple[list[int], list[int]]], pad: int, max_length: int) -> TensorData:
    """Rows right-padded with ``pad`` (labels with IGNORE) and cut at ``max_length``."""
    length = min(max(len(ids) for ids, _ in rows), max_length)
    input_ids = torch.full((len(rows), length), pad, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE, dtype=torch.long)
    for i, (ids, labs) in enumerate(rows):
        ids, labs = ids[:length], labs[:length]
        input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        labels[i, : len(labs)] = torch.tensor(labs, dtype=torch.long)
    return TensorData(input_ids, labels)


def count_truncated(rows: list[tuple[list[int], list[int]]], max_length: int) -> int:
    return sum(len(ids) > max_length for ids, _ in rows)


def warn_truncated(name: str | None, count: int, total: int, max_length: int) -> None:
    """The one warning of a dataset whose rows were cut (nothing when none was)."""
    if count:
        log.warning("%s: %d of %d rows are longer than max_length=%d tokens and were cut "
                    "(raise it with --max-length or --data-option max_length=N)",
                    name or "text data", count, total, max_length)


def _check_max_length(max_length: int) -> None:
    if not isinstance(max_length, int) or max_length < 2:
        raise ConfigError(f"max_length must be an integer >= 2, got {max_length!r}")


def qa_rows(tokenizer, questions: Sequence[str], answers: Sequence[str], *, prompt_format: str = "auto",
            system_prompt: str | None = None) -> list[tuple[list[int], list[int]]]:
    """Unpadded, uncut ``(input_ids, labels)`` of each QA pair (labels: IGNORE on the prompt)."""
    if len(questions) != len(answers):
        raise DataError(f"{len(questions)} questions but {len(answers)} answers")
    _, eos = _check_tokenizer(tokenizer)
    fmt = PromptFormat.of(tokenizer, prompt_format, system_prompt)
    prompts: dict[str, list[int]] = {}
    rows = []
    for question, answer in zip(questions, answers):
        if question not in prompts:
            prompts[question] = fmt.prompt_ids(tokenizer, question)
        prompt, reply = prompts[question], fmt.answer_ids(tokenizer, answer, eos)
        rows.append((prompt + reply, [IGNORE] * len(prompt) + reply))
    return rows


def encode_qa(tokenizer, questions: Sequence[str], answers: Sequence[str], *, max_length: int = DEFAULT_MAX_LENGTH,
              prompt_format: str = "auto", system_prompt: str | None = None, name: str | None = None,
              warn: bool = True) -> TensorData:
    """Prompt + answer + EOS per row; loss only on the answer (see the module docstring).

    ``name`` labels the truncation warning; ``warn=False`` leaves it to the caller
    (:func:`encode_qa_counted`)."""
    data, cut = encode_qa_counted(tokenizer, questions, answers, max_length=max_length, prompt_format=prompt_format,
                                  system_prompt=system_prompt)
    if warn:
        warn_truncated(name, cut, len(data), max_length)
    return data


def encode_qa_counted(tokenizer, questions: Sequence[str], answers: Sequence[str], *,
                      max_length: int = DEFAULT_MAX_LENGTH, prompt_format: str = "auto",
                      system_prompt: str | None = None) -> tuple[TensorData, int]:
    """:func:`encode_qa` without the warning: (the rows, how many were cut)."""
    _check_max_length(max_length)
    rows = qa_rows(tokenizer, questions, answers, prompt_format=prompt_format, system_prompt=system_prompt)
    return _pack(rows, pad_id_of(tokenizer), max_length), count_truncated(rows, max_length)


def encode_text(tokenizer, texts: Sequence[str], *, max_length: int = DEFAULT_MAX_LENGTH,
                name: str | None = None) -> TensorData:
    """Plain text + EOS per row, every real token labelled (corpora). BOS in front where the
    tokenizer adds one to plain text."""
    _check_max_length(max_length)
    pad, eos = _check_tokenizer(tokenizer)
    bos = adds_bos(tokenizer)
    rows = []
    for text in texts:
        ids = _with_bos(tokenizer, list(tokenizer(text, add_special_tokens=False)["input_ids"]), bos) + [eos]
        rows.append((ids, list(ids)))
    warn_truncated(name, count_truncated(rows, max_length), len(rows), max_length)
    return _pack(rows, pad, max_length)


@dataclass
class EvalSet:
    """Questions with their gold answer and TOFU's alternatives, aligned row by row.

    ``correct``: question + gold answer. ``paraphrased``: question + paraphrased answer (or None).
    ``perturbed``: K sets, the k-th holding question + k-th perturbed (wrong) answer of each row.
    """

    name: str
    questions: list[str]
    answers: list[str]
    correct: TensorData
    paraphrased: TensorData | None = None
    perturbed: list[TensorData] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.questions)


@dataclass
class ChoiceSet:
    """Multiple choice: ``options[k]`` holds question + k-th choice for every row; ``answer`` the right k."""

    name: str
    questions: list[str]
    choices: list[list[str]]
    answer: torch.Tensor
    options: list[TensorData]

    def __len__(self) -> int:
        return len(self.questions)
