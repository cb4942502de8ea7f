"""``tofu:PATH`` — TOFU (Maini et al., 2024, "TOFU: A Task of Fictitious Unlearning for LLMs") from a local folder.

The layout is the published one (hub dataset ``locuslab/TOFU``; each config is one file):

=====================================  ============================================================
file (``NAME.json``)                    fields
=====================================  ============================================================
``full``                                ``question``, ``answer`` (20 consecutive rows per author)
``forget01|05|10``                      same; the QA of the last 1 / 5 / 10 % of the authors
``retain99|95|90``                      same; the rest (forget01↔retain99, 05↔95, 10↔90)
``holdout01|05|10``                     same; authors never trained on (non-members)
``real_authors``, ``world_facts``        same (general knowledge; short answers)
``forget01|05|10_perturbed``,           ``question``, ``answer``, ``paraphrased_answer`` (str),
``retain_perturbed``,                   ``perturbed_answer`` (list of 5 str); ``paraphrased_question``
``holdout01|05|10_perturbed``           may be present and is not used
``real_authors_perturbed``,             ``question``, ``answer`` (short), ``perturbed_answer`` (list of 3)
``world_facts_perturbed``
=====================================  ============================================================

Each split may be a ``.json`` file holding JSON Lines (one object per line, as published), a
``.json`` file holding one JSON array, a ``.jsonl`` file, or a folder written by
``datasets.Dataset.save_to_disk`` (or a ``DatasetDict`` with one split, e.g. ``train``; needs the
``datasets`` package, imported only then). Extra fields are ignored. Only ``full`` is required.

What the loader builds (a ``DataSource(kind="text")``):

- ``train``: ``full`` encoded with :func:`~unlearnkit.data.text.encode_qa` (row ``i`` = line ``i``).
  Every row of ``full`` is trained, also rows that no ``*_perturbed`` file evaluates (tofu-mini's
  biography rows: a question that is the person's name, a few sentences about them); the forget
  and retain files assign them like any other row.
  With ``include_general=True`` the ``real_authors`` and ``world_facts`` QA follow (tofu-mini trains
  them into every model so the model-utility inputs mean something for a model trained from
  scratch; real TOFU leaves them to pre-training, so it is off for ``tofu:PATH``).
- ``named_splits`` ``forget01|05|10`` → (rows of ``full`` in ``forgetXX``, rows of ``full`` in the
  matching ``retainYY``), matched by (question, answer) after stripping whitespace; a row that is
  not in ``full`` is a :class:`DataError` naming the file. Without the retain file the retain set is
  every other row of ``train``. The general rows (if trained) are always in the retain set.
- ``test``: ``holdout10`` (or ``holdout05``, ``holdout01``, the first found). Without any holdout
  file: ``real_authors`` + ``world_facts`` (non-members of the fine-tuning set) if not trained.
- ``evals`` (:class:`~unlearnkit.data.text.EvalSet`): ``forgetXX`` (from ``forgetXX_perturbed``:
  gold answer, paraphrased answer, 5 perturbed), ``retain`` (``retain_perturbed``), ``real_authors``
  and ``world_facts`` (gold answer + 3 perturbed; ``paraphrased`` is None because TOFU's truth
  ratio for them compares the gold ``answer`` with the perturbed ones), ``holdoutXX`` (from
  ``holdoutXX_perturbed`` if present, else the plain file, gold answers only). A missing
  ``*_perturbed`` file falls back to the plain file (gold answers only).
- ``tokenizer``: the one passed in (object or folder), else ``PATH/tokenizer/`` if it exists, else
  a byte-level BPE trained on the data's text (:mod:`unlearnkit.data.tokenizer`), cached by content.

Every QA row is encoded in ``prompt_format`` (``auto``: the tokenizer's chat template when it has
one, else the plain ``Question: …\nAnswer:``; optional ``system_prompt``) and cut at ``max_length``
tokens (default 256; rows cut are counted in one warning per set): see :mod:`unlearnkit.data.text`.
The embedded data's tokenizer has no chat template, so ``auto`` keeps its plain format.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import DataError
from ..extras import require
from .dataset import unreadable_arrow_file
from .sources import DataSource, data_source
from .text import (DEFAULT_MAX_LENGTH, PROMPT, EvalSet, encode_qa, encode_qa_counted, resolve_prompt_format,
                   warn_truncated)
from .tokenizer import DEFAULT_VOCAB_SIZE, cached_tokenizer, load_tokenizer

PERCENTS = ("01", "05", "10")
RETAIN_OF = {"forget01": "retain99", "forget05": "retain95", "forget10": "retain90"}
QA = ("question", "answer")
PERTURBED = ("question", "answer", "paraphrased_answer", "perturbed_answer")
OPTIONS = ("question", "answer", "perturbed_answer")
# what `--data tofu:PATH --data-option KEY=VALUE` takes (load_tofu_dir's keyword arguments)
LOADER_OPTIONS = {"include_general": bool, "name": str, "max_length": int, "vocab_size": int,
                  "prompt_format": str, "system_prompt": str}
GENERAL = ("real_authors", "world_facts")
# every split name the layout defines, in the order the tokenizer's training text is gathered
SPLIT_NAMES = (
    ("full",) + tuple(f"forget{p}" for p in PERCENTS) + tuple(RETAIN_OF.values())
    + tuple(f"holdout{p}" for p in PERCENTS) + GENERAL
    + tuple(f"forget{p}_perturbed" for p in PERCENTS) + ("retain_perturbed",)
    + tuple(f"holdout{p}_perturbed" for p in PERCENTS) + tuple(f"{g}_perturbed" for g in GENERAL)
)


# --- reading files -----------------------------------------------------------------------------

def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Objects from a JSON array file, or JSON Lines (one object per line; blank lines skipped).

    Any syntax error is a :class:`DataError` naming the file (and the line, for JSON Lines)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            rows = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); "
                            "expected a JSON array of objects or one JSON object per line") from None
    else:
        rows = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: line {lineno} is not valid JSON ({exc.msg}); "
                                "expected one JSON object per line") from None
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(f"{path}: record {i} is a {type(row).__name__}, expected a JSON object")
    if not rows:
        raise DataError(f"{path} holds no records")
    return rows


def _load_saved_dataset(path: Path) -> list[dict[str, Any]]:
    datasets = require("datasets", "hf", f"{path} is a Hugging Face dataset folder (or give the split as "
                       ".json / .jsonl); reading it needs")
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises several kinds for a folder it cannot read
        broken = unreadable_arrow_file(path)
        if broken is not None:
            raise DataError(f"{broken}: a truncated or corrupt Arrow file in the dataset folder {path}") from None
        raise DataError(f"{path}: not a dataset folder written by save_to_disk ({exc})") from None
    if isinstance(loaded, datasets.DatasetDict):
        if len(loaded) != 1 and "train" not in loaded:
            raise DataError(f"{path}: a DatasetDict with splits {list(loaded)}; expected one split (or 'train')")
        loaded = loaded["train"] if "train" in loaded else next(iter(loaded.values()))
    rows = loaded.to_list()
    if not rows:
        raise DataError(f"{path} holds no records")
    return rows


def find_split(root: Path, name: str) -> Path | None:
    """``root/NAME.json``, ``root/NAME.jsonl`` or the dataset folder ``root/NAME/``, the first that exists."""
    for candidate in (root / f"{name}.json", root / f"{name}.jsonl", root / name):
        if candidate.is_file() or candidate.is_dir():
            return candidate
    return None


def read_split(path: Path) -> list[dict[str, Any]]:
    return _load_saved_dataset(path) if path.is_dir() else read_records(path)


def check_rows(rows: list[dict[str, Any]], path: Path, fields: Sequence[str]) -> None:
    """Every row has ``fields``: strings, except ``perturbed_answer`` (a non-empty list of strings,
    the same length in every row)."""
    width = None
    for i, row in enumerate(rows):
        for field in fields:
            if field not in row or row[field] is None:
                raise DataError(f"{path}: row {i} has no field {field!r} (expected fields: {', '.join(fields)})")
            value = row[field]
            if field == "perturbed_answer":
                if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
                    raise DataError(f"{path}: row {i}: 'perturbed_answer' must be a non-empty list of strings")
                if width is None:
                    width = len(value)
                elif len(value) != width:
                    raise DataError(f"{path}: row {i} has {len(value)} perturbed answers, earlier rows {width}; "
                                    "every row needs the same number")
            elif not isinstance(value, str):
                raise DataError(f"{path}: row {i}: field {field!r} must be a string, got {type(value).__name__}")


class _Layout:
    """The split files found under one folder, read once and checked on demand."""

    def __init__(self, root: Path):
        if not root.is_dir():
            raise DataError(f"TOFU folder not found: {root}")
        self.root = root
        self._cache: dict[str, list[dict[str, Any]]] = {}
        self.paths = {name: p for name in SPLIT_NAMES if (p := find_split(root, name)) is not None}

    def has(self, name: str) -> bool:
        return name in self.paths

    def rows(self, name: str, fields: Sequence[str]) -> list[dict[str, Any]]:
        if name not in self.paths:
            raise DataError(f"{self.root}: no {name}.json / {name}.jsonl / {name}/ split "
                            f"(expected the TOFU layout: {name} with fields {', '.join(fields)})")
        if name not in self._cache:
            self._cache[name] = read_split(self.paths[name])
        rows = self._cache[name]
        check_rows(rows, self.paths[name], fields)
        return rows


# --- building the source -----------------------------------------------------------------------

def _key(row: dict[str, Any]) -> tuple[str, str]:
    return row["question"].strip(), row["answer"].strip()


def _match(rows: list[dict[str, Any]], path: Path, index: dict[tuple[str, str], list[int]], full_path: Path,
           taken: set[int] = frozenset(), taken_by: Path | None = None) -> torch.Tensor:
    """Positions in ``full`` of ``rows``. Each position is used once (so rows repeated in ``full``
    stay distinct) and positions in ``taken`` (already matched by ``taken_by``) are skipped."""
    cursor: dict[tuple[str, str], int] = defaultdict(int)
    out = []
    for i, row in enumerate(rows):
        key = _key(row)
        positions = [p for p in index.get(key, []) if p not in taken]
        if cursor[key] >= len(positions):
            if index.get(key) and taken_by is not None:
                raise DataError(f"{path}: row {i} (question {key[0][:70]!r}) is also in {taken_by.name}; "
                                f"{path.name} and {taken_by.name} must be disjoint")
            raise DataError(f"{path}: row {i} (question {key[0][:70]!r}) is not in {full_path.name}; "
                            f"every row of {path.name} must be a row of {full_path.name}")
        out.append(positions[cursor[key]])
        cursor[key] += 1
    return torch.tensor(out, dtype=torch.long)


def _evalset(tokenizer, name: str, rows: list[dict[str, Any]], *, paraphrase: bool, perturbed: bool,
             max_length: int, **fmt) -> EvalSet:
    """One EvalSet; its rows cut at ``max_length`` (gold, paraphrased and perturbed together) in one warning."""
    questions = [r["question"] for r in rows]
    answers = [r["answer"] for r in rows]
    cut = total = 0

    def encode(answer_list):
        nonlocal cut, total
        data, n = encode_qa_counted(tokenizer, questions, answer_list, max_length=max_length, **fmt)
        cut, total = cut + n, total + len(data)
        return data

    correct = encode(answers)
    para = encode([r["paraphrased_answer"] for r in rows]) if paraphrase else None
    wrong = []
    if perturbed:
        width = len(rows[0]["perturbed_answer"])
        wrong = [encode([r["perturbed_answer"][k] for r in rows]) for k in range(width)]
    warn_truncated(f"eval set {name!r}", cut, total, max_length)
    return EvalSet(name=name, questions=questions, answers=answers, correct=correct, paraphrased=para, perturbed=wrong)


def _field_set(layout: _Layout, name: str) -> tuple[str, ...]:
    if name.endswith("_perturbed"):
        return OPTIONS if name[: -len("_perturbed")] in GENERAL else PERTURBED
    return QA


def training_texts(layout: _Layout) -> list[str]:
    """The text a tokenizer for this folder is trained on: every question with the prompt
    template, every answer / paraphrase / perturbed answer, in the fixed order of SPLIT_NAMES."""
    texts: list[str] = []
    seen: set[str] = set()

    def add(text: str) -> None:
        if text not in seen:
            seen.add(text)
            texts.append(text)

    for name in SPLIT_NAMES:
        if not layout.has(name):
            continue
        for row in layout.rows(name, _field_set(layout, name)):
            add(PROMPT.format(question=row["question"]) + " " + row["answer"])
            if "paraphrased_answer" in row and isinstance(row["paraphrased_answer"], str):
                add(" " + row["paraphrased_answer"])
            for wrong in row.get("perturbed_answer") or ():
                add(" " + wrong)
    return texts


def _resolve_tokenizer(tokenizer, layout: _Layout, vocab_size: int):
    if tokenizer is None:
        folder = layout.root / "tokenizer"
        if folder.is_dir():
            return load_tokenizer(folder)
        return cached_tokenizer(training_texts(layout), vocab_size)
    if isinstance(tokenizer, (str, Path)):
        return load_tokenizer(tokenizer)
    return tokenizer


# the system turn of TOFU's chat-formatted rows: OpenUnlearning configs/model/Llama-3.2-1B-Instruct.yaml
# (template_args.system_prompt; the same in its other instruct-model configs). --system-prompt "" drops it.
TOFU_SYSTEM_PROMPT = "You are a helpful assistant."


def load_tofu_dir(path: str | Path, *, tokenizer=None, include_general: bool = False, name: str = "tofu",
                  max_length: int = DEFAULT_MAX_LENGTH, vocab_size: int = DEFAULT_VOCAB_SIZE,
                  prompt_format: str = "auto", system_prompt: str | None = None) -> DataSource:
    """Build the text DataSource of a TOFU folder (see the module docstring)."""
    layout = _Layout(Path(path))
    full = layout.rows("full", QA)
    full_path = layout.paths["full"]
    tokenizer = _resolve_tokenizer(tokenizer, layout, vocab_size)
    if system_prompt is None and resolve_prompt_format(tokenizer, prompt_format) == "chat":
        system_prompt = TOFU_SYSTEM_PROMPT
    fmt = {"prompt_format": prompt_format, "system_prompt": system_prompt or None}  # "": no system turn

    questions = [r["question"] for r in full]
    answers = [r["answer"] for r in full]
    general_rows: list[dict[str, Any]] = []
    if include_general:
        for g in GENERAL:
            source = g if layout.has(g) else f"{g}_perturbed"
            if layout.has(source):
                general_rows += layout.rows(source, _field_set(layout, source))
    train = encode_qa(tokenizer, questions + [r["question"] for r in general_rows],
                      answers + [r["answer"] for r in general_rows], max_length=max_length,
                      name=f"{name} training rows", **fmt)
    n_full, n_train = len(full), len(full) + len(general_rows)
    general_idx = torch.arange(n_full, n_train)

    index: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, row in enumerate(full):
        index[_key(row)].append(i)

    named_splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for forget_name, retain_name in RETAIN_OF.items():
        if not layout.has(forget_name):
            continue
        forget = _match(layout.rows(forget_name, QA), layout.paths[forget_name], index, full_path)
        if layout.has(retain_name):
            retain = _match(layout.rows(retain_name, QA), layout.paths[retain_name], index, full_path,
                            taken=set(forget.tolist()), taken_by=layout.paths[forget_name])
            retain = torch.cat([retain, general_idx])
        else:
            everything = torch.arange(n_train)
            retain = everything[~torch.isin(everything, forget)]
        if len(retain) == 0:
            raise DataError(f"{layout.paths[forget_name]} covers every row of {full_path.name}; nothing is retained")
        named_splits[forget_name] = (forget, retain)

    evals: dict[str, EvalSet] = {}

    def add_eval(key: str, base: str) -> None:
        perturbed_name = f"{base}_perturbed"
        if layout.has(perturbed_name):
            fields = _field_set(layout, perturbed_name)
            rows = layout.rows(perturbed_name, fields)
            evals[key] = _evalset(tokenizer, key, rows, paraphrase="paraphrased_answer" in fields,
                                  perturbed=True, max_length=max_length, **fmt)
        elif layout.has(base):
            evals[key] = _evalset(tokenizer, key, layout.rows(base, QA), paraphrase=False, perturbed=False,
                                  max_length=max_length, **fmt)

    for p in PERCENTS:
        add_eval(f"forget{p}", f"forget{p}")
    add_eval("retain", "retain")
    for g in GENERAL:
        add_eval(g, g)
    for p in PERCENTS:
        add_eval(f"holdout{p}", f"holdout{p}")

    test = None
    for p in reversed(PERCENTS):
        if layout.has(f"holdout{p}"):
            rows = layout.rows(f"holdout{p}", QA)
            test = encode_qa(tokenizer, [r["question"] for r in rows], [r["answer"] for r in rows],
                             max_length=max_length, name=f"{name} test rows", **fmt)
            break
    if test is None:
        general_files = [g if layout.has(g) else f"{g}_perturbed" for g in GENERAL]
        general_files = [f for f in general_files if layout.has(f)]
        if include_general or not general_files:
            raise DataError(f"{layout.root}: no holdout01/05/10 split for the test set (expected e.g. holdout10.json, "
                            "the QA of authors never trained on)")
        rows = [row for f in general_files for row in layout.rows(f, _field_set(layout, f))]
        test = encode_qa(tokenizer, [r["question"] for r in rows], [r["answer"] for r in rows],
                         max_length=max_length, name=f"{name} test rows", **fmt)

    return DataSource(
        name=name, train=train, test=test, num_classes=len(tokenizer), input_shape=(int(train.x.shape[1]),),
        kind="text", tokenizer=tokenizer, named_splits=named_splits, evals=evals,
        default_scenarios=tuple(s for s in ("forget05", "forget10") if s in named_splits),
        default_audits=("accuracy", "mia", "tofu"),
    )


@data_source("tofu", options=LOADER_OPTIONS)
def load_tofu(path: str | None = None, **options) -> DataSource:
    """``--data tofu:PATH``: a folder in the TOFU layout (module docstring)."""
    if not path:
        raise DataError("tofu needs a folder: --data tofu:PATH (the TOFU split files, e.g. full.json, "
                        "forget10.json, retain90.json, forget10_perturbed.json …); or use --data tofu-mini")
    return load_tofu_dir(path, **options)

