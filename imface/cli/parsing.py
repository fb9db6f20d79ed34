"""Option parsers shared by the verbs: one list convention for the whole command line.

A list of names or numbers is one option with comma-separated items (``--scans a,b``);
``none`` is the empty list. Options that take a path or KEY=VALUE repeat instead
(``--in A --in B``, ``--set k=v --set k2=v2``), as paths and values may hold commas.
A part of a batch for a job array is ``--shard i/n`` (:func:`parse_shard`).
"""
from __future__ import annotations

import re
from typing import Sequence

from imface.cli.deprecated import note
from imface.errors import ImfaceError

NONE = "none"


def name_list(text: str | None, option: str) -> list[str] | None:
    """``"a, b"`` -> ["a", "b"] (blank items skipped); ``"none"`` -> []; None -> None (not given).

    ``''``, the old spelling of the empty list, still reads as [] with a deprecation note.
    """
    if text is None:
        return None
    if not text.strip():
        note(f"{option} ''", f"{option} {NONE}")
        return []
    if text.strip().lower() == NONE:
        return []
    return [item.strip() for item in text.split(",") if item.strip()]


def int_list(text: str | None, option: str) -> list[int] | None:
    """:func:`name_list` of integers; ImfaceError naming ``option`` for anything else."""
    items = name_list(text, option)
    if items is None:
        return None
    try:
        return [int(item) for item in items]
    except ValueError:
        raise ImfaceError(None, f"{option} expects comma-separated integers, got {text!r}") from None


def joined_list(values: Sequence[str], option: str) -> list[str]:
    """A comma list given once, or (the old way, noted as deprecated) by repeating the option."""
    if len(values) > 1:
        note(f"repeating {option}", f"one {option} with a comma list")
    return [item for value in values for item in name_list(value, option) or []]


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``--shard "i/n"`` (0-based i, e.g. a job-array index) -> (i, n); None or ``""`` -> None (not given)."""
    if not text:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise ImfaceError(None, f"--shard {text!r}: expected i/n with 0 <= i < n, e.g. 0/4")
    return int(match.group(1)), int(match.group(2))
