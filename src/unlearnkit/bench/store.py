"""The results store: one JSON object per line, one line per (method, scenario, seed) cell.

Every write replaces the whole file atomically (temp file, fsync, rename), so a killed run
leaves either the old or the new file, never a torn line; a rerun skips the cells already there.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..atomic import write_text_atomic
from ..errors import DataError


class ResultStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.records: list[dict] = self._load()
        self._done = {record["cell"] for record in self.records}

    def _load(self) -> list[dict]:
        if not self.path.exists():
            return []
        records = []
        for number, line in enumerate(self.path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{self.path} line {number} is not valid JSON ({exc.msg}); fix or move the file") from None
            if not isinstance(record, dict) or "cell" not in record:
                raise DataError(f"{self.path} line {number} is not a results record (no 'cell' key)")
            records.append(record)
        return records

    def has(self, cell: str) -> bool:
        return cell in self._done

    def get(self, cell: str) -> dict | None:
        for record in self.records:
            if record["cell"] == cell:
                return record
        return None

    def add(self, record: dict) -> None:
        if record["cell"] in self._done:
            raise ValueError(f"cell {record['cell']} is already stored")
        self.records.append(record)
        self._done.add(record["cell"])
        self._write()

    def _write(self) -> None:
        write_text_atomic(self.path, "".join(json.dumps(record, sort_keys=True) + "\n" for record in self.records))
