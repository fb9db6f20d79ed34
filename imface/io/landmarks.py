"""Reading 3-D facial landmarks in the common file formats.

Supported: ``.npy`` and ``.txt``/``.csv`` (N x 3 numbers), 3-D iBUG ``.pts``
(``version: 1``, ``n_points: 68``, ``{ x y z ... }``), MeshLab picked points ``.pp``
(XML ``<point x= y= z= name=...>``), and vertex-index files (``.npy`` / ``.txt``,
0-based vertex ids into a fixed-topology mesh).

Accepted counts are 68 (iBUG, 0-based order) or 5 (iBUG ids 36, 45, 30, 48, 54 in
that order: outer eye corners, nose tip, mouth corners).
"""
from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imface.frame import FIVE_LANDMARK_IDS
from imface.errors import ImfaceError
from imface.io.arrays import read_npy, read_text_table

LANDMARK_COUNTS = (68, 5)


@dataclass(frozen=True)
class Landmarks:
    """Validated landmarks of one scan, in the units of their source.

    ibug68: (68, 3) float64 or None when only five were given;
    five: (5, 3) float64, iBUG ids (36, 45, 30, 48, 54) in that order.
    """

    ibug68: np.ndarray | None
    five: np.ndarray

    @property
    def points(self) -> np.ndarray:
        """All given landmarks: (68, 3) or (5, 3)."""
        return self.five if self.ibug68 is None else self.ibug68

    def transformed(self, fn) -> "Landmarks":
        """Apply ``fn: (N, 3) -> (N, 3)`` to every landmark."""
        return Landmarks(None if self.ibug68 is None else fn(self.ibug68), fn(self.five))


def _read_numeric_table(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        return np.asarray(read_npy(path, "landmark file"), dtype=np.float64)
    return read_text_table(path, "landmark file")


def _read_pts(path: Path) -> np.ndarray:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise ImfaceError(path, f"cannot read landmark file ({err})") from None
    match = re.search(r"n_points\s*:\s*(\d+)", text)
    body = re.search(r"\{(.*?)\}", text, flags=re.S)
    if match is None or body is None:
        raise ImfaceError(path, "not an iBUG .pts file (needs 'n_points:' and a '{ ... }' block)")
    try:
        values = np.array(body.group(1).split(), dtype=np.float64)
    except ValueError:
        raise ImfaceError(path, "non-numeric value inside the '{ ... }' block") from None
    count = int(match.group(1))
    if count == 0 or values.size % count:
        raise ImfaceError(path, f"n_points is {count} but the block holds {values.size} numbers")
    return values.reshape(count, -1)


def _read_pp(path: Path) -> np.ndarray:
    try:
        root = ET.parse(path).getroot()
    except Exception as err:  # noqa: BLE001 - expat raises ParseError, ValueError, LookupError, ...
        raise ImfaceError(path, f"not a MeshLab .pp XML file ({type(err).__name__}: {err})") from None
    points = [p for p in root.iter("point") if p.get("active", "1") != "0"]
    try:
        coords = np.array([[float(p.get(axis)) for axis in "xyz"] for p in points], dtype=np.float64)
    except (TypeError, ValueError):
        raise ImfaceError(path, "a <point> lacks a numeric x, y or z attribute") from None
    names = [p.get("name", "") for p in points]
    if names and all(re.fullmatch(r"\d+", n.strip() or "x") for n in names):
        coords = coords[np.argsort([int(n) for n in names], kind="stable")]
    return coords.reshape(-1, 3)


def read_landmark_points(path: str | os.PathLike) -> np.ndarray:
    """Read landmark coordinates (N, 3) float64 from .npy/.txt/.csv/.pts/.pp; no validation of N."""
    lmk_path = Path(path)
    if not lmk_path.is_file():
        raise ImfaceError(lmk_path, "landmark file not found")
    suffix = lmk_path.suffix.lower()
    if suffix == ".pts":
        return _read_pts(lmk_path)
    if suffix == ".pp":
        return _read_pp(lmk_path)
    return _read_numeric_table(lmk_path)


def read_landmark_indices(path: str | os.PathLike) -> np.ndarray:
    """Read 0-based vertex ids of the landmarks (.npy or .txt): (N,) int64, N in (68, 5)."""
    idx_path = Path(path)
    if not idx_path.is_file():
        raise ImfaceError(idx_path, "landmark index file not found")
    values = np.asarray(_read_numeric_table(idx_path)).reshape(-1)
    if values.size not in LANDMARK_COUNTS:
        raise ImfaceError(idx_path, f"expected 68 or 5 vertex indices, found {values.size}")
    if (not np.all(np.isfinite(values)) or np.any(values != np.round(values)) or np.any(values < 0)
            or np.any(values >= 2**63)):  # past int64 the cast below would wrap around
        raise ImfaceError(idx_path, "vertex indices must be non-negative integers")
    return values.astype(np.int64)


def landmarks_from_indices(indices: np.ndarray, vertices: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """Pick landmark positions from a fixed-topology mesh: vertices[indices] -> (N, 3).

    ``path`` names the mesh in the error raised for an id past the vertex count.
    """
    if indices.max() >= len(vertices):
        raise ImfaceError(
            path, f"landmark vertex id {int(indices.max())} is out of range: the mesh has {len(vertices)} vertices"
        )
    return np.asarray(vertices, dtype=np.float64)[indices]


def validate_landmarks(points: np.ndarray, path: str | os.PathLike) -> Landmarks:
    """Check count, shape and finiteness; split into the 68 and the 5 model landmarks."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ImfaceError(path, f"landmarks must be an N x 3 table, got shape {tuple(points.shape)}")
    if points.shape[0] not in LANDMARK_COUNTS:
        raise ImfaceError(path, f"expected 68 (iBUG) or 5 landmarks, found {points.shape[0]}")
    if not np.isfinite(points).all():
        raise ImfaceError(path, "landmarks contain NaN/inf values")
    if points.shape[0] == 68:
        return Landmarks(ibug68=points, five=points[list(FIVE_LANDMARK_IDS)])
    return Landmarks(ibug68=None, five=points)


def read_landmarks(path: str | os.PathLike) -> Landmarks:
    """Read and validate a landmark file (any supported coordinate format)."""
    return validate_landmarks(read_landmark_points(path), path)
