"""Each point's neighbourhood in a point set: its spread and local plane (no mesh needed)."""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def local_covariances(points: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Scatter matrices (N, 3, 3) of each point's ``count`` nearest points (itself included),
    about their mean, and the distances to them (N, count), nearest first (0: the point itself).
    ``count`` is capped at N."""

    points = np.asarray(points, dtype=np.float64)
    distance, index = cKDTree(points).query(points, k=min(count, len(points)))
    local = points[index] - points[index].mean(axis=1, keepdims=True)
    return np.einsum("nki,nkj->nij", local, local), distance


def local_planes(points: np.ndarray, neighbours: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Each point's local surface, from its ``neighbours`` nearest points (N, 3): unit normals
    (N, 3) (the direction of least spread) and the sampling spacing there (N,), the distance to
    the fourth-nearest other point (same units)."""
    scatter, distance = local_covariances(points, neighbours + 1)
    return np.linalg.eigh(scatter)[1][:, :, 0], distance[:, min(4, distance.shape[1] - 1)]


def distance_to_sampled_surface(queries: np.ndarray, points: np.ndarray, neighbours: int = 12) -> np.ndarray:
    """Distance (Q,) from queries (Q, 3) to the surface a point set (N, 3) samples: to the local
    plane of the nearest point (:func:`local_planes`), plus how far along that plane the query
    lies beyond the point's sampling spacing. Unlike the distance to the nearest point, the gaps
    between a sparse set's points count nothing, while a query past the set's border still does."""

    points, queries = np.asarray(points, dtype=np.float64), np.asarray(queries, dtype=np.float64)
    normals, spacing = local_planes(points, neighbours)
    nearest = cKDTree(points).query(queries)[1]
    offset = queries - points[nearest]
    across = np.abs(np.einsum("qi,qi->q", offset, normals[nearest]))
    along = np.sqrt(np.maximum(np.einsum("qi,qi->q", offset, offset) - across**2, 0.0))
    return np.hypot(across, np.maximum(along - spacing[nearest], 0.0))
