"""Hidden-surface removal by ray casting toward the viewer (paper Sec. 3.5).

A vertex is visible when a ray from it toward the viewer leaves the mesh without
hitting anything; nostrils, the mouth cavity, eye sockets and overhangs fail that.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import trimesh

from imface.ops.crop import remove_unused_vertices


def unit_direction(direction: Sequence[float] | np.ndarray) -> np.ndarray:
    """(3,) float64 unit vector of a viewing direction; ValueError for a zero vector."""
    direction = np.asarray(direction, dtype=np.float64).reshape(3)
    norm = np.linalg.norm(direction)
    if not norm > 0:
        raise ValueError("direction must be a non-zero vector")
    return direction / norm


def ray_intersector(mesh: trimesh.Trimesh):
    """Embree (via trimesh + embreex) when available, else trimesh's pure-numpy intersector."""
    try:
        # here: the fallback needs the import to fail at call time
        from trimesh.ray.ray_pyembree import RayMeshIntersector

        return RayMeshIntersector(mesh)
    except ImportError:  # embreex missing: correct but much slower
        # here: the fallback needs the import to fail at call time
        from trimesh.ray.ray_triangle import RayMeshIntersector

        return RayMeshIntersector(mesh)


def visible_vertices(
    vertices: np.ndarray,
    faces: np.ndarray,
    direction: Sequence[float] | np.ndarray = (0.0, 0.0, 1.0),
    eps: float = 0.01,
) -> np.ndarray:
    """Which vertices can see infinity along ``direction`` (the viewer, +z by default).

    A ray is cast from every vertex ``v`` starting at ``v + eps * direction`` (so it
    cannot hit the vertex's own triangles); the vertex is hidden if the ray hits any
    triangle, i.e. some surface lies farther than ``eps`` in front of it.

    Args:
        vertices: (V, 3) float, any length unit.
        faces: (F, 3) int.
        direction: (3,) viewing direction, normalised here.
        eps: start offset in the mesh's units (the pipeline works in millimetres:
            0.01 mm, well above embree's float32 resolution on a 200 mm face).

    Returns:
        (V,) bool, True where visible. Vertices no face uses are visible unless a
        triangle is in front of them.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    direction = unit_direction(direction)
    if len(vertices) == 0 or len(faces) == 0:
        return np.ones(len(vertices), dtype=bool)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False, validate=False)
    intersector = ray_intersector(mesh)
    origins = vertices + eps * direction
    directions = np.broadcast_to(direction, vertices.shape).copy()
    return ~intersector.intersects_any(origins, directions)


def remove_hidden_surface(
    vertices: np.ndarray,
    faces: np.ndarray,
    direction: Sequence[float] | np.ndarray = (0.0, 0.0, 1.0),
    eps: float = 0.01,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop the faces that touch a hidden vertex, then the vertices no face uses.

    See :func:`visible_vertices` for ``direction`` and ``eps``.

    Returns:
        vertices (V', 3) float64, faces (F', 3) int64, and kept_index (V',) int64 mapping
        each new vertex to its index in the input (new order follows the old one).
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    visible = visible_vertices(vertices, faces, direction=direction, eps=eps)
    kept_faces = faces[visible[faces].all(axis=1)]
    used = np.zeros(len(vertices), dtype=bool)
    used[kept_faces.reshape(-1)] = True
    kept_index = np.flatnonzero(used).astype(np.int64)
    new_vertices, new_faces = remove_unused_vertices(vertices, kept_faces)
    return new_vertices, new_faces, kept_index
