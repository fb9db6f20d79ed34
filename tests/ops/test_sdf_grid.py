"""Grid evaluation of SDFs: chunking, the sphere mask against a naive grid, output checks, the
coarse-to-fine level plan, the device an SDF wants, and one refinement step."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from imface.ops.sdf_grid import evaluate_grid, evaluate_points, grid_axis, infer_device, level_resolutions, refine_level
from tests.ops.sdfs import CountingSDF, sphere_sdf


def test_level_resolutions() -> None:
    assert level_resolutions(256, 32) == [33, 65, 129, 256]
    assert level_resolutions(256, 64) == [65, 129, 256]
    assert level_resolutions(100, 32) == [51, 100]
    assert level_resolutions(32, 32) == [32]
    assert level_resolutions(20, 32) == [20]
    for target in (77, 128, 200, 513):
        levels = level_resolutions(target, 16)
        assert levels[-1] == target and levels[0] >= 16
        assert all(abs((fine - 1) / (coarse - 1) - 2) < 0.1 for coarse, fine in zip(levels, levels[1:]))


def test_evaluate_grid_matches_naive_grid() -> None:
    resolution, bound = 21, 1.3  # no grid point lies (almost) exactly on the unit sphere
    axis = np.linspace(-bound, bound, resolution)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    radius = np.sqrt(x**2 + y**2 + z**2)
    naive = np.where(radius <= 1.0, x + 2 * y - z, radius - 1.0)
    sdf = CountingSDF(lambda p: p[:, 0] + 2 * p[:, 1] - p[:, 2])
    grid = evaluate_grid(sdf, resolution, bound=bound, chunk_size=100, device="cpu")  # no probe call
    assert grid.shape == (resolution,) * 3 and grid.dtype == np.float32
    np.testing.assert_allclose(grid, naive, atol=1e-5)
    assert sdf.points == np.count_nonzero(radius <= 1.0)  # nothing outside the sphere is evaluated
    assert sdf.calls == -(-sdf.points // 100)  # one slab, chunks of 100
    unmasked = evaluate_grid(sdf, resolution, bound=bound, chunk_size=4096, mask_outside_sphere=False)
    np.testing.assert_allclose(unmasked, x + 2 * y - z, atol=1e-5)


def test_evaluate_points_checks_the_sdf_output() -> None:
    points = np.zeros((10, 3))
    np.testing.assert_array_equal(evaluate_points(lambda p: p[:, :1] + 1.0, points, chunk_size=3), np.ones(10))
    with pytest.raises(ValueError, match="values"):
        evaluate_points(lambda p: p, points)
    with pytest.raises(ValueError, match="NaN"):
        evaluate_points(lambda p: p[:, 0] / 0.0 * 0.0, points)
    with pytest.raises(ValueError, match="chunk_size"):
        evaluate_points(sphere_sdf, points, chunk_size=0)


def test_infer_device_asks_modules_and_probes_functions() -> None:
    assert infer_device(torch.nn.Linear(3, 1)) == torch.device("cpu")
    assert infer_device(torch.nn.Linear(3, 1).forward) == torch.device("cpu")  # a bound method of a module
    probe = CountingSDF(sphere_sdf)
    assert infer_device(probe) == torch.device("cpu") and probe.points == 1


def test_refine_level_keeps_coarse_values_and_asks_only_near_the_surface() -> None:
    coarse_size, fine_size = 9, 17  # nested: every other fine point is a coarse point
    axis = grid_axis(coarse_size, 1.0)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    coarse = (np.sqrt(x**2 + y**2 + z**2) - 0.5).astype(np.float32)
    inside = np.ones_like(coarse, dtype=bool)
    estimate, wanted = refine_level(coarse, inside, fine_size, bound=1.0, level=0.0, band_factor=1.25)
    assert estimate.shape == wanted.shape == (fine_size,) * 3
    np.testing.assert_array_equal(estimate[::2, ::2, ::2], coarse)
    assert not wanted[::2, ::2, ::2].any()  # known coarse points are never evaluated again
    fine_axis = grid_axis(fine_size, 1.0)
    fx, fy, fz = np.meshgrid(fine_axis, fine_axis, fine_axis, indexing="ij")
    radius = np.sqrt(fx**2 + fy**2 + fz**2)
    band = 1.25 * np.sqrt(3.0) * 0.25  # band_factor coarse cell diagonals
    assert not wanted[np.abs(radius - 0.5) > 2 * band].any()
    assert wanted[np.abs(radius - 0.5) < 0.05].any()
