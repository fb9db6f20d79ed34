"""The face-source plug-in of the built-in generator, and the download cache it shares.

A face source is the linear model under the generator: a mean shape on a fixed mesh, a way
to draw a person's rest shape, and the linear part of each of FaceScape's 20 expressions.
Everything non-linear (jaw hinge, eyelids, lips, cheek inflation, folds, wrinkles, muscle
relief) lives in :mod:`imface.builtin.generator` and works on any source whose mesh is in
millimetres in the shared frame (x to the subject's left, y up, z toward the viewer) and
carries the 68 iBUG landmarks. Two sources exist: :mod:`imface.builtin.bfm` (Basel Face
Model 2009) and :mod:`imface.builtin.ict` (ICT-FaceKit); :mod:`imface.builtin.registry`
names them.
"""
from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Callable, Protocol, TypeVar

import numpy as np

from imface.io.atomic import atomic_path

T = TypeVar("T")


def cache_dir() -> Path:
    """The download cache: ``$IMFACE_CACHE`` or ``~/.cache/imface``."""
    value = os.environ.get("IMFACE_CACHE")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "imface"


def cached_arrays(path: Path, cls: type[T], build: Callable[[], T]) -> T:
    """The arrays dataclass ``cls`` from the ``.npz`` cache ``path`` (no pickles), or ``build()`` written
    there atomically when the cache is missing or damaged. Fields annotated ``int`` come back as ints."""
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                values = {f.name: int(data[f.name]) if f.type in (int, "int") else data[f.name] for f in fields(cls)}
            return cls(**values)
        except (OSError, KeyError, ValueError):
            pass  # a damaged cache is rebuilt below
    value = build()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{f.name: np.asarray(getattr(value, f.name)) for f in fields(cls)})
    return value


class FaceSource(Protocol):
    """What the generator needs of a linear face model. All lengths in mm, shared frame.

    ``V`` vertices, ``F`` triangles; ``rng`` / ``style`` are numpy Generators the generator
    keys by (seed, identity) and (seed, identity, expression), so a source's draws are
    deterministic.
    """

    name: str  #: registry name ("bfm", "ict")
    faces: np.ndarray  #: (F, 3) int64
    landmark_ids: np.ndarray  #: (68,) int64, iBUG order
    nose_tip_id: int
    mean_mm: np.ndarray  #: (V, 3) float32, the mean (or generic neutral) face
    #: share of each recipe's jaw rotation and shift that the generator's hinge adds on top of the
    #: source's own linear jaw shapes (1 where the linear model has no jaw articulation of its own)
    jaw_articulation: float
    #: share of each recipe's cheek inflation the generator adds (the rest is the source's own shapes)
    cheek_inflation: float

    @property
    def num_vertices(self) -> int: ...

    def identity_shape(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(coefficients (K,), rest shape (V, 3) float64 mm) of a new person."""
        ...

    def expression_motion(self, expression: str, level: float,
                          style: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        """The linear part of ``expression`` at intensity ``level`` in [0, 1]: (soft, bone), each (V, 3)
        float32 mm. ``soft`` is the soft tissue's motion (the generator scales it by the person's
        compliance and raises muscle relief with it); ``bone`` (or None) is what the jaw bone carries."""
        ...

    def provenance(self) -> dict[str, str]:
        """What identifies the source data (archive hashes), for the dataset marker."""
        ...
