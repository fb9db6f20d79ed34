"""Synthetic face-like raw scans for the preprocessing tests (no BFM download needed).

A scan is a smooth height field in the canonical frame (mm; nose bump with its tip at
(0, 0, 40)), plus a hidden "mouth cavity" patch behind the lips and an "overhang"
flap in front of the forehead, so hidden-surface removal has something to remove.
The 68 landmarks take the canonical x-y and the surface height there, so they lie on
the surface. The whole scan is then moved by a random rigid pose and written in the
requested unit, in the built-in raw layout.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial.transform import Rotation

from imface.frame import CANONICAL_LANDMARKS_MM

UNIT_SCALE = {"mm": 1.0, "cm": 0.1, "m": 0.001}  # raw value = mm * scale


def scan_height_mm(x: np.ndarray, y: np.ndarray, width: float = 1.0) -> np.ndarray:
    """Surface z (mm) over x, y (mm): a rounded cap with a nose bump peaking at z = 40 at the origin."""
    xs = x / width
    cap = 12.0 - 0.013 * xs**2 - 0.0015 * y**2
    nose = 28.0 * np.exp(-(xs**2 / (2 * 9.0**2) + y**2 / (2 * 14.0**2)))
    return cap + nose


def _grid(x_range, y_range, step: float) -> tuple[np.ndarray, np.ndarray]:
    xs = np.arange(x_range[0], x_range[1] + 1e-9, step)
    ys = np.arange(y_range[0], y_range[1] + 1e-9, step)
    gx, gy = np.meshgrid(xs, ys, indexing="xy")
    nx, ny = len(xs), len(ys)
    ids = np.arange(nx * ny).reshape(ny, nx)
    a, b, c, d = ids[:-1, :-1].ravel(), ids[:-1, 1:].ravel(), ids[1:, :-1].ravel(), ids[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])  # counter-clockwise seen from +z
    return np.stack([gx.ravel(), gy.ravel()], 1), faces


def make_canonical_scan(step: float = 4.0, width: float = 1.0, extras: bool = True) -> dict:
    """A face-like scan in the canonical frame (mm). Returns vertices, faces, landmarks (68, 3),
    registered_vertices/faces (a coarser fixed-topology mesh of the same surface)."""
    xy, faces = _grid((-104.0, 104.0), (-128.0, 112.0), step)
    vertices = np.column_stack([xy, scan_height_mm(xy[:, 0], xy[:, 1], width)])
    parts_v, parts_f = [vertices], [faces]
    if extras:
        offset = len(vertices)
        # Mouth cavity: a patch 15 mm behind the lips, hidden from the viewer.
        cxy, cf = _grid((-14.0, 14.0), (-36.0, -26.0), 2.0)
        cz = scan_height_mm(cxy[:, 0], cxy[:, 1], width) - 15.0
        parts_v.append(np.column_stack([cxy, cz]))
        parts_f.append(cf + offset)
        offset += len(cxy)
        # Overhang: a flap 6 mm in front of the upper forehead (like a hair fringe).
        oxy, of = _grid((20.0, 44.0), (66.0, 78.0), 2.0)
        oz = scan_height_mm(oxy[:, 0], oxy[:, 1], width) + 6.0
        parts_v.append(np.column_stack([oxy, oz]))
        parts_f.append(of + offset)
    landmarks = CANONICAL_LANDMARKS_MM.copy()
    landmarks[:, 0] *= width
    landmarks[:, 2] = scan_height_mm(landmarks[:, 0], landmarks[:, 1], width)
    rxy, rf = _grid((-80.0, 80.0), (-90.0, 80.0), 10.0)
    registered = np.column_stack([rxy, scan_height_mm(rxy[:, 0], rxy[:, 1], width)])
    return {
        "vertices": np.concatenate(parts_v), "faces": np.concatenate(parts_f), "landmarks": landmarks,
        "registered_vertices": registered, "registered_faces": rf,
    }


def random_pose(rng: np.random.Generator, max_angle_deg: float = 15.0, max_offset_mm: float = 40.0):
    """Rotation (3, 3) within ``max_angle_deg`` and an offset (3,) mm."""
    angle = np.deg2rad(rng.uniform(0.0, max_angle_deg))
    axis = rng.standard_normal(3)
    rotation = Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix()
    return rotation, rng.uniform(-max_offset_mm, max_offset_mm, 3)


def make_raw_scan(rng: np.random.Generator, unit: str = "mm", step: float = 4.0, width: float = 1.0,
                  posed: bool = True, extras: bool = True) -> dict:
    """A posed scan in the raw frame and unit: ``raw = scale * (R canonical + t)``."""
    scan = make_canonical_scan(step, width, extras)
    rotation, offset = random_pose(rng) if posed else (np.eye(3), np.zeros(3))
    scale = UNIT_SCALE[unit]
    move = lambda p: scale * (p @ rotation.T + offset)  # noqa: E731
    return {
        **scan, "vertices": move(scan["vertices"]), "landmarks": move(scan["landmarks"]),
        "registered_vertices": move(scan["registered_vertices"]), "rotation": rotation, "offset": offset,
        "scale": scale,
    }


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    trimesh.Trimesh(vertices, faces, process=False).export(path, file_type="obj")


def write_builtin_scan(stem: Path, scan: dict) -> None:
    """One scan of :func:`make_raw_scan` in the built-in raw layout: ``stem.obj``, ``stem.lmk.txt``
    and ``stem.registered.ply`` (``stem`` is ``<root>/<identity>/<number>_<expression>``)."""
    write_obj(stem.with_suffix(".obj"), scan["vertices"], scan["faces"])
    np.savetxt(stem.with_suffix(".lmk.txt"), scan["landmarks"])
    trimesh.Trimesh(scan["registered_vertices"], scan["registered_faces"], process=False).export(
        stem.parent / f"{stem.name}.registered.ply"
    )


def write_builtin_dataset(root: Path, identities: int = 2, expressions=((1, "neutral"), (2, "smile")),
                          seed: int = 0, unit: str = "mm", step: float = 4.0) -> Path:
    """Write a small raw dataset in the built-in layout (``dataset.json`` + per-scan files)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps({"layout": "imface-builtin", "format_version": 1, "units": unit}))
    for identity in range(1, identities + 1):
        width = rng.uniform(0.95, 1.05)
        for number, expression in expressions:
            scan = make_raw_scan(rng, unit=unit, step=step, width=width)
            write_builtin_scan(root / f"{identity:03d}" / f"{number}_{expression}", scan)
    return root


def hash_tree(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (to prove inputs are never modified)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
        if p.is_file()
    }
