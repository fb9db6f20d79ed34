"""Old spellings of options: still read for this release, hidden from help, one note on stderr.

A verb declares the old spelling as a hidden option (:func:`hidden`) beside the new one and
merges the two with :func:`renamed` or :func:`renamed_flag`. docs/cli.md lists every old spelling.
"""
from __future__ import annotations

from typing import Any, TypeVar

import typer

from imface.errors import ImfaceError

T = TypeVar("T")


def note(old: str, new: str) -> None:
    """Print ``imface: OLD is deprecated; use NEW`` on stderr."""
    typer.echo(f"imface: {old} is deprecated; use {new}", err=True)


def hidden(*decls: str) -> Any:
    """A hidden option for an old spelling; its value is None when it is not given."""
    return typer.Option(None, *decls, hidden=True)


def renamed(value: T, old_value: T | None, new: str, old: str, default: Any = None) -> T:
    """The value of option ``new``, which may also come under its old spelling ``old``.

    ``default``: ``new``'s default (given together with ``old``, any other value is ambiguous).
    """
    if old_value is None:
        return value
    note(old, new)
    if value != default:
        raise ImfaceError(None, f"{old} is the old spelling of {new}: give {new} only")
    return old_value


def renamed_flag(value: bool, old_value: bool | None, new: str, old: str, default: bool) -> bool:
    """:func:`renamed` for an on/off switch: ``new`` and ``old`` are the "on" names (``--preview``)."""
    if old_value is None:
        return value
    return renamed(value, old_value, _switch(new, old_value), _switch(old, old_value), default)


def _switch(name: str, on: bool) -> str:
    return name if on else "--no-" + name[2:]
