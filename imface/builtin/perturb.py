"""Scans as users hand them over: any unit and size, turned, with hair, neck and shoulders,
holes, noise, or seen from one side as a sparse point cloud.

Built from a processed scan's ``mesh.ply`` (model units, canonical frame: the face looks along
+z, the nose tip near (0, 0, 0.4)), for testing landmark-free fitting. Every function takes a
``numpy.random.Generator`` and returns new arrays (nothing is modified in place).

A perturbed input is ``x = scale * (model_point @ R.T) + t``: ``scale`` input units per model
unit (1 model unit = 100 mm), so the model's own view of it is ``(x - t) @ R / scale``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from imface.frame import MM_PER_INPUT_UNIT, MM_PER_UNIT
from imface.ops.rigid import random_rotation
from imface.ops.visibility import ray_intersector


@dataclass(frozen=True)
class Similarity:
    """``x = scale * p @ rotation.T + translation`` (model point p to input x); unit: the named
    unit the scale was drawn around; factor: the extra size factor on top of it."""

    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    unit: str
    factor: float

    def apply(self, points: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(points, dtype=np.float64) @ self.rotation.T + self.translation

    def to_dict(self) -> dict:
        return {"scale": self.scale, "rotation": self.rotation.tolist(), "translation": self.translation.tolist(),
                "unit": self.unit, "factor": self.factor}


def random_similarity(rng: np.random.Generator, *, max_angle_deg: float = 40.0,
                      factor_range: tuple[float, float] = (0.3, 3.0)) -> Similarity:
    """A named unit at random, times a log-uniform factor, a rotation of up to ``max_angle_deg``
    about a random axis, and a shift of up to about a face's size."""
    unit = str(rng.choice(list(MM_PER_INPUT_UNIT)))
    factor = float(np.exp(rng.uniform(np.log(factor_range[0]), np.log(factor_range[1]))))
    scale = MM_PER_UNIT / MM_PER_INPUT_UNIT[unit] * factor  # input units per model unit, times the factor
    return Similarity(scale, random_rotation(rng, max_angle_deg), rng.uniform(-1, 1, 3) * scale, unit, factor)


def _ellipsoid(centre, radii, subdivisions: int = 4) -> trimesh.Trimesh:
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions)
    return trimesh.Trimesh(sphere.vertices * np.asarray(radii) + np.asarray(centre), sphere.faces, process=False)


def _keep(mesh: trimesh.Trimesh, mask: np.ndarray) -> trimesh.Trimesh:
    faces = mesh.faces[mask[mesh.faces].all(axis=1)]
    kept = trimesh.Trimesh(mesh.vertices, faces, process=False)
    kept.remove_unreferenced_vertices()
    return kept


def clutter(rng: np.random.Generator, *, hair: bool = True, shoulders: bool = True) -> trimesh.Trimesh:
    """Hair- and shoulder-like surfaces around a canonical face (model units): a bumpy skull cap
    above the forehead and behind the face (strands ~5 mm), a neck below the chin, and two
    shoulders. They stay out of the face itself: the cap starts 8 cm above the nose, the neck
    4 cm behind the chin."""
    parts = []
    if hair:
        cap = _ellipsoid((0.0, 0.15, -0.45), (0.85, 1.05, 0.95), subdivisions=5)
        cap = _keep(cap, (cap.vertices[:, 1] > 0.8) | (cap.vertices[:, 2] < -0.5))
        v = cap.vertices
        bumps = 0.02 * np.sin(v[:, 0] * 60 + rng.uniform(0, 6)) * np.sin(v[:, 1] * 45 + rng.uniform(0, 6))
        cap.vertices = v + (bumps + 0.01 * rng.standard_normal(len(v)))[:, None] * cap.vertex_normals
        parts.append(cap)
    if shoulders:
        neck = trimesh.creation.cylinder(radius=0.5, height=1.2, sections=48)
        neck.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
        neck.apply_translation((0.0, -1.55, -0.45))
        parts.append(_keep(neck, neck.vertices[:, 1] < -1.05))
        for side in (-1.0, 1.0):
            shoulder = _ellipsoid((side * 1.5, -2.1, -0.5), (1.0, 0.45, 0.7))
            parts.append(_keep(shoulder, shoulder.vertices[:, 1] > -2.3))
    if not parts:
        return trimesh.Trimesh()
    return trimesh.util.concatenate(parts)


def punch_holes(vertices: np.ndarray, faces: np.ndarray, rng: np.random.Generator, *, count: int = 4,
                radius: float = 0.06) -> np.ndarray:
    """Faces (F', 3) left after removing every triangle whose centroid lies within ``radius``
    (model units) of ``count`` random vertices."""
    centroids = vertices[faces].mean(axis=1)
    centres = vertices[rng.choice(len(vertices), count, replace=False)]
    gone = np.zeros(len(faces), dtype=bool)
    for centre in centres:
        gone |= np.linalg.norm(centroids - centre, axis=1) < radius
    return faces[~gone]


def add_noise(vertices: np.ndarray, faces: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Vertices moved along their normals by N(0, sigma) (model units), as scanner noise."""
    normals = trimesh.Trimesh(vertices, faces, process=False).vertex_normals
    return vertices + rng.normal(0.0, sigma, len(vertices))[:, None] * normals


def single_view_cloud(vertices: np.ndarray, faces: np.ndarray, rng: np.random.Generator, *, count: int,
                      max_angle_deg: float = 40.0, sigma: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """What one depth camera sees: ``count`` points (and the view direction (3,)) sampled on
    the part of the mesh visible from a direction within ``max_angle_deg`` of +z (first hit of
    a ray per sample), with N(0, sigma) depth noise along the view; model units."""
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    view = random_rotation(rng, max_angle_deg) @ np.array([0.0, 0.0, 1.0])
    points, face_ids = trimesh.sample.sample_surface(mesh, count * 4, seed=int(rng.integers(2**31)))
    facing = np.einsum("ij,j->i", mesh.face_normals[face_ids], view) > 0.05
    points = points[facing]
    origins = points + view * 1e-4
    hit = ray_intersector(mesh).intersects_any(origins, np.broadcast_to(view, origins.shape))
    visible = points[~hit]
    visible = visible[rng.choice(len(visible), min(count, len(visible)), replace=False)]
    return visible + rng.normal(0.0, sigma, (len(visible), 1)) * view, view
