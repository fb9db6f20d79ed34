"""ICP: recovers known rigid motions of face-like samples; handles caps and bad input."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from imface.ops.icp import icp
from imface.ops.rigid import apply_rigid, invert_rigid
from tests.ops.meshes import face_like_points, known_motion, rotation_angle_deg


def test_recovers_known_motion_of_same_samples() -> None:
    rng = np.random.default_rng(0)
    target = face_like_points(4000, rng)
    motion_r, motion_t = known_motion()
    source = apply_rigid(target, *invert_rigid(motion_r, motion_t))  # target = motion(source)
    rotation, translation, info = icp(source, target, iterations=200, tolerance=1e-12)
    assert rotation_angle_deg(rotation @ motion_r.T) < 1e-4
    np.testing.assert_allclose(translation, motion_t, atol=1e-6)
    assert info.mean_distance < 1e-7
    assert info.initial_mean_distance > 1e-3  # there was something to fix
    assert 0 < info.iterations <= 200
    assert info.inlier_fraction == 1.0


def test_aligns_different_samples_down_to_the_sampling_floor() -> None:
    rng = np.random.default_rng(1)
    target = face_like_points(20000, rng)
    motion_r, motion_t = known_motion()
    # The source covers a smaller patch, so after the motion it still lies inside the target.
    source = apply_rigid(face_like_points(3000, rng, half_width=0.5), *invert_rigid(motion_r, motion_t))
    floor = cKDTree(target).query(apply_rigid(source, motion_r, motion_t))[0].mean()  # at the true pose
    rotation, translation, info = icp(source, target, iterations=20)
    # Point-to-point ICP slides slowly along smooth sheets, but the match distance it
    # minimises must get close to the value at the true pose, far below the start.
    assert info.mean_distance < 1.15 * floor
    assert info.mean_distance < 0.4 * info.initial_mean_distance
    recovered = apply_rigid(source, rotation, translation)
    assert cKDTree(target).query(recovered)[0].mean() == pytest.approx(info.mean_distance)


def test_no_motion_needed_stops_at_once() -> None:
    points = face_like_points(500, np.random.default_rng(2))
    rotation, translation, info = icp(points, points)
    np.testing.assert_array_equal(rotation, np.eye(3))
    np.testing.assert_array_equal(translation, np.zeros(3))
    assert info.iterations == 0 and info.converged and info.mean_distance == 0.0


def test_correspondence_cap_ignores_outliers() -> None:
    rng = np.random.default_rng(3)
    target = face_like_points(4000, rng)
    motion_r, motion_t = known_motion(2.0, 0.005)
    source = apply_rigid(target, *invert_rigid(motion_r, motion_t))
    outliers = rng.uniform(-1, 1, (400, 3)) + np.array([0.0, 0.0, 3.0])  # far from the face
    rotation, translation, info = icp(np.concatenate([source, outliers]), target, iterations=200,
                                      tolerance=1e-12, max_correspondence_distance=0.2)
    assert rotation_angle_deg(rotation @ motion_r.T) < 1e-3
    assert np.linalg.norm(translation - motion_t) < 1e-5
    assert info.inlier_fraction == pytest.approx(4000 / 4400)


def test_prebuilt_tree_gives_the_same_answer() -> None:
    rng = np.random.default_rng(4)
    target = face_like_points(2000, rng)
    source = apply_rigid(target, *known_motion(3.0, 0.004))
    first = icp(source, target, iterations=10)
    second = icp(source, target, iterations=10, target_tree=cKDTree(target))
    np.testing.assert_allclose(first[0], second[0])
    np.testing.assert_allclose(first[1], second[1])


@pytest.mark.parametrize("source, target", [(np.zeros((2, 3)), np.zeros((5, 3))),
                                            (np.zeros((5, 2)), np.zeros((5, 3))),
                                            (np.full((5, 3), np.nan), np.zeros((5, 3)))])
def test_bad_input_is_refused(source: np.ndarray, target: np.ndarray) -> None:
    with pytest.raises(ValueError):
        icp(source, target)


def test_too_few_matches_within_cap_is_refused() -> None:
    points = face_like_points(100, np.random.default_rng(5))
    with pytest.raises(ValueError, match="correspondences"):
        icp(points + 10.0, points, max_correspondence_distance=0.1)
