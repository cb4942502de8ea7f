"""Values typed from text (the command line's ``--set`` and ``--data-option``): one reading of yes/no."""
from __future__ import annotations

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


def parse_bool(text: str) -> bool:
    """``true/yes/on/1`` → True, ``false/no/off/0`` → False (any case); anything else: ``ValueError``."""
    value = text.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ValueError(text)
