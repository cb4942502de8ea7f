"""Watching a run: the callback protocol, and the built-in loggers.

Every training loop finishes each optimizer step with :class:`~unlearnkit.methods.loop.StepCounter`,
which reports the step to the callbacks on ``RunContext.callbacks`` and to the progress bar:

- ``loss``: the step's objective (what the method minimised on that step's batches);
- one entry per objective term the method names (``ctx.log(name, value)``, or
  :func:`~unlearnkit.methods.loop.log_term` from an ``objective``), each as it enters the
  objective, *before* its weight: GradDiff's ``loss = γ·forget + α·retain`` logs ``forget`` (its
  signed forget term, −NLL) and ``retain``; the method's docstring and config give the weights;
- ``lr``: the learning rate the step was taken with (first parameter group), where the loop
  knows its optimizer.

A callback is any object with some of these methods (missing ones are skipped; subclassing
:class:`Callback` gives no-op defaults)::

    on_run_start(info)        info: {"run": name, "total": planned steps}
    on_step(step, logs)       step: 0-based index of the step within the run; logs: name -> float
    on_run_end(info)          info: {"run", "total", "steps": steps done, "status": ok|diverged|error}

A method with two loops (``ieu``'s repair phase) is two runs; the loggers number their rows on
across runs that share them (``step`` in the CSV is cumulative, ``run`` names the phase).

Values are kept as detached tensors while the run goes and turned into floats (one host sync for
all of them) at most every ``StepCounter.FLUSH_S`` seconds and at the end of the run, so a GPU loop
is not stalled every step: ``on_step`` calls arrive in order, in small bursts, all of them before
``on_run_end``. Callbacks run in the main process only (one per multi-process run).
"""
from __future__ import annotations

import csv
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError

__all__ = ["CSVLogger", "Callback", "ConsoleLogger", "History", "TensorBoardLogger", "downsample"]

log = logging.getLogger(__name__)


@runtime_checkable
class Callback(Protocol):
    """What a run reports (see the module docstring). Subclass for no-op defaults, or duck-type."""

    def on_run_start(self, info: dict[str, Any]) -> None:
        return None

    def on_step(self, step: int, logs: dict[str, float]) -> None:
        return None

    def on_run_end(self, info: dict[str, Any]) -> None:
        return None


class _Cumulative(Callback):
    """Rows numbered on across the runs a logger sees (``ieu`` then its repair phase, or several
    ``unlearn`` calls sharing one context)."""

    def __init__(self) -> None:
        self.run = ""
        self.total = 0
        self._offset = 0  # steps of the runs before this one
        self._next = 0  # the cumulative number the next row gets

    def on_run_start(self, info):
        self.run, self.total = str(info.get("run", "")), int(info.get("total", 0))
        self._offset = self._next

    def global_step(self, step: int) -> int:
        self._next = max(self._next, self._offset + step + 1)
        return self._offset + step


def _fmt(value: float) -> str:
    return f"{value:.4g}"


class ConsoleLogger(_Cumulative):
    """Progress lines through :mod:`logging` (logger ``unlearnkit.methods.callbacks``, level INFO):
    the first step, then at most one line every ``every_s`` seconds, and the run's last step."""

    def __init__(self, every_s: float = 10.0, logger: logging.Logger | None = None, level: int = logging.INFO):
        super().__init__()
        if every_s < 0:
            raise ConfigError(f"ConsoleLogger every_s must be >= 0, got {every_s}")
        self.every_s, self.logger, self.level = every_s, logger or log, level
        self._last = -math.inf
        self._pending: tuple[int, dict] | None = None  # the newest step not printed yet

    def on_run_start(self, info):
        super().on_run_start(info)
        self._last, self._pending = -math.inf, None

    def on_step(self, step, logs):
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._emit(step, logs)
            self._last = now
        else:
            self._pending = (step, logs)

    def on_run_end(self, info):
        if self._pending is not None:
            self._emit(*self._pending)
        self._pending = None

    def _emit(self, step: int, logs: dict) -> None:
        self._pending = None
        values = " ".join(f"{k}={_fmt(v)}" for k, v in logs.items())
        self.logger.log(self.level, "%s step %d/%d %s", self.run, step + 1, self.total, values)


class CSVLogger(_Cumulative):
    """One row per optimizer step in ``path``: ``step`` (cumulative over the runs this logger sees),
    ``run`` (the method, or the phase), ``loss``, ``lr``, then one column per term in the order they
    first appear (empty where a step has no such term). Each row is flushed when written.

    The file is created fresh: an existing ``path`` is refused (:class:`ConfigError`) unless
    ``overwrite=True``, so a log the user already has is never clobbered. A term first seen after
    rows were written (a second phase) adds its column: the file is rewritten with the wider
    header once (earlier rows get empty cells)."""

    BASE = ("step", "run", "loss", "lr")

    def __init__(self, path: str | os.PathLike, overwrite: bool = False):
        super().__init__()
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise ConfigError(f"{self.path} exists; CSVLogger writes a new file (pass overwrite=True, or another path)")
        if self.path.is_dir():
            raise ConfigError(f"{self.path} is a folder; give CSVLogger a file name")
        self.overwrite = overwrite
        self.fields: list[str] = list(self.BASE)
        self._file = None
        self._writer: csv.DictWriter | None = None
        self._started = False

    def on_run_start(self, info):
        super().on_run_start(info)
        self._open()

    def _open(self) -> None:
        if self._file is not None:
            return
        if not self._started:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w" if self.overwrite else "x", newline="", encoding="utf-8")
            self._writer = csv.DictWriter(self._file, self.fields)
            self._writer.writeheader()
            self._started = True
        else:
            self._file = open(self.path, "a", newline="", encoding="utf-8")
            self._writer = csv.DictWriter(self._file, self.fields)

    def on_step(self, step, logs):
        self._open()
        row = {"step": self.global_step(step), "run": self.run, **logs}
        new = [k for k in row if k not in self.fields]
        if new:
            self._widen(new)
        self._writer.writerow(row)
        self._file.flush()

    def _widen(self, new: list[str]) -> None:
        """Add columns: rewrite the rows so far under the wider header (rare: once per new term)."""
        self._file.close()
        with open(self.path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        self.fields += new
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, self.fields)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)
        self._file = open(self.path, "a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._file, self.fields)

    def on_run_end(self, info):
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._writer = None, None


class TensorBoardLogger(_Cumulative):
    """Scalars for TensorBoard under ``log_dir`` (``torch.utils.tensorboard.SummaryWriter``): ``loss``,
    ``lr`` and ``terms/<name>`` against the cumulative step. Needs the ``tensorboard`` package."""

    def __init__(self, log_dir: str | os.PathLike, **writer_kwargs):
        super().__init__()
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("TensorBoardLogger needs the tensorboard package: pip install tensorboard") from None
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir), **writer_kwargs)

    def on_step(self, step, logs):
        at = self.global_step(step)
        for key, value in logs.items():
            tag = key if key in ("loss", "lr") else f"terms/{key}"
            self.writer.add_scalar(tag, value, at)

    def on_run_end(self, info):
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class History(_Cumulative):
    """Keeps every step in memory: ``steps`` (cumulative), ``runs`` (the run of each step) and
    ``logs`` (name -> list aligned with ``steps``, ``None`` where a step has no such value).
    :meth:`curve` gives a small downsampled copy (what the benchmark stores with each cell)."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int] = []
        self.runs: list[str] = []
        self.logs: dict[str, list[float | None]] = {}

    def on_step(self, step, logs):
        n = len(self.steps)
        self.steps.append(self.global_step(step))
        self.runs.append(self.run)
        for key, value in logs.items():
            values = self.logs.get(key)
            if values is None:
                values = self.logs[key] = [None] * n  # a key first seen now: absent before
            values.append(value)
        for values in self.logs.values():
            if len(values) == n:
                values.append(None)

    def __len__(self) -> int:
        return len(self.steps)

    def curve(self, max_points: int = 100, keys: tuple[str, ...] | None = None) -> dict:
        """At most ``max_points`` points: ``step``, ``loss`` and ``terms`` (name -> values), each point
        the mean of one window of consecutive steps (``window`` steps each at most; ``step`` is the
        window's middle step), every step kept when there are few enough; ``steps``: how many steps
        the run took. Floats to 5 significant digits; ``None`` where a window has no value."""
        keys = tuple(self.logs) if keys is None else keys
        windows = _windows(len(self.steps), max_points)
        out: dict[str, Any] = {"steps": len(self.steps),
                               "window": max((b - a for a, b in windows), default=0),
                               "step": [_middle(self.steps[a], self.steps[b - 1]) for a, b in windows]}
        out["loss"] = downsample(self.logs.get("loss", [None] * len(self.steps)), windows)
        out["terms"] = {k: downsample(self.logs[k], windows) for k in keys if k not in ("loss", "lr") and k in self.logs}
        return out


def _windows(n: int, max_points: int) -> list[tuple[int, int]]:
    """``min(n, max_points)`` contiguous windows [a, b) covering range(n), sizes differing by ≤ 1."""
    points = min(n, max(1, max_points))
    return [(i * n // points, (i + 1) * n // points) for i in range(points)] if n else []


def downsample(values: list[float | None], windows: list[tuple[int, int]]) -> list[float | None]:
    """The mean of the finite values in each window (``None`` if it has none), 5 significant digits."""
    out = []
    for a, b in windows:
        kept = [v for v in values[a:b] if v is not None and math.isfinite(v)]
        out.append(_round(sum(kept) / len(kept)) if kept else None)
    return out


def _middle(first: int, last: int) -> int | float:
    return (first + last) // 2 if (first + last) % 2 == 0 else (first + last) / 2


def _round(value: float) -> float:
    return float(f"{float(value):.5g}")
