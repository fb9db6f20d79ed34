"""The built-in expressions: recipes that the generator can resolve, and deformations with
the right shapes, fixed points, rigid parts, ranges and mirror symmetry (mm, BFM frame)."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from imface.builtin.expressions import (
    EXPRESSIONS,
    MIRROR_LANDMARK,
    RECIPES,
    Recipe,
    articulate_jaw,
    bend_lips,
    close_eyelid,
    gaussian_pulls,
    jaw_weights,
    mouth_line_at,
    mouth_rims,
    normal_bumps,
    rotate_about_x,
    rotate_about_y,
    sigmoid,
)
from imface.builtin.wrinkles import BOTH_SIDES, FURROW_REGIONS
from imface.frame import CANONICAL_LANDMARKS_MM

MIRROR = np.array([-1.0, 1.0, 1.0])


def _points(count: int = 500, seed: int = 0) -> np.ndarray:
    """(count, 3) points in a face-sized box, mm."""
    return np.random.default_rng(seed).uniform([-80, -110, -60], [80, 90, 60], (count, 3))


def test_recipes_cover_facescapes_expressions_and_neutral_does_nothing():
    assert len(EXPRESSIONS) == 20 and len(set(EXPRESSIONS)) == 20 and EXPRESSIONS[0] == "neutral"
    assert list(RECIPES) == list(EXPRESSIONS)
    assert RECIPES["neutral"] == Recipe()
    for name, recipe in RECIPES.items():
        assert len(recipe.components) == 10, name
        assert 0.0 <= recipe.jaw_open <= 1.0 and 0.0 <= recipe.eyes_closed < 1.0, name
        for region, strength in recipe.furrows:
            assert region in FURROW_REGIONS or region in BOTH_SIDES, (name, region)
            assert 0.0 < strength <= 1.0, (name, region)


def test_every_mirrored_anchor_has_a_mirror_landmark():
    for name, recipe in RECIPES.items():
        for part in recipe.pulls + recipe.bulges:
            assert not part.mirror or part.landmark in MIRROR_LANDMARK, (name, part.landmark)


def test_mirror_landmarks_are_mirror_images_in_the_canonical_frame():
    for left, right in MIRROR_LANDMARK.items():
        a, b = CANONICAL_LANDMARKS_MM[left], CANONICAL_LANDMARKS_MM[right]
        assert np.linalg.norm(a - b * MIRROR) < 3.0, (left, right)
        assert a[0] > 0 or left == right, left  # the keys are the subject's left side (+x)
        if left == right:
            assert abs(a[0]) < 1.0, left  # self-mirrored ids sit on the midline


def test_sigmoid_is_a_symmetric_ramp():
    t = np.linspace(-20, 20, 401)
    s = sigmoid(t)
    assert sigmoid(np.array(0.0)) == 0.5 and ((0 <= s) & (s <= 1)).all() and (np.diff(s) > 0).all()
    np.testing.assert_allclose(s + sigmoid(-t), 1.0, atol=1e-12)


def test_gaussian_pulls_move_each_centre_by_its_vector_and_fade_away():
    centres = np.array([[0.0, 0.0, 0.0], [200.0, 0.0, 0.0]])
    sigmas = np.array([[10.0, 8.0, 12.0], [5.0, 5.0, 5.0]])
    vectors = np.array([[3.0, -2.0, 1.0], [0.0, 4.0, 0.0]])
    points = np.vstack([centres, [[0.0, 8.0, 0.0]], [[100.0, 100.0, 100.0]]])
    moved = gaussian_pulls(points, centres, sigmas, vectors)
    assert moved.shape == points.shape
    np.testing.assert_allclose(moved[:2], vectors, atol=1e-12)
    np.testing.assert_allclose(moved[2], np.exp(-0.5) * vectors[0], atol=1e-12)  # one sigma along y
    np.testing.assert_allclose(moved[3], 0.0, atol=1e-12)
    assert (gaussian_pulls(points, np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3))) == 0).all()


def test_normal_bumps_peak_at_their_height_and_fall_with_the_radius():
    centres, radii, heights = np.array([[0.0, 0.0, 0.0]]), np.array([4.0]), np.array([-1.5])
    points = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 0.0], [0.0, 0.0, -4.0], [60.0, 0.0, 0.0]])
    bumps = normal_bumps(points, centres, radii, heights)
    assert bumps.shape == (4,)
    np.testing.assert_allclose(bumps, [-1.5, -1.5 * np.exp(-0.5), -1.5 * np.exp(-0.5), 0.0], atol=1e-12)
    assert (normal_bumps(points, np.zeros((0, 3)), np.zeros(0), np.zeros(0)) == 0).all()


@pytest.mark.parametrize("rotate, axis", [(rotate_about_x, 0), (rotate_about_y, 1)])
def test_rotations_about_a_pivot_match_scipy(rotate, axis):
    points, pivot = _points(), np.array([5.0, -20.0, -70.0])
    angles = np.random.default_rng(1).uniform(-0.5, 0.5, len(points))
    turned = rotate(points, pivot, angles)
    vectors = np.zeros((len(points), 3))
    vectors[:, axis] = angles
    expected = pivot + Rotation.from_rotvec(vectors).apply(points - pivot)
    np.testing.assert_allclose(turned, expected, atol=1e-9)
    np.testing.assert_allclose(rotate(points, pivot, np.zeros(len(points))), points, atol=1e-12)


def test_a_positive_jaw_angle_turns_the_chin_down():
    hinge = np.array([0.0, 0.0, -80.0])
    chin = np.array([[0.0, -60.0, 10.0]])  # in front of and below the hinge
    assert rotate_about_x(chin, hinge, np.array([0.2]))[0, 1] < chin[0, 1]


def test_mouth_line_interpolates_and_holds_its_ends():
    line = np.array([[-25.0, -30.0, 5.0], [0.0, -28.0, 10.0], [25.0, -31.0, 5.0]])
    y, z = mouth_line_at(np.array([-40.0, -25.0, -12.5, 0.0, 40.0]), line)
    np.testing.assert_allclose(y, [-30.0, -30.0, -29.0, -28.0, -31.0])
    np.testing.assert_allclose(z, [5.0, 5.0, 7.5, 10.0, 5.0])


def _jaw_setup():
    hinge = np.array([0.0, 10.0, -80.0])
    line = np.array([[-25.0, -32.0, 8.0], [-10.0, -33.0, 12.0], [0.0, -33.0, 13.0], [10.0, -33.0, 12.0],
                     [25.0, -32.0, 8.0]])
    return dict(hinge=hinge, mouth_line=line, wobble=np.zeros((3, 2)), lip_falloff_mm=1.0, cheek_falloff_mm=6.0,
                chin_line=np.array([-120.0, -20.0]), under_falloff_mm=8.0, neck_z_mm=20.0, neck_falloff_mm=5.0)


def test_jaw_weights_are_one_on_the_chin_zero_on_the_upper_face_and_symmetric():
    setup = _jaw_setup()
    points = np.array([[0.0, -60.0, 5.0], [20.0, -55.0, 0.0], [0.0, 30.0, 20.0], [-30.0, 10.0, 0.0],
                       [0.0, -34.5, 13.0], [0.0, -31.5, 13.0]])
    weights = jaw_weights(points, **setup)
    assert weights.shape == (len(points),) and ((0 <= weights) & (weights <= 1)).all()
    assert weights[0] > 0.95 and weights[1] > 0.9  # chin and lower cheek ride on the jaw
    assert weights[2] < 0.05 and weights[3] < 0.05  # nose and upper cheek do not
    assert weights[4] > 0.7 and weights[5] < 0.3  # lower lip against upper lip, 3 mm apart
    cloud = _points(2000)
    np.testing.assert_allclose(jaw_weights(cloud * MIRROR, **setup), jaw_weights(cloud, **setup), atol=1e-12)


def test_articulate_jaw_moves_only_what_the_weights_carry_and_keeps_the_jaw_rigid():
    points, hinge = _points(), np.array([0.0, 10.0, -80.0])
    still = articulate_jaw(points, np.zeros(len(points)), hinge, 0.3, 0.1, 5.0, 4.0)
    np.testing.assert_allclose(still, points, atol=1e-12)
    moved = articulate_jaw(points, np.ones(len(points)), hinge, 0.3, 0.1, 5.0, 4.0)
    before = np.linalg.norm(points[:, None] - points[None], axis=-1)
    after = np.linalg.norm(moved[:, None] - moved[None], axis=-1)
    np.testing.assert_allclose(after, before, atol=1e-9)  # weight 1: a rigid motion
    assert np.abs(moved - points).max() > 5.0


def test_close_eyelid_turns_only_the_lid_band_and_keeps_its_order():
    centre = np.array([30.0, 35.0, 10.0])
    angles = np.linspace(-1.5, 1.5, 301)
    ring = centre + 12.0 * np.c_[np.zeros_like(angles), np.sin(angles), np.cos(angles)]
    low, lid, top = -0.4, 0.3, 0.9
    closed = close_eyelid(ring, centre, low, lid, top, np.full(len(ring), 0.9))
    np.testing.assert_allclose(np.linalg.norm(closed - centre, axis=1), 12.0, atol=1e-9)  # on the eyeball
    np.testing.assert_allclose(closed[:, 0], ring[:, 0])
    new = np.arctan2(closed[:, 1] - centre[1], closed[:, 2] - centre[2])
    outside = (angles < low) | (angles > top)
    np.testing.assert_allclose(new[outside], angles[outside], atol=1e-12)
    assert (np.diff(new) > 0).all()  # monotonic: the lids never pass through each other
    margin = np.argmin(np.abs(angles - lid))
    assert new[margin] - low == pytest.approx(0.1 * (lid - low), abs=0.02)  # 90% closed
    open_ = close_eyelid(ring, centre, low, lid, top, np.zeros(len(ring)))
    np.testing.assert_allclose(open_, ring, atol=1e-12)


def test_bend_lips_does_nothing_at_zero_and_is_mirror_symmetric():
    points = _points(800)
    mouth_y, mouth_z = np.full(len(points), -30.0), np.full(len(points), 10.0)
    mask = np.exp(-0.5 * (points[:, 0] / 20.0) ** 2)  # symmetric in x
    args = dict(upper_height_mm=10.0, lower_height_mm=12.0, split_mm=1.0)
    np.testing.assert_allclose(bend_lips(points, mouth_y, mouth_z, mask, angle_rad=0.0, **args), points, atol=1e-12)
    np.testing.assert_allclose(bend_lips(points, mouth_y, mouth_z, 0 * mask, angle_rad=0.5, **args), points,
                               atol=1e-12)
    bent = bend_lips(points, mouth_y, mouth_z, mask, angle_rad=0.5, **args)
    assert np.abs(bent - points).max() > 1.0
    far = np.abs(points[:, 1] + 30.0) > 13.0  # beyond both lips' heights: untouched
    np.testing.assert_allclose(bent[far], points[far], atol=1e-9)
    mirrored = bend_lips(points * MIRROR, mouth_y, mouth_z, mask, angle_rad=0.5, **args)
    np.testing.assert_allclose(mirrored, bent * MIRROR, atol=1e-9)


def _face_with_a_mouth() -> tuple[np.ndarray, np.ndarray]:
    """A flat annulus (mm): an outer rim and an elliptic mouth hole 50 mm wide."""
    angles = np.linspace(0.0, 2 * np.pi, 48, endpoint=False)
    rings = [np.c_[r * 25.0 * np.cos(angles), r * 8.0 * np.sin(angles)] for r in (1.0, 2.0, 3.0, 4.0)]
    vertices = np.c_[np.concatenate(rings), np.zeros(48 * 4)]
    faces = []
    for ring in range(3):
        for k in range(48):
            a, b = ring * 48 + k, ring * 48 + (k + 1) % 48
            faces += [[a, b, b + 48], [a, b + 48, a + 48]]
    return vertices, np.array(faces)


def test_mouth_rims_split_the_inner_loop_at_its_corners():
    vertices, faces = _face_with_a_mouth()
    assert len(trimesh.Trimesh(vertices, faces, process=False).faces) == len(faces)
    upper, lower = mouth_rims(vertices, faces)
    assert set(upper) | set(lower) == set(range(48))  # the inner ring, the outer one left out
    assert upper[0] == lower[0] and upper[-1] == lower[-1]  # the corners are shared
    np.testing.assert_allclose(vertices[[upper[0], upper[-1]], 0], [-25.0, 25.0])
    assert (np.diff(vertices[upper, 0]) > 0).all() and (np.diff(vertices[lower, 0]) > 0).all()
    assert vertices[upper[1:-1], 1].min() > 0 > vertices[lower[1:-1], 1].max()
