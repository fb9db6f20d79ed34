"""Footprints: which part of one surface lies over another, and the distances measured there.

Two footprints, for two kinds of ground truth:

- :func:`inside_footprint`: seen along one direction (the benchmark's). The ground truth of a
  processed face scan is an open surface facing the viewer (+z). A reconstruction can reach beyond
  it (past the chin, around the temples) even after the crop; the footprint-restricted metrics of
  :func:`imface.ops.metrics.evaluate_reconstruction` count only the reconstruction points whose
  projection along the viewing direction falls on the ground truth.
- :func:`footprint_distances`: the footprint of a raw input fitted in any pose, with no viewing
  direction: the part of the fit that lies over the input. Of a **mesh**, the fit points whose
  closest point on the mesh is not on its border (:func:`off_border`): a point beyond the border,
  or over a hole, is closest to the border's edges; exact and free of parameters. Of a **point
  set**, whose border is not known (:func:`over_sampled_surface`): the points whose offset from
  their nearest input sample q, **along q's tangent plane**, is at most ``FOOTPRINT_SPACINGS``
  times q's sampling spacing (the distance from q to its fourth-nearest other sample, as
  :func:`imface.ops.neighbourhoods.local_planes` measures it); unit-free, it follows the set's
  local density and reaches about two spacings past its border. Both only ever remove surface the
  input has no data under: a fit floating in front of the input stays inside (its offset is
  across the surface), so a poor fit still reads poor (for a point set, up to ``FOOTPRINT_REACH``
  of its size away: farther, the search stops and the input-to-fit distance tells the miss).

Shapes: points (N, 3); meshes (V, 3) vertices and (F, 3) int faces; all in one unit, and every
distance returned is in that unit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import igl
import numpy as np
import trimesh
from scipy.spatial import cKDTree

from imface.ops.neighbourhoods import local_planes
from imface.ops.sdf_sampling import sample_surface
from imface.ops.visibility import ray_intersector, unit_direction

#: A point lies over a point set within this many sampling spacings of its nearest sample, along
#: that sample's tangent plane. With 2, a point over the interior of a randomly (Poisson) sampled
#: plane is left out with a chance of 0.02% (measured, 50,000 samples); on a scanner's regular grid never.
FOOTPRINT_SPACINGS = 2.0
#: The spacing of a sample is the distance to its SPACING_NEIGHBOUR-th nearest other sample
#: (as :func:`imface.ops.neighbourhoods.local_planes`).
SPACING_NEIGHBOUR = 4
#: A point farther than this share of a point set's bounding-box diagonal from every one of its
#: samples is not over it (a fit that far off is a gross miss, which its input-to-fit distance shows).
FOOTPRINT_REACH = 0.25


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


def sampling_spacing(points: np.ndarray, tree: cKDTree | None = None) -> np.ndarray:
    """(N,) each sample's spacing: the distance to its fourth-nearest other sample of (N, 3) points
    (N >= 2; with fewer than 5 points, to the farthest one)."""
    points = np.asarray(points, dtype=np.float64)
    tree = cKDTree(points) if tree is None else tree
    count = min(SPACING_NEIGHBOUR + 1, len(points))
    return tree.query(points, k=count)[0][:, count - 1]


def plane_offsets(queries: np.ndarray, points: np.ndarray, normals: np.ndarray, tree: cKDTree | None = None,
                  reach: float = np.inf) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each query's nearest sample and its offset from it: (Q,) index into ``points``, (Q,) distance
    across the sample's plane (along its normal) and (Q,) distance along that plane; both offsets
    are inf for a query farther than ``reach`` from every sample (its index is then 0).

    queries: (Q, 3); points: (N, 3) samples with normals (N, 3) (unit length; sign ignored)."""
    queries = np.asarray(queries, dtype=np.float64).reshape(-1, 3)
    tree = cKDTree(np.asarray(points, dtype=np.float64)) if tree is None else tree
    distance, nearest = tree.query(queries, distance_upper_bound=reach)
    found = np.isfinite(distance)
    nearest = np.where(found, nearest, 0)
    offset = queries - tree.data[nearest]
    across = np.abs(np.einsum("qi,qi->q", offset, np.asarray(normals, dtype=np.float64)[nearest]))
    along = np.sqrt(np.maximum(np.einsum("qi,qi->q", offset, offset) - across**2, 0.0))
    across[~found], along[~found] = np.inf, np.inf
    return nearest, across, along


def search_reach(points: np.ndarray) -> float:
    """How far from a point set (N, 3) its footprint is looked for: ``FOOTPRINT_REACH`` times the
    diagonal of its bounding box (a nearest-sample search much farther is slow)."""
    points = np.asarray(points, dtype=np.float64)
    return FOOTPRINT_REACH * float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))


def over_sampled_surface(queries: np.ndarray, points: np.ndarray, normals: np.ndarray,
                         spacing: np.ndarray | None = None, spacings: float = FOOTPRINT_SPACINGS) -> np.ndarray:
    """(Q,) bool: whether each query lies over the surface that (N, 3) samples with (N, 3) unit
    normals cover: its offset along its nearest sample's plane is at most ``spacings`` times that
    sample's spacing ((N,), default :func:`sampling_spacing`). See the module docstring."""
    tree = cKDTree(np.asarray(points, dtype=np.float64))
    spacing = sampling_spacing(points, tree) if spacing is None else np.asarray(spacing)
    nearest, _, along = plane_offsets(queries, points, normals, tree, search_reach(points))
    return along <= spacings * spacing[nearest]


def _closest_on_mesh(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact distance (N,) from each point to a triangle mesh, the (N,) face its closest point lies
    on and that closest point (N, 3)."""
    squared, face, closest = igl.point_mesh_squared_distance(np.asarray(points, dtype=np.float64),
                                                             np.asarray(vertices, dtype=np.float64),
                                                             np.asarray(faces, dtype=np.int64))
    return np.sqrt(np.maximum(squared, 0.0)), np.asarray(face, dtype=np.int64), closest


def off_border(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, tolerance: float = 1e-7) -> np.ndarray:
    """(N,) bool: whether each point's closest point on an open triangle mesh lies off its border
    (not on an edge used by one face only, nor on a vertex of such an edge): the points over the mesh.

    points (N, 3), vertices (V, 3), faces (F, 3) int; ``tolerance``: barycentric coordinates below
    it count as on the edge (a closest point on an edge is exact up to rounding)."""
    _, face, closest = _closest_on_mesh(points, vertices, faces)
    return _closest_off_border(closest, face, vertices, faces, tolerance)


def _closest_off_border(closest: np.ndarray, face: np.ndarray, vertices: np.ndarray, faces: np.ndarray,
                        tolerance: float = 1e-7) -> np.ndarray:
    """:func:`off_border` from the closest points (N, 3) on the mesh and their faces (N,)."""
    vertices, faces = np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64)
    edges = np.sort(faces[:, [[1, 2], [2, 0], [0, 1]]], axis=2).reshape(-1, 2)  # edge k faces corner k
    _, inverse, counts = np.unique(edges, axis=0, return_inverse=True, return_counts=True)
    border_edge = (counts[inverse.reshape(-1)] == 1).reshape(-1, 3)
    border_vertex = np.zeros(len(vertices), dtype=bool)
    border_vertex[edges[border_edge.reshape(-1)].reshape(-1)] = True
    weights = _barycentric(closest, vertices[faces[face]])
    on_edge = (weights < tolerance) & border_edge[face]  # corner k's weight is 0 on the edge facing it
    at_vertex = (weights > 1.0 - tolerance) & border_vertex[faces[face]]
    return ~(on_edge | at_vertex).any(axis=1)


def _barycentric(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """(N, 3) barycentric coordinates of points (N, 3) in their triangles (N, 3, 3), clipped to [0, 1]."""
    u, v, w = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0], points - corners[:, 0]
    uu, uv, vv = (np.einsum("ij,ij->i", a, b) for a, b in ((u, u), (u, v), (v, v)))
    wu, wv = np.einsum("ij,ij->i", w, u), np.einsum("ij,ij->i", w, v)
    det = uu * vv - uv**2
    safe = np.where(det > 0, det, 1.0)
    b1, b2 = (vv * wu - uv * wv) / safe, (uu * wv - uv * wu) / safe
    return np.clip(np.stack([1.0 - b1 - b2, b1, b2], axis=1), 0.0, 1.0)


def _face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    corners = np.asarray(vertices, dtype=np.float64)[np.asarray(faces, dtype=np.int64)]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)


def _mean_abs_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(np.einsum("ij,ij->i", a, b)))) if len(a) else float("nan")


@dataclass(frozen=True)
class FootprintDistances:
    """A fit against its input, within the input's footprint. Distances in the meshes' unit.

    input_to_fit: (N,) every input sample's distance to the fit surface (exact, point to triangle);
    fit_to_input: (K,) the distance to the input of each fit sample over the input (to the input's
    triangles, or for a point set to the surface its points sample: the plane of the nearest point,
    plus how far along it the sample lies beyond that point's spacing); inside: (M,) bool, which of
    the M area-uniform fit samples lie over the input (K = inside.sum()); normal_consistency: mean
    |cos| between matched normals, averaged over both directions (None with nothing inside).
    """

    input_to_fit: np.ndarray
    fit_to_input: np.ndarray
    inside: np.ndarray
    normal_consistency: float | None

    @property
    def footprint_share(self) -> float:
        """The share of the fit's surface area that lies over the input."""
        return float(self.inside.mean())


def footprint_distances(fit_vertices: np.ndarray, fit_faces: np.ndarray, input_vertices: np.ndarray,
                        input_faces: np.ndarray | None, *, num_points: int = 50_000, seed: int = 0,
                        ) -> FootprintDistances:
    """Both one-way distances between a fitted mesh and its input, within the input's footprint
    (module docstring: :func:`off_border` for a mesh, :func:`over_sampled_surface` for a point set).

    Args:
        fit_vertices (V, 3), fit_faces (F, 3): the fit; input_vertices (V', 3) with input_faces
            (F', 3), or input_faces None for a point set (its points are its samples, at most
            ``num_points`` of them, drawn with ``seed``); one unit for both.
        num_points: area-uniform samples per mesh (generators seeded by ``seed``).

    Returns:
        :class:`FootprintDistances`. ValueError for empty or zero-area inputs.
    """
    if num_points < 1:
        raise ValueError(f"num_points must be >= 1, got {num_points}")
    fit_points, fit_normals = sample_surface(fit_vertices, fit_faces, num_points, np.random.default_rng(seed))
    if input_faces is not None:
        points, normals = sample_surface(input_vertices, input_faces, num_points, np.random.default_rng(seed))
        distance, input_face, closest = _closest_on_mesh(fit_points, input_vertices, input_faces)
        inside = _closest_off_border(closest, input_face, input_vertices, input_faces)
        fit_to_input = distance[inside]
        matched = _face_normals(input_vertices, input_faces)[input_face[inside]]
    else:
        points = np.asarray(input_vertices, dtype=np.float64).reshape(-1, 3)
        if len(points) < 2 * SPACING_NEIGHBOUR:
            raise ValueError(f"a point set needs at least {2 * SPACING_NEIGHBOUR} points, got {len(points)}")
        if len(points) > num_points:
            points = points[np.sort(np.random.default_rng(seed).choice(len(points), num_points, replace=False))]
        normals, spacing = local_planes(points)  # local_planes' spacing is sampling_spacing's
        nearest, across, along = plane_offsets(fit_points, points, normals, reach=search_reach(points))
        inside = along <= FOOTPRINT_SPACINGS * spacing[nearest]
        # distance_to_sampled_surface's measure, with the planes computed once
        fit_to_input = np.hypot(across, np.maximum(along - spacing[nearest], 0.0))[inside]
        matched = normals[nearest[inside]]
    input_to_fit, fit_face, _ = _closest_on_mesh(points, fit_vertices, fit_faces)
    consistency = None
    if inside.any():
        consistency = 0.5 * (_mean_abs_cosine(normals, _face_normals(fit_vertices, fit_faces)[fit_face])
                             + _mean_abs_cosine(fit_normals[inside], matched))
    return FootprintDistances(input_to_fit, fit_to_input, inside, consistency)
