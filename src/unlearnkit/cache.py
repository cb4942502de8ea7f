"""Where unlearnkit keeps what it builds once and reuses: trained originals, generated data,
tokenizers, decoded image arrays. ``$UNLEARNKIT_CACHE`` or ``~/.cache/unlearnkit``."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("UNLEARNKIT_CACHE") or Path.home() / ".cache" / "unlearnkit")
