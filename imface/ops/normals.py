"""Vertex and face-corner normals of triangle meshes (numpy, no mesh library).

One home for the normals every part of imface uses: the renderer's smooth-with-creases shading
(:func:`corner_normals`), and the angle- or area-weighted vertex normals of fitting, the
built-in face generator and its raw scans (:func:`vertex_normals`). Shapes are (V, 3) vertices
and (F, 3) int faces, counter-clockwise seen from outside; normals are unit length and unitless.
"""
from __future__ import annotations

import numpy as np


def vertex_normals(vertices: np.ndarray, faces: np.ndarray, weighting: str = "angle") -> np.ndarray:
    """Unit vertex normals of a triangle mesh, batch of one mesh.

    vertices: (V, 3) float, any unit; faces: (F, 3) int, counter-clockwise seen from outside.
    weighting: "angle" sums each face's unit normal weighted by its corner angle at the vertex
        (Thuermer & Wuethrich 1998, as trimesh computes them: independent of how the surface is
        split into triangles, a box corner gets the diagonal; same result as trimesh's, about 5x
        faster), computed in float64; "area" sums the faces' unnormalised normals (weighted by
        twice their area), computed in the vertices' own precision.
    Returns (V, 3) float64; vertices used by no face (or only degenerate ones) get (0, 0, 0).
    """
    if weighting == "area":
        return _area_weighted_normals(np.asarray(vertices), faces)
    if weighting != "angle":
        raise ValueError(f"weighting must be 'angle' or 'area', got {weighting!r}")
    verts = np.asarray(vertices, dtype=np.float64)
    return _accumulate_normals(len(verts), faces, *_face_normals_and_angles(verts, faces))


def _area_weighted_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) float64 unit sums of the faces' cross products (length = 2 * area) at each vertex."""
    corners = vertices[faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    ids = faces.reshape(-1)
    # three bincounts are much faster than np.add.at
    normals = np.stack(
        [np.bincount(ids, np.repeat(face_normals[:, axis], 3), minlength=len(vertices)) for axis in range(3)], axis=1
    )
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)


def _accumulate_normals(
    n_vertices: int, faces: np.ndarray, face_normals: np.ndarray, corner_angles: np.ndarray
) -> np.ndarray:
    """(V, 3) unit sums of each vertex's face normals, weighted by the angle at that corner."""
    weighted = face_normals[:, None, :] * corner_angles[:, :, None]  # (F, 3 corners, 3)
    ids = faces.reshape(-1)
    normals = np.stack(
        [np.bincount(ids, weighted[:, :, k].reshape(-1), minlength=n_vertices) for k in range(3)], axis=1
    )
    return _unit(normals)


def _face_normals_and_angles(verts: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F, 3) unit face normals (0 for degenerate faces) and (F, 3) corner angles in radians."""
    p0, p1, p2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    edges = [p1 - p0, p2 - p1, p0 - p2]  # edge k leaves corner k
    lengths = [np.sqrt(np.einsum("fk,fk->f", e, e)) for e in edges]
    face_normals = _unit(np.cross(edges[0], -edges[2]))
    corner_cos = []
    for k in range(3):  # the angle at corner k lies between edge k and the reversed edge k - 1
        denom = lengths[k] * lengths[k - 1]
        dot = -np.einsum("fk,fk->f", edges[k], edges[k - 1])
        corner_cos.append(np.divide(dot, denom, out=np.ones_like(dot), where=denom > 0))
    return face_normals, np.arccos(np.clip(np.stack(corner_cos, axis=1), -1.0, 1.0))


def _unit(vectors: np.ndarray) -> np.ndarray:
    """(..., 3) vectors scaled to length 1; zero vectors stay zero."""
    length = np.sqrt(np.einsum("...k,...k->...", vectors, vectors))[..., None]
    return np.divide(vectors, length, out=np.zeros_like(vectors), where=length > 0)


def corner_normals(
    vertices: np.ndarray, faces: np.ndarray, crease_angle: float = 40.0, max_pairs: int = 4_000_000
) -> np.ndarray:
    """Unit normals per face corner: smooth across the surface, split along sharp edges.

    vertices: (V, 3) float; faces: (F, 3) int. crease_angle: degrees. A corner's normal is the
    angle-weighted sum of the normals of the faces around its vertex that are within
    crease_angle of its own face (so box and cylinder edges stay crisp, scans stay smooth;
    180 = fully smooth, 0 = flat). max_pairs bounds the memory of one work chunk; a vertex
    shared by more than sqrt(max_pairs) corners (a huge fan) keeps its plain vertex normal.
    Returns (F, 3, 3) float64, [face, corner, xyz].
    """
    verts = np.asarray(vertices, dtype=np.float64)
    face_normals, corner_angles = _face_normals_and_angles(verts, faces)
    smooth = _accumulate_normals(len(verts), faces, face_normals, corner_angles)
    normals = smooth[faces]  # (F, 3, 3)
    cos_crease = np.cos(np.radians(min(max(crease_angle, 0.0), 180.0)))
    # Where every face is within half the crease angle of the vertex normal, every pair of faces
    # is within the crease angle, so the plain vertex normal is already the answer.
    cos_half = np.cos(np.radians(min(max(crease_angle, 0.0), 180.0) / 2.0))
    cosine = np.einsum("fck,fk->fc", normals, face_normals)
    sharp = np.zeros(len(verts), dtype=bool)
    sharp[faces[cosine < cos_half - 1e-9]] = True
    corner_vertex = faces.reshape(-1)
    degree = np.bincount(corner_vertex, minlength=len(verts))
    sharp &= degree ** 2 <= max_pairs
    corners = np.nonzero(sharp[corner_vertex])[0]
    if len(corners) == 0:
        return normals
    corners = corners[np.argsort(corner_vertex[corners], kind="stable")]  # grouped by vertex
    _, group_start, group_size = np.unique(corner_vertex[corners], return_index=True, return_counts=True)
    flat = normals.reshape(-1, 3)
    weight = corner_angles.reshape(-1)
    pairs_done = np.concatenate([[0], np.cumsum(group_size.astype(np.int64) ** 2)])
    first = 0
    while first < len(group_size):  # chunks of whole vertex groups, at most max_pairs pairs each
        fits = int(np.searchsorted(pairs_done, pairs_done[first] + max_pairs, side="right")) - 1
        last = max(first + 1, fits)
        starts, sizes = group_start[first:last], group_size[first:last]
        i_pos, j_pos = _pairs_within_groups(starts, sizes)
        face_i, face_j = face_normals[corners[i_pos] // 3], face_normals[corners[j_pos] // 3]
        keep = np.einsum("pk,pk->p", face_i, face_j) >= cos_crease - 1e-9
        contribution = face_j[keep] * weight[corners[j_pos[keep]], None]
        span = slice(int(starts[0]), int(starts[-1] + sizes[-1]))
        local = i_pos[keep] - span.start
        n_local = span.stop - span.start
        summed = np.stack(
            [np.bincount(local, contribution[:, k], minlength=n_local) for k in range(3)], axis=1
        )
        flat[corners[span]] = _unit(summed)
        first = last
    return flat.reshape(-1, 3, 3)


def _pairs_within_groups(starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All ordered pairs (i, j) of positions inside each group of consecutive positions.

    starts, sizes: (G,) int, group g covers positions starts[g] .. starts[g] + sizes[g] - 1, and
    the groups are back to back. Returns two (sum(sizes**2),) int arrays of positions.
    """
    size_at = np.repeat(sizes, sizes)  # per position: the size of its group
    start_at = np.repeat(starts, sizes)
    positions = np.arange(starts[0], starts[0] + size_at.size)
    i_pos = np.repeat(positions, size_at)
    k = np.arange(i_pos.size) - np.repeat(np.cumsum(size_at) - size_at, size_at)
    return i_pos, np.repeat(start_at, size_at) + k
