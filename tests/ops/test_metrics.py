"""Reconstruction metrics against brute-force references and known answers."""
from __future__ import annotations

import json

import numpy as np
import pytest

from imface.ops.metrics import (
    ReconstructionMetrics,
    chamfer_distance,
    evaluate_reconstruction,
    fscore,
    normal_consistency,
    precision_recall,
)
from imface.ops.rigid import apply_rigid
from tests.ops.meshes import grid_mesh, known_motion


def pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) Euclidean distances, the naive way."""
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def naive_fscore(a_to_b: np.ndarray, b_to_a: np.ndarray, tau: float) -> float:
    precision = np.mean(b_to_a < tau)  # rec (b) points near gt (a)
    recall = np.mean(a_to_b < tau)
    return 0.0 if precision + recall == 0 else 100 * 2 * precision * recall / (precision + recall)


def clouds(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, (300, 3))
    # b: a noisy subset of a plus a far cluster, so the two directions differ a lot.
    b = np.concatenate([a[:250] + rng.normal(0, 0.02, (250, 3)), rng.uniform(2, 3, (150, 3))])
    return a, b


@pytest.mark.parametrize("seed", [0, 1])
def test_chamfer_matches_brute_force(seed: int) -> None:
    a, b = clouds(seed)
    distances = pairwise(a, b)
    value, a_to_b, b_to_a = chamfer_distance(a, b)
    np.testing.assert_allclose(a_to_b, distances.min(axis=1), rtol=1e-12)
    np.testing.assert_allclose(b_to_a, distances.min(axis=0), rtol=1e-12)
    assert value == pytest.approx(0.5 * (distances.min(axis=1).mean() + distances.min(axis=0).mean()), rel=1e-12)
    assert a_to_b.mean() < 0.5 * b_to_a.mean()  # the case is really asymmetric
    assert chamfer_distance(b, a)[0] == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("tau", [0.01, 0.03, 0.1, 10.0])
def test_fscore_matches_brute_force(tau: float) -> None:
    gt, rec = clouds(2)
    distances = pairwise(gt, rec)
    gt_to_rec, rec_to_gt = distances.min(axis=1), distances.min(axis=0)
    assert fscore(gt_to_rec, rec_to_gt, tau) == pytest.approx(naive_fscore(gt_to_rec, rec_to_gt, tau), abs=1e-10)
    precision, recall = precision_recall(gt_to_rec, rec_to_gt, tau)
    assert precision == pytest.approx(100 * np.mean(rec_to_gt < tau))
    assert recall == pytest.approx(100 * np.mean(gt_to_rec < tau))


def test_fscore_edge_values() -> None:
    assert fscore(np.full(5, 9.0), np.full(7, 9.0), 1.0) == 0.0
    assert fscore(np.zeros(5), np.zeros(7), 1.0) == 100.0
    # Precision 100 %, recall 50 %: F = 2 * 100 * 50 / 150.
    assert fscore(np.array([0.0, 5.0]), np.zeros(3), 1.0) == pytest.approx(200 / 3)


def test_normal_consistency_identical_and_random() -> None:
    rng = np.random.default_rng(3)
    points = rng.uniform(-1, 1, (2000, 3))
    normals = rng.normal(size=(2000, 3))
    assert normal_consistency(points, normals, points, -3.0 * normals) == pytest.approx(1.0)
    random = normal_consistency(points, normals, points, rng.normal(size=(2000, 3)))
    assert 0.45 < random < 0.55  # E|cos| = 1/2 for independent uniform directions


def test_normal_consistency_matches_brute_force() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.uniform(-1, 1, (300, 3)), rng.uniform(-1, 1, (400, 3))
    na, nb = rng.normal(size=(300, 3)), rng.normal(size=(400, 3))
    na /= np.linalg.norm(na, axis=1, keepdims=True)
    nb /= np.linalg.norm(nb, axis=1, keepdims=True)
    distances = pairwise(a, b)
    expected = 0.5 * (np.abs((na * nb[distances.argmin(1)]).sum(1)).mean()
                      + np.abs((nb * na[distances.argmin(0)]).sum(1)).mean())
    assert normal_consistency(a, na, b, nb) == pytest.approx(expected, rel=1e-12)


def face_mesh() -> tuple[np.ndarray, np.ndarray]:
    """A wavy 1.2 x 1.2 sheet (model units) bent like a face."""
    vertices, faces = grid_mesh(0.6, 60, bump=0.05)
    vertices[:, 2] += 0.3 - 0.35 * (vertices[:, 0] ** 2 + 0.6 * vertices[:, 1] ** 2)
    return vertices, faces


def test_identical_meshes_score_perfectly() -> None:
    vertices, faces = face_mesh()
    metrics = evaluate_reconstruction(vertices, faces, vertices, faces, num_points=10_000, seed=5)
    assert metrics.chamfer_mm < 1e-9
    assert metrics.fscore == (100.0, 100.0, 100.0)
    assert metrics.normal_consistency == pytest.approx(1.0)
    # Both surfaces are drawn with the call's seed: another seed still samples identical meshes alike.
    other_seed = evaluate_reconstruction(vertices, faces, vertices, faces, num_points=10_000, seed=6, align="none")
    assert other_seed.chamfer_mm < 1e-9
    # Faces in another order: the same surface, other samples. Small (about half the
    # ~1.2 mm sample spacing) but not zero.
    resampled = evaluate_reconstruction(vertices, faces[::-1], vertices, faces, num_points=10_000, seed=5, align="none")
    assert 0.1 < resampled.chamfer_mm < 1.0
    assert resampled.fscore_at(2.5) > 99.0


def test_rigidly_moved_copy_is_realigned_by_icp() -> None:
    vertices, faces = face_mesh()
    motion_r, motion_t = known_motion(1.0, 0.002)  # 1 degree, 2 mm
    moved = apply_rigid(vertices, motion_r, motion_t)
    raw = evaluate_reconstruction(moved, faces, vertices, faces, num_points=20_000, align="none")
    aligned = evaluate_reconstruction(moved, faces, vertices, faces, num_points=20_000, align="icp", icp_iterations=20)
    assert raw.chamfer_mm > 0.5 and raw.fscore_1mm < 99.0
    # Same seed, same triangulation: the samples correspond, so ICP can undo the motion exactly.
    assert aligned.chamfer_mm < 1e-6
    assert aligned.fscore_1mm == 100.0 and aligned.normal_consistency > 0.999999
    assert aligned.icp_iterations > 0
    subset = evaluate_reconstruction(moved, faces, vertices, faces, num_points=20_000, icp_points=4_000)
    assert subset.chamfer_mm < 1e-6  # fitting on a subset finds the same motion
    # The fitted transform undoes the motion: its rotation is the inverse one.
    np.testing.assert_allclose(np.array(aligned.rotation) @ motion_r, np.eye(3), atol=1e-3)


def test_units_and_report() -> None:
    vertices, faces = face_mesh()
    moved = vertices + np.array([0.0, 0.0, 0.02])  # 2 mm in front
    metrics = evaluate_reconstruction(moved, faces, vertices, faces, num_points=5_000, align="none")
    assert 1.6 < metrics.chamfer_mm < 2.0  # a bit under 2 mm: nearest points lie slightly sideways
    assert metrics.chamfer_units == pytest.approx(metrics.chamfer_mm / 100.0)
    assert metrics.fscore_1mm < 5.0 and metrics.fscore_2_5mm > 95.0 and metrics.fscore_5mm == 100.0
    in_mm = evaluate_reconstruction(moved * 100, faces, vertices * 100, faces, num_points=5_000, align="none",
                                    mm_per_unit=1.0)
    assert in_mm.chamfer_mm == pytest.approx(metrics.chamfer_mm, rel=1e-9)
    report = json.loads(json.dumps(metrics.to_dict()))
    assert report["fscore@1mm"] == metrics.fscore_1mm and report["chamfer_mm"] == metrics.chamfer_mm
    assert isinstance(metrics, ReconstructionMetrics)
    with pytest.raises(KeyError):
        metrics.fscore_at(0.5)
    with pytest.raises(ValueError):
        evaluate_reconstruction(moved, faces, vertices, faces, num_points=10, align="sideways")


def _height_field(x_low: float, x_high: float, steps: int = 60) -> tuple[np.ndarray, np.ndarray]:
    from tests.ops.meshes import face_height

    vertices, faces = grid_mesh(0.5, steps)
    vertices[:, 0] = x_low + (vertices[:, 0] + 0.5) * (x_high - x_low)
    vertices[:, 2] = face_height(vertices[:, 0], vertices[:, 1])
    return vertices, faces


def test_the_icp_aligns_on_the_part_over_the_ground_truth(monkeypatch):
    """A reconstruction that is its ground truth plus 20 mm more surface on one side: the extra
    part has nothing to match; aligned with it, ICP drags the whole face sideways."""
    import imface.ops.metrics as metrics

    gt_vertices, gt_faces = _height_field(-0.5, 0.5)
    rec_vertices, rec_faces = _height_field(-0.5, 0.7, steps=72)
    kwargs = dict(num_points=20_000, icp_points=None)
    plain = evaluate_reconstruction(rec_vertices, rec_faces, gt_vertices, gt_faces, align="none", **kwargs)
    aligned = evaluate_reconstruction(rec_vertices, rec_faces, gt_vertices, gt_faces, **kwargs)
    assert aligned.icp_on_footprint and np.linalg.norm(aligned.translation_mm) < 0.1
    assert aligned.completeness_mm == pytest.approx(plain.completeness_mm, abs=0.02)
    monkeypatch.setattr(metrics, "ICP_MIN_FOOTPRINT_SHARE", 2.0)  # the ICP on every sample, as before
    dragged = evaluate_reconstruction(rec_vertices, rec_faces, gt_vertices, gt_faces, **kwargs)
    assert not dragged.icp_on_footprint and np.linalg.norm(dragged.translation_mm) > 1.0
    assert dragged.completeness_mm > aligned.completeness_mm + 0.3
