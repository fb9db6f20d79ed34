"""Synthetic registered faces for the baseline tests (no BFM download).

A face is a height-field grid in model units (nose tip at (0, 0, 0.4)) whose shape depends
non-linearly on identity parameters (width, nose size and width, cheeks, chin), plus three
linear expression blend shapes (smile, brow raise, pucker) and a jaw rotation about a
known pivot with smooth skinning weights below the mouth line. Every face shares one
vertex order and one set of triangles.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation
import trimesh

from imface.contracts.dataset import ManifestScan, write_manifest
from imface.io.mesh import write_mesh
from imface.ops.ground_truth_crop import crop_like_ground_truth

TRUE_PIVOT = np.array([0.0, 0.15, -0.7])
MOUTH_LINE_Y = -0.33
IDENTITY_PARAMETERS = 6
EXPRESSION_PARAMETERS = 3


def grid(step: float = 0.05, x_range=(-0.95, 0.95), y_range=(-1.05, 0.85)) -> tuple[np.ndarray, np.ndarray]:
    """x-y grid points (V, 2) and triangles (F, 3) facing +z."""
    xs = np.arange(x_range[0], x_range[1] + 1e-9, step)
    ys = np.arange(y_range[0], y_range[1] + 1e-9, step)
    gx, gy = np.meshgrid(xs, ys, indexing="xy")
    ids = np.arange(gx.size).reshape(gx.shape)
    a, b, c, d = ids[:-1, :-1].ravel(), ids[:-1, 1:].ravel(), ids[1:, :-1].ravel(), ids[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    return np.stack([gx.ravel(), gy.ravel()], 1), faces


def _bump(x, y, cx, cy, width):
    return np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * width**2))


def identity_height(x: np.ndarray, y: np.ndarray, identity: np.ndarray) -> np.ndarray:
    """Surface z (model units) over x, y for identity parameters (6,) (non-linear in them)."""
    a = np.asarray(identity, dtype=np.float64)
    xs = x / (1.0 + 0.08 * a[0])
    nose_width = 0.09 * (1.0 + 0.15 * a[2])
    z = 0.12 - 1.3 * xs**2 - 0.15 * y**2
    z = z + 0.28 * (1.0 + 0.15 * a[1]) * np.exp(-(xs**2 / (2 * nose_width**2) + y**2 / (2 * 0.14**2)))
    z = z + 0.04 * a[3] * (_bump(xs, y, 0.35, -0.2, 0.12) + _bump(xs, y, -0.35, -0.2, 0.12))
    z = z + 0.04 * a[4] * _bump(xs, y, 0.0, -0.75, 0.15)
    return z + 0.02 * a[5] * np.sin(2.0 * xs) * np.cos(1.5 * y)


def jaw_weights(y: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp((y - MOUTH_LINE_Y) / 0.05))


def make_face(identity, expression=(0.0, 0.0, 0.0), jaw_angle: float = 0.0, jaw_side: float = 0.0,
              step: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) model units and faces (F, 3) of one synthetic face."""
    xy, faces = grid(step)
    x, y = xy[:, 0], xy[:, 1]
    e = np.asarray(expression, dtype=np.float64)
    rest = np.column_stack([x, y, identity_height(x, y, identity)])
    smile = _bump(x, y, 0.25, -0.33, 0.1) + _bump(x, y, -0.25, -0.33, 0.1)
    brows = _bump(x, y, 0.4, 0.4, 0.12) + _bump(x, y, -0.4, 0.4, 0.12)
    pucker = _bump(x, y, 0.0, -0.33, 0.1)
    rest[:, 1] += 0.03 * e[0] * smile + 0.03 * e[1] * brows
    rest[:, 2] += 0.02 * e[0] * smile + 0.04 * e[2] * pucker
    rotation = Rotation.from_rotvec([jaw_angle, jaw_side, 0.0]).as_matrix()
    offset = rest - TRUE_PIVOT
    posed = rest + jaw_weights(y)[:, None] * (offset @ rotation.T - offset)
    return posed, faces


def sample_face_points(identity, count: int, seed: int) -> np.ndarray:
    """(count, 3) area-uniform samples of the rest face of ``identity`` (6,), model units."""
    vertices, faces = make_face(identity, step=0.03)
    return trimesh.sample.sample_surface(trimesh.Trimesh(vertices, faces), count, seed=seed)[0]


def make_dataset(identities: int, seed: int, jaw_range=(0.0, 0.35), expressions_per_identity: int = 6):
    """Meshes (S, V, 3), faces, identity labels, expression labels, neutral flags and per-scan truth.

    Every identity gets a neutral scan plus ``expressions_per_identity`` scans with random
    blend-shape weights; half of those also open the jaw by an angle in ``jaw_range``.
    """
    rng = np.random.default_rng(seed)
    meshes, labels, expressions, neutral, truth = [], [], [], [], []
    faces = None
    for i in range(identities):  # test data: a handful of faces
        identity = rng.standard_normal(IDENTITY_PARAMETERS)
        for j in range(expressions_per_identity + 1):
            expression = np.zeros(EXPRESSION_PARAMETERS) if j == 0 else rng.standard_normal(EXPRESSION_PARAMETERS)
            angle = rng.uniform(*jaw_range) if j > 0 and j % 2 == 0 else 0.0
            vertices, faces = make_face(identity, expression, angle)
            meshes.append(vertices)
            labels.append(f"{i + 1:03d}")
            expressions.append("neutral" if j == 0 else f"expr{j}")
            neutral.append(j == 0)
            truth.append({"identity": identity, "expression": expression, "jaw": angle})
    return np.stack(meshes), faces, labels, expressions, neutral, truth


def write_dataset(root: Path, identities: int = 6, test_identities: int = 1, seed: int = 0) -> Path:
    """A processed-dataset folder: per scan ``registered.ply`` and ``mesh.ply`` (the registered surface
    re-meshed on a finer grid and cropped like a ground truth), and ``manifest.json``."""
    meshes, faces, labels, expressions, neutral, truth = make_dataset(identities, seed, expressions_per_identity=4)
    scans = []
    for vertices, label, expression, is_neutral, params in zip(meshes, labels, expressions, neutral, truth):
        folder = root / label / expression
        write_mesh(folder / "registered.ply", vertices, faces)
        fine_vertices, fine_faces = make_face(params["identity"], params["expression"], params["jaw"], step=0.025)
        write_mesh(folder / "mesh.ply", *crop_like_ground_truth(fine_vertices, fine_faces))
        scans.append(ManifestScan(f"{label}/{expression}", label, expression, is_neutral, f"{label}/{expression}"))
    held_out = sorted(set(labels))[-test_identities:]
    write_manifest(root, scans, held_out, [])
    return root
