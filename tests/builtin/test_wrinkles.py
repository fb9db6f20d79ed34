"""Wrinkle and fold fields of the built-in faces: ranges, widths and depths in mm, mirror
symmetry, zero outside each field's support, and the pruning in furrow_set against a naive sum."""
from __future__ import annotations

import numpy as np
import pytest

from imface.builtin.wrinkles import (
    BOTH_SIDES,
    FURROW_REGIONS,
    crows_feet,
    fold_coordinates,
    furrow_set,
    furrow_traits,
    nasolabial_fold,
    smoothstep,
    window,
)

MIRROR = np.array([-1.0, 1.0, 1.0])


def _plane(half_mm: float = 60.0, step_mm: float = 0.5) -> np.ndarray:
    """(V, 3) points of the z = 0 plane, mm."""
    axis = np.arange(-half_mm, half_mm + 1e-9, step_mm)
    x, y = np.meshgrid(axis, axis, indexing="ij")
    return np.c_[x.ravel(), y.ravel(), np.zeros(x.size)]


def test_smoothstep_is_a_c1_ramp():
    t = np.linspace(-1.0, 2.0, 3001)
    s = smoothstep(t)
    assert (s[t <= 0] == 0).all() and (s[t >= 1] == 1).all()
    assert smoothstep(np.array(0.5)) == pytest.approx(0.5)
    assert (np.diff(s) >= 0).all()
    slope = np.diff(s) / np.diff(t)
    assert abs(slope[np.searchsorted(t, 0.0)]) < 1e-2 and abs(slope[np.searchsorted(t, 1.0) - 1]) < 1e-2


def test_window_is_one_inside_and_zero_beyond_the_soft_edge():
    t = np.linspace(-5.0, 15.0, 2001)
    w = window(t, 2.0, 8.0, 1.5)
    assert ((0 <= w) & (w <= 1)).all()
    assert (w[(t >= 2.0) & (t <= 8.0)] == 1).all()
    assert (w[(t <= 0.5) | (t >= 9.5)] == 0).all()


def test_crows_feet_depth_sign_support_and_mirror():
    points = _plane()
    corner = np.array([10.0, 5.0, 0.0])
    args = dict(count=4, fan_rad=0.8, rotation_rad=0.1, inner_mm=8.0, outer_mm=30.0, width_mm=3.0, depth_mm=1.2)
    left = crows_feet(points, corner, +1.0, **args)
    assert left.shape == (len(points),)
    assert (left <= 0).all() and left.min() == pytest.approx(-1.2, rel=0.05)
    radius = np.linalg.norm(points[:, :2] - corner[:2], axis=1)
    assert (left[(radius < 4.0) | (radius > 34.0)] == 0).all()  # the radial window's soft edge is 4 mm
    assert (left[points[:, 0] < corner[0] - 1.0] > -1e-6).all()  # nothing toward the nose
    # The right eye's fan (outward -1) on the mirrored face is the left one mirrored.
    right = crows_feet(points * MIRROR, corner * MIRROR, -1.0, **args)
    np.testing.assert_allclose(right, left, atol=1e-12)


def test_fold_coordinates_run_from_start_to_end_and_point_to_the_cheek():
    start, end = np.array([10.0, 20.0, 0.0]), np.array([20.0, -20.0, 0.0])
    ends = np.stack([start, end, 0.5 * (start + end)])
    dist, t = fold_coordinates(ends, start, end, +1.0, bow_mm=0.0, slide_mm=0.0)
    np.testing.assert_allclose(t, [0.0, 1.0, 0.5], atol=1e-12)
    np.testing.assert_allclose(dist, 0.0, atol=1e-12)
    cheek = fold_coordinates(np.array([[40.0, 0.0, 0.0]]), start, end, +1.0, 0.0, 0.0)[0]
    nose = fold_coordinates(np.array([[0.0, 0.0, 0.0]]), start, end, +1.0, 0.0, 0.0)[0]
    assert cheek[0] > 0 > nose[0]
    bowed = fold_coordinates(ends, start, end, +1.0, bow_mm=3.0, slide_mm=1.0)[0]
    np.testing.assert_allclose(bowed, [-1.0, -1.0, -4.0], atol=1e-12)  # the curve moved toward the cheek


def test_nasolabial_groove_has_its_depth_and_width_and_a_cheek_bulge():
    start, end = np.array([0.0, 20.0, 0.0]), np.array([0.0, -20.0, 0.0])  # a vertical fold on x = 0
    width, depth = 4.0, 2.0
    across = np.array([[0.0, 0.0, 0.0], [width / 2, 0.0, 0.0], [-width / 2, 0.0, 0.0]])
    groove = nasolabial_fold(across, start, end, +1.0, 0.0, 0.0, width, depth, bulge=0.0)
    np.testing.assert_allclose(groove, [-depth, -depth / 2, -depth / 2], rtol=1e-3)  # FWHM = width
    points = _plane()
    fold = nasolabial_fold(points, start, end, +1.0, 2.0, 0.5, width, depth, bulge=0.4)
    assert fold.min() < -0.8 * depth and fold.max() > 0.2 * depth  # the bulge's tail lifts the groove a little
    assert points[fold.argmax(), 0] > 0  # the bulge is on the cheek side (+x for outward +1)
    outside = (points[:, 1] > 20.0 + 0.25 * 40.0) | (points[:, 1] < -20.0 - 0.25 * 40.0)
    assert (fold[outside] == 0).all()
    mirrored = nasolabial_fold(points * MIRROR, start * MIRROR, end * MIRROR, -1.0, 2.0, 0.5, width, depth, 0.4)
    np.testing.assert_allclose(mirrored, fold, atol=1e-12)


def _naive_furrows(points, centre, angle, curvature, offsets, widths, depths, starts, ends, slide):
    """Every furrow summed over every point, no pruning."""
    rel = points[:, :2] - centre[:2]
    along = np.cos(angle) * rel[:, 0] + np.sin(angle) * rel[:, 1]
    across = -np.sin(angle) * rel[:, 0] + np.cos(angle) * rel[:, 1] + curvature * along**2 - slide
    total = np.zeros(len(points))
    for j in range(len(offsets)):
        sigma = widths[j] / 2.3548
        extent = smoothstep((along - starts[j] + 6.0) / 6.0) * smoothstep((ends[j] + 6.0 - along) / 6.0)
        total -= depths[j] * np.exp(-0.5 * ((across - offsets[j]) / sigma) ** 2) * extent
    return total


@pytest.mark.parametrize("region", sorted(FURROW_REGIONS))
def test_furrow_sets_match_a_naive_sum_and_stay_in_range(region):
    rng = np.random.default_rng(sorted(FURROW_REGIONS).index(region))
    traits = furrow_traits(rng, FURROW_REGIONS[region])
    count = len(traits["offsets"])
    low, high = FURROW_REGIONS[region][3]
    assert low <= count <= high
    for key in ("widths", "depths", "starts", "ends"):
        assert traits[key].shape == (count,)
    assert (traits["widths"] >= 3.0).all()  # grooves are at least 3 mm wide (the module's promise)
    points = _plane(80.0, 1.0)
    centre = np.array([5.0, -3.0, 0.0])
    args = (centre, traits["angle"], traits["curvature"], traits["offsets"], traits["widths"], traits["depths"],
            traits["starts"], traits["ends"], traits["slide"])
    field = furrow_set(points, *args)
    np.testing.assert_allclose(field, _naive_furrows(points, *args), atol=1e-6)
    assert (field <= 0).all() and field.min() < -0.5 * traits["depths"].min()
    assert field.min() >= -traits["depths"].sum() - 1e-9


def test_one_furrow_has_its_depth_and_full_width_at_half_depth():
    centre = np.zeros(3)
    args = (0.0, 0.0, np.array([0.0]), np.array([4.0]), np.array([1.5]), np.array([-20.0]), np.array([20.0]), 0.0)
    across = np.array([[0.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, -2.0, 0.0], [0.0, 30.0, 0.0], [40.0, 0.0, 0.0]])
    values = furrow_set(across, centre, *args)
    np.testing.assert_allclose(values[:3], [-1.5, -0.75, -0.75], rtol=1e-3)
    assert values[3] == 0 and values[4] == 0  # far across, and past the furrow's end


def test_furrow_traits_are_reproducible_and_both_sides_are_known_regions():
    region = FURROW_REGIONS["forehead"]
    first = furrow_traits(np.random.default_rng(7), region)
    again = furrow_traits(np.random.default_rng(7), region)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert all(side in FURROW_REGIONS for sides in BOTH_SIDES.values() for side in sides)
