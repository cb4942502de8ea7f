"""The results store: one JSON object per line, one line per (method, scenario, seed) cell.

Several writers, one file. Any number of processes — two ``bench`` runs with different methods,
``--workers`` jobs, runs on several machines sharing the folder — may add records to the same
``results.jsonl``; none loses another's rows. Each :meth:`ResultStore.add`:

1. takes an exclusive ``fcntl.flock`` on the lock file beside it (``results.jsonl.lock``; created
   once, never deleted — deleting a lock file lets two writers hold "the" lock at once);
2. re-reads ``results.jsonl`` under the lock and merges by cell id: the rows on disk (in their
   order), then rows this process knows that the file lacks, then the new row. A cell already on
   disk keeps the row written first (another process ran the same cell — e.g. both runs' retrain
   reference — with the same seeds, so the same numbers); the second is dropped, not duplicated;
3. rewrites the whole file atomically (temp file in the same folder, fsync, rename) and releases
   the lock.

So a reader never sees a torn line (a killed writer leaves the old file or the new one) and needs
no lock; a rerun skips the cells already there. ``has``/``get`` re-read the file when it changed
on disk (size, mtime or inode), so a run also skips the cells another process finished meanwhile.

Where the lock holds: processes on one machine, and machines sharing an NFS (v3 with lockd, v4)
or Lustre/GPFS mount where ``flock`` is honoured (Linux NFS clients turn it into an fcntl byte-range
lock on the server). Where ``fcntl`` does not exist (Windows) the store runs unlocked: one writer
per file there. Cost: each ``add`` reads and writes the whole file, O(rows) — the file holds one
row per cell (thousands at most), and a cell takes seconds to minutes.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

from ..atomic import write_text_atomic
from ..errors import DataError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks; one writer per file there
    fcntl = None

log = logging.getLogger(__name__)


class ResultStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._stamp = None
        self.records: list[dict] = self._load()
        self._done = {record["cell"] for record in self.records}
        self._mine = set(self._done)  # cells known before this store added or re-read anything, and those it added

    # --- reading ---
    def _file_stamp(self):
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def _load(self) -> list[dict]:
        stamp = self._file_stamp()
        if stamp is None:
            self._stamp = None
            return []
        text = self.path.read_text(encoding="utf-8")
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{self.path} line {number} is not valid JSON ({exc.msg}); fix or move the file") from None
            if not isinstance(record, dict) or "cell" not in record:
                raise DataError(f"{self.path} line {number} is not a results record (no 'cell' key)")
            records.append(record)
        self._stamp = stamp
        return records

    def _merge(self, on_disk: list[dict]) -> None:
        """``self.records`` := the rows on disk, then the rows only this process knows."""
        seen = {record["cell"] for record in on_disk}
        merged = list(on_disk)
        for record in self.records:
            if record["cell"] not in seen:
                merged.append(record)
                seen.add(record["cell"])
        self.records = merged
        self._done = seen

    def refresh(self) -> None:
        """Pick up rows other processes added since this store last read the file."""
        if self._file_stamp() != self._stamp:
            self._merge(self._load())

    def has(self, cell: str) -> bool:
        if cell in self._done:
            return True
        self.refresh()
        return cell in self._done

    def get(self, cell: str) -> dict | None:
        if cell not in self._done:
            self.refresh()
        for record in self.records:
            if record["cell"] == cell:
                return record
        return None

    # --- writing ---
    @contextlib.contextmanager
    def locked(self):
        """The store's exclusive lock (blocks until held); a no-op where ``fcntl`` is missing."""
        if fcntl is None:
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def add(self, record: dict) -> None:
        """Store ``record`` (merged with what other writers stored meanwhile; module docstring). Adding a
        cell this store already had, or added itself, is a bug and raises ``ValueError``; a cell another
        process stored meanwhile keeps that process's row."""
        cell = record["cell"]
        if cell in self._mine:
            raise ValueError(f"cell {cell} is already stored")
        self._mine.add(cell)
        with self.locked():
            self._merge(self._load())
            if cell in self._done:
                log.info("results: cell %s was stored meanwhile by another process; keeping that row", cell)
                return
            self.records.append(record)
            self._done.add(cell)
            write_text_atomic(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.records))
            self._stamp = self._file_stamp()
