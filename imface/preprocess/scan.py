"""Preprocessing of one raw scan (paper Sec. 3.5): align, centre, crop, remove hidden
surface, pseudo-watertight Delaunay mesh, SDF samples.

Frames: the *raw* frame is the scan file's (any unit); the *model* frame is the
canonical landmark frame (``imface.frame``) scaled to model units
(1 unit = 100 mm): ``p_model = (unit_scale_to_mm / 100) * R p_raw + t / 100`` with
``t`` in mm. ``meta.json`` stores that map as the 4x4 ``raw_to_model`` and its inverse
``model_to_raw``; :func:`transform_to_raw` applies the inverse.

Outputs of a scan folder (all coordinates float32 model units, written atomically,
``meta.json`` last so its presence means the folder is complete):
``mesh.ply`` (pseudo-watertight mesh), ``registered.ply`` (when the source has one,
same vertex order), ``surface_points.npy`` / ``surface_normals.npy`` (Ns, 3, normals
with n_z >= 0), ``space_points.npy`` (Nq, 3) / ``space_sdf.npy`` (Nq,) /
``space_grad.npy`` (Nq, 3) uniform in the unit sphere, optional ``near_points.npy`` /
``near_sdf.npy`` / ``near_grad.npy`` (Nn, ...) for near-surface samples (kept apart
from the uniform space samples so a loader can weight them separately),
``landmarks.json`` and ``meta.json``.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imface.frame import (
    CANONICAL_LANDMARKS_MM, CROP_RADIUS_MM, FIVE_LANDMARK_IDS, MM_PER_UNIT, NOSE_TIP_POSITION_MM,
)
from imface.preprocess.layouts import ScanSource
from imface.errors import ImfaceError
from imface.io.atomic import save_npy, write_json
from imface.io.landmarks import (
    Landmarks, landmarks_from_indices, read_landmark_indices, read_landmarks, validate_landmarks,
)
from imface.io.hashing import sha256_file
from imface.io.mesh import clean_mesh, read_mesh, write_ply

FORMAT_VERSION = 1
UNIT_TO_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0}
#: The paper's unseen expressions (Sec. 4): held out of training by default.
DEFAULT_TEST_EXPRESSIONS = ("jaw_left", "jaw_right", "mouth_left", "mouth_right", "eye_closed")
STAGES = ("read", "align", "crop", "hidden_surface", "delaunay", "samples", "write")
META_NAME = "meta.json"


@dataclass
class PreprocessConfig:
    """Every option of ``imface preprocess``; defaults follow the paper."""

    layout: str | None = None  # builtin | facescape | list; None: detect
    landmark_indices: Path | None = None  # vertex-id file for fixed-topology meshes (FaceScape)
    unit: str | None = None  # mm | cm | m; None: detect from the outer-eye-corner distance
    align: str = "landmarks"  # landmarks (Kabsch onto the canonical frame) | none (only centring)
    eye_distance_range_mm: tuple[float, float] = (70.0, 120.0)  # plausible outer-eye-corner distance
    max_landmark_distance_mm: float = 5.0  # landmarks farther from the surface are refused
    max_alignment_rms_mm: float = 30.0  # larger Kabsch residual: landmarks are not in iBUG order
    hidden_surface_eps_mm: float = 0.01  # ray start offset along +z
    min_faces_in_crop: int = 100  # fewer faces inside the crop sphere: no face there
    surface_samples: int = 250_000
    space_samples: int = 15_000
    # A band around the surface that the training loader reads (data.near_points_per_scan).
    near_surface_samples: int = 50_000
    near_surface_sigma: float = 0.02  # model units (0.02 = 2 mm), isotropic Gaussian
    seed: int = 0
    test_identities: int | list[str] | None = None  # count or names; None: ~10%, >= 1 when >= 2 identities
    test_expressions: tuple[str, ...] = DEFAULT_TEST_EXPRESSIONS
    workers: int = 1
    shard: tuple[int, int] | None = None  # (i, n): the i-th of n parts (0-based) of the sorted scans
    preview: bool = False
    force: bool = False  # reprocess even complete scans

    def __post_init__(self) -> None:
        if self.unit is not None and self.unit not in UNIT_TO_MM:
            raise ImfaceError(None, f"unit must be one of mm, cm, m (got {self.unit!r})")
        if self.align not in ("landmarks", "none"):
            raise ImfaceError(None, f"align must be 'landmarks' or 'none' (got {self.align!r})")
        if min(self.surface_samples, self.space_samples, self.near_surface_samples) < 0:
            raise ImfaceError(None, "sample counts must be >= 0")
        if self.surface_samples == 0 or self.space_samples == 0:
            raise ImfaceError(None, "surface and space sample counts must be positive")
        if self.shard is not None and not 0 <= self.shard[0] < self.shard[1]:
            raise ImfaceError(None, f"shard {self.shard[0]}/{self.shard[1]}: need 0 <= i < n")
        if self.workers < 1:
            raise ImfaceError(None, "workers must be >= 1")

    def output_settings(self) -> dict:
        """The settings that change a scan's outputs (a changed value reprocesses the scan)."""
        keys = (
            "unit", "align", "eye_distance_range_mm", "max_landmark_distance_mm", "max_alignment_rms_mm",
            "hidden_surface_eps_mm", "min_faces_in_crop", "surface_samples", "space_samples",
            "near_surface_samples", "near_surface_sigma", "seed",
        )
        settings = {key: getattr(self, key) for key in keys}
        settings["eye_distance_range_mm"] = list(self.eye_distance_range_mm)
        settings["format_version"] = FORMAT_VERSION
        return settings


@dataclass
class ScanResult:
    """Outcome of one scan: status is ``done``, ``skipped`` (already complete) or ``failed``."""

    name: str
    status: str
    output_dir: Path | None = None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def source_hashes(scan: ScanSource) -> dict[str, str | None]:
    """SHA-256 of every input file of a scan (None for inputs it lacks)."""
    files = {
        "mesh": scan.mesh_path, "landmarks": scan.landmarks_path,
        "landmark_indices": scan.landmark_indices_path, "registered": scan.registered_path,
    }
    hashes = {}
    for key, path in files.items():
        hashes[key] = None if path is None or not Path(path).is_file() else sha256_file(path)
    return hashes


def scan_seed(name: str, seed: int) -> int:
    """A per-scan seed from the global seed and the scan name (independent of order and sharding)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{name}".encode()).digest()[:8], "little")


def scan_output_dir(out_dir: str | os.PathLike, scan: ScanSource) -> Path:
    return Path(out_dir) / scan.identity / scan.stem


def detect_unit_scale(
    five_raw: np.ndarray, unit: str | None, eye_range_mm: tuple[float, float], path: str | os.PathLike
) -> tuple[str, float]:
    """Unit name and its factor to mm, from the outer-eye-corner distance (rows 0, 1 of ``five_raw``).

    With ``unit`` None, tries mm, cm and m and takes the one whose distance lands in
    ``eye_range_mm``; with a given unit, checks that it does.
    """
    distance = float(np.linalg.norm(five_raw[0] - five_raw[1]))
    low, high = eye_range_mm
    if unit is not None:
        in_mm = distance * UNIT_TO_MM[unit]
        if not low <= in_mm <= high:
            raise ImfaceError(
                path, f"outer-eye-corner distance is {in_mm:.4g} mm with unit {unit}, outside the plausible "
                f"{low:g}-{high:g} mm; check the unit or the landmarks",
            )
        return unit, UNIT_TO_MM[unit]
    for name, factor in UNIT_TO_MM.items():
        if low <= distance * factor <= high:
            return name, factor
    raise ImfaceError(
        path, f"outer-eye-corner distance is {distance:.4g} units: not a face in mm, cm or m; pass --unit",
    )


def _surface_distance(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(N,) unsigned distance from points (N, 3) to the triangle mesh (libigl AABB)."""
    import igl

    squared, _, _ = igl.point_mesh_squared_distance(
        np.ascontiguousarray(points, dtype=np.float64), np.ascontiguousarray(vertices, dtype=np.float64),
        np.ascontiguousarray(faces, dtype=np.int64),
    )
    return np.sqrt(squared)


def raw_to_model_matrix(rotation: np.ndarray, translation_mm: np.ndarray, unit_scale_to_mm: float) -> np.ndarray:
    """4x4 of ``p_model = (u / 100) R p_raw + t / 100`` (column vectors)."""
    matrix = np.eye(4)
    matrix[:3, :3] = rotation * (unit_scale_to_mm / MM_PER_UNIT)
    matrix[:3, 3] = np.asarray(translation_mm) / MM_PER_UNIT
    return matrix


def model_to_raw_matrix(rotation: np.ndarray, translation_mm: np.ndarray, unit_scale_to_mm: float) -> np.ndarray:
    """Exact inverse of :func:`raw_to_model_matrix`: ``p_raw = R^T (100 p_model - t) / u``."""
    matrix = np.eye(4)
    matrix[:3, :3] = rotation.T * (MM_PER_UNIT / unit_scale_to_mm)
    matrix[:3, 3] = -(rotation.T @ np.asarray(translation_mm)) / unit_scale_to_mm
    return matrix


def apply_matrix(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(N, 3) points through a 4x4 affine matrix -> (N, 3) float64."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def transform_to_raw(points_model_units: np.ndarray, meta: dict | str | os.PathLike) -> np.ndarray:
    """Map (N, 3) model-unit points of a processed scan back to its raw scan frame and unit.

    meta: the scan's ``meta.json`` (dict, file, or scan folder).
    """
    if not isinstance(meta, dict):
        meta_path = Path(meta)
        meta_path = meta_path / META_NAME if meta_path.is_dir() else meta_path
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    return apply_matrix(points_model_units, np.asarray(meta["model_to_raw"], dtype=np.float64))


def _read_scan_inputs(scan: ScanSource) -> tuple[np.ndarray, np.ndarray, Landmarks, Path]:
    """Raw (cleaned) vertices, faces, landmarks (raw frame), and the file the landmarks came from."""
    mesh = read_mesh(scan.mesh_path)
    if scan.landmarks_path is not None:
        landmarks, lmk_path = read_landmarks(scan.landmarks_path), Path(scan.landmarks_path)
    elif scan.landmark_indices_path is not None:
        indices = read_landmark_indices(scan.landmark_indices_path)
        # Indices address the file's vertex order, so pick them before cleaning renumbers vertices.
        points = landmarks_from_indices(indices, mesh.vertices, scan.mesh_path)
        landmarks, lmk_path = validate_landmarks(points, scan.landmark_indices_path), Path(scan.landmark_indices_path)
    else:
        raise ImfaceError(scan.mesh_path, "no landmarks given (needs a landmark file or --landmark-indices)")
    vertices, faces = clean_mesh(mesh.vertices, mesh.faces)
    if len(faces) == 0:
        raise ImfaceError(scan.mesh_path, "empty mesh after removing degenerate faces")
    return vertices, faces, landmarks, lmk_path


def _align(landmarks_mm: Landmarks, config: PreprocessConfig, lmk_path: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """Rotation R (3,3) and translation t (3,) mm into the canonical frame, and the Kabsch RMS (mm)."""
    from imface.ops.rigid import DegenerateConfigurationError, ReflectionError, kabsch

    source = landmarks_mm.points
    target = CANONICAL_LANDMARKS_MM if len(source) == 68 else CANONICAL_LANDMARKS_MM[list(FIVE_LANDMARK_IDS)]
    if config.align == "none":
        rotation, translation = np.eye(3), np.zeros(3)
    else:
        try:
            rotation, translation = kabsch(source, target)
        except ReflectionError:
            raise ImfaceError(
                lmk_path, "landmark configuration is mirrored: left/right swapped, or not in iBUG order"
            ) from None
        except DegenerateConfigurationError as err:
            raise ImfaceError(lmk_path, f"degenerate landmark configuration ({err})") from None
    nose = landmarks_mm.five[2] @ rotation.T + translation
    translation = translation + (np.asarray(NOSE_TIP_POSITION_MM) - nose)  # nose tip exactly at (0, 0, 40) mm
    residual = source @ rotation.T + translation - target
    rms = float(np.sqrt(np.mean(np.sum(residual**2, axis=1))))
    if config.align != "none" and rms > config.max_alignment_rms_mm:
        raise ImfaceError(
            lmk_path, f"landmarks fit the iBUG layout with {rms:.1f} mm RMS error (limit "
            f"{config.max_alignment_rms_mm:g} mm): wrong order or not iBUG landmarks?",
        )
    return rotation, translation, rms


def _write_preview(out: Path, scan: ScanSource, raw, processed) -> None:
    from imface.preprocess.preview import write_preview  # lazy: matplotlib/moderngl only when asked

    write_preview(out / "preview.png", *raw, *processed, title=scan.name)


def preprocess_scan(scan: ScanSource, out_dir: str | os.PathLike, config: PreprocessConfig) -> ScanResult:
    """Preprocess one scan into ``out_dir/<identity>/<stem>/``; raises :class:`ImfaceError` on bad input.

    Returns a ``done`` :class:`ScanResult` with per-stage seconds in ``timings``.
    """
    from imface.ops.crop import crop_to_sphere
    from imface.ops.heightfield import delaunay_heightfield
    from imface.ops.sdf_sampling import sample_in_sphere, sample_near_surface, sample_surface, signed_distance
    from imface.ops.visibility import remove_hidden_surface

    timings: dict[str, float] = {}
    clock = time.perf_counter()
    start = clock

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = timings.get(stage, 0.0) + now - clock
        clock = now

    hashes = source_hashes(scan)
    raw_vertices, faces, landmarks_raw, lmk_path = _read_scan_inputs(scan)
    lap("read")

    unit, unit_scale = detect_unit_scale(landmarks_raw.five, config.unit, config.eye_distance_range_mm, scan.mesh_path)
    landmarks_mm = landmarks_raw.transformed(lambda p: p * unit_scale)
    vertices_mm = raw_vertices * unit_scale
    rotation, translation, rms = _align(landmarks_mm, config, lmk_path)
    distance = _surface_distance(landmarks_mm.points, vertices_mm, faces)
    worst = int(np.argmax(distance))
    if distance[worst] > config.max_landmark_distance_mm:
        label = (list(range(68)) if landmarks_mm.ibug68 is not None else list(FIVE_LANDMARK_IDS))[worst]
        raise ImfaceError(
            lmk_path, f"landmarks off the surface ({int((distance > config.max_landmark_distance_mm).sum())} of "
            f"{len(distance)}): iBUG {label} is {distance[worst]:.1f} mm from the mesh "
            f"(limit {config.max_landmark_distance_mm:g} mm)",
        )
    to_model_mm = lambda p: p @ rotation.T + translation  # noqa: E731
    vertices_canon = to_model_mm(vertices_mm)
    lap("align")

    crop_vertices, crop_faces = crop_to_sphere(vertices_canon, faces, np.zeros(3), CROP_RADIUS_MM)
    if len(crop_faces) < config.min_faces_in_crop:
        raise ImfaceError(
            scan.mesh_path, f"no face region inside the {CROP_RADIUS_MM:g} mm crop sphere "
            f"({len(crop_faces)} triangles there; check the landmarks and units)",
        )
    lap("crop")
    visible_vertices, visible_faces, _ = remove_hidden_surface(
        crop_vertices, crop_faces, eps=config.hidden_surface_eps_mm
    )
    if len(visible_faces) == 0:
        raise ImfaceError(scan.mesh_path, "no surface is visible from the front (+z) after alignment")
    lap("hidden_surface")
    mesh_faces = delaunay_heightfield(visible_vertices)
    mesh_vertices = visible_vertices / MM_PER_UNIT
    lap("delaunay")

    rng = np.random.default_rng(scan_seed(scan.name, config.seed))
    surface_points, surface_normals = sample_surface(mesh_vertices, mesh_faces, config.surface_samples, rng)
    space_points = sample_in_sphere(config.space_samples, rng, radius=1.0)
    space_sdf, space_grad, _ = signed_distance(space_points, mesh_vertices, mesh_faces)
    arrays = {
        "surface_points": surface_points, "surface_normals": surface_normals,
        "space_points": space_points, "space_sdf": space_sdf, "space_grad": space_grad,
    }
    if config.near_surface_samples:
        near = sample_near_surface(surface_points, surface_normals, config.near_surface_samples,
                                   config.near_surface_sigma, rng)
        near_sdf, near_grad, _ = signed_distance(near, mesh_vertices, mesh_faces)
        arrays.update(near_points=near, near_sdf=near_sdf, near_grad=near_grad)
    lap("samples")

    out = scan_output_dir(out_dir, scan)
    out.mkdir(parents=True, exist_ok=True)
    (out / META_NAME).unlink(missing_ok=True)  # the folder is incomplete until meta.json is rewritten
    raw_to_model = raw_to_model_matrix(rotation, translation, unit_scale)
    write_ply(out / "mesh.ply", mesh_vertices, mesh_faces)
    registered_count = None
    if scan.registered_path is not None:
        registered = read_mesh(scan.registered_path)
        write_ply(out / "registered.ply", apply_matrix(registered.vertices, raw_to_model), registered.faces)
        registered_count = len(registered.vertices)
    for key, array in arrays.items():
        save_npy(out / f"{key}.npy", array.astype(np.float32))
    landmarks_model = landmarks_raw.transformed(lambda p: apply_matrix(p, raw_to_model))
    write_json(out / "landmarks.json", {
        "ibug68": None if landmarks_model.ibug68 is None else landmarks_model.ibug68.round(7).tolist(),
        "five": landmarks_model.five.round(7).tolist(),
    })
    if config.preview:
        _write_preview(
            out, scan, (raw_vertices, faces, landmarks_raw.points),
            (mesh_vertices, mesh_faces, landmarks_model.points),
        )
    written = {"registered.ply": scan.registered_path is not None, "preview.png": config.preview,
               **{f"{key}.npy": key in arrays for key in ("near_points", "near_sdf", "near_grad")}}
    for name, kept in written.items():  # outputs of an earlier run with other inputs/settings
        if not kept:
            (out / name).unlink(missing_ok=True)
    lap("write")
    meta = {
        "format_version": FORMAT_VERSION,
        "scan": scan.name, "identity": scan.identity, "expression": scan.expression, "neutral": scan.neutral,
        "source": {
            "mesh": str(scan.mesh_path), "landmarks": None if scan.landmarks_path is None else str(scan.landmarks_path),
            "landmark_indices": None if scan.landmark_indices_path is None else str(scan.landmark_indices_path),
            "registered": None if scan.registered_path is None else str(scan.registered_path),
            "sha256": hashes,
        },
        "unit": unit, "unit_scale_to_mm": unit_scale, "mm_per_model_unit": MM_PER_UNIT,
        "raw_to_model": raw_to_model.tolist(),
        "model_to_raw": model_to_raw_matrix(rotation, translation, unit_scale).tolist(),
        "alignment_rms_mm": rms,
        "landmark_surface_distance_mm": float(distance.max()),
        "counts": {
            "raw_vertices": int(len(raw_vertices)), "raw_faces": int(len(faces)),
            "mesh_vertices": int(len(mesh_vertices)), "mesh_faces": int(len(mesh_faces)),
            "registered_vertices": registered_count, "landmarks": int(len(landmarks_raw.points)),
            **{key: int(len(array)) for key, array in arrays.items() if key.endswith("points")},
        },
        "settings": config.output_settings(),
        "timings_s": {key: round(value, 4) for key, value in timings.items()},
    }
    write_json(out / META_NAME, meta)
    timings["write"] += time.perf_counter() - clock
    return ScanResult(scan.name, "done", out, None, timings, time.perf_counter() - start)
