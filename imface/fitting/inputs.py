"""Turn what a user hands to ``imface fit`` into fitting targets (model units).

Accepted inputs (a path, or a list of paths):

- a processed dataset (``manifest.json``; by default its test split) or one processed scan
  folder (``meta.json`` + ``surface_points.npy``): surface samples with normals, space
  samples with SDF and gradient, five landmarks;
- raw scans with landmarks (a dataset folder or scan list that ``imface preprocess``
  understands): preprocessed on the fly into ``<work_dir>/_preprocessed`` first;
- raw meshes without landmarks (.obj/.ply/.off/.stl, roughly frontal: within about 40 degrees):
  surface samples with normals; with ``unit="auto"`` a similarity search
  (:mod:`imface.ops.similarity_search`) onto the model's mean face finds the scale (any unit
  or size), the rotation and the shift together, and points outside the crop sphere (hair,
  neck, shoulders) are dropped; with a given unit only the pose is searched;
- point sets (.npy / .xyz / .txt with 3 or 6 columns, or a .ply without faces), with or
  without normals: surface constraints only.

Frames: a target's points are in its *input frame*: the raw frame scaled to model units
(1 unit = 100 mm). ``FitTarget.raw_to_input`` is that scale as a 4x4 matrix; the pose
(``init_rotation``, ``init_translation``, refined by the fit when ``fit_pose``) maps the
input frame into model space.

Reading one scan is here; which scans the paths name, the shard and the inputs refused is
:mod:`imface.fitting.gather`; the check that refuses non-faces is :mod:`imface.fitting.face_check`,
and the scale and pose search with the crop is :mod:`imface.fitting.align`.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh

from imface.contracts.dataset import MESH_NAME
from imface.errors import ImfaceError
from imface.fitting.face_check import check_face_like
from imface.frame import MM_PER_INPUT_UNIT, MM_PER_UNIT
from imface.io.arrays import read_npy, read_text_table
from imface.io.mesh import MESH_SUFFIXES, clean_mesh, read_mesh
from imface.ops.sdf_sampling import sample_surface

POINT_SUFFIXES = (".npy", ".xyz", ".txt")
FACE_SIZE_MM = (50.0, 500.0)  # plausible bounding-box diagonal of a face scan or part of one
MAX_POINTS_PER_SCAN = 200_000  # larger inputs are subsampled (fixed seed) to bound memory
MESH_SURFACE_SAMPLES = 100_000
_STEM = re.compile(r"^(\d+)_([A-Za-z0-9_\-]+)$")


@dataclass
class FitTarget:
    """One scan to fit. Arrays are float32 in the input frame (model units).

    surface_points (Ns, 3) and surface_normals (Ns, 3) or None; space_points (Nq, 3),
    space_sdf (Nq,), space_grad (Nq, 3) or all None (surface-only inputs); landmarks (5, 3)
    or None; reference mesh (vertices (V, 3), faces (F, 3)) in the input frame for metrics,
    or None; raw_to_input (4, 4); raw_meta: the processed scan's meta.json (its
    ``model_to_raw`` maps model units back to the raw scan) or None.
    """

    name: str
    identity: str
    expression: str
    neutral: bool
    source: Path
    kind: str  # processed | raw_landmarks | raw_mesh | points
    surface_points: np.ndarray
    surface_normals: np.ndarray | None = None
    space_points: np.ndarray | None = None
    space_sdf: np.ndarray | None = None
    space_grad: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    processed: Path | None = None
    raw_meta: dict | None = None
    reference: tuple[np.ndarray, np.ndarray] | None = None
    fit_pose: bool = False
    fit_scale: bool = False  # the search found the unit: the fit may refine the scale (FitSettings.scale_lr)
    unit: str = "model"  # model | mm | cm | m | arbitrary (a scale found by the search) | auto (not yet found)
    raw_to_input: np.ndarray = field(default_factory=lambda: np.eye(4))
    alignment: dict | None = None  # what the similarity search found (scale, residual, coverage, ...)
    init_rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    init_translation: np.ndarray = field(default_factory=lambda: np.zeros(3))


def subsample(rng: np.random.Generator, count: int, limit: int) -> np.ndarray | slice:
    """Sorted ids of ``limit`` of ``count`` items drawn without replacement, or all of them (a slice)."""
    return slice(None) if count <= limit else np.sort(rng.choice(count, limit, replace=False))


def _load_array(path: Path) -> np.ndarray:
    return read_npy(path, mmap=True)


def _check_points(points: np.ndarray, path: Path) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ImfaceError(path, f"expected points of shape (N, 3), got {points.shape}")
    if len(points) == 0:
        raise ImfaceError(path, "empty point set (no points)")
    bad = ~np.isfinite(points).all(axis=1)
    if bad.any():
        raise ImfaceError(path, f"{int(bad.sum())} of {len(points)} points have NaN/inf coordinates")
    return points


def _names(expression: str | None) -> tuple[str, bool | None]:
    if expression is None:
        return "unknown", None
    return expression, expression == "neutral"


def processed_target(folder: Path, name: str, identity: str, expression: str, neutral: bool,
                     rng: np.random.Generator, kind: str = "processed") -> FitTarget:
    """A target from a processed scan folder (see ``imface.preprocess.scan``)."""
    arrays = {}
    for stem in ("surface_points", "surface_normals", "space_points", "space_sdf", "space_grad"):
        path = folder / f"{stem}.npy"
        if not path.is_file():
            raise ImfaceError(path, "missing: not a processed scan folder")
        arrays[stem] = _load_array(path)
    pick_surface = subsample(rng, len(arrays["surface_points"]), MAX_POINTS_PER_SCAN)
    pick_space = subsample(rng, len(arrays["space_points"]), MAX_POINTS_PER_SCAN)
    surface = _check_points(arrays["surface_points"][pick_surface], folder / "surface_points.npy")
    space = _check_points(arrays["space_points"][pick_space], folder / "space_points.npy")
    landmarks = None
    try:
        five = json.loads((folder / "landmarks.json").read_text()).get("five")
        landmarks = None if five is None else np.asarray(five, dtype=np.float32).reshape(5, 3)
    except (OSError, ValueError, TypeError, AttributeError):
        landmarks = None
    meta = None
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        meta = None
    mesh = None
    if (folder / MESH_NAME).is_file():
        read = read_mesh(folder / MESH_NAME)
        mesh = (read.vertices, read.faces)
    return FitTarget(
        name=name, identity=identity, expression=expression, neutral=neutral, source=folder, kind=kind,
        surface_points=surface.astype(np.float32),
        surface_normals=np.asarray(arrays["surface_normals"][pick_surface], dtype=np.float32),
        space_points=space.astype(np.float32),
        space_sdf=np.asarray(arrays["space_sdf"][pick_space], dtype=np.float32).reshape(-1),
        space_grad=np.asarray(arrays["space_grad"][pick_space], dtype=np.float32),
        landmarks=landmarks, processed=folder.resolve(),
        raw_meta=meta if isinstance(meta, dict) and "model_to_raw" in meta else None, reference=mesh,
    )


def _read_point_file(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, 3) points and (N, 3) normals or None from .npy / .xyz / .txt (3 or 6 columns)."""
    if path.suffix.lower() == ".npy":
        table = np.asarray(_load_array(path))
    else:
        table = read_text_table(path, "point table")
    if table.size == 0:
        raise ImfaceError(path, "empty point set (no points)")
    if table.ndim != 2 or table.shape[1] not in (3, 6):
        raise ImfaceError(path, f"expected 3 (x y z) or 6 (x y z nx ny nz) columns, got shape {table.shape}")
    normals = table[:, 3:6] if table.shape[1] == 6 else None
    return _check_points(table[:, :3], path), normals


def _read_ply(path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Points, normals (or None) and faces (or None for a point cloud) of a .ply file."""
    try:
        loaded = trimesh.load(path, process=False)
        faces = getattr(loaded, "faces", None)
        has_faces = faces is not None and len(faces) > 0
        if not has_faces:
            vertices = np.asarray(getattr(loaded, "vertices", np.zeros((0, 3))), dtype=np.float64)
            data = loaded.metadata.get("_ply_raw", {}).get("vertex", {}).get("data")
            normals = None
            # binary PLY: a structured array; ASCII PLY: a dict of columns
            names = set(data) if isinstance(data, dict) else set(getattr(getattr(data, "dtype", None), "names", None) or ())
            if {"nx", "ny", "nz"} <= names:
                normals = np.stack([np.asarray(data[k], dtype=np.float64).reshape(-1) for k in ("nx", "ny", "nz")], axis=1)
    except Exception as err:  # noqa: BLE001 - trimesh raises many types for a corrupt file
        raise ImfaceError(path, f"cannot read ({type(err).__name__}: {err})") from None
    if has_faces:
        mesh = read_mesh(path)
        return mesh.vertices, None, mesh.faces
    points = _check_points(vertices, path)
    if normals is not None and normals.shape != points.shape:
        raise ImfaceError(path, f"{len(normals)} normals for {len(points)} points")
    return points, normals, None


def detect_unit(points: np.ndarray, unit: str, path: Path) -> str:
    """Check a given unit of a landmark-free input against its size; ``auto`` stays ``auto``
    (the similarity search finds the scale, see :func:`imface.fitting.align.prepare_poses`)."""
    if unit == "auto":
        return unit
    if unit not in MM_PER_INPUT_UNIT:
        raise ImfaceError(None, f"--unit must be auto, model, mm, cm or m, got {unit!r}")
    diagonal = float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))
    low, high = FACE_SIZE_MM
    size = diagonal * MM_PER_INPUT_UNIT[unit]
    if not low / 4 <= size <= high * 4:
        raise ImfaceError(path, f"spans {size:.4g} mm in unit {unit}: not a face; check --unit")
    return unit


def read_input_geometry(path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Points (N, 3), normals (N, 3) or None, and faces (F, 3) or None (a point set) of a mesh
    (.obj/.ply/.off/.stl) or point file (.npy/.xyz/.txt, 3 or 6 columns). Any unreadable or
    malformed file raises :class:`ImfaceError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise ImfaceError(path, "input file not found")
    suffix = path.suffix.lower()
    if suffix in POINT_SUFFIXES:
        points, normals = _read_point_file(path)
        return points, normals, None
    if suffix == ".ply":
        return _read_ply(path)
    if suffix in MESH_SUFFIXES:
        mesh = read_mesh(path)
        return mesh.vertices, None, mesh.faces
    raise ImfaceError(path, f"unsupported input {suffix!r} (processed folder, mesh .obj/.ply/.off/.stl, points .npy/.xyz/.txt)")


def file_target(path: Path, name: str, unit: str, pose: str, neutral: str) -> FitTarget:
    """A target from a raw mesh without landmarks or a point set (surface constraints only)."""
    points, normals, faces = read_input_geometry(path)
    unit = detect_unit(points, unit, path)
    scale = 1.0 if unit == "auto" else MM_PER_INPUT_UNIT[unit] / MM_PER_UNIT  # auto: set by prepare_poses
    rng = np.random.default_rng(0)
    reference = None
    if faces is not None:
        vertices, faces = clean_mesh(points, faces)
        if len(faces) == 0:
            raise ImfaceError(path, "empty mesh after removing degenerate faces")
        reference = (vertices * scale, faces)
        points, normals = sample_surface(vertices * scale, faces, MESH_SURFACE_SAMPLES, rng)
    else:
        points = points * scale
        pick = subsample(rng, len(points), MAX_POINTS_PER_SCAN)
        points = points[pick]
        if normals is not None:
            normals = np.asarray(normals, dtype=np.float64)[pick]
            length = np.linalg.norm(normals, axis=1, keepdims=True)
            if not np.isfinite(normals).all() or (length < 1e-8).any():
                raise ImfaceError(path, "normals contain NaN/inf or zero vectors")
            normals = normals / length
    check_face_like(points, path)
    parts = name.split("/")
    parsed = _STEM.match(parts[-1])
    expression, known = _names(parsed.group(2) if parsed else None)
    if known is None:
        if neutral not in ("auto", "yes", "no"):
            raise ImfaceError(None, f"--neutral must be auto, yes or no, got {neutral!r}")
        known = neutral == "yes"
        expression = "neutral" if known else expression
    if pose not in ("auto", "fit", "none"):
        raise ImfaceError(None, f"--pose must be auto, fit or none, got {pose!r}")
    if pose == "none" and unit == "auto":
        raise ImfaceError(None, "--pose none needs a given --unit (auto finds the scale together with the pose)")
    fit_pose = pose == "fit" or (pose == "auto" and unit != "model")
    raw_to_input = np.diag([scale, scale, scale, 1.0])
    return FitTarget(
        name=name, identity=parts[0] if len(parts) > 1 else parts[-1], expression=expression, neutral=known,
        source=path, kind="raw_mesh" if faces is not None else "points",
        surface_points=points.astype(np.float32),
        surface_normals=None if normals is None else np.asarray(normals, dtype=np.float32),
        reference=reference, fit_pose=fit_pose, unit=unit, raw_to_input=raw_to_input,
    )
