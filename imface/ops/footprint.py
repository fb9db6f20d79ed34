"""Footprint test: which points lie over a mesh when both are seen along one direction.

The ground truth of a face scan is an open surface facing the viewer (+z). A
reconstruction can reach beyond it (past the chin, around the temples) even after the
crop; the footprint-restricted metrics of :func:`imface.ops.metrics.evaluate_reconstruction`
count only the reconstruction points whose projection along the viewing direction falls
on the ground truth.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import trimesh

from imface.ops.visibility import ray_intersector, unit_direction


def inside_footprint(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray,
                     direction: Sequence[float] | np.ndarray = (0.0, 0.0, 1.0)) -> np.ndarray:
    """Whether each point projects onto the mesh along ``direction``.

    A ray parallel to ``direction`` is cast through every point, from beyond the mesh on
    the viewer's side toward the other side; the point is inside when the ray hits a
    triangle (so holes in the mesh are outside its footprint).

    Args:
        points: (N, 3) float, the mesh's unit.
        vertices: (V, 3) float; faces: (F, 3) int: the mesh (for example a ground truth).
        direction: (3,) viewing direction (normalised here).

    Returns:
        (N,) bool, True where the point's projection lies on the mesh.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    direction = unit_direction(direction)
    if len(points) == 0 or len(faces) == 0:
        return np.zeros(len(points), dtype=bool)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False, validate=False)
    heights = np.concatenate((vertices, points)) @ direction
    # Every ray starts above the highest vertex or point (1 unit of margin per extent).
    start = float(heights.max()) + 1.0 + float(np.ptp(heights))
    origins = points + (start - points @ direction)[:, None] * direction
    rays = np.broadcast_to(-direction, points.shape).copy()
    return np.asarray(ray_intersector(mesh).intersects_any(origins, rays), dtype=bool)
