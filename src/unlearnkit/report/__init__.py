"""``unlearnkit report``: one self-contained HTML page from a results folder written by ``unlearnkit bench``.

``results.py`` shapes the records (mean ± std rows, best cells, curves), ``figures.py`` draws the
matplotlib figures as inline SVG, ``page.py`` assembles the page, ``cli.py`` is the subcommand.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..atomic import write_text_atomic
from ..errors import ConfigError
from ..extras import require
from .results import Results, load_results, shape

__all__ = ["Results", "build_report", "load_results", "render_report", "shape", "write_report"]


def render_report(results: Results, *, title: str | None = None, source: str = "") -> str:
    """The page's HTML for already-loaded results."""
    from .figures import NEEDS

    require("matplotlib", "report", NEEDS)
    from .page import render

    if title is None:
        data = ", ".join(sorted({str(r.get("data")) for r in results.records}))
        title = f"unlearnkit report: {data}"
    return render(results, title=title, source=source)


def write_report(text: str, out: str | os.PathLike, *, force: bool = False) -> Path:
    """Write ``text`` to ``out`` atomically (temp file in the same folder, fsync, rename); refuse an
    existing ``out`` unless ``force``."""
    out = Path(out)
    if out.exists() and not force:
        raise ConfigError(f"{out} exists; pass --force to overwrite it")
    if out.is_dir():
        raise ConfigError(f"{out} is a folder; give a file name, e.g. {out / 'report.html'}")
    write_text_atomic(out, text)  # readable by others: a report is meant to be shared
    return out


def build_report(results_dir: str | os.PathLike, out: str | os.PathLike, *, force: bool = False,
                 title: str | None = None) -> Path:
    """Read ``results_dir`` (or its ``results.jsonl``), write the HTML page to ``out``; return its path."""
    if Path(out).exists() and not force:  # fail before any work
        raise ConfigError(f"{out} exists; pass --force to overwrite it")
    results = load_results(results_dir)
    return write_report(render_report(results, title=title, source=str(results_dir)), out, force=force)
