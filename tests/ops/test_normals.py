"""Vertex and corner normals against naive per-face loops (and trimesh, which weights by angle too)."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

from imface.ops.normals import corner_normals, vertex_normals


def _sphere(subdivisions: int = 4) -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)


def test_vertex_normals_match_a_naive_loop_and_trimesh() -> None:
    mesh = trimesh.creation.capsule(height=1.0, radius=0.5, count=[8, 8])
    verts = mesh.vertices
    expected = np.zeros_like(verts)
    for face in mesh.faces:  # naive reference: each face's unit normal times its corner angle
        a, b, c = verts[face]
        n = np.cross(b - a, c - a)
        n /= np.linalg.norm(n)
        for i in range(3):
            here, nxt, prv = verts[face[i]], verts[face[(i + 1) % 3]], verts[face[(i + 2) % 3]]
            u, w = nxt - here, prv - here
            angle = np.arccos(np.dot(u, w) / np.linalg.norm(u) / np.linalg.norm(w))
            expected[face[i]] += angle * n
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    got = vertex_normals(verts, mesh.faces)
    assert np.allclose(got, expected, atol=1e-12)
    assert np.allclose(got, mesh.vertex_normals, atol=1e-9)  # trimesh weights by angle too


def test_vertex_normals_ignore_degenerate_faces() -> None:
    verts = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0], [5, 5, 5]])
    faces = np.array([[0, 1, 2], [0, 1, 3]])  # the second face has no area
    normals = vertex_normals(verts, faces)
    assert np.allclose(normals[:3], [0, 0, 1])
    assert np.allclose(normals[3:], 0.0)  # only a degenerate face / no face at all


def _naive_corner_normals(verts: np.ndarray, faces: np.ndarray, crease_angle: float) -> np.ndarray:
    """Reference: loop over corners and over the faces that share the corner's vertex."""
    mesh = trimesh.Trimesh(verts, faces, process=False)
    normals, angles = mesh.face_normals, mesh.face_angles
    out = np.zeros((len(faces), 3, 3))
    for f, face in enumerate(faces):
        for c, vertex in enumerate(face):
            total = np.zeros(3)
            for g in np.nonzero((faces == vertex).any(axis=1))[0]:
                if normals[g] @ normals[f] >= np.cos(np.radians(crease_angle)) - 1e-9:
                    total += angles[g, list(faces[g]).index(vertex)] * normals[g]
            out[f, c] = total / np.linalg.norm(total)
    return out


@pytest.mark.parametrize("crease_angle", [10.0, 40.0, 100.0, 180.0])
def test_corner_normals_match_a_naive_loop(crease_angle: float) -> None:
    shapes = [trimesh.creation.cylinder(1.0, 2.0, sections=12), trimesh.creation.box((1.0, 2.0, 3.0)),
              trimesh.creation.icosphere(1), trimesh.creation.cone(1.0, 2.0, sections=10)]
    for shape in shapes:
        expected = _naive_corner_normals(shape.vertices, shape.faces, crease_angle)
        for max_pairs in (120, 4_000_000):  # small chunks exercise the chunking
            got = corner_normals(shape.vertices, shape.faces, crease_angle, max_pairs=max_pairs)
            assert np.allclose(got, expected, atol=1e-9)


def test_corner_normals_split_box_edges_and_keep_spheres_smooth() -> None:
    box = trimesh.creation.box((1.0, 2.0, 3.0))
    flat = corner_normals(box.vertices, box.faces, crease_angle=40.0)
    assert np.allclose(flat, box.face_normals[:, None, :].repeat(3, axis=1), atol=1e-12)
    sphere = _sphere(2)
    smooth = corner_normals(sphere.vertices, sphere.faces, crease_angle=40.0)
    assert np.allclose(smooth, vertex_normals(sphere.vertices, sphere.faces)[sphere.faces])


def test_corner_normals_leave_huge_fans_smooth() -> None:
    angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    rim = np.stack([np.cos(angles), np.sin(angles), np.zeros_like(angles)], axis=1)
    verts = np.vstack([[0.0, 0.0, 1.0], rim])  # a cone: apex 0, 40 faces around it
    faces = np.stack([np.zeros(40, int), 1 + np.arange(40), 1 + (np.arange(40) + 1) % 40], axis=1)
    apex_smooth = vertex_normals(verts, faces)[0]
    capped = corner_normals(verts, faces, crease_angle=10.0, max_pairs=100)  # 40**2 > 100
    assert np.allclose(capped[:, 0], apex_smooth)
    split = corner_normals(verts, faces, crease_angle=10.0)
    assert not np.allclose(split[:, 0], apex_smooth)


def _naive_area_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Reference: the area-weighted sum of face normals, one face at a time."""
    expected = np.zeros_like(vertices, dtype=np.float64)
    for a, b, c in faces:
        expected[[a, b, c]] += np.cross(vertices[b] - vertices[a], vertices[c] - vertices[a])
    return expected / np.linalg.norm(expected, axis=1, keepdims=True)


def test_area_weighted_normals_match_a_naive_loop() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=2)
    vertices = sphere.vertices * np.random.default_rng(0).uniform(0.8, 1.2, (len(sphere.vertices), 1))
    ours = vertex_normals(vertices, sphere.faces, weighting="area")
    np.testing.assert_allclose(ours, _naive_area_normals(vertices, sphere.faces), atol=1e-12)


def test_area_weighted_normals_of_an_open_sheet_match_a_naive_loop() -> None:
    xs, ys = np.meshgrid(np.linspace(-1, 1, 9), np.linspace(-1, 1, 7))
    vertices = np.column_stack([xs.ravel(), ys.ravel(), 0.3 * np.sin(2 * xs.ravel()) * np.cos(ys.ravel())])
    ids = np.arange(63).reshape(7, 9)
    a, b, c, d = ids[:-1, :-1].ravel(), ids[:-1, 1:].ravel(), ids[1:, :-1].ravel(), ids[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    ours = vertex_normals(vertices, faces, weighting="area")
    np.testing.assert_allclose(ours, _naive_area_normals(vertices, faces), atol=1e-12)
    assert (ours[:, 2] > 0).all()  # counter-clockwise seen from +z


def test_area_weighting_keeps_float32_products_and_unused_vertices_zero() -> None:
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [3, 3, 3]], dtype=np.float32)
    normals = vertex_normals(vertices, np.array([[0, 1, 2]]), weighting="area")
    assert normals.dtype == np.float64
    assert np.allclose(normals[:3], [0, 0, 1]) and np.allclose(normals[3], 0.0)


def test_unknown_weighting_is_refused() -> None:
    with pytest.raises(ValueError, match="weighting"):
        vertex_normals(np.zeros((3, 3)), np.array([[0, 1, 2]]), weighting="uniform")
