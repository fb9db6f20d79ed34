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
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from imface.errors import ImfaceError
from imface.io.mesh import MESH_SUFFIXES

POINT_SUFFIXES = (".npy", ".xyz", ".txt")
UNIT_TO_MM = {"model": 100.0, "mm": 1.0, "cm": 10.0, "m": 1000.0}
FACE_SIZE_MM = (50.0, 500.0)  # plausible bounding-box diagonal of a face scan or part of one
MAX_POINTS_PER_SCAN = 200_000  # larger inputs are subsampled (fixed seed) to bound memory
MESH_SURFACE_SAMPLES = 100_000
FAR_RADIUS = 1.5  # model units: most input points beyond this after centring means wrong units/pose
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


def _subsample(rng: np.random.Generator, count: int, limit: int) -> np.ndarray | slice:
    return slice(None) if count <= limit else np.sort(rng.choice(count, limit, replace=False))


def _load_array(path: Path) -> np.ndarray:
    from imface.io.arrays import read_npy

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
    pick_surface = _subsample(rng, len(arrays["surface_points"]), MAX_POINTS_PER_SCAN)
    pick_space = _subsample(rng, len(arrays["space_points"]), MAX_POINTS_PER_SCAN)
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
    if (folder / "mesh.ply").is_file():
        from imface.io.mesh import read_mesh

        read = read_mesh(folder / "mesh.ply")
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


def _dataset_targets(root: Path, split: str, names: Sequence[str] | None, rng: np.random.Generator,
                     kind: str = "processed") -> list[FitTarget]:
    from imface.contracts.dataset import read_manifest

    manifest = read_manifest(root)
    by_name = manifest.by_name
    if names:
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ImfaceError(root / "manifest.json", f"no scan named {', '.join(unknown[:5])}")
        chosen = list(names)
    else:
        chosen = {"train": list(manifest.train), "test": list(manifest.test), "all": sorted(by_name)}.get(split)
        if chosen is None:
            raise ImfaceError(None, f"--split must be train, test or all, got {split!r}")
        if not chosen:
            raise ImfaceError(root / "manifest.json", f"the {split} split is empty; pass --split or --scans")
    return [processed_target(manifest.folder(n), n, by_name[n].identity, by_name[n].expression, by_name[n].neutral,
                             rng, kind) for n in chosen]


def _raw_dataset_targets(root: Path, work_dir: Path, unit: str, names: Sequence[str] | None,
                         rng: np.random.Generator) -> list[FitTarget]:
    """Preprocess raw scans with landmarks into ``work_dir/_preprocessed`` and load them."""
    from imface.preprocess.layouts import discover_scans
    from imface.preprocess.scan import PreprocessConfig, preprocess_scan, scan_output_dir
    from imface.preprocess.run import is_complete

    scans = discover_scans(root)
    if names:
        scans = [s for s in scans if s.name in set(names)]
    config = PreprocessConfig(unit=None if unit in ("auto", "model") else unit)
    out = work_dir / "_preprocessed"
    targets = []
    for scan in scans:  # per-scan file work, not a hot path
        if not is_complete(scan, out, config):
            preprocess_scan(scan, out, config)
        targets.append(processed_target(scan_output_dir(out, scan), scan.name, scan.identity, scan.expression,
                                        scan.neutral, rng, kind="raw_landmarks"))
    return targets


def _read_point_file(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, 3) points and (N, 3) normals or None from .npy / .xyz / .txt (3 or 6 columns)."""
    if path.suffix.lower() == ".npy":
        table = np.asarray(_load_array(path))
    else:
        from imface.io.arrays import read_text_table

        table = read_text_table(path, "point table")
    if table.size == 0:
        raise ImfaceError(path, "empty point set (no points)")
    if table.ndim != 2 or table.shape[1] not in (3, 6):
        raise ImfaceError(path, f"expected 3 (x y z) or 6 (x y z nx ny nz) columns, got shape {table.shape}")
    normals = table[:, 3:6] if table.shape[1] == 6 else None
    return _check_points(table[:, :3], path), normals


def _read_ply(path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Points, normals (or None) and faces (or None for a point cloud) of a .ply file."""
    import trimesh

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
        from imface.io.mesh import read_mesh

        mesh = read_mesh(path)
        return mesh.vertices, None, mesh.faces
    points = _check_points(vertices, path)
    if normals is not None and normals.shape != points.shape:
        raise ImfaceError(path, f"{len(normals)} normals for {len(points)} points")
    return points, normals, None


def detect_unit(points: np.ndarray, unit: str, path: Path) -> str:
    """Check a given unit of a landmark-free input against its size; ``auto`` stays ``auto``
    (the similarity search finds the scale, see :func:`prepare_poses`)."""
    if unit == "auto":
        return unit
    if unit not in UNIT_TO_MM:
        raise ImfaceError(None, f"--unit must be auto, model, mm, cm or m, got {unit!r}")
    diagonal = float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))
    low, high = FACE_SIZE_MM
    size = diagonal * UNIT_TO_MM[unit]
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
        from imface.io.mesh import read_mesh

        mesh = read_mesh(path)
        return mesh.vertices, None, mesh.faces
    raise ImfaceError(path, f"unsupported input {suffix!r} (processed folder, mesh .obj/.ply/.off/.stl, points .npy/.xyz/.txt)")


#: A face (even a one-view partial one) is at least this deep for its width (smallest / largest
#: principal spread); a flat plane is 0. Faces measure about 0.5.
MIN_RELATIVE_DEPTH = 0.05
#: Median share of the smallest local principal spread (16 nearest of 2,000 points, about 1 cm
#: on a face): a built-in face with 2 mm of noise stays near 0.06, uniform noise near 0.17
#: (``python bench/face_check.py``).
MAX_LOCAL_THICKNESS = 0.1


def surface_shape(points: np.ndarray) -> tuple[float, float]:
    """(relative depth, local thickness) of a point set (N >= 32, any unit), on 2,000 of its points
    (fixed seed): the smallest over the largest principal spread, and the median share of the
    smallest local principal spread over each point's 16 nearest neighbours."""
    from imface.ops.neighbourhoods import local_covariances

    rng = np.random.default_rng(0)
    sample = np.asarray(points, dtype=np.float64)
    sample = sample[rng.choice(len(sample), min(2000, len(sample)), replace=False)]
    spread = np.linalg.svd(sample - sample.mean(axis=0), compute_uv=False)
    depth = float(spread[2] / spread[0]) if spread[0] > 0 else 0.0
    eigen = np.linalg.eigvalsh(local_covariances(sample, 16)[0])
    return depth, float(np.median(eigen[:, 0] / np.maximum(eigen.sum(axis=1), 1e-300)))


def check_face_like(points: np.ndarray, path: Path) -> None:
    """Refuse inputs that cannot be a face scan, with one line: too few points, a flat plane, or
    points that fill a volume instead of lying on a surface (noise). points: (N, 3) any unit."""
    if len(points) < 32:
        raise ImfaceError(path, f"only {len(points)} points: too few to be a face scan")
    depth, thickness = surface_shape(points)
    if depth < MIN_RELATIVE_DEPTH:
        raise ImfaceError(path, f"flat (depth {depth:.3f} of its width): a plane, not a face scan")
    if thickness > MAX_LOCAL_THICKNESS:
        raise ImfaceError(path, f"the points do not lie on a surface (local thickness {thickness:.2f}, a face "
                                f"scan is under {MAX_LOCAL_THICKNESS}): noise, not a face scan")


def file_target(path: Path, name: str, unit: str, pose: str, neutral: str) -> FitTarget:
    """A target from a raw mesh without landmarks or a point set (surface constraints only)."""
    from imface.ops.sdf_sampling import sample_surface

    points, normals, faces = read_input_geometry(path)
    unit = detect_unit(points, unit, path)
    scale = 1.0 if unit == "auto" else UNIT_TO_MM[unit] / UNIT_TO_MM["model"]  # auto: set by prepare_poses
    rng = np.random.default_rng(0)
    reference = None
    if faces is not None:
        from imface.io.mesh import clean_mesh

        vertices, faces = clean_mesh(points, faces)
        if len(faces) == 0:
            raise ImfaceError(path, "empty mesh after removing degenerate faces")
        reference = (vertices * scale, faces)
        points, normals = sample_surface(vertices * scale, faces, MESH_SURFACE_SAMPLES, rng)
    else:
        points = points * scale
        pick = _subsample(rng, len(points), MAX_POINTS_PER_SCAN)
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


def _is_processed_scan(folder: Path) -> bool:
    return (folder / "surface_points.npy").is_file() and (folder / "space_points.npy").is_file()


def gather_targets(inputs: str | Path | Sequence[str | Path], *, work_dir: Path, split: str = "test",
                   scans: Sequence[str] | None = None, unit: str = "auto", pose: str = "auto",
                   neutral: str = "auto") -> list[FitTarget]:
    """Every scan to fit, in input order (see the module docstring for what is accepted)."""
    from imface.preprocess.layouts import detect_layout

    paths = [Path(inputs)] if isinstance(inputs, (str, Path)) else [Path(p) for p in inputs]
    if not paths:
        raise ImfaceError(None, "no input given")
    rng = np.random.default_rng(0)
    targets: list[FitTarget] = []
    for path in paths:
        if not path.exists():
            raise ImfaceError(path, "input not found")
        if path.is_dir() and (path / "manifest.json").is_file():
            targets += _dataset_targets(path, split, scans, rng)
        elif path.is_dir() and _is_processed_scan(path):
            meta = {}
            try:
                meta = json.loads((path / "meta.json").read_text())
            except (OSError, ValueError):
                pass
            name = f"{path.parent.name}/{path.name}"
            expression, known = _names(meta.get("expression"))
            flag = bool(meta.get("neutral", known if known is not None else neutral == "yes"))
            targets.append(processed_target(path, name, str(meta.get("identity", path.parent.name)),
                                            expression, flag, rng))
        elif path.is_file() and path.suffix.lower() in (".csv", ".json"):
            targets += _raw_dataset_targets(path, work_dir, unit, scans, rng)
        elif path.is_file():
            targets.append(file_target(path, path.stem, unit, pose, neutral))
        else:
            try:
                layout = detect_layout(path)
            except ImfaceError:
                layout = None
            # FaceScape-like folders need landmark vertex ids, which fit does not take: preprocess
            # them first, or they are fitted as landmark-free meshes below.
            if layout in ("builtin", "list"):
                targets += _raw_dataset_targets(path, work_dir, unit, scans, rng)
                continue
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in POINT_SUFFIXES + MESH_SUFFIXES
                           and "_preprocessed" not in p.parts)
            if not files:
                raise ImfaceError(path, "no processed dataset, raw dataset, meshes or point files found")
            for file in files:
                name = file.relative_to(path).with_suffix("").as_posix()
                if not scans or name in scans:
                    targets.append(file_target(file, name, unit, pose, neutral))
    names = [t.name for t in targets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ImfaceError(None, f"two inputs share the scan name(s) {', '.join(duplicates[:5])}")
    if not targets:
        raise ImfaceError(paths[0], "no scans selected")
    return targets


#: Refusals after the search (``python bench/fit_any.py`` prints the figures behind them; on its
#: built-in test set, good scans with clutter, holes, noise or one view: nose coverage >= 0.79,
#: coverage >= 0.70, residual <= 3.7 mm; the back of a head: nose 0.52, coverage 0.51, 4.5 mm).
MIN_NOSE_COVERAGE = 0.65  # share of the mean face's nose region (3 cm around its tip) matched within 5 mm
MIN_FACE_COVERAGE = 0.5  # share of the whole mean face matched within 5 mm
MAX_FACE_RESIDUAL = 0.045  # model units (4.5 mm): mean of both directions' distances capped at 10 mm
#: A found scale this close to a named unit's (2%) is reported as that unit.
UNIT_TOLERANCE = 0.02


def unit_of_scale(scale: float) -> str:
    """The named unit whose scale (model units per input unit) is within 2% of ``scale``, else ``arbitrary``."""
    for name, factor in UNIT_TO_MM.items():
        if abs(np.log(scale * UNIT_TO_MM["model"] / factor)) <= np.log1p(UNIT_TOLERANCE):
            return name
    return "arbitrary"


def align_to_mean_face(target: FitTarget, template: np.ndarray) -> None:
    """Find the target's scale (``unit == "auto"``) and pose by similarity search onto the mean
    face's front points (M, 3), model units; rescale its arrays; refuse what is no face."""
    from imface.ops.similarity_search import search_similarity

    scale_given = target.unit != "auto"  # given: the points are in model units already
    rng = np.random.default_rng(0)
    sample = target.surface_points[_subsample(rng, len(target.surface_points), 20_000)]
    found = search_similarity(sample, template, scale=1.0 if scale_given else None)
    if (found.nose_coverage < MIN_NOSE_COVERAGE or found.coverage < MIN_FACE_COVERAGE
            or found.residual > MAX_FACE_RESIDUAL):
        raise ImfaceError(target.source, f"no face found: the best alignment matches {100 * found.nose_coverage:.0f}% of "
                          f"the mean face's nose region and {100 * found.coverage:.0f}% of the face within 5 mm (a face: "
                          f">= {100 * MIN_NOSE_COVERAGE:.0f}% and {100 * MIN_FACE_COVERAGE:.0f}%), residual "
                          f"{100 * found.residual:.1f} mm (<= {100 * MAX_FACE_RESIDUAL:.1f}); the back of a head, "
                          "a face seen from more than about 40 degrees, or not a face")
    if not scale_given:
        target.fit_scale = True
        target.unit = unit_of_scale(found.scale)
        target.raw_to_input = np.diag([found.scale, found.scale, found.scale, 1.0])
        target.surface_points = (target.surface_points * found.scale).astype(np.float32)
        if target.reference is not None:
            target.reference = (target.reference[0] * found.scale, target.reference[1])
    target.init_rotation, target.init_translation = found.rotation, found.translation
    scale = float(target.raw_to_input[0, 0])
    target.alignment = {"scale": scale, "mm_per_input_unit": scale * UNIT_TO_MM["model"], "unit": target.unit,
                        "scale_given": scale_given, "residual_mm": 100 * found.residual, "coverage": found.coverage,
                        "nose_coverage": found.nose_coverage, "ambiguity": found.ambiguity, "starts": found.starts}


def rescale_target(target: FitTarget, factor: float) -> None:
    """Scale the target's input frame by ``factor`` (a scale the fit refined: the input maps to
    model space as ``factor * R x + t``, which is ``R (factor x) + t``), so the rigid pose stays
    valid; the alignment keeps the search's scale beside the refined one."""
    target.surface_points = (target.surface_points * factor).astype(np.float32)
    if target.space_points is not None:
        target.space_points = (target.space_points * factor).astype(np.float32)
        target.space_sdf = (target.space_sdf * factor).astype(np.float32)
    if target.landmarks is not None:
        target.landmarks = (target.landmarks * factor).astype(np.float32)
    if target.reference is not None:
        target.reference = (target.reference[0] * factor, target.reference[1])
    target.raw_to_input = np.diag([factor, factor, factor, 1.0]) @ target.raw_to_input
    scale = float(target.raw_to_input[0, 0])
    target.unit = unit_of_scale(scale)
    if target.alignment is not None:
        target.alignment = {**target.alignment, "search_scale": target.alignment.get("search_scale", target.alignment["scale"]),
                            "scale": scale,
                            "mm_per_input_unit": scale * UNIT_TO_MM["model"], "unit": target.unit,
                            "scale_refined": target.alignment.get("scale_refined", 1.0) * factor}


def crop_to_model_sphere(target: FitTarget, rotation: np.ndarray, translation: np.ndarray) -> None:
    """Keep the input points that land inside the unit sphere under the pose (the crop of
    preprocessing: hair, neck and shoulders beyond it go); refuse inputs that lie mostly far
    outside it (wrong unit or frame)."""
    moved = target.surface_points @ rotation.T + translation
    radius = np.linalg.norm(moved, axis=1)
    if np.median(radius) > FAR_RADIUS and target.alignment is None:
        raise ImfaceError(target.source, f"most points lie far outside the unit sphere after centring (median radius "
                          f"{np.median(radius):.3g} model units = {100 * np.median(radius):.0f} mm): wrong unit or frame?")
    keep = radius <= 1.0
    if keep.sum() < 10:
        raise ImfaceError(target.source, "fewer than 10 points inside the unit sphere after centring")
    target.surface_points = target.surface_points[keep]
    if target.surface_normals is not None:
        target.surface_normals = target.surface_normals[keep]


def prepare_poses(targets: list[FitTarget], mean_face: Callable[[], np.ndarray]) -> None:
    """Scale and pose for the targets that fit one (similarity search onto ``mean_face()``,
    the mean face's front points (M, 3), model units), and the crop for all."""
    face = None
    for target in targets:
        if target.fit_pose:
            face = mean_face() if face is None else face
            align_to_mean_face(target, face)
        crop_to_model_sphere(target, target.init_rotation, target.init_translation)
