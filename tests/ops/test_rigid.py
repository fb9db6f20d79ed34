"""Kabsch fit and rigid helpers, checked against known transforms and scipy's align_vectors."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from imface.ops.rigid import (
    DegenerateConfigurationError,
    ReflectionError,
    apply_rigid,
    invert_rigid,
    kabsch,
    random_rotation,
    rigid_to_matrix,
)


def _random_transform(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return random_rotation(rng, 180.0), rng.uniform(-50.0, 50.0, 3)


@pytest.mark.parametrize("seed", range(5))
def test_recovers_known_transform(seed: int) -> None:
    rng = np.random.default_rng(seed)
    source = rng.uniform(-100.0, 100.0, (12, 3))
    rotation, translation = _random_transform(rng)
    target = source @ rotation.T + translation
    fitted_r, fitted_t = kabsch(source, target)
    np.testing.assert_allclose(fitted_r, rotation, atol=1e-9)
    np.testing.assert_allclose(fitted_t, translation, atol=1e-9)
    assert np.linalg.det(fitted_r) == pytest.approx(1.0, abs=1e-12)


def test_weights_ignore_corrupted_points() -> None:
    rng = np.random.default_rng(1)
    source = rng.uniform(-1.0, 1.0, (10, 3))
    rotation, translation = _random_transform(rng)
    target = source @ rotation.T + translation
    target[:3] += rng.normal(0.0, 5.0, (3, 3))  # outliers ...
    weights = rng.uniform(0.5, 2.0, 10)
    weights[:3] = 0.0  # ... that carry no weight
    fitted_r, fitted_t = kabsch(source, target, weights)
    np.testing.assert_allclose(fitted_r, rotation, atol=1e-9)
    np.testing.assert_allclose(fitted_t, translation, atol=1e-9)
    unweighted_r, _ = kabsch(source, target)
    assert not np.allclose(unweighted_r, rotation, atol=1e-3)


def test_integer_weights_equal_repeated_points() -> None:
    rng = np.random.default_rng(2)
    source = rng.normal(size=(8, 3))
    rotation, translation = _random_transform(rng)
    target = source @ rotation.T + translation + rng.normal(0.0, 0.05, (8, 3))
    counts = rng.integers(1, 5, 8)
    weighted = kabsch(source, target, counts.astype(float))
    repeated = kabsch(np.repeat(source, counts, axis=0), np.repeat(target, counts, axis=0))
    np.testing.assert_allclose(weighted[0], repeated[0], atol=1e-10)
    np.testing.assert_allclose(weighted[1], repeated[1], atol=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_noisy_fit_matches_scipy_and_is_optimal(seed: int) -> None:
    rng = np.random.default_rng(10 + seed)
    source = rng.uniform(-50.0, 50.0, (30, 3))
    rotation, translation = _random_transform(rng)
    target = source @ rotation.T + translation + rng.normal(0.0, 0.5, (30, 3))
    weights = rng.uniform(0.1, 1.0, 30)
    fitted_r, fitted_t = kabsch(source, target, weights)

    # Reference: scipy's Wahba solver on the weighted-centroid-centred clouds.
    w = weights / weights.sum()
    reference, _ = Rotation.align_vectors(target - w @ target, source - w @ source, weights=weights)
    np.testing.assert_allclose(fitted_r, reference.as_matrix(), atol=1e-9)
    angle_error = Rotation.from_matrix(fitted_r @ rotation.T).magnitude()
    assert angle_error < np.deg2rad(1.0)

    def cost(r: np.ndarray, t: np.ndarray) -> float:
        return float(weights @ np.sum((source @ r.T + t - target) ** 2, axis=1))

    assert cost(fitted_r, fitted_t) <= cost(rotation, translation)
    for _ in range(20):  # small perturbations of the optimum never do better
        nudge = Rotation.from_rotvec(rng.normal(0.0, 1e-3, 3)).as_matrix()
        assert cost(fitted_r, fitted_t) <= cost(nudge @ fitted_r, fitted_t + rng.normal(0.0, 1e-3, 3))


def test_refuses_mirrored_configuration() -> None:
    rng = np.random.default_rng(3)
    source = rng.uniform(-1.0, 1.0, (6, 3))
    rotation, translation = _random_transform(rng)
    mirrored = source * np.array([-1.0, 1.0, 1.0])
    with pytest.raises(ReflectionError):
        kabsch(source, mirrored @ rotation.T + translation)


def test_coplanar_mirror_is_a_rotation() -> None:
    # In a plane, a mirror equals a half-turn out of the plane: a proper rotation fits exactly.
    rng = np.random.default_rng(4)
    source = np.c_[rng.uniform(-1.0, 1.0, (5, 2)), np.zeros(5)]
    target = source * np.array([-1.0, 1.0, 1.0])
    fitted_r, fitted_t = kabsch(source, target)
    assert np.linalg.det(fitted_r) == pytest.approx(1.0)
    np.testing.assert_allclose(apply_rigid(source, fitted_r, fitted_t), target, atol=1e-12)


@pytest.mark.parametrize(
    "points",
    [
        np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]),  # N < 3
        np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [-1.0, -2.0, -3.0]]),  # collinear
        np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [2.0, 4.0, 6.0 + 1e-9]]),  # nearly collinear
        np.ones((4, 3)),  # coincident
    ],
)
def test_refuses_degenerate_configurations(points: np.ndarray) -> None:
    with pytest.raises(DegenerateConfigurationError):
        kabsch(points, points + 1.0)


def test_refuses_degenerate_target_and_too_few_weighted_points() -> None:
    rng = np.random.default_rng(5)
    source = rng.normal(size=(5, 3))
    with pytest.raises(DegenerateConfigurationError):
        kabsch(source, np.zeros((5, 3)))
    with pytest.raises(DegenerateConfigurationError):
        kabsch(source, source, np.array([1.0, 1.0, 0.0, 0.0, 0.0]))


def test_rejects_bad_inputs() -> None:
    points = np.eye(3)
    with pytest.raises(ValueError):
        kabsch(points, np.eye(4)[:, :3])
    with pytest.raises(ValueError):
        kabsch(points, points, np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError):
        kabsch(points * np.nan, points)


def test_apply_invert_and_matrix_agree() -> None:
    rng = np.random.default_rng(6)
    points = rng.normal(size=(7, 3))
    rotation, translation = _random_transform(rng)
    moved = apply_rigid(points, rotation, translation)
    np.testing.assert_allclose(moved, np.array([rotation @ p + translation for p in points]), atol=1e-12)
    back_r, back_t = invert_rigid(rotation, translation)
    np.testing.assert_allclose(apply_rigid(moved, back_r, back_t), points, atol=1e-12)
    matrix = rigid_to_matrix(rotation, translation, scale=0.01)
    homogeneous = np.c_[points, np.ones(len(points))] @ matrix.T
    np.testing.assert_allclose(homogeneous[:, :3], 0.01 * moved, atol=1e-12)
    np.testing.assert_allclose(homogeneous[:, 3], 1.0)


def test_random_rotation_is_proper_and_bounded() -> None:
    rng = np.random.default_rng(7)
    angles = []
    for _ in range(200):
        rotation = random_rotation(rng, 15.0)
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rotation) == pytest.approx(1.0)
        angles.append(np.rad2deg(Rotation.from_matrix(rotation).magnitude()))
    assert max(angles) <= 15.0 + 1e-9
    assert max(angles) > 10.0  # the whole range is used, not just tiny angles
