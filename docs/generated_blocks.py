"""What the docs generators (``docs/gen_*.py``) share: the marked blocks they own in a page, and
their command line (rewrite the page, or ``--check`` that it is up to date).

A generated block sits between ``<!-- generated: NAME -->`` and ``<!-- end generated -->``; the
generator owns what is between the markers (``tests/test_docs.py`` fails on a hand edit there) and
leaves the prose outside them alone.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

BEGIN = "<!-- generated: {name} -->"
END = "<!-- end generated -->"


def replace_block(text: str, name: str, body: str, page: Path) -> str:
    """``text`` with block ``name``'s content (everything between its two markers) set to ``body``."""
    begin = BEGIN.format(name=name)
    start = text.find(begin)
    if start < 0:
        raise SystemExit(f"{page}: no {begin!r} marker")
    head = start + len(begin)
    end = text.find(END, head)
    if end < 0:
        raise SystemExit(f"{page}: block {name!r} has no {END!r} marker after it")
    return text[:head] + body + text[end:]


def is_current(page: Path, render: Callable[[str], str]) -> bool:
    """Whether ``page`` is what ``render`` would write now."""
    current = page.read_text(encoding="utf-8")
    return render(current) == current


def run(argv: list[str] | None, doc: str, page: Path, render: Callable[[str], str], script: str) -> int:
    """The generators' command line: rewrite ``page`` with ``render``, or with ``--check`` exit 1
    when it differs from what would be written."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a block is out of date")
    args = parser.parse_args(argv)
    if args.check:
        if not is_current(page, render):
            print(f"{page}: generated blocks out of date; run python docs/{script}", file=sys.stderr)
            return 1
        print(f"{page}: generated blocks up to date")
        return 0
    page.write_text(render(page.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote {page}")
    return 0
