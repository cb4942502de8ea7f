"""``unlearnkit verify RECORD``: recompute every hash a deletion record cites, and say which match.

A ``record.json`` written by ``unlearnkit forget`` (deletion.py) cites:

- ``request.forget_ids_sha256``: the SHA-256 of the forgotten training-set row ids in the one
  canonical form (:func:`unlearnkit.data.split.forget_ids_sha256`: sorted, each once, a JSON list
  without spaces, UTF-8). Recomputed here from the data (``request.data`` loaded with
  ``request.data_loader_options``), the forget spec and the split seed — so it checks that the
  record names the examples that spec selects from that data today;
- ``request.forget_examples``: how many they are;
- ``request.data_fingerprint``: :meth:`unlearnkit.data.sources.DataSource.fingerprint` of that data
  (its contents: inputs, labels, class names, groups, image pipeline);
- ``input_model.sha256`` and ``output_model.sha256``: a file's SHA-256 (safetensors checkpoints,
  the cached original), or, for a ``save_pretrained`` folder, :func:`unlearnkit.checkpoints.sha256_state`
  of the model loaded from it (the same weights give the same hash however they are sharded);
- ``retrain_reference.sha256`` when the reference was a given checkpoint or evaluation log.

One :class:`Check` per item: ``ok``, ``MISMATCH`` (recomputed ≠ recorded), ``MISSING`` (the file or
data to recompute it from is not there: not verified) or ``skipped`` (nothing to recompute: a
reference trained in the run and never saved, a LoRA adapter, a LoRA-wrapped model's hash, a record
written before the field existed). ``unlearnkit verify`` prints one line per check and exits 1 when
any is ``MISMATCH`` or ``MISSING``.

The output model is looked for beside the record first (``forget`` writes it there), then at the
path the record names; other paths are read as written (relative ones from the current folder,
then from the record's folder).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoints import sha256_file, sha256_state
from .errors import DataError, UnlearnkitError

FAILED = ("MISMATCH", "MISSING")


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | MISMATCH | MISSING | skipped
    detail: str

    @property
    def failed(self) -> bool:
        return self.status in FAILED

    def line(self) -> str:
        return f"{self.status:<8} {self.name}: {self.detail}"


def _compare(name: str, recorded: Any, recomputed: Any, what: str) -> Check:
    if recorded == recomputed:
        return Check(name, "ok", f"{_short(recomputed)} ({what})")
    return Check(name, "MISMATCH", f"recorded {_short(recorded)}, recomputed {_short(recomputed)} ({what})")


def _short(value: Any) -> str:
    return f"{value[:16]}…" if isinstance(value, str) and len(value) == 64 else str(value)


def read_record(path: str | os.PathLike) -> tuple[dict, Path]:
    """(the record, the file it came from); ``path`` is a record.json or the folder holding one."""
    path = Path(path)
    if path.is_dir():
        path = path / "record.json"
    if not path.is_file():
        raise DataError(f"no deletion record at {path} (expected the record.json `unlearnkit forget` writes)")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a JSON deletion record ({exc})") from None
    if not isinstance(record, dict) or not isinstance(record.get("request"), dict):
        raise DataError(f"{path} is not a deletion record (no 'request' section)")
    return record, path


def verify_record(path: str | os.PathLike) -> list[Check]:
    """Every check of the record at ``path`` (module docstring), in a fixed order."""
    record, file = read_record(path)
    folder = file.parent
    lm = _lm_options(record)
    checks = _data_checks(record)
    checks.append(_model_check("input_model", record.get("input_model"), folder, lm, output=False))
    checks.append(_model_check("output_model", record.get("output_model"), folder, lm, output=True))
    reference = record.get("retrain_reference")
    if reference:
        checks.append(_model_check("retrain_reference", reference, folder, lm, output=False))
    return checks


# --- the data: forgotten ids, their count, the fingerprint ---------------------------------------

def _lm_options(record: dict) -> dict:
    loader = record["request"].get("data_loader_options")
    return dict(loader.get("lm") or {}) if isinstance(loader, dict) and "tokenizer" in loader else {}


def _load(record: dict):
    from .data.forget import make_split
    from .data.sources import load_data

    request = record["request"]
    loader = request.get("data_loader_options")
    tokenizer_path = None
    if loader is None:  # a record written before the loader options were kept: the user's options
        options = dict(request.get("data_options") or {})
        if (record.get("input_model") or {}).get("kind") == "hf_model":
            tokenizer_path = record["input_model"]["path"]
    elif "tokenizer" in loader:  # a language model's data, encoded by its tokenizer
        options, tokenizer_path = dict(loader.get("options") or {}), loader["tokenizer"]
    else:
        options = dict(loader)
    if tokenizer_path is not None:
        from .models.hf import load_hf_tokenizer

        trust = bool(_lm_options(record).get("trust_remote_code", False))
        options["tokenizer"] = load_hf_tokenizer(tokenizer_path, trust_remote_code=trust)
    source = load_data(request["data"], **options)
    seed = int((record.get("seeds") or {}).get("split", 0))
    return make_split(source, request["forget"], seed=seed), seed


def _data_checks(record: dict) -> list[Check]:
    from .data.split import forget_ids_sha256

    request = record["request"]
    try:
        split, seed = _load(record)
    except (UnlearnkitError, OSError) as exc:
        return [Check("data", "MISSING", f"cannot load {request.get('data')!r} with forget spec "
                                         f"{request.get('forget')!r}: {exc}; the ids and the data are not verified")]
    what = f"{request['data']}, forget {request['forget']}, split seed {seed}"
    checks = [
        _compare("forget_ids_sha256", request.get("forget_ids_sha256"), forget_ids_sha256(split.forget_idx),
                 f"{len(split.forget_idx)} ids from {what}"),
        _compare("forget_examples", request.get("forget_examples"), int(len(split.forget_idx)), what),
    ]
    if "data_fingerprint" in request:
        checks.append(_compare("data_fingerprint", request["data_fingerprint"], split.source.fingerprint(),
                               f"contents of {request['data']}"))
    else:
        checks.append(Check("data_fingerprint", "skipped", "the record predates data fingerprints"))
    return checks


# --- models: a file's SHA-256, or sha256_state of a save_pretrained folder ----------------------

def _locate(recorded: str, folder: Path, beside_record: bool) -> Path | None:
    path = Path(recorded)
    candidates = ([folder / path.name] if beside_record else []) + [path]
    if not path.is_absolute():
        candidates.append(folder / path)
    return next((p for p in candidates if p.exists()), None)


def _model_check(name: str, entry: dict | None, folder: Path, lm: dict, output: bool) -> Check:
    if not entry:
        return Check(name, "MISSING", "the record has no such section")
    recorded, where = entry.get("sha256"), entry.get("path")
    fmt, kind = str(entry.get("format", "")), str(entry.get("kind", ""))
    if recorded is None or where is None:
        return Check(name, "skipped", f"{kind or fmt or 'this model'} has no saved file to hash "
                                      "(e.g. a reference trained in the run and not saved)")
    if "adapter" in fmt:
        return Check(name, "skipped", "a LoRA adapter: its recorded hash is of the adapted model in memory")
    if entry.get("lora") or (kind == "hf_model" and lm.get("lora")):
        return Check(name, "skipped", "the recorded hash is of the LoRA-wrapped model in memory, not of a file")
    path = _locate(where, folder, beside_record=output)
    if path is None:
        return Check(name, "MISSING", f"{where} not found; cannot recompute its SHA-256")
    if path.is_dir():  # a save_pretrained folder: the hash of the loaded tensors
        from .models.hf import load_hf_model

        dtype = "auto" if output else lm.get("dtype", "auto")
        try:
            model = load_hf_model(path, dtype=dtype, trust_remote_code=bool(lm.get("trust_remote_code", False)))
        except (UnlearnkitError, OSError, ValueError) as exc:
            return Check(name, "MISMATCH", f"{path} does not load as a model ({exc})")
        return _compare(name, recorded, sha256_state(model), f"sha256_state of the model in {path}")
    return _compare(name, recorded, sha256_file(path), f"SHA-256 of {path}")


def format_report(checks: list[Check]) -> str:
    """One line per check, then the verdict."""
    failed = [c for c in checks if c.failed]
    skipped = [c for c in checks if c.status == "skipped"]
    ok = len(checks) - len(failed) - len(skipped)
    verdict = "verified" if not failed else "NOT verified"
    lines = [c.line() for c in checks]
    lines.append(f"{verdict}: {ok} ok, {len(failed)} failed ({', '.join(c.name for c in failed) or 'none'}), "
                 f"{len(skipped)} skipped")
    return "\n".join(lines)
