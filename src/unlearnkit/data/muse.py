"""``muse:PATH`` — MUSE (Shi et al. 2024, "MUSE: Machine Unlearning Six-Way Evaluation for Language
Models"; hub datasets ``muse-bench/MUSE-News`` and ``muse-bench/MUSE-Books``) from a local folder.

Layout assumed (written from the hub datasets' configs and the MUSE repository's ``load_data.py``,
swj0419/muse_bench @ fcd6651; OpenUnlearning reads the same configs, ``configs/data/datasets/MUSE_*.yaml``):

=====================  ==========================================================  =========================
part                   files looked for, in PATH (first found wins)                 records
=====================  ==========================================================  =========================
raw corpora            ``raw/<split>.json`` / ``.jsonl`` · ``raw/<split>-*.parquet``     documents (``text``)
(``forget``,           (hub) · ``raw/<split>/*.parquet`` · ``raw/<split>.txt`` ·
``retain1``,           ``<split>.json`` / ``.jsonl`` / ``.txt`` directly in PATH
``retain2``,
``holdout``)
knowmem QA             ``knowmem/<split>.json`` / ``.jsonl`` / ``-*.parquet``,          ``question``, ``answer``
                       splits ``forget_qa``, ``retain_qa``, ``forget_qa_icl``,
                       ``retain_qa_icl``
verbmem                ``verbmem/forget.json`` / ``.jsonl`` / ``-*.parquet``          ``prompt``, ``gt``
privleak               ``privleak/forget`` and ``privleak/holdout`` (same forms)       documents (``text``)
=====================  ==========================================================  =========================

A ``.json`` file may hold a JSON array (of strings for corpora — the MUSE repository writes them so —
or of objects) or JSON Lines; a ``.txt`` file is one text (the MUSE repository joins a split's
documents with blank lines). Parquet needs pandas + pyarrow (imported only then). Only the forget
corpus, a retain corpus (``retain1`` and/or ``retain2``) and a holdout (``privleak/holdout`` or
``raw/holdout``) are required; a missing one is a :class:`DataError` naming the files looked for.

What the loader builds (a ``DataSource(kind="text")``):

- ``train``: the forget corpus, then ``retain1``, then ``retain2``, each split's documents joined
  with blank lines, tokenised once and cut into ``max_length``-token chunks (a BOS in front where
  the tokenizer adds one), every token labelled, no EOS — OpenUnlearning's ``PretrainingDataset``
  (``src/data/pretraining.py``), which MUSE's configs use with 2,048-token chunks.
- ``named_splits["forget"]`` = (forget chunks, retain chunks). Ours: the retain set is ``retain1``
  and ``retain2`` (every non-forget row, so ``retrain`` sees the original's data minus the forget
  set); ``retain=retain1`` gives the methods only ``retain1``, as OpenUnlearning's ``MUSE_retain``.
- ``test`` = ``evals["holdout"]``: the privleak holdout documents, one row per document, its first
  ``max_length`` tokens (OpenUnlearning cuts at 2,048), + EOS; without them, the raw holdout corpus
  in chunks, as the training corpora (a ``.txt`` holds no document boundaries).
- ``evals``: ``privleak_forget`` (the privleak forget documents, the MIA members; absent: the forget
  chunks are), ``holdout``, ``verbmem_forget`` (an :class:`EvalSet`: ``questions`` = prompts,
  ``answers`` = ground truths; rows = prompt tokens unlabelled + ``" " + gt`` labelled, OpenUnlearning's
  ``insert_space: True``, no EOS), ``knowmem_forget`` / ``knowmem_retain`` (EvalSets; prompt = the ICL
  prefix ``"Question: {q}\\nAnswer: {a}\\n\\n"`` over the ``*_qa_icl`` file's pairs, as MUSE's
  ``metrics/knowmem.py`` builds it, then ``"Question: {q}\\nAnswer:"``; answer = ``" " + a`` + EOS).
  A verbmem prompt is never cut (generation starts from it); ground truths are kept to
  ``gt_tokens`` tokens (MUSE scores the first 128 only) and rows cut at ``max_length`` are counted in
  one warning.
- default scenario ``forget``, default audit ``muse`` (:mod:`unlearnkit.audits.muse`).

Prompts are MUSE's plain format whatever the tokenizer (MUSE evaluates base Llama-2 models, no chat template).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import ConfigError, DataError
from .sources import DataSource, data_source
from .text import (DEFAULT_MAX_LENGTH, IGNORE, PROMPT, EvalSet, _check_tokenizer, _pack, adds_bos, encode_text,
                   warn_truncated)
from .tokenizer import DEFAULT_VOCAB_SIZE, cached_tokenizer, load_tokenizer

RAW = ("forget", "retain1", "retain2", "holdout")
KNOWMEM = ("forget_qa", "retain_qa", "forget_qa_icl", "retain_qa_icl")
GT_TOKENS = 128           # MUSE's verbmem max_new_tokens: the ground truth is scored on its first 128 tokens
STOPWORDS = ("\n\n", "\nQuestion", "Question:")


# --- reading ------------------------------------------------------------------------------------

def _candidates(root: Path, config: str, split: str, *, text_ok: bool, top_level: bool) -> list[Path]:
    folder = root / config
    names = [folder / f"{split}.json", folder / f"{split}.jsonl"]
    names += sorted(folder.glob(f"{split}-*.parquet")) if folder.is_dir() else []
    names += [folder / split]                                                     # a folder of parquet shards
    names += [folder / f"{split}.txt"] if text_ok else []
    if top_level:
        names += [root / f"{split}.json", root / f"{split}.jsonl", root / f"{split}.txt"]
    return names


def _shown(root: Path, config: str, split: str, *, text_ok: bool, top_level: bool) -> str:
    forms = [f"{config}/{split}.json", f"{config}/{split}.jsonl", f"{config}/{split}-00000-of-00001.parquet"]
    forms += [f"{config}/{split}.txt"] if text_ok else []
    if top_level:
        forms += [f"{split}.json", f"{split}.txt"]
    return ", ".join(forms)


def find(root: Path, config: str, split: str, *, text_ok: bool = False, top_level: bool = False) -> list[Path] | None:
    """The file(s) of ``config/split`` (several only for parquet shards), or None."""
    for path in _candidates(root, config, split, text_ok=text_ok, top_level=top_level):
        if path.is_file():
            if path.suffix == ".parquet":
                return sorted(path.parent.glob(f"{split}-*.parquet"))
            return [path]
        if path.is_dir() and path.name == split:
            shards = sorted(path.glob("*.parquet"))
            if shards:
                return shards
    return None


def _json_items(path: Path) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    stripped = text.strip()
    if not stripped:
        raise DataError(f"{path} is empty")
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError:
        data = None
        items = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}: line {lineno} is not valid JSON ({exc.msg}); expected a JSON array "
                                    "or one JSON value per line") from None
        return items
    if isinstance(data, dict):        # {"text": [...]} / {"data": [...]}: one list-valued field
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
        return [data]
    return data if isinstance(data, list) else [data]


def read_items(paths: list[Path]) -> list[Any]:
    """The records of a split's file(s): strings or objects."""
    if paths[0].suffix == ".parquet":
        from .wmdp import read_parquet

        return read_parquet(paths)
    if paths[0].suffix == ".txt":
        try:
            return [paths[0].read_text(encoding="utf-8")]
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read {paths[0]}: {exc}") from None
    return _json_items(paths[0])


def read_texts(paths: list[Path]) -> list[str]:
    """Documents: strings, or objects with a string ``text``."""
    texts = []
    for i, item in enumerate(read_items(paths)):
        if isinstance(item, dict):
            item = item.get("text")
        if not isinstance(item, str):
            raise DataError(f"{paths[0]}: record {i} is not a text (expected a string or an object with a "
                            "string field 'text')")
        texts.append(item)
    if not texts:
        raise DataError(f"{paths[0]} holds no documents")
    return texts


def read_fields(paths: list[Path], fields: Sequence[str]) -> list[dict[str, str]]:
    """Objects with string ``fields`` (knowmem: question/answer; verbmem: prompt/gt)."""
    rows = []
    for i, item in enumerate(read_items(paths)):
        if not isinstance(item, dict) or not all(isinstance(item.get(f), str) for f in fields):
            raise DataError(f"{paths[0]}: record {i} needs string fields {', '.join(repr(f) for f in fields)}")
        rows.append({f: item[f] for f in fields})
    if not rows:
        raise DataError(f"{paths[0]} holds no records")
    return rows


def _required(root: Path, config: str, split: str, what: str, **kw) -> list[Path]:
    found = find(root, config, split, **kw)
    if found is None:
        raise DataError(f"{root}: no {what} (looked for {_shown(root, config, split, **kw)})")
    return found


# --- encoding -----------------------------------------------------------------------------------

def corpus_chunks(tokenizer, texts: Sequence[str], max_length: int) -> list[tuple[list[int], list[int]]]:
    """The documents joined with blank lines, tokenised once, cut into chunks of ``max_length`` tokens
    (BOS included where the tokenizer adds one), every token labelled."""
    ids = list(tokenizer("\n\n".join(texts), add_special_tokens=False)["input_ids"])
    bos = [int(tokenizer.bos_token_id)] if adds_bos(tokenizer) else []
    size = max_length - len(bos)
    rows = []
    for start in range(0, len(ids), size):
        chunk = bos + ids[start:start + size]
        rows.append((chunk, list(chunk)))
    return rows


def _prompt_ids(tokenizer, text: str) -> list[int]:
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return ([int(tokenizer.bos_token_id)] if adds_bos(tokenizer) else []) + ids


def icl_prefix(pairs: Sequence[dict[str, str]]) -> str:
    """MUSE's few-shot prefix: ``"Question: {q}\\nAnswer: {a}\\n\\n"`` per example."""
    return "".join(f"Question: {p['question']}\nAnswer: {p['answer']}\n\n" for p in pairs)


def encode_knowmem(tokenizer, name: str, qa: Sequence[dict[str, str]], icl: Sequence[dict[str, str]] = (), *,
                   max_length: int = DEFAULT_MAX_LENGTH) -> EvalSet:
    """ICL prefix + ``"Question: {q}\\nAnswer:"`` (unlabelled) + ``" " + a`` + EOS (labelled). A row
    longer than ``max_length`` loses the start of its prompt (the ICL prefix first)."""
    pad, eos = _check_tokenizer(tokenizer)
    prefix = icl_prefix(icl)
    rows, cut = [], 0
    for row in qa:
        prompt = _prompt_ids(tokenizer, prefix + PROMPT.format(question=row["question"]))
        answer = list(tokenizer(" " + row["answer"], add_special_tokens=False)["input_ids"]) + [eos]
        if len(prompt) + len(answer) > max_length:
            cut += 1
            prompt = prompt[max(0, len(prompt) + len(answer) - max_length):]
            answer = answer[: max_length - len(prompt)]
        rows.append((prompt + answer, [IGNORE] * len(prompt) + answer))
    warn_truncated(f"MUSE {name}", cut, len(rows), max_length)
    return EvalSet(name=name, questions=[r["question"] for r in qa], answers=[r["answer"] for r in qa],
                   correct=_pack(rows, pad, max_length))


def encode_verbmem(tokenizer, rows: Sequence[dict[str, str]], *, max_length: int = DEFAULT_MAX_LENGTH,
                   gt_tokens: int = GT_TOKENS, name: str = "verbmem_forget") -> EvalSet:
    """Prompt (unlabelled, never cut) + the first ``gt_tokens`` tokens of ``" " + gt`` (labelled), no
    EOS; the ground truth is cut further where the row would exceed ``max_length``."""
    pad, _ = _check_tokenizer(tokenizer)
    packed, cut = [], 0
    for row in rows:
        prompt = _prompt_ids(tokenizer, row["prompt"])
        gt = list(tokenizer(" " + row["gt"], add_special_tokens=False)["input_ids"])[:gt_tokens]
        room = max(max_length - len(prompt), 1)
        if len(gt) > room:
            cut += 1
            gt = gt[:room]
        packed.append((prompt + gt, [IGNORE] * len(prompt) + gt))
    warn_truncated(f"MUSE {name} ground truths", cut, len(packed), max_length)
    width = max(max_length, max(len(ids) for ids, _ in packed))               # a long prompt is kept whole
    return EvalSet(name=name, questions=[r["prompt"] for r in rows], answers=[r["gt"] for r in rows],
                   correct=_pack(packed, pad, width))


# --- the source ---------------------------------------------------------------------------------

def _retain_names(option: str | Sequence[str] | None) -> tuple[str, ...]:
    names = ("retain1", "retain2") if option in (None, "") else (
        tuple(s.strip() for s in option.split(",") if s.strip()) if isinstance(option, str) else tuple(option))
    bad = [n for n in names if n not in ("retain1", "retain2")]
    if bad or not names:
        raise ConfigError(f"MUSE retain must name retain1 and/or retain2, got {option!r}")
    return names


def load_muse_dir(path: str | Path, *, tokenizer=None, name: str = "muse", max_length: int = DEFAULT_MAX_LENGTH,
                  vocab_size: int = DEFAULT_VOCAB_SIZE, retain: str | None = None,
                  gt_tokens: int = GT_TOKENS) -> DataSource:
    """Build the text DataSource of a MUSE folder (see the module docstring)."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"MUSE folder not found: {root}")
    raw = {"forget": read_texts(_required(root, "raw", "forget", "forget corpus", text_ok=True, top_level=True))}
    for split in ("retain1", "retain2", "holdout"):
        found = find(root, "raw", split, text_ok=True, top_level=True)
        if found is not None:
            raw[split] = read_texts(found)
    if "retain1" not in raw and "retain2" not in raw:
        raise DataError(f"{root}: no retain corpus (looked for "
                        f"{_shown(root, 'raw', 'retain1', text_ok=True, top_level=True)}, and retain2 the same)")
    privleak = {}
    for split in ("forget", "holdout"):
        found = find(root, "privleak", split)
        if found is not None:
            privleak[split] = read_texts(found)
    if "holdout" not in privleak and "holdout" not in raw:
        raise DataError(f"{root}: no holdout documents (the MIA non-members; looked for "
                        f"{_shown(root, 'privleak', 'holdout', text_ok=False, top_level=False)}, "
                        f"{_shown(root, 'raw', 'holdout', text_ok=True, top_level=True)})")
    knowmem = {}
    for split in KNOWMEM:
        found = find(root, "knowmem", split)
        if found is not None:
            knowmem[split] = read_fields(found, ("question", "answer"))
    verbmem_file = find(root, "verbmem", "forget")
    verbmem = read_fields(verbmem_file, ("prompt", "gt")) if verbmem_file is not None else None

    if tokenizer is None:
        folder = root / "tokenizer"
        if folder.is_dir():
            tokenizer = load_tokenizer(folder)
        else:
            texts = [t for docs in raw.values() for t in docs] + [t for docs in privleak.values() for t in docs]
            texts += [f"Question: {r['question']}\nAnswer: {r['answer']}" for rows in knowmem.values() for r in rows]
            texts += [f"{r['prompt']} {r['gt']}" for r in verbmem or []]
            tokenizer = cached_tokenizer(texts, vocab_size)
    elif isinstance(tokenizer, (str, Path)):
        tokenizer = load_tokenizer(tokenizer)
    pad, _ = _check_tokenizer(tokenizer)

    wanted = [s for s in _retain_names(retain) if s in raw]
    if not wanted:
        raise DataError(f"{root}: retain={retain!r} names no retain corpus the folder has "
                        f"({', '.join(s for s in ('retain1', 'retain2') if s in raw)})")
    rows: list[tuple[list[int], list[int]]] = []
    ranges: dict[str, torch.Tensor] = {}
    for split in ("forget", "retain1", "retain2"):
        if split in raw:
            chunks = corpus_chunks(tokenizer, raw[split], max_length)
            ranges[split] = torch.arange(len(rows), len(rows) + len(chunks))
            rows += chunks
    train = _pack(rows, pad, max_length)
    retain_idx = torch.cat([ranges[s] for s in wanted])

    if "holdout" in privleak:   # MUSE's MIA non-members: one row per document
        holdout = encode_text(tokenizer, privleak["holdout"], max_length=max_length, name=f"{name} holdout documents")
    else:                       # the raw holdout corpus, chunked as the training corpora are
        holdout = _pack(corpus_chunks(tokenizer, raw["holdout"], max_length), pad, max_length)
    evals: dict[str, Any] = {"holdout": holdout}
    if "forget" in privleak:
        evals["privleak_forget"] = encode_text(tokenizer, privleak["forget"], max_length=max_length,
                                               name=f"{name} privleak forget documents")
    if verbmem is not None:
        evals["verbmem_forget"] = encode_verbmem(tokenizer, verbmem, max_length=max_length, gt_tokens=gt_tokens)
    for side in ("forget", "retain"):
        if f"{side}_qa" in knowmem:
            evals[f"knowmem_{side}"] = encode_knowmem(tokenizer, f"knowmem_{side}", knowmem[f"{side}_qa"],
                                                      knowmem.get(f"{side}_qa_icl", ()), max_length=max_length)
    return DataSource(
        name=name, train=train, test=holdout, num_classes=len(tokenizer), input_shape=(int(train.x.shape[1]),),
        kind="text", tokenizer=tokenizer, named_splits={"forget": (ranges["forget"], retain_idx)}, evals=evals,
        default_scenarios=("forget",), default_audits=("muse",),
    )


# what `--data muse:PATH --data-option KEY=VALUE` takes (load_muse_dir's keyword arguments)
LOADER_OPTIONS = {"name": str, "max_length": int, "vocab_size": int, "retain": str, "gt_tokens": int}


@data_source("muse", options=LOADER_OPTIONS)
def load_muse(path: str | None = None, **options) -> DataSource:
    """``--data muse:PATH``: a folder in the MUSE layout (module docstring)."""
    if not path:
        raise DataError("muse needs a folder: --data muse:PATH (raw/forget.txt, raw/retain1.txt, "
                        "privleak/holdout.json, knowmem/forget_qa.json, verbmem/forget.json …, or the hub "
                        "dataset's parquet files)")
    return load_muse_dir(path, **options)
