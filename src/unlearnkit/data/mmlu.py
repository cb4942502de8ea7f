"""``mmlu:PATH`` — MMLU (Hendrycks et al. 2021, "Measuring massive multitask language understanding")
from a local folder, scored as lm-evaluation-harness scores its ``mmlu`` task; and the same questions as
a :class:`~unlearnkit.data.text.ChoiceSet` that other text sources attach as a utility eval (WMDP's
``--data-option mmlu=PATH``, as OpenUnlearning pairs ``wmdp_*`` with ``mmlu`` in ``configs/eval/lm_eval.yaml``).

Layouts read (the first found wins):

- the hub dataset ``cais/mmlu`` as parquet: ``all/test-00000-of-00001.parquet`` (columns ``question``,
  ``subject``, ``choices`` [4 str], ``answer`` int 0–3) and ``all/dev-*.parquet`` for few-shot examples;
  or per-subject folders ``<subject>/test-*.parquet`` / ``<subject>/dev-*.parquet`` (the subject is the
  folder's name when the rows carry none). Read with pandas + pyarrow, imported only then;
- the original release (``data.tar`` of hendrycks/test): ``data/test/<subject>_test.csv`` and
  ``data/dev/<subject>_dev.csv`` (``test/`` and ``dev/`` directly in PATH also work), CSV without
  header: ``question,A,B,C,D,answer`` with the answer a letter A–D.

Scoring (lm-evaluation-harness ``lm_eval/tasks/mmlu/default/_default_template_yaml`` and the
per-subject ``mmlu_<subject>.yaml``): ``output_type: multiple_choice``, context =
``"The following are multiple choice questions (with answers) about {subject}.\\n\\n"`` (the subject
name with ``_`` → space) + ``question.strip() + "\\nA. …\\nB. …\\nC. …\\nD. …\\nAnswer:"``; continuations
``" A"`` … ``" D"``; the prediction is the continuation with the largest summed log-likelihood
(``acc``); zero-shot by default. ``few_shot=n`` (harness ``--num_fewshot n``, sampler ``first_n`` on the
``dev`` split): the first n dev questions of the same subject, each written ``text + " " + letter``,
joined by ``"\\n\\n"`` between the description and the question. The overall ``mmlu_acc`` is the mean
over all questions (the harness's ``mmlu`` group aggregates with ``weight_by_size: true``).

A question longer than ``max_length`` tokens loses the start of its context, never the continuation
(the harness cuts the same way at the model's length), and the rows cut are counted in one warning,
as every text loader reports its cuts (:func:`~unlearnkit.data.text.warn_truncated`): raise
``max_length`` to the model's context length for real MMLU.

``mmlu:PATH`` alone builds an evaluation-only DataSource: ``evals["mmlu"]``, ``test`` = every test
question followed by its correct choice as plain text, ``train`` = the dev questions the same way (or
the test ones when there is no dev split), no named forget split; its default audit is ``mmlu``.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import ConfigError, DataError
from .sources import DataSource, data_source
from .text import DEFAULT_MAX_LENGTH, IGNORE, ChoiceSet, _check_tokenizer, _pack, encode_text, warn_truncated
from .tokenizer import DEFAULT_VOCAB_SIZE, cached_tokenizer, load_tokenizer

LETTERS = ("A", "B", "C", "D")
SPLITS = ("test", "dev")
_CSV = re.compile(r"^(?P<subject>.+)_(?P<split>test|dev|val)\.csv$")


# --- encoding -----------------------------------------------------------------------------------

def encode_choice_rows(tokenizer, contexts: Sequence[str], continuations: Sequence[Sequence[str]],
                       answers: Sequence[int], questions: Sequence[str], choices: Sequence[Sequence[str]], *,
                       name: str, max_length: int) -> ChoiceSet:
    """A :class:`ChoiceSet` with ``options[k]`` = context + k-th continuation, only the continuation
    labelled (no EOS, as the harness scores it). A row longer than ``max_length`` loses the start of
    its context (the continuation is always scored, as the harness cuts at the model's length) and
    the rows cut are counted in one warning (:func:`~unlearnkit.data.text.warn_truncated`)."""
    pad, _ = _check_tokenizer(tokenizer)
    context_ids = tokenizer(list(contexts), add_special_tokens=False)["input_ids"] if len(contexts) else []
    cache: dict[str, list[int]] = {}
    width = len(continuations[0]) if len(continuations) else len(LETTERS)
    per_option: list[list[tuple[list[int], list[int]]]] = [[] for _ in range(width)]
    cut = 0
    for ctx, conts in zip(context_ids, continuations):
        ids_k = [cache.setdefault(c, list(tokenizer(c, add_special_tokens=False)["input_ids"])) for c in conts]
        cut += max(len(ctx) + len(ids) for ids in ids_k) > max_length
        for k, ids in enumerate(ids_k):
            keep = list(ctx[max(0, len(ctx) + len(ids) - max_length):])
            per_option[k].append((keep + ids, [IGNORE] * len(keep) + ids))
    warn_truncated(f"MCQ set {name!r}", cut, len(context_ids), max_length)
    return ChoiceSet(name=name, questions=list(questions), choices=[list(c) for c in choices],
                     answer=torch.tensor(list(answers), dtype=torch.long),
                     options=[_pack(rows, pad, max_length) for rows in per_option])


# --- reading ------------------------------------------------------------------------------------

def _clean(row: dict[str, Any], path: Path, i: int, subject: str | None) -> dict[str, Any]:
    """WMDP's schema check (question, 4 choices, answer 0–3) plus the subject (the row's, else ``subject``)."""
    from .wmdp import check_mcqs

    try:
        clean = check_mcqs([row], path)[0]
    except DataError as exc:   # name the row's real position
        raise DataError(str(exc).replace("question 0", f"question {i}", 1)) from None
    found = row.get("subject")
    clean["subject"] = str(found) if isinstance(found, str) and found else subject
    if not clean["subject"]:
        raise DataError(f"{path}: question {i} has no 'subject' (expected a column 'subject' in all/*.parquet, "
                        "or per-subject folders <subject>/test-*.parquet)")
    return clean


def read_csv(path: Path, subject: str) -> list[dict[str, Any]]:
    """Original-release rows: ``question,A,B,C,D,answer`` (letter), no header."""
    rows = []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            for lineno, record in enumerate(csv.reader(handle), start=1):
                if not record or not any(field.strip() for field in record):
                    continue
                if len(record) != 6:
                    raise DataError(f"{path}: record {lineno} has {len(record)} fields; expected 6 "
                                    "(question,A,B,C,D,answer), no header")
                answer = record[5].strip().upper()
                if answer not in LETTERS:
                    raise DataError(f"{path}: record {lineno}: answer {record[5]!r} is not one of A, B, C, D")
                rows.append({"question": record[0], "choices": record[1:5], "answer": LETTERS.index(answer),
                             "subject": subject})
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    return rows


def _parquet_rows(paths: list[Path], subject: str | None) -> list[dict[str, Any]]:
    from .wmdp import read_parquet

    records = read_parquet(paths)
    return [_clean(r, paths[0], i, subject) for i, r in enumerate(records)]


def discover(root: Path) -> tuple[str, dict[str, Any]]:
    """(layout, {split: source}) — ``("parquet-all", {split: [files]})``, ``("parquet-subjects",
    {split: {subject: [files]}})`` or ``("csv", {split: {subject: file}})``."""
    if not root.is_dir():
        raise DataError(f"MMLU folder not found: {root}")
    all_dir = root / "all"
    if all_dir.is_dir() and sorted(all_dir.glob("test-*.parquet")):
        return "parquet-all", {s: sorted(all_dir.glob(f"{s}-*.parquet")) for s in SPLITS}
    per_subject: dict[str, dict[str, list[Path]]] = {s: {} for s in SPLITS}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in ("all", "auxiliary_train", "data")):
        for s in SPLITS:
            files = sorted(d.glob(f"{s}-*.parquet"))
            if files:
                per_subject[s][d.name] = files
    if per_subject["test"]:
        return "parquet-subjects", per_subject
    for base in (root / "data", root):
        if (base / "test").is_dir():
            found: dict[str, dict[str, Path]] = {s: {} for s in SPLITS}
            for s in SPLITS:
                folder = base / s
                for f in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
                    m = _CSV.match(f.name)
                    if m and m["split"] == s:
                        found[s][m["subject"]] = f
            if found["test"]:
                return "csv", found
    raise DataError(f"{root}: no MMLU questions found (expected all/test-00000-of-00001.parquet as in the hub "
                    "dataset cais/mmlu, <subject>/test-*.parquet, or the original data/test/<subject>_test.csv)")


def read_mmlu(path: str | Path, split: str = "test", subjects: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The rows of ``split`` (test | dev): ``question``, ``choices``, ``answer`` (0–3), ``subject``,
    ordered by subject then file order; ``subjects`` keeps only those."""
    if split not in SPLITS:
        raise ConfigError(f"MMLU split must be one of {', '.join(SPLITS)}, got {split!r}")
    layout, sources = discover(Path(path))
    source = sources[split]
    if layout == "parquet-all":
        rows = _parquet_rows(source, None) if source else []
    elif layout == "parquet-subjects":
        rows = [r for subject, files in source.items() for r in _parquet_rows(files, subject)]
    else:
        rows = [r for subject, f in source.items() for r in read_csv(f, subject)]
    if subjects is not None:
        wanted = set(subjects)
        if split == "test":
            unknown = wanted - {r["subject"] for r in rows}
            if unknown:
                raise DataError(f"{path}: no MMLU test questions for subject(s) {', '.join(sorted(unknown))}")
        rows = [r for r in rows if r["subject"] in wanted]
    order = {s: i for i, s in enumerate(sorted({r["subject"] for r in rows}))}
    return sorted(rows, key=lambda r: order[r["subject"]])  # stable: file order within a subject


# --- prompts ------------------------------------------------------------------------------------

def question_text(row: dict[str, Any]) -> str:
    """The harness's ``doc_to_text``: question, the four lettered choices, ``Answer:``."""
    lines = [row["question"].strip()] + [f"{letter}. {choice}" for letter, choice in zip(LETTERS, row["choices"])]
    return "\n".join(lines) + "\nAnswer:"


def description(subject: str) -> str:
    return f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"


def mmlu_context(row: dict[str, Any], shots: Sequence[dict[str, Any]] = ()) -> str:
    """Description + the few-shot examples (``text + " " + letter``, each followed by a blank line) + the question."""
    examples = "".join(f"{question_text(s)} {LETTERS[s['answer']]}\n\n" for s in shots)
    return description(row["subject"]) + examples + question_text(row)


def encode_mmlu(tokenizer, rows: Sequence[dict[str, Any]], dev_rows: Sequence[dict[str, Any]] = (), *,
                few_shot: int = 0, name: str = "mmlu", max_length: int = DEFAULT_MAX_LENGTH) -> ChoiceSet:
    """The :class:`ChoiceSet` of MMLU rows with ``few_shot`` examples from ``dev_rows`` (first n of the
    same subject)."""
    if few_shot < 0:
        raise ConfigError(f"MMLU few_shot must be >= 0, got {few_shot}")
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for r in dev_rows:
        by_subject.setdefault(r["subject"], []).append(r)
    if few_shot:
        short = sorted({r["subject"] for r in rows if len(by_subject.get(r["subject"], [])) < few_shot})
        if short:
            raise DataError(f"MMLU {few_shot}-shot needs {few_shot} dev questions per subject; too few for: "
                            f"{', '.join(short[:5])}{' …' if len(short) > 5 else ''}")
    contexts = [mmlu_context(r, by_subject.get(r["subject"], [])[:few_shot]) for r in rows]
    continuations = [[f" {letter}" for letter in LETTERS]] * len(rows)
    return encode_choice_rows(tokenizer, contexts, continuations, [r["answer"] for r in rows],
                              [r["question"] for r in rows], [r["choices"] for r in rows],
                              name=name, max_length=max_length)


def _subjects(option: str | Sequence[str] | None) -> list[str] | None:
    if option is None or option == "":
        return None
    if isinstance(option, str):
        return [s.strip() for s in option.split(",") if s.strip()]
    return list(option)


def load_mmlu_choices(path: str | Path, tokenizer, *, few_shot: int = 0, subjects=None, name: str = "mmlu",
                      max_length: int = DEFAULT_MAX_LENGTH) -> ChoiceSet:
    """The MMLU test questions of a folder as a ChoiceSet (what ``wmdp``'s ``mmlu=PATH`` attaches)."""
    subjects = _subjects(subjects)
    rows = read_mmlu(path, "test", subjects)
    dev = read_mmlu(path, "dev", subjects) if few_shot else []
    return encode_mmlu(tokenizer, rows, dev, few_shot=few_shot, name=name, max_length=max_length)


def _as_text(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [f"{r['question'].strip()} {r['choices'][r['answer']]}" for r in rows]


def load_mmlu_dir(path: str | Path, *, tokenizer=None, few_shot: int = 0, subjects: str | None = None,
                  name: str = "mmlu", max_length: int = DEFAULT_MAX_LENGTH, vocab_size: int = DEFAULT_VOCAB_SIZE) -> DataSource:
    """The evaluation-only DataSource of an MMLU folder (module docstring)."""
    root = Path(path)
    wanted = _subjects(subjects)
    rows = read_mmlu(root, "test", wanted)
    dev = read_mmlu(root, "dev", wanted)
    if tokenizer is None:
        folder = root / "tokenizer"
        tokenizer = load_tokenizer(folder) if folder.is_dir() else cached_tokenizer(
            [mmlu_context(r) for r in rows + dev] + _as_text(rows + dev), vocab_size)
    elif isinstance(tokenizer, (str, Path)):
        tokenizer = load_tokenizer(tokenizer)
    evals = {"mmlu": encode_mmlu(tokenizer, rows, dev, few_shot=few_shot, name="mmlu", max_length=max_length)}
    test = encode_text(tokenizer, _as_text(rows), max_length=max_length)
    train = encode_text(tokenizer, _as_text(dev or rows), max_length=max_length)
    return DataSource(
        name=name, train=train, test=test, num_classes=len(tokenizer), input_shape=(int(train.x.shape[1]),),
        kind="text", tokenizer=tokenizer, evals=evals, default_audits=("mmlu",),
    )


# what `--data mmlu:PATH --data-option KEY=VALUE` takes (load_mmlu_dir's keyword arguments)
LOADER_OPTIONS = {"few_shot": int, "subjects": str, "name": str, "max_length": int, "vocab_size": int}


@data_source("mmlu", options=LOADER_OPTIONS)
def load_mmlu(path: str | None = None, **options) -> DataSource:
    """``--data mmlu:PATH``: a folder of MMLU questions (module docstring)."""
    if not path:
        raise DataError("mmlu needs a folder: --data mmlu:PATH (all/test-00000-of-00001.parquet as in cais/mmlu, "
                        "or the original data/test/<subject>_test.csv)")
    return load_mmlu_dir(path, **options)
