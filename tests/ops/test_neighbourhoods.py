"""imface.ops.neighbourhoods: per-point neighbourhood spread and local planes."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from imface.ops.neighbourhoods import distance_to_sampled_surface, local_covariances, local_planes
from imface.ops.rigid import random_rotation


def test_local_covariances_match_a_brute_force_reference():
    points = np.random.default_rng(0).normal(size=(60, 3))
    scatter, distance = local_covariances(points, 7)
    for i in (0, 17, 59):
        order = np.argsort(np.linalg.norm(points - points[i], axis=1))[:7]
        local = points[order] - points[order].mean(axis=0)
        np.testing.assert_allclose(scatter[i], local.T @ local, atol=1e-12)
        np.testing.assert_allclose(distance[i], np.linalg.norm(points[order] - points[i], axis=1), atol=1e-12)
    assert distance[:, 0].max() == 0.0  # each point is its own nearest
    assert local_covariances(points[:5], 7)[1].shape == (5, 5)  # capped at the number of points


def test_local_planes_give_normals_and_the_sampling_spacing():
    grid = np.stack(np.meshgrid(np.arange(20.0), np.arange(20.0)), axis=-1).reshape(-1, 2) * 0.01
    tilt = random_rotation(np.random.default_rng(3), 30.0)
    points = np.c_[grid, np.zeros(len(grid))] @ tilt.T
    normals, spacing = local_planes(points)
    np.testing.assert_allclose(np.abs(normals @ tilt[:, 2]), 1.0, atol=1e-6)
    assert np.allclose(spacing[(grid > 0.015).all(axis=1) & (grid < 0.175).all(axis=1)], 0.01)  # four neighbours at 0.01


def test_the_sampled_surface_has_no_gaps_but_ends_at_the_border():
    rng = np.random.default_rng(2)
    cloud = np.c_[rng.uniform(-1, 1, (400, 2)), np.zeros(400)]  # 400 points on a 2 x 2 square: spacing ~0.1
    inside = np.c_[rng.uniform(-0.8, 0.8, (500, 2)), np.zeros(500)]
    assert np.median(cKDTree(cloud).query(inside)[0]) > 0.02  # what the nearest point would count
    gaps = distance_to_sampled_surface(inside, cloud)
    assert np.median(gaps) == 0.0 and np.quantile(gaps, 0.9) < 0.005  # a random cloud leaves a few wider gaps
    assert np.median(distance_to_sampled_surface(inside + [0, 0, 0.05], cloud)) == pytest.approx(0.05)
    beyond = distance_to_sampled_surface(np.array([[1.5, 0.0, 0.0]]), cloud)
    assert 0.3 < beyond[0] < 0.5  # past the border by 0.5, less one spacing
