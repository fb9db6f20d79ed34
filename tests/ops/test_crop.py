"""Sphere crop, checked against a per-triangle reference and the analytic disc area."""
from __future__ import annotations

import numpy as np
import pytest

from imface.ops.crop import crop_to_sphere, remove_unused_vertices
from tests.ops.meshes import grid_mesh


def _triangle_keys(vertices: np.ndarray, faces: np.ndarray) -> set[tuple]:
    """Triangles as rotation-normalised tuples of coordinates (keeps the winding)."""
    keys = set()
    for face in faces:
        corners = [tuple(vertices[i]) for i in face]
        start = corners.index(min(corners))
        keys.add(tuple(corners[start:] + corners[:start]))
    return keys


def _normals_z(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    corners = vertices[faces]
    return np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])[:, 2]


def _area(vertices: np.ndarray, faces: np.ndarray) -> float:
    corners = vertices[faces]
    return 0.5 * float(np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1).sum())


CENTER = np.array([0.1, -0.2, 0.3])
RADIUS = 1.0


@pytest.fixture(scope="module")
def bumpy() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    vertices, faces = grid_mesh(1.5, 60, bump=0.1)
    cropped_vertices, cropped_faces = crop_to_sphere(vertices, faces, CENTER, RADIUS)
    return vertices, faces, cropped_vertices, cropped_faces


def test_everything_kept_is_inside(bumpy) -> None:
    _, _, vertices, faces = bumpy
    assert len(faces) > 0
    assert np.linalg.norm(vertices - CENTER, axis=1).max() <= RADIUS + 1e-9
    assert np.unique(faces).size == len(vertices)  # no unused vertices


def test_inside_triangles_kept_and_crossing_ones_split(bumpy) -> None:
    vertices, faces, new_vertices, new_faces = bumpy
    # Naive reference: classify every triangle one by one.
    fully_inside, one_inside, two_inside = [], 0, 0
    for face in faces:
        inside = [np.linalg.norm(vertices[i] - CENTER) <= RADIUS for i in face]
        if all(inside):
            fully_inside.append(face)
        elif sum(inside) == 1:
            one_inside += 1
        elif sum(inside) == 2:
            two_inside += 1
    expected = _triangle_keys(vertices, np.array(fully_inside))
    produced = _triangle_keys(new_vertices, new_faces)
    assert expected <= produced
    assert len(new_faces) == len(fully_inside) + one_inside + 2 * two_inside


def test_new_vertices_lie_on_the_sphere_and_are_shared(bumpy) -> None:
    vertices, _, new_vertices, new_faces = bumpy
    original = {tuple(v) for v in vertices}
    is_new = np.array([tuple(v) not in original for v in new_vertices])
    assert is_new.sum() > 50
    np.testing.assert_allclose(np.linalg.norm(new_vertices[is_new] - CENTER, axis=1), RADIUS, atol=1e-9)
    # A cut edge is shared by two triangles, so its sphere point must exist only once.
    assert len(np.unique(new_vertices.round(12), axis=0)) == len(new_vertices)
    # The open boundary (edges used once) consists of sphere points only: no cracks inside.
    edges = np.sort(np.concatenate([new_faces[:, [0, 1]], new_faces[:, [1, 2]], new_faces[:, [2, 0]]]), axis=1)
    unique_edges, uses = np.unique(edges, axis=0, return_counts=True)
    boundary_vertices = np.unique(unique_edges[uses == 1])
    assert is_new[boundary_vertices].all()


def test_new_vertices_lie_on_the_cut_edges(bumpy) -> None:
    vertices, faces, new_vertices, _ = bumpy
    original = {tuple(v) for v in vertices}
    fresh = np.array([v for v in new_vertices if tuple(v) not in original])
    # Every fresh vertex is on the segment of some original edge: distance to the closest edge ~ 0.
    edges = np.unique(np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1), axis=0)
    start, end = vertices[edges[:, 0]], vertices[edges[:, 1]]
    direction = end - start
    for point in fresh[::7]:
        s = np.clip(np.einsum("ij,ij->i", point - start, direction) / np.einsum("ij,ij->i", direction, direction), 0, 1)
        assert np.min(np.linalg.norm(start + s[:, None] * direction - point, axis=1)) < 1e-12


def test_winding_is_kept(bumpy) -> None:
    vertices, faces, new_vertices, new_faces = bumpy
    assert (_normals_z(vertices, faces) > 0).all()
    assert (_normals_z(new_vertices, new_faces) > 0).all()


@pytest.mark.parametrize("height", [0.0, 0.5])
def test_area_approaches_the_analytic_disc(height: float) -> None:
    radius = 1.0
    disc_area = np.pi * (radius**2 - height**2)
    errors = []
    for steps in (20, 200):
        vertices, faces = grid_mesh(1.3, steps)
        cropped_vertices, cropped_faces = crop_to_sphere(vertices, faces, np.array([0.0, 0.0, height]), radius)
        errors.append(abs(_area(cropped_vertices, cropped_faces) - disc_area) / disc_area)
    assert errors[1] < 2e-4
    assert errors[1] < errors[0]


def test_vertices_exactly_on_the_sphere_make_no_degenerate_faces() -> None:
    vertices, faces = grid_mesh(2.0, 16)  # spacing 0.25: (+-1, 0) and (0, +-1) lie on the unit sphere
    new_vertices, new_faces = crop_to_sphere(vertices, faces, np.zeros(3), 1.0)
    assert np.abs(_normals_z(new_vertices, new_faces)).min() > 1e-12
    assert len(np.unique(new_vertices.round(12), axis=0)) == len(new_vertices)


def test_mesh_outside_or_inside_the_sphere() -> None:
    vertices, faces = grid_mesh(1.0, 4)
    empty_vertices, empty_faces = crop_to_sphere(vertices, faces, np.array([0.0, 0.0, 10.0]), 1.0)
    assert empty_vertices.shape == (0, 3) and empty_faces.shape == (0, 3)
    same_vertices, same_faces = crop_to_sphere(vertices, faces, np.zeros(3), 5.0)
    np.testing.assert_array_equal(same_vertices, vertices)
    np.testing.assert_array_equal(same_faces, faces)
    with pytest.raises(ValueError):
        crop_to_sphere(vertices, faces, np.zeros(3), 0.0)


def test_remove_unused_vertices_keeps_order() -> None:
    vertices = np.arange(15, dtype=float).reshape(5, 3)
    new_vertices, new_faces = remove_unused_vertices(vertices, np.array([[4, 1, 3]]))
    np.testing.assert_array_equal(new_vertices, vertices[[1, 3, 4]])
    np.testing.assert_array_equal(new_vertices[new_faces], vertices[np.array([[4, 1, 3]])])
