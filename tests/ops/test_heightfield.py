"""Delaunay height field: orientation, coverage of the convex hull, duplicates, degenerate input."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import ConvexHull

from imface.ops.heightfield import delaunay_heightfield


def _xy_signed_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    corners = vertices[faces][:, :, :2]
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    return 0.5 * (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])


def _normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    corners = vertices[faces]
    return np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])


def test_grid_faces_point_to_the_viewer_and_cover_the_hull() -> None:
    axis = np.linspace(-1.0, 1.0, 21)
    x, y = np.meshgrid(axis, axis)
    vertices = np.c_[x.ravel(), y.ravel(), np.sin(3.0 * x.ravel()) * 0.3]
    faces = delaunay_heightfield(vertices)
    assert faces.dtype == np.int64 and faces.shape[1] == 3
    assert (_normals(vertices, faces)[:, 2] > 0).all()
    np.testing.assert_allclose(_xy_signed_areas(vertices, faces).sum(), 4.0, rtol=1e-12)
    assert len(faces) == 2 * 20 * 20  # a regular grid: two triangles per cell, no slivers


def test_random_points_follow_euler_and_hull_area() -> None:
    rng = np.random.default_rng(0)
    vertices = np.c_[rng.uniform(-1, 1, (500, 2)), rng.normal(size=500)]
    faces = delaunay_heightfield(vertices)
    hull = ConvexHull(vertices[:, :2])
    # Planar triangulation of n points in general position with h on the hull: 2n - 2 - h faces.
    assert len(faces) == 2 * 500 - 2 - len(hull.vertices)
    areas = _xy_signed_areas(vertices, faces)
    assert (areas > 0).all()
    np.testing.assert_allclose(areas.sum(), hull.volume, rtol=1e-12)  # 2-D "volume" is the area
    # Every edge is shared by at most two faces (a proper 2-manifold with boundary).
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    assert np.unique(edges, axis=0, return_counts=True)[1].max() == 2


def test_faces_already_facing_down_are_flipped() -> None:
    # Mirroring x flips every triangle's xy orientation; the output must still face +z.
    rng = np.random.default_rng(1)
    vertices = np.c_[rng.uniform(-1, 1, (100, 2)), np.zeros(100)]
    mirrored = vertices * np.array([-1.0, 1.0, 1.0])
    assert (_normals(mirrored, delaunay_heightfield(mirrored))[:, 2] > 0).all()


def test_duplicate_xy_points_do_not_crash() -> None:
    rng = np.random.default_rng(2)
    xy = rng.uniform(-1, 1, (200, 2))
    duplicated = np.concatenate([xy, xy[:50]])
    vertices = np.c_[duplicated, rng.normal(size=len(duplicated))]  # same xy, different z
    faces = delaunay_heightfield(vertices)
    assert faces.max() < 200  # only the first of each duplicate group is used
    assert np.unique(faces).size == 200
    np.testing.assert_allclose(_xy_signed_areas(vertices, faces).sum(), ConvexHull(xy).volume, rtol=1e-12)
    assert (_normals(vertices, faces)[:, 2] > 0).all()


def test_no_zero_area_faces_with_collinear_hull_points() -> None:
    # Many exactly collinear points on the boundary invite slivers.
    t = np.linspace(0.0, 1.0, 41)
    boundary = np.concatenate([np.c_[t, 0 * t], np.c_[t, 0 * t + 1], np.c_[0 * t, t], np.c_[0 * t + 1, t]])
    rng = np.random.default_rng(3)
    xy = np.concatenate([boundary, rng.uniform(0.1, 0.9, (100, 2))])
    vertices = np.c_[xy, np.zeros(len(xy))]
    faces = delaunay_heightfield(vertices)
    assert np.abs(_xy_signed_areas(vertices, faces)).min() > 1e-9
    np.testing.assert_allclose(_xy_signed_areas(vertices, faces).sum(), 1.0, rtol=1e-12)


@pytest.mark.parametrize(
    "xy",
    [
        np.array([[0.0, 0.0], [1.0, 1.0]]),
        np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0]]),
        np.c_[np.linspace(0, 1, 10), np.linspace(0, 2, 10)],  # collinear
    ],
)
def test_degenerate_inputs_raise_value_error(xy: np.ndarray) -> None:
    with pytest.raises(ValueError):
        delaunay_heightfield(np.c_[xy, np.zeros(len(xy))])


def test_slivers_from_almost_collinear_points_are_removed() -> None:
    # A grid jittered by 1e-13 makes Qhull emit near-zero-area triangles along the hull.
    axis = np.linspace(0.0, 1.0, 60)
    x, y = np.meshgrid(axis, axis)
    rng = np.random.default_rng(4)
    xy = np.c_[x.ravel(), y.ravel()] + rng.normal(0.0, 1e-13, (axis.size**2, 2))
    vertices = np.c_[xy, np.zeros(len(xy))]
    faces = delaunay_heightfield(vertices)
    areas = _xy_signed_areas(vertices, faces)
    assert areas.min() > 1e-6
    np.testing.assert_allclose(areas.sum(), 1.0, atol=1e-9)
