"""Footprint tests (along a viewing direction; over a sampled surface) and the metrics restricted to them,
against brute-force and analytic references."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

from imface.ops.footprint import (FOOTPRINT_SPACINGS, footprint_distances, inside_footprint, off_border,
                                  over_sampled_surface, sampling_spacing)
from imface.ops.metrics import evaluate_reconstruction, nearest_neighbours, surface_distance_mm
from imface.ops.neighbourhoods import distance_to_sampled_surface, local_planes
from imface.ops.sdf_sampling import sample_surface
from tests.ops.meshes import face_height, face_like_points, grid_mesh


def brute_force_inside(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Point-in-triangle of every (x, y) against every projected triangle (barycentric signs)."""
    a, b, c = (vertices[faces[:, k], :2] for k in range(3))
    p = points[:, None, :2]

    def cross(o, u, v):
        return (u[..., 0] - o[..., 0]) * (v[..., 1] - o[..., 1]) - (u[..., 1] - o[..., 1]) * (v[..., 0] - o[..., 0])

    d1, d2, d3 = cross(p, a, b), cross(p, b, c), cross(p, c, a)
    negative = (d1 < 0) | (d2 < 0) | (d3 < 0)
    positive = (d1 > 0) | (d2 > 0) | (d3 > 0)
    return (~(negative & positive)).any(axis=1)


def holed_bumpy_grid() -> tuple[np.ndarray, np.ndarray]:
    """A wavy 1 x 1 grid with the triangles of a central disc removed (a hole)."""
    vertices, faces = grid_mesh(0.5, 24, bump=0.05)
    centres = vertices[faces].mean(axis=1)
    return vertices, faces[np.linalg.norm(centres[:, :2] - [0.1, -0.1], axis=1) > 0.15]


def test_inside_footprint_matches_brute_force() -> None:
    vertices, faces = holed_bumpy_grid()
    rng = np.random.default_rng(3)
    points = np.c_[rng.uniform(-0.7, 0.7, (3000, 2)), rng.uniform(-0.3, 0.3, 3000)]  # above and below the grid
    expected = brute_force_inside(points, vertices, faces)
    got = inside_footprint(points, vertices, faces)
    assert 0.2 < expected.mean() < 0.8  # the test has points on both sides of the border and the hole
    # Only points within float error of a triangle edge may disagree.
    assert (got != expected).sum() <= 3
    assert not got[np.linalg.norm(points[:, :2] - [0.1, -0.1], axis=1) < 0.1].any()  # the hole is outside


def test_footprint_metrics_ignore_only_the_overhang() -> None:
    gt_vertices, gt_faces = grid_mesh(0.5, 20)
    rec_vertices, rec_faces = grid_mesh(0.8, 32)  # the same plane, reaching 30 mm beyond it on every side
    rec_vertices = rec_vertices + [0.0, 0.0, 0.005]  # 0.5 mm in front
    metrics = evaluate_reconstruction(rec_vertices, rec_faces, gt_vertices, gt_faces, num_points=20_000, align="none")
    # Reference: the same samples, restricted by hand.
    rec, _ = sample_surface(rec_vertices, rec_faces, 20_000, np.random.default_rng(0))
    gt, _ = sample_surface(gt_vertices, gt_faces, 20_000, np.random.default_rng(0))
    inside = (np.abs(rec[:, :2]) <= 0.5).all(axis=1)
    rec_to_gt = nearest_neighbours(rec[inside], gt)[0] * 100
    gt_to_rec = nearest_neighbours(gt, rec)[0] * 100
    assert metrics.footprint_fraction == np.mean(inside)
    np.testing.assert_allclose(metrics.footprint_chamfer_mm, 0.5 * (rec_to_gt.mean() + gt_to_rec.mean()), rtol=1e-9)
    assert metrics.chamfer_mm > 3.0 > metrics.footprint_chamfer_mm  # the overhang dominates the plain Chamfer
    assert metrics.footprint_fscore[0] > 85.0 > 70.0 > metrics.fscore[0]
    report = metrics.to_dict()
    assert report["footprint_fscore@1mm"] == metrics.footprint_fscore[0]
    plain = evaluate_reconstruction(rec_vertices, rec_faces, gt_vertices, gt_faces, num_points=2_000, footprint=False)
    assert plain.footprint_chamfer_mm is None and "footprint_fscore@1mm" not in plain.to_dict()


def test_the_footprint_follows_the_given_viewing_direction() -> None:
    # The overhang test turned to face +x: seen along +x it scores as before; along +z the
    # plane is seen edge-on and nearly nothing of the reconstruction projects onto it.
    gt_vertices, gt_faces = grid_mesh(0.5, 20)
    rec_vertices, rec_faces = grid_mesh(0.8, 32)
    rec_vertices = rec_vertices + [0.0, 0.0, 0.005]
    turn = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # +z -> +x
    upright = evaluate_reconstruction(rec_vertices, rec_faces, gt_vertices, gt_faces, num_points=20_000, align="none")
    turned = evaluate_reconstruction(rec_vertices @ turn.T, rec_faces, gt_vertices @ turn.T, gt_faces, num_points=20_000,
                                     align="none", footprint_direction=(1.0, 0.0, 0.0))
    np.testing.assert_allclose(turned.footprint_chamfer_mm, upright.footprint_chamfer_mm, rtol=1e-6)
    edge_on = evaluate_reconstruction(rec_vertices @ turn.T, rec_faces, gt_vertices @ turn.T, gt_faces,
                                      num_points=20_000, align="none")
    assert edge_on.footprint_fraction < 0.05 < 0.3 < turned.footprint_fraction


# --- The footprint over a sampled surface (raw inputs: no viewing direction) ---------------------------------------


def brute_force_over(queries: np.ndarray, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """The footprint rule spelt out with full distance matrices: nearest sample, its fourth-nearest
    other sample, the offset along its plane."""
    distances = np.linalg.norm(queries[:, None] - points[None], axis=2)
    nearest = distances.argmin(axis=1)
    between = np.sort(np.linalg.norm(points[:, None] - points[None], axis=2), axis=1)
    spacing = between[:, 4]  # column 0 is the sample itself
    offset = queries - points[nearest]
    along = np.linalg.norm(offset - np.sum(offset * normals[nearest], axis=1, keepdims=True) * normals[nearest], axis=1)
    return along <= FOOTPRINT_SPACINGS * spacing[nearest]


def test_over_sampled_surface_matches_brute_force() -> None:
    rng = np.random.default_rng(5)
    points = face_like_points(1500, rng, half_width=0.4)
    normals, _ = local_planes(points)
    queries = face_like_points(2000, rng, half_width=0.6) + rng.normal(0.0, 0.02, (2000, 3))  # over and beyond
    expected = brute_force_over(queries, points, normals)
    assert 0.2 < expected.mean() < 0.8
    np.testing.assert_array_equal(over_sampled_surface(queries, points, normals), expected)
    np.testing.assert_allclose(sampling_spacing(points), local_planes(points)[1])  # one spacing for both


def plane_with_hole() -> tuple[np.ndarray, np.ndarray]:
    """The unit square z = 0 (model units), a disc of radius 0.15 around (0.1, -0.1) cut out."""
    vertices, faces = grid_mesh(0.5, 50)
    centres = vertices[faces].mean(axis=1)
    return vertices, faces[np.linalg.norm(centres[:, :2] - [0.1, -0.1], axis=1) > 0.15]


def test_a_fit_reaching_beyond_a_mesh_is_scored_over_it_only() -> None:
    # Reference: the input is the square with a hole; the "fit" the plane 0.5 mm in front of it,
    # reaching 30 mm beyond every side and over the hole. Over the input are exactly the fit points
    # whose projection falls on one of its triangles, and every distance there is 0.5 mm.
    input_vertices, input_faces = plane_with_hole()
    fit_vertices, fit_faces = grid_mesh(0.8, 40)
    fit_vertices = fit_vertices + [0.0, 0.0, 0.005]
    scored = footprint_distances(fit_vertices, fit_faces, input_vertices, input_faces, num_points=40_000)
    fit_points, _ = sample_surface(fit_vertices, fit_faces, 40_000, np.random.default_rng(0))
    expected = brute_force_inside(fit_points[:2000], input_vertices, input_faces)
    assert 0.3 < expected.mean() < 0.4 and (scored.inside[:2000] != expected).sum() <= 2  # float ties on an edge only
    np.testing.assert_allclose(scored.fit_to_input, 0.005, atol=1e-9)
    np.testing.assert_allclose(scored.input_to_fit, 0.005, atol=1e-9)
    corners = input_vertices[input_faces]
    area = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1).sum()
    assert scored.footprint_share == pytest.approx(area / 1.6**2, abs=0.01)  # the area over the input
    assert scored.normal_consistency == pytest.approx(1.0)
    np.testing.assert_array_equal(off_border(fit_points, input_vertices, input_faces), scored.inside)


def test_off_border_on_a_curved_cap_and_at_border_vertices() -> None:
    # A cap of a sphere: points along the cap's normals (in front and behind) are over it, points
    # beyond its rim are not, whether their closest point is a rim edge or a rim vertex.
    sphere = trimesh.creation.icosphere(subdivisions=3)
    cap = sphere.submesh([np.flatnonzero(sphere.triangles_center[:, 2] > 0.5)], append=True)
    directions = np.random.default_rng(4).normal(size=(4000, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    points = directions * np.random.default_rng(5).uniform(0.8, 1.2, (4000, 1))
    over = off_border(points, cap.vertices, cap.faces)
    rim = np.linalg.norm(cap.vertices[np.unique(cap.outline().entities[0].points)], axis=1)  # unit sphere
    assert np.allclose(rim, 1.0)
    lowest_rim = cap.vertices[np.unique(cap.outline().entities[0].points)][:, 2].min()
    highest_rim = cap.vertices[np.unique(cap.outline().entities[0].points)][:, 2].max()
    assert over[directions[:, 2] > highest_rim + 0.02].all()
    assert not over[directions[:, 2] < lowest_rim - 0.02].any()
    corners = cap.vertices[np.unique(cap.outline().entities[0].points)] * 1.3 + [0.0, 0.0, -0.4]  # off the rim
    assert not off_border(corners, cap.vertices, cap.faces).any()


def test_a_fit_floating_in_front_stays_in_the_footprint() -> None:
    # 20 mm in front (many spacings): still over the input, and every distance says 20 mm.
    input_vertices, input_faces = grid_mesh(0.5, 20)
    fit_vertices, fit_faces = grid_mesh(0.5, 20)
    scored = footprint_distances(fit_vertices + [0.0, 0.0, 0.2], fit_faces, input_vertices, input_faces,
                                 num_points=20_000)
    assert scored.footprint_share > 0.999
    np.testing.assert_allclose(scored.fit_to_input, 0.2, atol=1e-9)
    np.testing.assert_allclose(scored.input_to_fit, 0.2, atol=1e-9)


def test_a_point_set_keeps_a_floating_fit_within_its_reach() -> None:
    # The unit square's points; a fit 20 mm in front is over them (reach: a quarter of the diagonal,
    # 35 mm), one 50 mm in front is past the reach: nothing over the input, and input-to-fit says 50 mm.
    rng = np.random.default_rng(6)
    points = np.c_[rng.uniform(-0.5, 0.5, (4000, 2)), np.zeros(4000)]
    fit_vertices, fit_faces = grid_mesh(0.5, 20)
    near = footprint_distances(fit_vertices + [0.0, 0.0, 0.2], fit_faces, points, None, num_points=5000)
    assert near.footprint_share > 0.97 and np.median(near.fit_to_input) == pytest.approx(0.2)
    far = footprint_distances(fit_vertices + [0.0, 0.0, 0.5], fit_faces, points, None, num_points=5000)
    assert far.footprint_share == 0.0 and len(far.fit_to_input) == 0 and far.normal_consistency is None
    np.testing.assert_allclose(far.input_to_fit, 0.5, atol=1e-9)


def test_footprint_distances_are_unit_free() -> None:
    input_vertices, input_faces = plane_with_hole()
    fit_vertices, fit_faces = grid_mesh(0.8, 40, bump=0.05)
    small = footprint_distances(fit_vertices, fit_faces, input_vertices, input_faces, num_points=10_000)
    large = footprint_distances(fit_vertices * 37.0, fit_faces, input_vertices * 37.0, input_faces, num_points=10_000)
    np.testing.assert_array_equal(small.inside, large.inside)
    np.testing.assert_allclose(large.input_to_fit, 37.0 * small.input_to_fit, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(large.fit_to_input, 37.0 * small.fit_to_input, rtol=1e-6, atol=1e-9)


def test_a_point_set_is_scored_against_the_surface_it_samples() -> None:
    rng = np.random.default_rng(2)
    points = face_like_points(8000, rng, half_width=0.4)
    fit_vertices, fit_faces = grid_mesh(0.7, 60)
    fit_vertices[:, 2] = face_height(fit_vertices[:, 0], fit_vertices[:, 1]) + 0.01
    scored = footprint_distances(fit_vertices, fit_faces, points, None, num_points=20_000)
    fit_points, _ = sample_surface(fit_vertices, fit_faces, 20_000, np.random.default_rng(0))
    # fit -> input: distance_to_sampled_surface's measure (its planes, computed once here)
    np.testing.assert_allclose(scored.fit_to_input, distance_to_sampled_surface(fit_points[scored.inside], points),
                               rtol=1e-9)
    np.testing.assert_allclose(scored.input_to_fit, surface_distance_mm(points, fit_vertices, fit_faces, 1.0),
                               rtol=1e-9)
    beyond = np.abs(fit_points[:, :2]).max(axis=1)
    assert scored.inside[beyond < 0.37].mean() > 0.99 and not scored.inside[beyond > 0.45].any()
    assert 0.008 < np.median(scored.fit_to_input) < 0.0105  # about 1 mm (the height step, seen along the normal)
    assert len(scored.input_to_fit) == 8000  # every point is scored
    with pytest.raises(ValueError, match="at least"):
        footprint_distances(fit_vertices, fit_faces, points[:5], None)
