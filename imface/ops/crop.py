"""Cut a triangle mesh to a ball, splitting the triangles that cross the sphere."""
from __future__ import annotations

import numpy as np


def _edge_sphere_parameter(inside: np.ndarray, outside: np.ndarray, center: np.ndarray, radius: float) -> np.ndarray:
    """Parameter s in [0, 1] where ``inside + s (outside - inside)`` meets the sphere.

    inside: (E, 3) points with |p - center| <= radius; outside: (E, 3) points beyond it.
    Solves |a - c + s d|^2 = r^2 for the root in [0, 1] (the larger root, since the
    constant term |a - c|^2 - r^2 <= 0), in the cancellation-free form.
    """
    direction = outside - inside
    offset = inside - center
    a = np.einsum("ij,ij->i", direction, direction)
    b = np.einsum("ij,ij->i", direction, offset)
    c = np.einsum("ij,ij->i", offset, offset) - radius * radius
    root = np.sqrt(np.maximum(b * b - a * c, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(b <= 0.0, (root - b) / a, -c / (b + root))
    return np.clip(np.nan_to_num(s, nan=0.0), 0.0, 1.0)


def crop_to_sphere(
    vertices: np.ndarray, faces: np.ndarray, center: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the part of a triangle mesh inside the ball |x - center| <= radius.

    Triangles with all three vertices inside are kept unchanged, triangles with none
    inside are dropped (a triangle larger than the sphere whose vertices all lie
    outside is therefore dropped even if it passes through the ball; scans are far
    finer than that). Triangles crossing the sphere are split: each cut edge gets a new
    vertex exactly on the sphere (edge-sphere intersection, shared by both triangles of
    the edge so the result stays connected); a triangle with one vertex inside becomes
    one triangle, with two inside a quad = two triangles. Orientation (winding) is kept.
    Unused vertices are removed, and triangles that collapse (a vertex exactly on the
    sphere) are dropped.

    Args:
        vertices: (V, 3) float, any length unit.
        faces: (F, 3) int vertex indices.
        center: (3,) centre of the sphere, same unit.
        radius: sphere radius, same unit, > 0.

    Returns:
        vertices (V', 3) float64 (kept originals first, in their original order, then
        the new boundary vertices) and faces (F', 3) int64.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    center = np.asarray(center, dtype=np.float64).reshape(3)
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius}")
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {vertices.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError("faces index vertices that do not exist")

    n_vertices = len(vertices)
    inside = np.einsum("ij,ij->i", vertices - center, vertices - center) <= radius * radius
    face_inside = inside[faces]  # (F, 3)
    inside_count = face_inside.sum(axis=1)

    whole = faces[inside_count == 3]
    # Roll each crossing triangle so the lone vertex (inside for 1, outside for 2) comes
    # first; a cyclic roll keeps the winding.
    lone_is_inside = inside_count == 1
    crossing = (inside_count == 1) | (inside_count == 2)
    crossing_faces = faces[crossing]
    lone_flags = np.where(lone_is_inside[crossing, None], face_inside[crossing], ~face_inside[crossing])
    lone_position = np.argmax(lone_flags, axis=1)
    roll = (lone_position[:, None] + np.arange(3)[None, :]) % 3
    rolled = np.take_along_axis(crossing_faces, roll, axis=1)  # (C, 3): lone, next, next-next
    one_inside = lone_is_inside[crossing]

    # Cut edges: lone->next and lone->next-next; key each by (inside vertex, outside vertex).
    lone = np.repeat(rolled[:, 0], 2)
    others = rolled[:, 1:].reshape(-1)
    lone_inside_per_edge = np.repeat(one_inside, 2)
    edge_in = np.where(lone_inside_per_edge, lone, others)
    edge_out = np.where(lone_inside_per_edge, others, lone)
    keys = edge_in * n_vertices + edge_out
    unique_keys, edge_to_new = np.unique(keys, return_inverse=True)
    unique_in = unique_keys // n_vertices
    unique_out = unique_keys % n_vertices
    s = _edge_sphere_parameter(vertices[unique_in], vertices[unique_out], center, radius)
    new_vertices = vertices[unique_in] + s[:, None] * (vertices[unique_out] - vertices[unique_in])
    # A cut at s == 0 is the inside vertex itself (it sits on the sphere): reuse it.
    new_index = np.where(s > 0.0, n_vertices + np.arange(len(unique_keys)), unique_in)
    cut = new_index[edge_to_new].reshape(-1, 2)  # (C, 2): cut point on lone->next, lone->next-next

    # One inside (lone = a): triangle (a, cut_ab, cut_ac).
    tri_one = np.stack([rolled[:, 0], cut[:, 0], cut[:, 1]], axis=1)[one_inside]
    # Two inside: rolled = (c, a, b) with c outside, winding c -> a -> b. The inside part is
    # the quad a -> b -> cut(c,b) -> cut(c,a), split along its a-cut(c,b) diagonal.
    two = ~one_inside
    c_a = cut[two, 0]  # cut on edge c->a
    c_b = cut[two, 1]  # cut on edge c->b
    a = rolled[two, 1]
    b = rolled[two, 2]
    tri_two = np.concatenate([np.stack([a, b, c_b], axis=1), np.stack([a, c_b, c_a], axis=1)])

    all_vertices = np.concatenate([vertices, new_vertices])
    new_faces = np.concatenate([whole, tri_one, tri_two]).astype(np.int64)
    collapsed = (
        (new_faces[:, 0] == new_faces[:, 1])
        | (new_faces[:, 1] == new_faces[:, 2])
        | (new_faces[:, 0] == new_faces[:, 2])
    )
    new_faces = new_faces[~collapsed]
    return remove_unused_vertices(all_vertices, new_faces)


def remove_unused_vertices(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove vertices no face uses, keeping the order of the others; reindex faces."""
    used = np.zeros(len(vertices), dtype=bool)
    used[faces.reshape(-1)] = True
    remap = np.cumsum(used) - 1
    return vertices[used], remap[faces].reshape(-1, 3).astype(np.int64)
