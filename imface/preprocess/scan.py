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

from imface.frame import CROP_RADIUS_MM, LENGTH_UNITS, MM_PER_UNIT
from imface.preprocess.align import (
    align_landmarks, apply_matrix, detect_unit_scale, landmark_surface_distance, model_to_raw_matrix, raw_to_model_matrix,
)
from imface.preprocess.landmark_check import check_scan_landmarks
from imface.preprocess.layouts import ScanSource
from imface.errors import ImfaceError
from imface.io.atomic import save_npy, write_json
from imface.io.landmarks import (
    Landmarks, landmarks_from_indices, read_landmark_indices, read_landmarks, validate_landmarks,
)
from imface.io.hashing import sha256_file
from imface.io.mesh import clean_mesh, read_mesh, write_mesh
from imface.ops.crop import crop_to_sphere
from imface.ops.heightfield import delaunay_heightfield
from imface.ops.sdf_sampling import sample_in_sphere, sample_near_surface, sample_surface, signed_distance
from imface.ops.visibility import remove_hidden_surface
from imface.contracts.dataset import MESH_NAME

FORMAT_VERSION = 1
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
        if self.unit is not None and self.unit not in LENGTH_UNITS:
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


def _write_preview(out: Path, scan: ScanSource, raw, processed) -> None:
    from imface.preprocess.preview import write_preview  # lazy: matplotlib/moderngl only when asked

    write_preview(out / "preview.png", *raw, *processed, title=scan.name)


class _StageClock:
    """Seconds per pipeline stage: :meth:`lap` books the time since the previous lap to a stage."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.start = self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self._last
        self._last = now


def preprocess_scan(scan: ScanSource, out_dir: str | os.PathLike, config: PreprocessConfig) -> ScanResult:
    """Preprocess one scan into ``out_dir/<identity>/<stem>/``; raises :class:`ImfaceError` on bad input.

    Returns a ``done`` :class:`ScanResult` with per-stage seconds in ``timings``.
    """
    clock = _StageClock()
    hashes = source_hashes(scan)
    raw_vertices, faces, landmarks_raw, lmk_path = _read_scan_inputs(scan)
    clock.lap("read")

    unit, unit_scale = detect_unit_scale(landmarks_raw.five, config.unit, config.eye_distance_range_mm, scan.mesh_path)
    landmarks_mm = landmarks_raw.transformed(lambda p: p * unit_scale)
    vertices_mm = raw_vertices * unit_scale
    rotation, translation, rms = align_landmarks(landmarks_mm, lmk_path, align=config.align,
                                                 max_rms_mm=config.max_alignment_rms_mm)
    check_scan_landmarks(scan, landmarks_mm.points)
    distance = landmark_surface_distance(landmarks_mm, vertices_mm, faces, lmk_path, config.max_landmark_distance_mm)
    vertices_canon = vertices_mm @ rotation.T + translation
    clock.lap("align")

    mesh_vertices, mesh_faces = _face_mesh(vertices_canon, faces, config, scan.mesh_path, clock)
    arrays = _sdf_samples(mesh_vertices, mesh_faces, config, scan_seed(scan.name, config.seed))
    clock.lap("samples")

    out = scan_output_dir(out_dir, scan)
    raw_to_model = raw_to_model_matrix(rotation, translation, unit_scale)
    registered_count = _write_scan_files(out, scan, config, raw_to_model, (raw_vertices, faces, landmarks_raw),
                                         (mesh_vertices, mesh_faces), arrays)
    clock.lap("write")
    counts = {
        "raw_vertices": int(len(raw_vertices)), "raw_faces": int(len(faces)),
        "mesh_vertices": int(len(mesh_vertices)), "mesh_faces": int(len(mesh_faces)),
        "registered_vertices": registered_count, "landmarks": int(len(landmarks_raw.points)),
        **{key: int(len(array)) for key, array in arrays.items() if key.endswith("points")},
    }
    meta = {
        "format_version": FORMAT_VERSION,
        "scan": scan.name, "identity": scan.identity, "expression": scan.expression, "neutral": scan.neutral,
        "source": _source_record(scan, hashes),
        "unit": unit, "unit_scale_to_mm": unit_scale, "mm_per_model_unit": MM_PER_UNIT,
        "raw_to_model": raw_to_model.tolist(),
        "model_to_raw": model_to_raw_matrix(rotation, translation, unit_scale).tolist(),
        "alignment_rms_mm": rms,
        "landmark_surface_distance_mm": float(distance.max()),
        "counts": counts,
        "settings": config.output_settings(),
        "timings_s": {key: round(value, 4) for key, value in clock.timings.items()},
    }
    write_json(out / META_NAME, meta)
    clock.lap("write")
    return ScanResult(scan.name, "done", out, None, clock.timings, time.perf_counter() - clock.start)


def _face_mesh(vertices_canon: np.ndarray, faces: np.ndarray, config: PreprocessConfig, mesh_path: Path,
               clock: _StageClock) -> tuple[np.ndarray, np.ndarray]:
    """Crop (mm, canonical frame), remove the hidden surface, mesh as a height field: the
    pseudo-watertight mesh, vertices (V, 3) in model units and faces (F, 3)."""
    crop_vertices, crop_faces = crop_to_sphere(vertices_canon, faces, np.zeros(3), CROP_RADIUS_MM)
    if len(crop_faces) < config.min_faces_in_crop:
        raise ImfaceError(
            mesh_path, f"no face region inside the {CROP_RADIUS_MM:g} mm crop sphere "
            f"({len(crop_faces)} triangles there; check the landmarks and units)",
        )
    clock.lap("crop")
    visible_vertices, visible_faces, _ = remove_hidden_surface(
        crop_vertices, crop_faces, eps=config.hidden_surface_eps_mm
    )
    if len(visible_faces) == 0:
        raise ImfaceError(mesh_path, "no surface is visible from the front (+z) after alignment")
    clock.lap("hidden_surface")
    mesh_faces = delaunay_heightfield(visible_vertices)
    mesh_vertices = visible_vertices / MM_PER_UNIT
    clock.lap("delaunay")
    return mesh_vertices, mesh_faces


def _sdf_samples(mesh_vertices: np.ndarray, mesh_faces: np.ndarray, config: PreprocessConfig,
                 seed: int) -> dict[str, np.ndarray]:
    """The scan's training samples (model units): surface points and normals, uniform space points
    with SDF and gradient, and optionally the near-surface band, keyed by their file stems."""
    rng = np.random.default_rng(seed)
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
    return arrays


def _write_scan_files(out: Path, scan: ScanSource, config: PreprocessConfig, raw_to_model: np.ndarray,
                      raw: tuple, mesh: tuple[np.ndarray, np.ndarray], arrays: dict[str, np.ndarray]) -> int | None:
    """Every output but meta.json (removed first, so the folder reads as incomplete until it is
    written again); stale optional outputs of earlier runs go. raw: (vertices, faces, Landmarks).
    Returns the registered mesh's vertex count, or None without one."""
    raw_vertices, faces, landmarks_raw = raw
    mesh_vertices, mesh_faces = mesh
    out.mkdir(parents=True, exist_ok=True)
    (out / META_NAME).unlink(missing_ok=True)  # the folder is incomplete until meta.json is rewritten
    write_mesh(out / MESH_NAME, mesh_vertices, mesh_faces)
    registered_count = None
    if scan.registered_path is not None:
        registered = read_mesh(scan.registered_path)
        write_mesh(out / "registered.ply", apply_matrix(registered.vertices, raw_to_model), registered.faces)
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
    return registered_count


def _source_record(scan: ScanSource, hashes: dict[str, str | None]) -> dict:
    """meta.json's ``source``: the input files (or None) and their SHA-256."""
    paths = {"mesh": scan.mesh_path, "landmarks": scan.landmarks_path,
             "landmark_indices": scan.landmark_indices_path, "registered": scan.registered_path}
    return {**{key: None if path is None else str(path) for key, path in paths.items()}, "sha256": hashes}
