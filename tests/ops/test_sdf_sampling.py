"""Surface/ball sampling and the height-field SDF, against analytic surfaces and brute force."""
from __future__ import annotations

import igl
import numpy as np
import pytest
from scipy.spatial import cKDTree

from imface.ops.sdf_sampling import (_morton_order, sample_in_sphere, sample_near_surface, sample_surface,
                                     signed_distance)
from tests.ops.meshes import grid_mesh


def dome(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A smooth height field, curvature ~1, like a face's front."""
    return 0.3 - 0.5 * (x**2 + y**2)


@pytest.fixture(scope="module")
def dome_mesh() -> tuple[np.ndarray, np.ndarray]:
    vertices, faces = grid_mesh(1.0, 120)
    vertices[:, 2] = dome(vertices[:, 0], vertices[:, 1])
    return vertices, faces


def big_plane() -> tuple[np.ndarray, np.ndarray]:
    vertices, faces = grid_mesh(20.0, 8)
    return vertices, faces


def test_plane_sdf_is_z_and_gradient_is_up_on_both_sides() -> None:
    vertices, faces = big_plane()
    points = sample_in_sphere(2000, np.random.default_rng(0))
    sdf, grad, closest = signed_distance(points, vertices, faces)
    np.testing.assert_allclose(sdf, points[:, 2], atol=1e-12)
    # (p - c) / |p - c| amplifies the closest point's rounding for points almost on the plane.
    np.testing.assert_allclose(grad, np.tile([0.0, 0.0, 1.0], (len(points), 1)), atol=1e-9)
    np.testing.assert_allclose(closest, points * np.array([1.0, 1.0, 0.0]), atol=1e-12)
    assert (points[:, 2] < 0).sum() > 500  # the check covered points below the plane


def test_dome_matches_brute_force_nearest_point(dome_mesh) -> None:
    vertices, faces = dome_mesh
    rng = np.random.default_rng(1)
    points = sample_in_sphere(3000, rng)
    sdf, grad, closest = signed_distance(points, vertices, faces)

    # Naive reference: nearest of ~250k points of the analytic surface (spacing h = 0.004).
    axis = np.linspace(-1.0, 1.0, 501)
    x, y = np.meshgrid(axis, axis)
    dense = np.c_[x.ravel(), y.ravel(), dome(x.ravel(), y.ravel())]
    reference, _ = cKDTree(dense).query(points)
    # The mesh is within ~h_mesh^2/8 of the surface, the sample within h*sqrt(2)/2 of its nearest point.
    assert np.all(np.abs(sdf) <= reference + 1e-4)
    assert np.all(np.abs(sdf) >= reference - 0.004)

    # Analytic sign where it is unambiguous: over the interior, away from the surface.
    gap = points[:, 2] - dome(points[:, 0], points[:, 1])
    clear = (np.abs(points[:, :2]).max(axis=1) < 0.7) & (np.abs(gap) > 0.02)
    assert clear.sum() > 500
    np.testing.assert_array_equal(np.sign(sdf[clear]), np.sign(gap[clear]))

    # Internal consistency: unit gradients toward +z, and p - sdf * grad is the closest point.
    np.testing.assert_allclose(np.linalg.norm(grad, axis=1), 1.0, atol=1e-12)
    assert grad[:, 2].min() >= 0.0
    np.testing.assert_allclose(points - sdf[:, None] * grad, closest, atol=1e-12)


def test_gradient_matches_finite_differences(dome_mesh) -> None:
    vertices, faces = dome_mesh
    rng = np.random.default_rng(2)
    xy = rng.uniform(-0.5, 0.5, (200, 2))
    points = np.c_[xy, dome(xy[:, 0], xy[:, 1]) + rng.choice([-1.0, 1.0], 200) * rng.uniform(0.02, 0.2, 200)]
    _, grad, _ = signed_distance(points, vertices, faces)
    step = 1e-6
    numeric = np.stack(
        [
            (signed_distance(points + step * e, vertices, faces)[0] - signed_distance(points - step * e, vertices, faces)[0])
            / (2 * step)
            for e in np.eye(3)
        ],
        axis=1,
    )
    np.testing.assert_allclose(grad, numeric, atol=1e-5)


def test_sign_far_in_front_and_far_behind(dome_mesh) -> None:
    vertices, faces = dome_mesh
    points = np.array([[0.0, 0.0, 0.99], [0.0, 0.0, -0.99], [0.3, -0.2, 50.0], [0.0, 0.0, -1e4], [1e3, 1e3, 1e3]])
    sdf, grad, _ = signed_distance(points, vertices, faces)
    assert sdf[0] > 0 and sdf[2] > 0 and sdf[4] > 0
    assert sdf[1] < 0 and sdf[3] < 0
    assert sdf[0] == pytest.approx(0.99 - 0.3, abs=1e-12)  # straight above the apex
    assert sdf[1] > -(0.99 + 0.3)  # behind, the dome's rim is nearer than its apex
    assert (grad[:, 2] >= 0).all()


def test_surface_samples_lie_on_the_mesh_with_upward_unit_normals(dome_mesh) -> None:
    vertices, faces = dome_mesh
    points, normals = sample_surface(vertices, faces, 5000, np.random.default_rng(3))
    assert points.shape == normals.shape == (5000, 3)
    sdf, grad, _ = signed_distance(points, vertices, faces)
    assert np.abs(sdf).max() < 1e-12
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-12)
    assert (normals[:, 2] > 0).all() and (grad[:, 2] > 0).all()
    # On the surface the gradient is a face normal of the (smooth) dome: close to the sample's.
    assert np.einsum("ij,ij->i", grad, normals).min() > 0.99
    # And the normals agree with the analytic surface normal (-dz/dx, -dz/dy, 1) up to mesh facets.
    analytic = np.c_[points[:, 0], points[:, 1], np.ones(len(points))]
    analytic /= np.linalg.norm(analytic, axis=1, keepdims=True)
    assert np.einsum("ij,ij->i", normals, analytic).min() > 0.999


def test_surface_sampling_is_area_weighted_and_flips_normals() -> None:
    # Two separate triangles, areas 1 and 3, both wound to face -z.
    vertices = np.array([[0, 0, 0], [0, 1, 0], [2, 0, 0], [5, 0, 1], [5, 2, 1], [8, 0, 1]], dtype=float)
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    points, normals = sample_surface(vertices, faces, 40000, np.random.default_rng(4))
    share_small = np.mean(points[:, 0] < 3.0)
    assert abs(share_small - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 40000)
    np.testing.assert_allclose(normals, np.tile([0.0, 0.0, 1.0], (40000, 1)))
    small = points[points[:, 0] < 3.0]
    np.testing.assert_allclose(small.mean(axis=0), vertices[:3].mean(axis=0), atol=0.02)  # uniform inside
    assert (small[:, 0] / 2 + small[:, 1] <= 1 + 1e-12).all() and (small[:, :2] >= 0).all()


def test_surface_sampling_skips_zero_area_faces_and_rejects_empty_meshes() -> None:
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5]], dtype=float)
    faces = np.array([[3, 3, 3], [0, 1, 2], [0, 0, 1]])
    points, _ = sample_surface(vertices, faces, 1000, np.random.default_rng(5))
    assert (points[:, 2] == 0).all() and (points[:, :2].sum(axis=1) <= 1 + 1e-12).all()
    with pytest.raises(ValueError):
        sample_surface(vertices, np.array([[3, 3, 3]]), 10, np.random.default_rng(5))
    with pytest.raises(ValueError):
        sample_surface(vertices, np.zeros((0, 3), dtype=int), 10, np.random.default_rng(5))


def test_ball_samples_are_uniform() -> None:
    points = sample_in_sphere(100000, np.random.default_rng(6), radius=2.0)
    radii = np.linalg.norm(points, axis=1)
    assert radii.max() <= 2.0
    assert abs(np.mean(radii < 1.0) - 1 / 8) < 0.005  # volume fraction of the half-radius ball
    np.testing.assert_allclose(points.mean(axis=0), 0.0, atol=0.02)
    assert abs(np.mean(points[:, 2] > 0) - 0.5) < 0.01


def test_near_surface_samples() -> None:
    rng = np.random.default_rng(7)
    points = rng.normal(size=(50, 3))
    normals = rng.normal(size=(50, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    moved = sample_near_surface(points, normals, 20000, 0.01, rng)
    # Each sample is within a few sigma of some source point; offsets have the requested spread.
    distance, nearest = cKDTree(points).query(moved)
    assert distance.max() < 0.1
    np.testing.assert_allclose((moved - points[nearest]).std(axis=0), 0.01, rtol=0.05)
    along = sample_near_surface(points, normals, 2000, 0.01, rng, along_normal=True)
    _, nearest = cKDTree(points).query(along)
    offsets = along - points[nearest]
    np.testing.assert_allclose(np.linalg.norm(np.cross(offsets, normals[nearest]), axis=1), 0.0, atol=1e-12)
    with pytest.raises(ValueError):
        sample_near_surface(points, normals[:10], 5, 0.01, rng)


def test_on_surface_points_get_the_face_normal() -> None:
    vertices, faces = grid_mesh(2.0, 6)
    vertices[:, 2] = 0.3 * vertices[:, 0] + 0.1 * vertices[:, 1] - 0.2
    normal = np.array([-0.3, -0.1, 1.0]) / np.linalg.norm([-0.3, -0.1, 1.0])
    rng = np.random.default_rng(8)
    on_surface, _ = sample_surface(vertices, faces, 500, rng)
    sdf, grad, _ = signed_distance(on_surface, vertices, faces)
    assert np.abs(sdf).max() < 1e-12
    np.testing.assert_allclose(grad, np.tile(normal, (500, 1)), atol=1e-12)
    # Off the surface, in front and behind, the gradient is the same upward normal.
    offsets = rng.choice([-1.0, 1.0], 500) * rng.uniform(0.01, 0.5, 500)
    sdf, grad, _ = signed_distance(on_surface + offsets[:, None] * normal, vertices, faces)
    np.testing.assert_allclose(sdf, offsets, atol=1e-12)
    np.testing.assert_allclose(grad, np.tile(normal, (500, 1)), atol=1e-9)


def test_results_follow_the_query_order_and_match_libigl(dome_mesh) -> None:
    # The queries are reordered internally for speed; results must come back in input order.

    vertices, faces = dome_mesh
    rng = np.random.default_rng(9)
    points = sample_in_sphere(4000, rng)
    sdf, _, closest = signed_distance(points, vertices, faces)
    squared, _, reference_closest = igl.point_mesh_squared_distance(points, vertices, faces)
    np.testing.assert_allclose(np.abs(sdf), np.sqrt(squared), atol=1e-12)
    np.testing.assert_allclose(closest, reference_closest, atol=1e-12)
    permutation = rng.permutation(len(points))
    permuted_sdf, _, _ = signed_distance(points[permutation], vertices, faces)
    np.testing.assert_array_equal(permuted_sdf, sdf[permutation])
    empty = signed_distance(np.zeros((0, 3)), vertices, faces)
    assert [a.shape for a in empty] == [(0,), (0, 3), (0, 3)]
    one = signed_distance(np.array([[0.1, 0.2, 0.9]]), vertices, faces)  # zero extent: one grid cell
    assert one[0][0] > 0


def test_morton_order_is_a_spatially_coherent_permutation() -> None:
    points = np.random.default_rng(10).uniform(-1, 1, (5000, 3))
    order = _morton_order(points)
    np.testing.assert_array_equal(np.sort(order), np.arange(5000))
    step = np.linalg.norm(np.diff(points[order], axis=0), axis=1).mean()
    assert step < 0.5 * np.linalg.norm(np.diff(points, axis=0), axis=1).mean()
