"""Hidden-surface removal on meshes whose hidden parts are known analytically."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from imface.ops.visibility import remove_hidden_surface, visible_vertices
from tests.ops.meshes import grid_mesh

ROOF_HALF = 0.6  # the roof covers |x|, |y| < 0.6; base vertices are on a 0.25 grid, never on its edge
ROOF_HEIGHT = 5.0


def overhang_mesh() -> tuple[np.ndarray, np.ndarray, int]:
    """Base plane z=0 over [-2, 2]^2 plus a smaller roof plane at z=5. Returns (V, F, base vertex count)."""
    base_vertices, base_faces = grid_mesh(2.0, 16)
    roof_vertices, roof_faces = grid_mesh(ROOF_HALF, 3)
    roof_vertices[:, 2] = ROOF_HEIGHT
    vertices = np.concatenate([base_vertices, roof_vertices])
    faces = np.concatenate([base_faces, roof_faces + len(base_vertices)])
    return vertices, faces, len(base_vertices)


def test_overhang_hides_exactly_the_vertices_under_it() -> None:
    vertices, faces, base_count = overhang_mesh()
    visible = visible_vertices(vertices, faces)
    under_roof = (np.abs(vertices[:, 0]) < ROOF_HALF) & (np.abs(vertices[:, 1]) < ROOF_HALF)
    under_roof[base_count:] = False  # the roof itself sees the sky
    assert under_roof.sum() == 25
    np.testing.assert_array_equal(visible, ~under_roof)


def test_direction_is_respected() -> None:
    vertices, faces, base_count = overhang_mesh()
    visible = visible_vertices(vertices, faces, direction=(0.0, 0.0, -2.0))  # looking from below
    expected = np.ones(len(vertices), dtype=bool)
    expected[base_count:] = False  # every roof vertex has the base plane below it
    np.testing.assert_array_equal(visible, expected)


def test_cavity_floor_is_hidden_except_under_the_opening() -> None:
    # A floor at z=-1 under a lid at z=0 that has a square hole |x|,|y| < 0.5 (no faces there).
    lid_vertices, lid_faces = grid_mesh(2.0, 8)  # spacing 0.5
    centers = lid_vertices[lid_faces].mean(axis=1)
    lid_faces = lid_faces[~((np.abs(centers[:, 0]) < 0.5) & (np.abs(centers[:, 1]) < 0.5))]
    floor_vertices, floor_faces = grid_mesh(1.0, 10)  # spacing 0.2, none on the hole's edge
    floor_vertices[:, 2] = -1.0
    floor_vertices[:, :2] += 0.05  # keep floor rays off the lid's edges
    vertices = np.concatenate([lid_vertices, floor_vertices])
    faces = np.concatenate([lid_faces, floor_faces + len(lid_vertices)])
    visible = visible_vertices(vertices, faces)
    floor = np.arange(len(vertices)) >= len(lid_vertices)
    in_hole = (np.abs(vertices[:, 0]) < 0.5) & (np.abs(vertices[:, 1]) < 0.5)
    np.testing.assert_array_equal(visible[floor], in_hole[floor])
    assert visible[~floor].all()


@pytest.mark.parametrize("tilt", [0.0, 0.3])
def test_single_surface_is_fully_visible(tilt: float) -> None:
    vertices, faces = grid_mesh(1.0, 40, bump=0.2)
    vertices[:, 2] += tilt * vertices[:, 0]
    assert visible_vertices(vertices, faces, eps=1e-4).all()


def test_remove_hidden_surface_matches_a_per_face_reference() -> None:
    vertices, faces, _ = overhang_mesh()
    visible = visible_vertices(vertices, faces)
    new_vertices, new_faces, kept_index = remove_hidden_surface(vertices, faces)
    reference = [face for face in faces if all(visible[i] for i in face)]
    assert len(new_faces) == len(reference) < len(faces)
    np.testing.assert_array_equal(new_vertices, vertices[kept_index])
    np.testing.assert_array_equal(kept_index[new_faces], np.array(reference))
    assert np.unique(new_faces).size == len(new_vertices)
    assert np.all(np.diff(kept_index) > 0)
    # Nothing left is hidden any more.
    assert visible_vertices(new_vertices, new_faces).all()


def test_fallback_without_embree_gives_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    vertices, faces, _ = overhang_mesh()
    with_embree = visible_vertices(vertices, faces)
    monkeypatch.setitem(sys.modules, "trimesh.ray.ray_pyembree", None)  # import now fails
    np.testing.assert_array_equal(visible_vertices(vertices, faces), with_embree)


def test_empty_and_bad_input() -> None:
    assert visible_vertices(np.zeros((3, 3)), np.zeros((0, 3), dtype=int)).all()
    with pytest.raises(ValueError):
        visible_vertices(np.eye(3), np.array([[0, 1, 2]]), direction=(0.0, 0.0, 0.0))
