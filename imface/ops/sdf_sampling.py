"""Training samples for the SDF of a height-field face (paper Sec. 3.5).

Surface points with normals, uniform points in the ball, optional near-surface points,
and the signed distance + gradient of any query point to a height-field mesh, where
"inside" means behind the surface (the sign follows the z axis, not a watertight volume).
All functions are unit-agnostic and vectorised; arrays come back as float64.
"""
from __future__ import annotations

import igl
import numpy as np

#: Query points per libigl call: bounds the temporary memory for huge batches.
_QUERY_CHUNK = 1 << 20


def _mesh_arrays(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.ascontiguousarray(vertices, dtype=np.float64)
    faces = np.ascontiguousarray(faces, dtype=np.int64).reshape(-1, 3)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {vertices.shape}")
    if len(faces) == 0:
        raise ValueError("the mesh has no faces")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ValueError("faces index vertices that do not exist")
    return vertices, faces


def _face_normals_toward_z(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit face normals (F, 3) flipped so n_z >= 0, and face areas (F,)."""
    corners = vertices[faces]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    length = np.linalg.norm(cross, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        normals = cross / length[:, None]
    # Zero-area faces have no normal; +z is the height field's "up".
    normals[~(length > 0)] = (0.0, 0.0, 1.0)
    normals[normals[:, 2] < 0] *= -1.0
    return normals, 0.5 * length


def _spread_bits(values: np.ndarray) -> np.ndarray:
    """Insert two zero bits after each of the low 10 bits of ``values`` (uint64)."""
    values = values & np.uint64(0x3FF)
    values = (values | (values << np.uint64(16))) & np.uint64(0x030000FF)
    values = (values | (values << np.uint64(8))) & np.uint64(0x0300F00F)
    values = (values | (values << np.uint64(4))) & np.uint64(0x030C30C3)
    return (values | (values << np.uint64(2))) & np.uint64(0x09249249)


def _morton_order(points: np.ndarray) -> np.ndarray:
    """Permutation (N,) sorting points along a Z-order curve on a 1024^3 grid over their bounding box.

    Nearby queries then walk the same AABB nodes one after another; that makes libigl's
    batch query 2-4x faster than on randomly ordered samples.
    """
    low = points.min(axis=0)
    extent = float(np.max(points.max(axis=0) - low))
    cells = np.floor((points - low) * (1023.0 / extent if extent > 0 else 0.0)).astype(np.uint64)
    code = (
        _spread_bits(cells[:, 0])
        | (_spread_bits(cells[:, 1]) << np.uint64(1))
        | (_spread_bits(cells[:, 2]) << np.uint64(2))
    )
    return np.argsort(code, kind="stable")


def sample_surface(
    vertices: np.ndarray, faces: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted uniform points on the mesh surface and their face normals.

    Args:
        vertices: (V, 3) float, any unit; faces: (F, 3) int.
        count: number of points.
        rng: numpy random generator.

    Returns:
        points (count, 3) and unit normals (count, 3) of the faces they lie on, flipped
        so n_z >= 0 (toward the viewer).
    """
    vertices, faces = _mesh_arrays(vertices, faces)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    normals, areas = _face_normals_toward_z(vertices, faces)
    cumulative = np.cumsum(areas)
    if not cumulative[-1] > 0:
        raise ValueError("the mesh has zero surface area")
    # Inverse-CDF face choice; side="right" never picks a zero-area face.
    face_index = np.searchsorted(cumulative, rng.uniform(0.0, cumulative[-1], count), side="right")
    face_index = np.minimum(face_index, len(faces) - 1)
    # Uniform barycentric coordinates: fold the unit square's upper triangle back in.
    u, v = rng.uniform(0.0, 1.0, (2, count))
    folded = u + v > 1.0
    u[folded], v[folded] = 1.0 - u[folded], 1.0 - v[folded]
    corners = vertices[faces[face_index]]
    points = corners[:, 0] + u[:, None] * (corners[:, 1] - corners[:, 0]) + v[:, None] * (corners[:, 2] - corners[:, 0])
    return points, normals[face_index]


def sample_in_sphere(count: int, rng: np.random.Generator, radius: float = 1.0) -> np.ndarray:
    """(count, 3) points uniform in the ball of ``radius`` around the origin."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    directions = rng.standard_normal((count, 3))
    directions /= np.maximum(np.linalg.norm(directions, axis=1, keepdims=True), 1e-300)
    # Radius CDF in 3-D is (r/R)^3, so r = R u^(1/3).
    return directions * (radius * np.cbrt(rng.uniform(0.0, 1.0, count)))[:, None]


def sample_near_surface(
    points: np.ndarray,
    normals: np.ndarray,
    count: int,
    sigma: float,
    rng: np.random.Generator,
    *,
    along_normal: bool = False,
) -> np.ndarray:
    """Perturbed copies of surface points (count, 3).

    ``count`` points are drawn (with replacement) from ``points`` (N, 3) and moved by
    Gaussian noise of standard deviation ``sigma`` (same unit as the points): isotropic
    per axis by default, or only along the point's unit normal from ``normals`` (N, 3)
    when ``along_normal`` is set.
    """
    points = np.asarray(points, dtype=np.float64)
    normals = np.asarray(normals, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or normals.shape != points.shape:
        raise ValueError(f"points and normals must both have shape (N, 3), got {points.shape} and {normals.shape}")
    if count < 0 or sigma < 0:
        raise ValueError("count and sigma must be >= 0")
    if count and not len(points):
        raise ValueError("no surface points to perturb")
    chosen = rng.integers(0, len(points), count)
    if along_normal:
        offsets = normals[chosen] * (sigma * rng.standard_normal(count))[:, None]
    else:
        offsets = sigma * rng.standard_normal((count, 3))
    return points[chosen] + offsets


def signed_distance(
    points: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    *,
    surface_tol: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signed distance, its gradient and the closest surface point for a height-field mesh.

    ``|sdf|`` is the exact distance to the closest surface point ``c`` (libigl AABB
    tree). The sign is + when ``(p - c)_z > 0`` (in front of the surface, toward the
    viewer) and - otherwise. The gradient is ``sign * (p - c) / |p - c|``, which always
    has z >= 0; for points on the surface (``|p - c| <= surface_tol``) it is the closest
    face's unit normal oriented toward +z.

    Args:
        points: (N, 3) query points, same unit as the mesh; far points are fine
            (memory is O(N), queries are chunked).
        vertices: (V, 3) float; faces: (F, 3) int.
        surface_tol: distance below which a point counts as on the surface; default
            1e-9 times the mesh's bounding-box diagonal.

    Returns:
        sdf (N,), grad (N, 3) unit vectors, closest (N, 3), all float64.
    """
    vertices, faces = _mesh_arrays(vertices, faces)
    points = np.ascontiguousarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError("points contain NaN or infinite values")
    if surface_tol is None:
        surface_tol = 1e-9 * float(np.linalg.norm(vertices.max(axis=0) - vertices.min(axis=0)))

    tree = igl.AABB()
    tree.init(vertices, faces)
    face_index = np.empty(len(points), dtype=np.int64)
    closest = np.empty_like(points)
    order = _morton_order(points) if len(points) else np.zeros(0, dtype=np.int64)
    for start in range(0, len(points), _QUERY_CHUNK):  # chunks of a million, not a per-point loop
        chunk = order[start : start + _QUERY_CHUNK]
        _, face_index[chunk], closest[chunk] = tree.squared_distance(
            vertices, faces, np.ascontiguousarray(points[chunk])
        )

    offset = points - closest
    distance = np.linalg.norm(offset, axis=1)  # from the closest point, so sdf, grad and c agree exactly
    sign = np.where(offset[:, 2] > 0.0, 1.0, -1.0)
    on_surface = distance <= surface_tol
    with np.errstate(divide="ignore", invalid="ignore"):
        grad = sign[:, None] * offset / distance[:, None]
    if np.any(on_surface):
        normals, _ = _face_normals_toward_z(vertices, faces[face_index[on_surface]])
        grad[on_surface] = normals
    return sign * distance, grad, closest
