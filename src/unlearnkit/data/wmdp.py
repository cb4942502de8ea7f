"""``wmdp:PATH`` — WMDP (Li et al., 2024, "The WMDP Benchmark: Measuring and Reducing Malicious Use
with Unlearning") from a local folder, in the layouts it is distributed in.

Multiple-choice questions, per topic (``bio``, ``cyber``, ``chem``…), one of:

- ``wmdp-mcqs/<topic>_questions.json``: one JSON array of ``{"question": str, "choices": [4 str],
  "answer": int 0–3}`` (JSON Lines is accepted too);
- ``wmdp-<topic>/test-*.parquet``: the same records as the hub dataset ``cais/wmdp`` keeps them
  (read with pandas + pyarrow, imported only then).

Corpora (``cais/wmdp-corpora``), one ``{"text": str}`` object per line:
``wmdp-corpora/<topic>-forget-corpus.jsonl`` and ``<topic>-retain-corpus.jsonl``.
Files may also sit directly in PATH. Two optional files that real WMDP does not ship (wmdp-mini
writes them): ``wmdp-mcqs/general_questions.json`` (a general-knowledge MCQ set that must survive
unlearning; real WMDP pairs with MMLU instead: give a local MMLU folder with ``mmlu=PATH``, below)
and ``wmdp-corpora/<topic>-holdout-corpus.jsonl`` (non-member text of the forget domain, the ``test``
set).

The DataSource (``kind="text"``):

- ``train``: for each topic (sorted), its forget corpus then its retain corpus, encoded with
  :func:`~unlearnkit.data.text.encode_text` (one row per document, its first ``max_length`` tokens;
  the original RMU code also truncates per document, OpenUnlearning instead cuts 512-token chunks).
- ``named_splits``: ``<topic>`` → (its forget-corpus rows, its retain-corpus rows), e.g.
  ``--forget bio``; a topic without a retain corpus retains every row outside its forget corpus.
- ``evals``: ``hazard`` (a :class:`~unlearnkit.data.text.ChoiceSet` of the topic's MCQs) when one
  topic has MCQs, ``hazard_<topic>`` per topic when several do (:func:`hazard_eval` picks the one
  for a forget split); ``general`` when ``general_questions.json`` is present; ``mmlu`` with the
  option ``mmlu=PATH`` (a local MMLU folder, :mod:`unlearnkit.data.mmlu`, zero-shot or
  ``mmlu_few_shot=n`` from its dev split: WMDP's utility, reported as ``mmlu_acc``).
- ``test``: the holdout corpora if present, else every MCQ question followed by its correct choice
  as plain text (never trained on).

MCQ scoring follows lm-evaluation-harness ``multiple_choice``: ``options[k]`` = context +
continuation ``k``, only the continuation labelled, no EOS; the prediction is the option with the
largest summed log-likelihood. ``mcq_format`` picks the context:

- ``"letters"`` (default; the lm-eval ``wmdp_*`` task): "The following are multiple choice questions
  (with answers) about biology.\\n\\n" + question + "\\nA. …\\nB. …\\nC. …\\nD. …\\nAnswer:",
  continuations " A" … " D";
- ``"cloze"``: context = the question text itself, continuation = " " + choice (wmdp-mini, whose
  "questions" are sentence stems; a tiny model trained from scratch cannot do the letter format);
- ``"qa"``: context = the question as a QA prompt in ``prompt_format`` (``auto``: the tokenizer's
  chat template when it has one, with the optional ``system_prompt``; else
  ``PROMPT.format(question=…)``), continuation = the choice as an answer (plain: " " + choice).

``letters`` and ``cloze`` never use a chat template (lm-eval scores WMDP without one, as
OpenUnlearning runs it); ``prompt_format`` / ``system_prompt`` apply to ``"qa"`` only. Corpus rows
get a BOS in front where the tokenizer adds one to plain text.

A context longer than ``max_length`` together with its continuation loses tokens at its start, so
the continuation is always scored; corpus documents longer than ``max_length`` are cut at the end.
Either way the rows cut are counted in one warning per set.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import ConfigError, DataError
from ..extras import require
from .sources import DataSource, data_source
from .text import (DEFAULT_MAX_LENGTH, IGNORE, ChoiceSet, PromptFormat, _check_tokenizer, _pack, encode_text,
                   warn_truncated)
from .tofu import read_records
from .tokenizer import DEFAULT_VOCAB_SIZE, cached_tokenizer, load_tokenizer

FORMATS = ("letters", "cloze", "qa")
LETTERS = ("A", "B", "C", "D")
SUBJECTS = {"bio": "biology", "chem": "chemistry", "cyber": "cybersecurity"}
GENERAL = "general"
_QUESTIONS = re.compile(r"^(?P<topic>[A-Za-z0-9_]+)_questions\.jsonl?$")
_CORPUS = re.compile(r"^(?P<topic>[A-Za-z0-9_]+)-(?P<part>forget|retain|holdout)-corpus\.jsonl?$")


# --- reading -----------------------------------------------------------------------------------

def check_mcqs(rows: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    """WMDP's schema: ``question`` str, ``choices`` 4 str, ``answer`` int in 0..3. Returns clean rows."""
    clean = []
    for i, row in enumerate(rows):
        for field in ("question", "choices", "answer"):
            if field not in row or row[field] is None:
                raise DataError(f"{path}: question {i} has no field {field!r} (expected question, choices, answer)")
        question, choices, answer = row["question"], row["choices"], row["answer"]
        if hasattr(choices, "tolist"):  # numpy array from parquet
            choices = choices.tolist()
        if not isinstance(question, str):
            raise DataError(f"{path}: question {i}: 'question' must be a string")
        if not isinstance(choices, (list, tuple)) or len(choices) != 4 or not all(isinstance(c, str) for c in choices):
            raise DataError(f"{path}: question {i}: 'choices' must be a list of 4 strings, got "
                            f"{len(choices) if isinstance(choices, (list, tuple)) else type(choices).__name__}")
        if hasattr(answer, "item"):
            answer = answer.item()
        if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < 4:
            raise DataError(f"{path}: question {i}: 'answer' must be an integer index 0..3, got {answer!r}")
        clean.append({"question": question, "choices": list(choices), "answer": answer})
    return clean


def read_parquet(paths: Sequence[Path]) -> list[dict[str, Any]]:
    pd = require("pandas", "hf", f"{paths[0]} is a parquet file (or give the questions as "
                 "wmdp-mcqs/<topic>_questions.json); reading it needs")
    rows = []
    for path in paths:
        try:
            frame = pd.read_parquet(path)
        except ImportError as exc:  # no parquet engine
            require("pyarrow", "hf", f"{path} is a parquet file; reading it needs")
            raise DataError(f"{path}: cannot read parquet ({exc})") from None
        except Exception as exc:  # pyarrow raises its own error types for a corrupt file
            raise DataError(f"{path}: not a readable parquet file ({exc})") from None
        rows += frame.to_dict("records")
    if not rows:
        raise DataError(f"{paths[0]} holds no records")
    return rows


def read_corpus(path: Path) -> list[str]:
    """One ``{"text": str}`` object per line."""
    texts = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {lineno} is not valid JSON ({exc.msg}); expected one "
                            '{"text": ...} object per line') from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise DataError(f'{path}: line {lineno} has no string field "text" (expected {{"text": ...}} per line)')
        texts.append(row["text"])
    if not texts:
        raise DataError(f"{path} holds no documents")
    return texts


def _dirs(root: Path, sub: str) -> list[Path]:
    return [d for d in (root / sub, root) if d.is_dir()]


def discover(root: Path) -> tuple[dict[str, Path | list[Path]], dict[str, dict[str, Path]]]:
    """(topic → MCQ file or parquet shards, topic → {"forget"|"retain"|"holdout": corpus file})."""
    if not root.is_dir():
        raise DataError(f"WMDP folder not found: {root}")
    mcqs: dict[str, Path | list[Path]] = {}
    for d in _dirs(root, "wmdp-mcqs"):
        for f in sorted(d.iterdir()):
            m = _QUESTIONS.match(f.name)
            if m and f.is_file():
                mcqs.setdefault(m["topic"], f)
    for d in sorted(root.glob("wmdp-*")):
        if d.is_dir() and d.name not in ("wmdp-mcqs", "wmdp-corpora"):
            shards = sorted(d.glob("test-*.parquet")) or sorted(d.glob("*.parquet"))
            if shards:
                mcqs.setdefault(d.name[len("wmdp-"):], shards)
    corpora: dict[str, dict[str, Path]] = {}
    for d in _dirs(root, "wmdp-corpora"):
        for f in sorted(d.iterdir()):
            m = _CORPUS.match(f.name)
            if m and f.is_file():
                corpora.setdefault(m["topic"], {}).setdefault(m["part"], f)
    return mcqs, corpora


def load_mcqs(source: Path | list[Path]) -> list[dict[str, Any]]:
    if isinstance(source, list):
        return check_mcqs(read_parquet(source), source[0])
    return check_mcqs(read_records(source), source)


# --- encoding ----------------------------------------------------------------------------------

def _context(question: str, choices: list[str], fmt: str, topic: str) -> tuple[str, list[str]]:
    """(context text, continuation texts) of the ``letters`` and ``cloze`` formats."""
    if fmt == "letters":
        subject = SUBJECTS.get(topic, topic.replace("_", " "))
        lines = [f"The following are multiple choice questions (with answers) about {subject}.", "", question.strip()]
        lines += [f"{letter}. {choice}" for letter, choice in zip(LETTERS, choices)]
        return "\n".join(lines) + "\nAnswer:", [f" {letter}" for letter in LETTERS]
    return question, [f" {choice}" for choice in choices]


def _context_ids(tokenizer, row: dict[str, Any], fmt: str, topic: str,
                 prompt: PromptFormat | None) -> tuple[list[int], list[list[int]]]:
    """(context ids, continuation ids) of one MCQ row; ``prompt`` formats the ``qa`` format."""
    if fmt == "qa":
        return prompt.prompt_ids(tokenizer, row["question"]), \
            [prompt.answer_ids(tokenizer, choice)[:-1] for choice in row["choices"]]   # no EOS, as lm-eval
    context, continuations = _context(row["question"], row["choices"], fmt, topic)
    return (list(tokenizer(context, add_special_tokens=False)["input_ids"]),
            [list(tokenizer(cont, add_special_tokens=False)["input_ids"]) for cont in continuations])


def encode_choices(tokenizer, rows: list[dict[str, Any]], *, topic: str, name: str, fmt: str = "letters",
                   max_length: int = DEFAULT_MAX_LENGTH, prompt_format: str = "auto",
                   system_prompt: str | None = None) -> ChoiceSet:
    """The :class:`ChoiceSet` of MCQ rows: ``options[k]`` = context + k-th continuation, labels only
    on the continuation (no EOS, as lm-eval scores them)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown MCQ format {fmt!r}; known: {', '.join(FORMATS)}")
    pad, _ = _check_tokenizer(tokenizer)
    prompt = PromptFormat.of(tokenizer, prompt_format, system_prompt) if fmt == "qa" else None
    per_option: list[list[tuple[list[int], list[int]]]] = [[] for _ in range(4)]
    cut = 0
    for row in rows:
        ctx, continuations = _context_ids(tokenizer, row, fmt, topic, prompt)
        longest = max(len(ctx) + len(ids) for ids in continuations)
        cut += longest > max_length
        for k, ids in enumerate(continuations):
            keep = ctx[max(0, len(ctx) + len(ids) - max_length):]
            per_option[k].append((keep + ids, [IGNORE] * len(keep) + ids))
    warn_truncated(f"MCQ set {name!r}", cut, len(rows), max_length)
    options = [_pack(opt, pad, max_length) for opt in per_option]
    return ChoiceSet(name=name, questions=[r["question"] for r in rows], choices=[r["choices"] for r in rows],
                     answer=torch.tensor([r["answer"] for r in rows], dtype=torch.long), options=options)


def hazard_eval(source: DataSource, topic: str) -> ChoiceSet | None:
    """The hazard MCQ set that goes with the forget split ``topic``."""
    return source.evals.get(f"hazard_{topic}") or source.evals.get("hazard")


# --- the source --------------------------------------------------------------------------------

def training_texts(corpora: dict[str, dict[str, list[str]]], mcqs: dict[str, list[dict[str, Any]]]) -> list[str]:
    texts = [t for topic in sorted(corpora) for part in ("forget", "retain", "holdout") for t in corpora[topic].get(part, [])]
    for topic in sorted(mcqs):
        for row in mcqs[topic]:
            texts.append(row["question"])
            texts += [" " + c for c in row["choices"]]
    return texts


def load_wmdp_dir(path: str | Path, *, tokenizer=None, mcq_format: str = "letters", name: str = "wmdp",
                  max_length: int = DEFAULT_MAX_LENGTH, vocab_size: int = DEFAULT_VOCAB_SIZE,
                  prompt_format: str = "auto", system_prompt: str | None = None, mmlu: str | None = None,
                  mmlu_few_shot: int = 0) -> DataSource:
    """Build the text DataSource of a WMDP folder (see the module docstring)."""
    if mcq_format not in FORMATS:
        raise ConfigError(f"unknown MCQ format {mcq_format!r}; known: {', '.join(FORMATS)}")
    if mcq_format != "qa" and (prompt_format == "chat" or system_prompt is not None):
        raise ConfigError(f"prompt_format / system_prompt apply to mcq_format=qa only; {mcq_format!r} is scored "
                          "without a chat template, as lm-eval scores WMDP")
    fmt = {"prompt_format": prompt_format, "system_prompt": system_prompt}
    root = Path(path)
    mcq_files, corpus_files = discover(root)
    if not any(parts.get("forget") or parts.get("retain") for parts in corpus_files.values()):
        raise DataError(f"{root}: no corpus found (expected wmdp-corpora/<topic>-forget-corpus.jsonl and "
                        "<topic>-retain-corpus.jsonl, one {\"text\": ...} object per line)")
    corpora = {topic: {part: read_corpus(f) for part, f in parts.items()} for topic, parts in corpus_files.items()}
    mcqs = {topic: load_mcqs(f) for topic, f in mcq_files.items()}

    if tokenizer is None:
        folder = root / "tokenizer"
        tokenizer = load_tokenizer(folder) if folder.is_dir() else cached_tokenizer(training_texts(corpora, mcqs), vocab_size)
    elif isinstance(tokenizer, (str, Path)):
        tokenizer = load_tokenizer(tokenizer)

    texts: list[str] = []
    ranges: dict[tuple[str, str], torch.Tensor] = {}
    for topic in sorted(corpora):
        for part in ("forget", "retain"):
            docs = corpora[topic].get(part, [])
            ranges[(topic, part)] = torch.arange(len(texts), len(texts) + len(docs))
            texts += docs
    train = encode_text(tokenizer, texts, max_length=max_length, name=f"{name} corpus documents")
    everything = torch.arange(len(texts))

    named_splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for topic in sorted(corpora):
        forget = ranges[(topic, "forget")]
        if len(forget) == 0:
            continue
        retain = ranges[(topic, "retain")]
        if len(retain) == 0:
            retain = everything[~torch.isin(everything, forget)]
        if len(retain):
            named_splits[topic] = (forget, retain)

    hazard_topics = [t for t in sorted(mcqs) if t != GENERAL]
    evals: dict[str, ChoiceSet] = {}
    for topic in hazard_topics:
        key = "hazard" if len(hazard_topics) == 1 else f"hazard_{topic}"
        evals[key] = encode_choices(tokenizer, mcqs[topic], topic=topic, name=key, fmt=mcq_format, max_length=max_length,
                                    **fmt)
    if GENERAL in mcqs:
        evals[GENERAL] = encode_choices(tokenizer, mcqs[GENERAL], topic=GENERAL, name=GENERAL, fmt=mcq_format,
                                        max_length=max_length, **fmt)
    if mmlu:
        from .mmlu import load_mmlu_choices  # imported here: mmlu.py reads MCQs with this module's helpers

        evals["mmlu"] = load_mmlu_choices(mmlu, tokenizer, few_shot=mmlu_few_shot, max_length=max_length)

    holdout = [t for topic in sorted(corpora) for t in corpora[topic].get("holdout", [])]
    if not holdout:
        holdout = [row["question"].strip() + " " + row["choices"][row["answer"]] for t in hazard_topics for row in mcqs[t]]
    if not holdout:
        raise DataError(f"{root}: nothing for the test set: no <topic>-holdout-corpus.jsonl and no MCQ file "
                        "(expected wmdp-mcqs/<topic>_questions.json or wmdp-<topic>/test-00000-of-00001.parquet)")
    test = encode_text(tokenizer, holdout, max_length=max_length, name=f"{name} test rows")

    return DataSource(
        name=name, train=train, test=test, num_classes=len(tokenizer), input_shape=(int(train.x.shape[1]),),
        kind="text", tokenizer=tokenizer, named_splits=named_splits, evals=evals,
        default_scenarios=tuple(named_splits),
        default_audits=("wmdp",),
    )


# what `--data wmdp:PATH --data-option KEY=VALUE` takes (load_wmdp_dir's keyword arguments)
LOADER_OPTIONS = {"mcq_format": str, "name": str, "max_length": int, "vocab_size": int,
                  "prompt_format": str, "system_prompt": str, "mmlu": str, "mmlu_few_shot": int}


@data_source("wmdp", options=LOADER_OPTIONS)
def load_wmdp(path: str | None = None, **options) -> DataSource:
    """``--data wmdp:PATH``: a folder in the WMDP layout (module docstring)."""
    if not path:
        raise DataError("wmdp needs a folder: --data wmdp:PATH (wmdp-mcqs/bio_questions.json or "
                        "wmdp-bio/test-00000-of-00001.parquet, wmdp-corpora/bio-forget-corpus.jsonl …); "
                        "or use --data wmdp-mini")
    return load_wmdp_dir(path, **options)

