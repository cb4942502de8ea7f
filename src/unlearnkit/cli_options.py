"""Command-line values shared by the subcommands (``unlearnkit bench``, ``forget``, ``tune``)."""
from __future__ import annotations

from .errors import ConfigError


def parse_data_options(items: list[str]) -> dict[str, str]:
    """``--data-option KEY=VALUE`` pairs (the loader converts and validates the values)."""
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"--data-option {item!r}: expected KEY=VALUE, e.g. groups=map.json")
        out[key] = value
    return out
