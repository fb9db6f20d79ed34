"""Rigid point-to-point ICP: nearest neighbours (scipy cKDTree) + Kabsch per iteration.

Convention (as in :mod:`imface.ops.rigid`): ``x' = x @ R.T + t``; all arrays float64,
unit-agnostic (distances come back in the points' unit).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from imface.ops.rigid import apply_rigid, as_points, kabsch


@dataclass(frozen=True)
class ICPInfo:
    """How an ICP run went.

    iterations: Kabsch updates made; converged: the mean distance changed by less than
    the tolerance before the iteration limit; mean_distance / rms_distance: over the
    final correspondences after the final transform (points' unit); inlier_fraction:
    share of source points that had a correspondence (1.0 without a distance cap);
    initial_mean_distance: before any update.
    """

    iterations: int
    converged: bool
    mean_distance: float
    rms_distance: float
    inlier_fraction: float
    initial_mean_distance: float


def _matches(tree: cKDTree, points: np.ndarray, max_distance: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest target of each point: distances (N,), indices (N,), inlier mask (N,)."""
    upper = np.inf if max_distance is None else max_distance
    distances, indices = tree.query(points, workers=-1, distance_upper_bound=upper)
    return distances, indices, np.isfinite(distances)


def icp(
    source_points: np.ndarray,
    target_points: np.ndarray,
    *,
    iterations: int = 20,
    tolerance: float = 1e-7,
    max_correspondence_distance: float | None = None,
    target_tree: cKDTree | None = None,
) -> tuple[np.ndarray, np.ndarray, ICPInfo]:
    """Rigid transform moving ``source_points`` onto ``target_points`` (point-to-point ICP).

    Each iteration matches every source point (moved by the current estimate) to its
    nearest target point and refits R, t with Kabsch from the original source points
    to the matches, so errors do not accumulate. Stops after ``iterations`` updates or
    when the mean match distance changes by less than ``tolerance``.

    Args:
        source_points: (N, 3) points to move; target_points: (M, 3), same unit.
        max_correspondence_distance: ignore matches farther than this (None: keep all).
        target_tree: a prebuilt ``cKDTree(target_points)`` to reuse.

    Returns:
        R (3, 3) proper rotation, t (3,) with ``target ~= source @ R.T + t``, and ICPInfo.

    Raises:
        ValueError: bad shapes or values, or fewer than 3 correspondences.
    """
    source = as_points("source_points", source_points)
    target = as_points("target_points", target_points)
    if len(source) < 3 or len(target) < 3:
        raise ValueError("ICP needs at least 3 source and 3 target points")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    tree = cKDTree(target) if target_tree is None else target_tree
    rotation, translation = np.eye(3), np.zeros(3)

    def match(moved: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        distances, indices, inliers = _matches(tree, moved, max_correspondence_distance)
        if np.count_nonzero(inliers) < 3:
            raise ValueError(f"ICP found fewer than 3 correspondences within {max_correspondence_distance}")
        return distances, indices, inliers

    distances, indices, inliers = match(source)
    initial = previous = float(distances[inliers].mean())
    done, converged = 0, False
    while done < iterations and previous > 0.0:
        rotation, translation = kabsch(source[inliers], target[indices[inliers]])
        done += 1
        distances, indices, inliers = match(apply_rigid(source, rotation, translation))
        current = float(distances[inliers].mean())
        if abs(previous - current) < tolerance:
            converged = True
            previous = current
            break
        previous = current
    converged = converged or previous == 0.0
    kept = distances[inliers]
    info = ICPInfo(
        iterations=done,
        converged=converged,
        mean_distance=float(kept.mean()),
        rms_distance=float(np.sqrt(np.mean(kept**2))),
        inlier_fraction=float(np.count_nonzero(inliers) / len(source)),
        initial_mean_distance=initial,
    )
    return rotation, translation, info
