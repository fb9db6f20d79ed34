"""Small option parsers shared by the CLI verbs."""
from __future__ import annotations

from imface.errors import ImfaceError


def int_list(text: str, option: str) -> list[int]:
    """``"32,64, 128"`` -> [32, 64, 128] (blank items skipped); ImfaceError naming ``option`` otherwise."""
    try:
        return [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise ImfaceError(None, f"{option} expects comma-separated integers, got {text!r}") from None
