"""Command-line values shared by the subcommands (``unlearnkit bench``, ``forget``, ``tune``)."""
from __future__ import annotations

import logging
import sys

from .errors import ConfigError


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the message (not the stream that was
    current when logging was set up): callers that swap stderr (test capture, notebooks, job
    runners) never leave a handler pointing at a closed stream."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def configure_logging(verbose: bool = False) -> None:
    """Plain messages on stderr for the command line; replaces earlier handlers of ours."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _CurrentStderr)]:
        root.removeHandler(handler)
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def parse_data_options(items: list[str]) -> dict[str, str]:
    """``--data-option KEY=VALUE`` pairs (the loader converts and validates the values)."""
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"--data-option {item!r}: expected KEY=VALUE, e.g. groups=map.json")
        out[key] = value
    return out
