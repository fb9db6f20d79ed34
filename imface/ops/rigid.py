"""Rigid transforms: the Kabsch least-squares fit and small helpers around it.

Convention everywhere: points are rows, ``x' = x @ R.T + t`` (i.e. ``R x + t`` per
point). All arrays are numpy float64; the functions are unit-agnostic (the
preprocessing pipeline uses millimetres).
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


class ReflectionError(ValueError):
    """The best orthogonal fit is a mirror: the landmark configuration is mirrored.

    Typical cause: left and right landmarks swapped, or a scan exported with one
    axis flipped. A proper rotation cannot undo that, so the fit is refused.
    """


class DegenerateConfigurationError(ValueError):
    """Too few points, or points (nearly) collinear/coincident: the rotation is not determined."""


def as_points(name: str, points: np.ndarray) -> np.ndarray:
    """Validate an (N, 3) array of finite points; returns it as float64."""
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def kabsch(
    source: np.ndarray,
    target: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    collinear_tol: float = 1e-6,
    planar_tol: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray]:
    """Rigid (rotation + translation, NO scale) weighted least-squares fit.

    Minimises ``sum_i w_i |source_i @ R.T + t - target_i|^2`` over proper rotations.

    Args:
        source: (N, 3) points to move, any length unit.
        target: (N, 3) corresponding points, same unit.
        weights: optional (N,) non-negative weights (default all ones); points with
            weight 0 are ignored.
        collinear_tol: the configuration is degenerate when the second singular value
            of the centred (weighted) source or target is below ``collinear_tol`` times
            the first.
        planar_tol: when the optimal orthogonal map is a mirror but the cross-covariance
            has rank 2 (smallest singular value <= ``planar_tol`` times the largest), the
            points are coplanar and a proper rotation fits exactly as well, so it is
            returned instead of raising.

    Returns:
        R (3, 3) proper rotation (det +1) and t (3,), such that ``target ~= source @ R.T + t``.

    Raises:
        ValueError: shapes differ, non-finite values, negative weights.
        DegenerateConfigurationError: fewer than 3 (positively weighted) points, or the
            points are (nearly) collinear or coincident.
        ReflectionError: the optimal orthogonal map has det -1 (mirrored configuration).
    """
    source = as_points("source", source)
    target = as_points("target", target)
    if source.shape != target.shape:
        raise ValueError(f"source {source.shape} and target {target.shape} differ in shape")
    if weights is None:
        weights = np.ones(len(source))
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(source),):
        raise ValueError(f"weights must have shape ({len(source)},), got {weights.shape}")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError("weights must be finite and non-negative")
    if np.count_nonzero(weights) < 3:
        raise DegenerateConfigurationError(
            f"a rigid fit needs at least 3 points with positive weight, got {np.count_nonzero(weights)}"
        )

    w = weights / weights.sum()
    source_centroid = w @ source
    target_centroid = w @ target
    # sqrt(w) scaling makes the plain SVD of each cloud reflect the weighted spread.
    root_w = np.sqrt(w)[:, None]
    source_centered = (source - source_centroid) * root_w
    target_centered = (target - target_centroid) * root_w
    for name, cloud in (("source", source_centered), ("target", target_centered)):
        spread = np.linalg.svd(cloud, compute_uv=False)
        if spread[0] <= 0.0 or spread[1] <= collinear_tol * spread[0]:
            raise DegenerateConfigurationError(f"{name} points are collinear or coincident")

    covariance = source_centered.T @ target_centered  # (3, 3) = sum w s t^T
    u, singular, vt = np.linalg.svd(covariance)
    mirrored = np.linalg.det(vt.T @ u.T) < 0.0
    if mirrored and singular[2] > planar_tol * singular[0]:
        raise ReflectionError("the best orthogonal fit is a reflection (mirrored point configuration)")
    # Kabsch guard, reached only for coplanar points: flipping the axis of the smallest
    # singular value costs nothing there, so a proper rotation fits as well as the mirror.
    correction = np.diag([1.0, 1.0, -1.0 if mirrored else 1.0])
    rotation = vt.T @ correction @ u.T
    translation = target_centroid - source_centroid @ rotation.T
    return rotation, translation


def apply_rigid(points: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Apply ``x' = R x + t`` to (N, 3) points (returns (N, 3) float64)."""
    points = np.asarray(points, dtype=np.float64)
    return points @ np.asarray(rotation, dtype=np.float64).T + np.asarray(translation, dtype=np.float64)


def invert_rigid(rotation: np.ndarray, translation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of ``x' = R x + t``: returns (R.T, -R.T t)."""
    rotation = np.asarray(rotation, dtype=np.float64)
    translation = np.asarray(translation, dtype=np.float64)
    return rotation.T.copy(), -(rotation.T @ translation)


def rigid_to_matrix(rotation: np.ndarray, translation: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """4x4 homogeneous matrix of ``x' = scale * (R x + t)`` (acts on column vectors [x, 1])."""
    matrix = np.eye(4)
    matrix[:3, :3] = scale * np.asarray(rotation, dtype=np.float64)
    matrix[:3, 3] = scale * np.asarray(translation, dtype=np.float64)
    return matrix


def random_rotation(rng: np.random.Generator, max_angle_deg: float) -> np.ndarray:
    """A random proper rotation (3, 3): axis uniform on the sphere, angle uniform in [0, max_angle_deg]."""
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(0.0, max_angle_deg))
    return Rotation.from_rotvec(axis * angle).as_matrix()
