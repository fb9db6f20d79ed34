"""The built-in face sources by name: ``imface data <name>``."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from imface.builtin.bfm import load_bfm_source
from imface.builtin.ict import load_ict_source
from imface.builtin.source import FaceSource
from imface.errors import ImfaceError

#: name -> loader(cache, source) of a :class:`FaceSource`; a third source is one module and one line here
SOURCES: dict[str, Callable[[Path | None, Path | None], FaceSource]] = {
    "bfm": load_bfm_source,
    "ict": load_ict_source,
}


def load_source(name: str, cache: Path | None = None, source: Path | None = None) -> FaceSource:
    """The face source ``name`` (downloaded and cached on first use unless ``source`` gives a local copy)."""
    if name not in SOURCES:
        raise ImfaceError(name, f"unknown face source; expected one of {', '.join(SOURCES)}")
    return SOURCES[name](cache, source)
