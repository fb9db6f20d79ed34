"""Footprint test and footprint-restricted metrics against brute-force references."""
from __future__ import annotations

import numpy as np

from imface.ops.footprint import inside_footprint
from imface.ops.metrics import evaluate_reconstruction, nearest_neighbours
from imface.ops.sdf_sampling import sample_surface
from tests.ops.meshes import grid_mesh


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
