"""Reading numeric arrays from user files without ever raising anything but ImfaceError."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from imface.errors import ImfaceError


def read_npy(path: str | os.PathLike, what: str = "array", *, mmap: bool = False) -> np.ndarray:
    """A numeric ``.npy`` array (never unpickled). Any unreadable, truncated or non-numeric file
    gives :class:`ImfaceError` naming it: ``np.load`` itself raises EOFError, tokenize or
    syntax errors, ValueError or OSError depending on which byte is broken."""
    path = Path(path)
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - np.load's error types depend on the corruption
        raise ImfaceError(path, f"cannot read {what} ({type(err).__name__}: {err})") from None
    if not isinstance(array, np.ndarray) or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ImfaceError(path, f"{what} is not a numeric array (dtype {getattr(array, 'dtype', type(array))})")
    return array


def read_text_table(path: str | os.PathLike, what: str = "table") -> np.ndarray:
    """(rows, columns) float64 of a whitespace/comma separated text file, '#' comments allowed;
    (0, 3) when it holds no rows. ImfaceError for unreadable bytes or ragged rows."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as err:
        raise ImfaceError(path, f"cannot read {what} ({type(err).__name__}: {err})") from None
    rows = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            rows.append(line.replace(",", " ").split())
    try:
        return np.array(rows, dtype=np.float64) if rows else np.zeros((0, 3))
    except ValueError:
        raise ImfaceError(path, f"{what} is not a table of numbers with the same count on every line") from None
