"""imface.fitting.scale_sweep: the scale of a landmark-free input chosen by fits at several scales."""
from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from imface.fitting import outputs as fit_io
from imface.fitting.inputs import FitTarget, processed_target
from imface.config.fit import FitSettings
from imface.fitting.fitter import FitState, optimise
from imface.fitting.scale_sweep import (covered_template, face_points, parabola_minimum, scaled_pose, score_copies,
                                       sweep_factors, sweep_scales)
from imface.ops.rigid import random_rotation
from imface.ops.similarity_search import refine_pose
from tests.synthetic_processed import sphere_of
from tests.baselines import sample_face_points
from tests.ops.meshes import rotation_angle_deg


def test_factors_are_even_in_log_scale_around_one():
    factors = sweep_factors(7, 0.075)
    assert len(factors) == 7 and factors[3] == pytest.approx(1.0)
    assert factors[0] == pytest.approx(1 / 1.075) and factors[-1] == pytest.approx(1.075)
    np.testing.assert_allclose(np.diff(np.log(factors)), np.log(1.075) / 3)


def test_parabola_minimum_between_samples_and_at_the_ends():
    grid = np.log(sweep_factors(7, 0.06))
    truth = grid[3] + 0.37 * (grid[1] - grid[0])  # between two samples
    assert parabola_minimum(grid, 2.0 + (grid - truth) ** 2) == pytest.approx(truth)
    assert parabola_minimum(grid, np.linspace(1.0, 2.0, 7)) == grid[0]  # falling toward the end: the end
    assert parabola_minimum(grid, np.linspace(2.0, 1.0, 7)) == grid[-1]
    flat = np.array([1.0, 1.0, 0.5, 1.0, 1.0, 1.0, 1.0])
    assert parabola_minimum(grid, flat) == pytest.approx(grid[2])  # symmetric about the lowest: it


def test_only_points_near_the_posed_mean_face_are_scored():
    template = sample_face_points(np.zeros(6), 3000, seed=0)
    clutter = np.random.default_rng(2).normal(size=(2000, 3)) * 0.15 + [0.0, -2.2, -0.3]  # shoulders, far below
    target = FitTarget(name="s", identity="s", expression="neutral", neutral=True, source=None, kind="points",
                       surface_points=np.concatenate([template + [0.0, 0.0, 0.5], clutter]).astype(np.float32),
                       init_translation=np.array([0.0, 0.0, -0.5]))
    points = face_points(target, template, np.random.default_rng(0))
    assert len(points) == len(template)
    np.testing.assert_allclose(np.sort(points[:, 2]), np.sort(template[:, 2] + 0.5), atol=1e-6)


class _Sphere(torch.nn.Module):
    """A 'model' whose surface is a sphere of radius 0.5 about the origin, whatever the codes."""

    def sdf(self, points, id_codes, exp_codes, neutral):
        return points.norm(dim=-1) - 0.5

    def evaluate(self, points, id_codes, exp_codes, neutral, *, with_gradients=False):
        norm = points.norm(dim=-1, keepdim=True)
        return SimpleNamespace(sdf=norm[..., 0] - 0.5, gradient=points / norm)


def _cap(radius: float, count: int, seed: int) -> np.ndarray:
    directions = np.random.default_rng(seed).normal(size=(4 * count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return radius * directions[directions[:, 2] > 0.5][:count]


def test_two_sided_scores_measure_the_fit_back_to_the_input():
    # A cap of the model's sphere, given 5% too small; the mean face's points: the same cap, full size.
    points, template = _cap(0.5 / 1.05, 3000, 0), _cap(0.5 * 1.02, 3000, 1)  # template off the surface: projected
    factors = np.array([0.95, 1.0, 1.05, 1.1])
    n = len(factors)
    state = FitState(torch.zeros(n, 2), torch.zeros(n, 2), torch.ones(n, dtype=torch.bool),
                     torch.eye(3).repeat(n, 1, 1), torch.zeros(n, 3), torch.ones(n))
    one = score_copies(_Sphere(), points, state, slice(0, n), factors, 1.0, torch.device("cpu"))
    two = score_copies(_Sphere(), points, state, slice(0, n), factors, 1.0, torch.device("cpu"), template)
    assert np.argmin(one) == 2 and np.argmin(two) == 2 and two[2] < 0.004  # both near 0 at the true size
    # Half the cap seen: input to fit still fits at 1.05, but the fit's other half, far from any
    # input point, now counts (a fit reaching past the input's border costs).
    half = points[points[:, 0] > 0]
    one = score_copies(_Sphere(), half, state, slice(0, n), factors, 1.0, torch.device("cpu"))
    two = score_copies(_Sphere(), half, state, slice(0, n), factors, 1.0, torch.device("cpu"), template)
    assert one[2] < 0.002 and two[2] > 0.02


def test_the_gaps_of_a_sparse_input_do_not_count_against_a_fit():
    # A one-view cloud of 400 points (spacing ~ 0.035 units) on the model's sphere at its true
    # size: the fit's surface between the points is not measured as a miss (as the distance to
    # the nearest point would: about a third of the spacing), while a wrong size still costs.
    points, template = _cap(0.5, 400, 0), _cap(0.5, 3000, 1)
    factors = np.array([0.95, 1.0, 1.05])
    n = len(factors)
    state = FitState(torch.zeros(n, 2), torch.zeros(n, 2), torch.ones(n, dtype=torch.bool),
                     torch.eye(3).repeat(n, 1, 1), torch.zeros(n, 3), torch.ones(n))
    scores = score_copies(_Sphere(), points, state, slice(0, n), factors, 1.0, torch.device("cpu"), template)
    assert np.argmin(scores) == 1 and scores[1] < 0.002 and scores[0] > 0.01 and scores[2] > 0.01


def test_the_covered_template_is_the_part_of_the_mean_face_the_input_reaches():
    template = sample_face_points(np.zeros(6), 3000, seed=0)
    half = template[template[:, 0] > 0.0]  # a one-view cloud seeing the right half
    target = FitTarget(name="s", identity="s", expression="neutral", neutral=True, source=None, kind="points",
                       surface_points=(half + [0.0, 0.0, 0.5]).astype(np.float32),
                       init_translation=np.array([0.0, 0.0, -0.5]))
    covered = covered_template(target, template)
    assert (covered[:, 0] > -0.1).all() and len(half) <= len(covered) < len(template)


def test_scores_are_distances_in_the_inputs_own_units():
    # The input is the model's sphere 5% too small: the copy grown by 1.05 fits it exactly.
    directions = np.random.default_rng(0).normal(size=(500, 3))
    points = 0.5 / 1.05 * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    factors = np.array([0.95, 1.0, 1.05, 1.1])
    n = len(factors)
    state = FitState(torch.zeros(n, 2), torch.zeros(n, 2), torch.ones(n, dtype=torch.bool),
                     torch.eye(3).repeat(n, 1, 1), torch.zeros(n, 3), torch.ones(n))
    scores = score_copies(_Sphere(), points, state, slice(0, n), factors, trim=1.0, device=torch.device("cpu"))
    expected = np.abs(0.5 / 1.05 - 0.5 / factors)  # |g r - 0.5| / g: the gap measured at the input's scale
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    assert np.argmin(scores) == 2
    capped = score_copies(_Sphere(), points, state, slice(0, n), factors, trim=0.01, device=torch.device("cpu"))
    assert capped.max() <= 0.01 + 1e-9


def test_refine_pose_recovers_a_small_turn_and_shift():
    template = sample_face_points(np.zeros(6), 4000, seed=0)
    rotation = random_rotation(np.random.default_rng(3), 4.0)
    shift = np.array([0.02, -0.015, 0.01])
    points = (sample_face_points(np.zeros(6), 6000, seed=1) - shift) @ rotation  # x = R^T (t - shift)
    found_rotation, found_translation = refine_pose(points, template, np.eye(3), np.zeros(3))
    assert rotation_angle_deg(found_rotation @ rotation.T) < 0.3
    moved = points @ found_rotation.T + found_translation
    assert np.abs(moved - (points @ rotation.T + shift)).max() < 0.002  # 0.2 mm


def test_the_sweep_applies_its_choice_to_the_target(trained_tiny):
    data_dir, exp_dir = trained_tiny
    loaded = fit_io.load_model(exp_dir)
    target = processed_target(data_dir / "001/2_smile", "001/2_smile", "001", "smile", False, np.random.default_rng(0))
    target.space_points = target.space_sdf = target.space_grad = None  # a surface-only input, as searched
    target.surface_points = (target.surface_points * 0.9).astype(np.float32)
    target.fit_pose = target.fit_scale = True
    target.alignment = {"scale": 0.9, "mm_per_input_unit": 90.0, "unit": "arbitrary"}
    raw_to_input = np.diag([0.9, 0.9, 0.9, 1.0])
    target.raw_to_input = raw_to_input
    centre, radius = sphere_of(1, "smile")
    template = _sphere_front(centre, radius)
    before = target.surface_points.copy()
    original = copy.deepcopy(target)
    settings = FitSettings(steps=20, surface_points=256, space_points=256, robust_distance=0.05, scale_sweep=5,
                           scale_sweep_range=0.1, scale_sweep_steps=15)
    sweep_scales(loaded.model, [target], settings, loaded.code_stats, loaded.experiment.loss, template,
                 device=torch.device("cpu"), batch_size=16, optimise=optimise)
    sweep = target.alignment["scale_sweep"]
    chosen = sweep["chosen"]
    assert len(sweep["factors"]) == 5 and np.isfinite(sweep["scores_mm"]).all() and sweep["steps"] == 15
    best = float(np.log(sweep["factors"][int(np.argmin(sweep["scores_mm"]))]))
    assert abs(np.log(chosen) - best) <= np.log(1.1) / 2 + 1e-9  # within one spacing of the best sample
    np.testing.assert_allclose(target.surface_points, chosen * before, rtol=1e-5)
    assert target.alignment["search_scale"] == 0.9 and target.alignment["scale"] == pytest.approx(0.9 * chosen)
    np.testing.assert_allclose(target.raw_to_input, np.diag([chosen, chosen, chosen, 1.0]) @ raw_to_input)
    # the pose is the search's, scaled about the posed centroid and re-fitted at the chosen scale
    rotation, translation = scaled_pose(original, chosen, template)
    np.testing.assert_allclose(target.init_rotation, rotation, atol=1e-12)
    np.testing.assert_allclose(target.init_translation, translation, atol=1e-12)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)


def _sphere_front(centre: np.ndarray, radius: float) -> np.ndarray:
    directions = np.random.default_rng(1).normal(size=(3000, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return centre + radius * directions[directions[:, 2] > 0]
