"""``imface check-data``: sanity checks of a processed dataset before training on it.

Per scan: every output present with consistent shapes; all values finite; surface
normals and SDF gradients are unit vectors (normals with n_z >= 0); space points lie
in the unit sphere; surface points lie on ``mesh.ply``; ``|sdf|`` equals the distance
to ``mesh.ply``; signs are sane (points well in front of the surface are positive,
well behind negative); the five model landmarks are present. Per dataset: every
training identity has a neutral scan.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import igl
import numpy as np
import trimesh

from imface.contracts.dataset import MESH_NAME, Manifest, read_manifest
from imface.errors import ImfaceError
from imface.io.mesh import read_mesh
from imface.threads import init_worker_process

POINT_ARRAYS = {  # name -> trailing shape
    "surface_points": (3,), "surface_normals": (3,), "space_points": (3,), "space_sdf": (), "space_grad": (3,),
}
NEAR_ARRAYS = {"near_points": (3,), "near_sdf": (), "near_grad": (3,)}


@dataclass
class CheckReport:
    """Problems found (each ``path: problem``) and dataset counts."""
    root: Path
    scans: int = 0
    identities: int = 0
    train_scans: int = 0
    test_scans: int = 0
    problems: list[str] = field(default_factory=list)
    sample_counts: dict[str, set] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        counts = ", ".join(
            f"{name} {'/'.join(str(c) for c in sorted(values))}" for name, values in sorted(self.sample_counts.items())
        )
        lines = [
            f"check-data {self.root}: {self.scans} scans, {self.identities} identities "
            f"({self.train_scans} train scans, {self.test_scans} test scans)",
            f"  points per scan: {counts or 'none'}",
        ]
        if self.ok:
            lines.append("OK: no problems found")
        else:
            lines.append(f"{len(self.problems)} problems:")
            lines.extend(f"  {problem}" for problem in self.problems)
        return "\n".join(lines)


def _load(folder: Path, name: str, trailing: tuple, problems: list[str]) -> np.ndarray | None:
    path = folder / f"{name}.npy"
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        problems.append(f"{path}: missing")
        return None
    except (OSError, ValueError) as err:
        problems.append(f"{path}: unreadable ({err})")
        return None
    if array.ndim != 1 + len(trailing) or tuple(array.shape[1:]) != trailing or len(array) == 0:
        problems.append(f"{path}: shape {array.shape}, expected (N, {', '.join(map(str, trailing))})".replace(", )", ")"))
        return None
    if not np.issubdtype(array.dtype, np.floating):
        problems.append(f"{path}: dtype {array.dtype}, expected float")
        return None
    if not np.isfinite(array).all():
        problems.append(f"{path}: {int((~np.isfinite(array)).any(axis=tuple(range(1, array.ndim))).sum())} rows "
                        "with NaN/inf")
        return None
    return np.asarray(array, dtype=np.float64)


def _unit_rows(path: Path, vectors: np.ndarray, what: str, problems: list[str], tol: float = 1e-3) -> None:
    bad = np.abs(np.linalg.norm(vectors, axis=1) - 1.0) > tol
    if bad.any():
        problems.append(f"{path}: {int(bad.sum())} of {len(vectors)} {what} are not unit length")
    if (vectors[:, 2] < -tol).any():
        problems.append(f"{path}: {int((vectors[:, 2] < -tol).sum())} {what} point away from the viewer (z < 0)")


def _surface_height(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Height z of the height-field mesh below/above each point (N,), NaN where x-y is outside it."""
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    origins = points.copy()
    origins[:, 2] = vertices[:, 2].max() + 1.0
    directions = np.tile([0.0, 0.0, -1.0], (len(points), 1))
    hit_face = mesh.ray.intersects_first(origins, directions)
    heights = np.full(len(points), np.nan)
    hit = hit_face >= 0
    corners = vertices[faces[hit_face[hit]]]
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    steep = np.abs(normal[:, 2]) < 1e-12
    normal[steep, 2] = 1e-12
    offset = points[hit, :2] - corners[:, 0, :2]
    heights[hit] = corners[:, 0, 2] - (normal[:, 0] * offset[:, 0] + normal[:, 1] * offset[:, 1]) / normal[:, 2]
    return heights


def check_scan(
    folder: Path, max_surface_checks: int = 20_000, sign_margin: float = 0.1,
    max_sign_violation_fraction: float = 0.001, distance_tol: float = 1e-4,
) -> tuple[list[str], dict[str, int]]:
    """Problems of one processed scan folder, and its sample counts."""


    problems: list[str] = []
    arrays = {name: _load(folder, name, shape, problems) for name, shape in POINT_ARRAYS.items()}
    if (folder / "near_points.npy").exists():
        arrays.update({name: _load(folder, name, shape, problems) for name, shape in NEAR_ARRAYS.items()})
    counts = {name: len(a) for name, a in arrays.items() if a is not None and name.endswith("points")}
    for prefix in ("surface", "space", "near"):
        lengths = {len(a) for name, a in arrays.items() if name.startswith(prefix) and a is not None}
        if len(lengths) > 1:
            problems.append(f"{folder}: {prefix} arrays differ in length {sorted(lengths)}")
            return problems, counts
    try:
        mesh = read_mesh(folder / MESH_NAME)
    except ImfaceError as err:
        problems.append(str(err))
        mesh = None
    surface, normals = arrays["surface_points"], arrays["surface_normals"]
    if normals is not None:
        _unit_rows(folder / "surface_normals.npy", normals, "normals", problems)
    for prefix in ("space", "near"):
        points, sdf, grad = (arrays.get(f"{prefix}_{key}") for key in ("points", "sdf", "grad"))
        if grad is not None:
            _unit_rows(folder / f"{prefix}_grad.npy", grad, "gradients", problems)
        if prefix == "space" and points is not None and (np.linalg.norm(points, axis=1) > 1.0 + 1e-5).any():
            problems.append(f"{folder / 'space_points.npy'}: points outside the unit sphere")
        if mesh is None or points is None or sdf is None:
            continue
        distance = np.sqrt(igl.point_mesh_squared_distance(points, mesh.vertices, mesh.faces)[0])
        off = np.abs(np.abs(sdf) - distance) > distance_tol
        if off.any():
            problems.append(f"{folder / f'{prefix}_sdf.npy'}: {int(off.sum())} of {len(sdf)} |sdf| values differ "
                            f"from the distance to mesh.ply by more than {distance_tol:g}")
        height = _surface_height(points, mesh.vertices, mesh.faces)
        front, behind = points[:, 2] > height + sign_margin, points[:, 2] < height - sign_margin
        wrong = int((front & (sdf <= 0)).sum() + (behind & (sdf >= 0)).sum())
        checked = int(front.sum() + behind.sum())
        if checked and wrong > max_sign_violation_fraction * checked:
            problems.append(f"{folder / f'{prefix}_sdf.npy'}: {wrong} of {checked} points clearly in front of / "
                            "behind the surface have the wrong sdf sign")
    if mesh is not None and surface is not None:
        picked = surface
        if len(surface) > max_surface_checks:
            picked = surface[np.random.default_rng(0).choice(len(surface), max_surface_checks, replace=False)]
        distance = np.sqrt(igl.point_mesh_squared_distance(picked, mesh.vertices, mesh.faces)[0])
        if (distance > distance_tol).any():
            problems.append(f"{folder / 'surface_points.npy'}: {int((distance > distance_tol).sum())} of "
                            f"{len(picked)} checked points are off mesh.ply (max {distance.max():.3g} units)")
    problems.extend(_check_landmarks(folder / "landmarks.json"))
    if not (folder / "meta.json").is_file():
        problems.append(f"{folder / 'meta.json'}: missing (scan incomplete)")
    return problems, counts


def _check_landmarks(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return [f"{path}: unreadable ({err})"]
    problems = []
    for key, rows, required in (("five", 5, True), ("ibug68", 68, False)):
        value = data.get(key)
        if value is None:
            if required:
                problems.append(f"{path}: the five model landmarks are missing")
            continue
        array = np.asarray(value, dtype=np.float64)
        if array.shape != (rows, 3) or not np.isfinite(array).all():
            problems.append(f"{path}: '{key}' must be {rows} finite x, y, z rows (shape {array.shape})")
    return problems


def _check_one(job: tuple[Path, int]) -> tuple[list[str], dict[str, int]]:
    folder, max_surface_checks = job
    if not folder.is_dir():
        return [f"{folder}: scan folder missing"], {}
    return check_scan(folder, max_surface_checks=max_surface_checks)


def check_dataset(data_dir: str | os.PathLike, max_surface_checks: int = 20_000, workers: int = 1) -> CheckReport:
    """Check a processed dataset folder (with ``manifest.json``); see the module docstring.

    ``workers`` > 1 checks scans in a process pool (one thread each). Raises
    :class:`ImfaceError` when the folder or its manifest cannot be read at all.
    """
    manifest: Manifest = read_manifest(data_dir)
    report = CheckReport(
        root=manifest.root, scans=len(manifest.scans), identities=len(manifest.identities),
        train_scans=len(manifest.train), test_scans=len(manifest.test),
    )
    jobs = [(manifest.folder(scan), max_surface_checks) for scan in manifest.scans]
    if workers > 1 and len(jobs) > 1:


        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=init_worker_process) as pool:
            outcomes = list(pool.map(_check_one, jobs, chunksize=4))
    else:
        outcomes = [_check_one(job) for job in jobs]
    for problems, counts in outcomes:
        report.problems.extend(problems)
        for name, count in counts.items():
            report.sample_counts.setdefault(name, set()).add(count)
    train = {manifest.scan(name) for name in manifest.train}
    neutral_ids = {s.identity for s in train if s.neutral}
    for identity in sorted({s.identity for s in train} - neutral_ids):
        report.problems.append(f"{manifest.root / identity}: training identity {identity!r} has no neutral scan")
    if not manifest.train:
        report.problems.append(f"{manifest.root / 'manifest.json'}: the train split is empty")
    return report
