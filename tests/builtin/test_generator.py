import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from imface.builtin.expressions import close_eyelid, mouth_rims, rotate_about_x
from imface.builtin.generator import EXPRESSIONS, FaceGenerator, GeneratorSettings, expression_index
from imface.builtin.wrinkles import furrow_set
from imface.ops.normals import vertex_normals
from imface.builtin.bfm import BFMSource


@pytest.fixture(scope="module")
def gen(bfm):
    return FaceGenerator(BFMSource(bfm), GeneratorSettings(seed=3))


def test_expression_names_follow_facescape():
    assert len(EXPRESSIONS) == 20
    assert expression_index("neutral") == 1 and expression_index("smile") == 2
    assert expression_index("cheek_blowing") == 17 and expression_index("brow_lower") == 20


def test_deterministic_per_seed(bfm, gen):
    other = FaceGenerator(BFMSource(bfm), GeneratorSettings(seed=3))
    np.testing.assert_array_equal(gen.registered(1, "grin", 2), other.registered(1, "grin", 2))
    different = FaceGenerator(BFMSource(bfm), GeneratorSettings(seed=4))
    assert np.abs(different.registered(1, "grin", 2) - gen.registered(1, "grin", 2)).max() > 1.0


def test_identities_are_plausible_and_distinct(gen):
    a, b = gen.neutral(0), gen.neutral(1)
    for shape in (a, b):
        assert np.isfinite(shape).all()
        extent = shape.max(0) - shape.min(0)
        assert (np.abs(extent - [180, 210, 148]) < [20, 25, 18]).all(), extent
    assert np.linalg.norm(a - b, axis=1).mean() > 1.0


def test_expressions_move_and_stay_bounded(gen):
    neutral = gen.neutral(0)
    for name in EXPRESSIONS[1:]:
        shape = gen.registered(0, name)
        moved = np.linalg.norm(shape - neutral, axis=1)
        assert np.isfinite(shape).all(), name
        assert moved.max() > 1.0, name  # differs from the neutral
        assert moved.max() < 70.0, name  # nothing flies off


def test_scans_of_one_expression_differ(gen):
    first, second = gen.registered(0, "smile", 0), gen.registered(0, "smile", 1)
    assert np.abs(first - second).max() > 0.2


def test_mouth_stretch_drops_the_chin(bfm, gen):
    chin = bfm.landmark_ids[8]
    neutral, open_mouth = gen.neutral(0), gen.registered(0, "mouth_stretch")
    assert neutral[chin, 1] - open_mouth[chin, 1] > 10.0
    forehead = bfm.landmark_ids[27]  # nose bridge does not ride on the jaw
    assert np.linalg.norm(open_mouth[forehead] - neutral[forehead]) < 3.0


def test_wrinkle_depth_in_range(bfm):
    full = dict(seed=5, min_intensity=1.0, max_intensity=1.0, skin_detail=False)
    with_wrinkles = FaceGenerator(BFMSource(bfm), GeneratorSettings(**full))
    without = FaceGenerator(BFMSource(bfm), GeneratorSettings(**full, wrinkles=False))
    depths = []
    for identity in range(3):
        diff = with_wrinkles.registered(identity, "brow_raiser") - without.registered(identity, "brow_raiser")
        normals = vertex_normals(without.registered(identity, "brow_raiser").astype(np.float64), bfm.faces, weighting="area")
        along = (diff * normals).sum(1)
        depths.append(-along.min())
        assert along.max() < 0.5  # furrows go into the skin
    assert min(depths) >= 1.0 and max(depths) <= 3.5, depths


def test_linear_generator_is_linear(bfm):
    linear = FaceGenerator(BFMSource(bfm), GeneratorSettings(seed=1, nonlinear=False))
    shape = linear.registered(2, "anger")
    residual = shape - linear.identity(2).rest
    coefs, *_ = np.linalg.lstsq(bfm.exp_basis_mm.reshape(-1, 10), residual.ravel(), rcond=None)
    fitted = bfm.exp_basis_mm.reshape(-1, 10) @ coefs
    assert np.abs(fitted - residual.ravel()).max() < 1e-3


# ---- the deformation primitives against simple references ----------------------------

def test_rotate_about_x_matches_scipy():
    rng = np.random.default_rng(0)
    points, pivot, angles = rng.normal(size=(20, 3)), rng.normal(size=3), rng.uniform(-1, 1, 20)
    ours = rotate_about_x(points, pivot, angles)
    ref = np.stack([Rotation.from_euler("x", a).apply(p - pivot) + pivot for p, a in zip(points, angles)])
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_close_eyelid_is_monotonic_in_angle():
    angles = np.linspace(-1.0, 1.5, 400)
    points = np.stack([np.zeros_like(angles), 12 * np.sin(angles), 12 * np.cos(angles)], axis=1)
    moved = close_eyelid(points, np.zeros(3), -0.3, 0.4, 1.0, np.full(len(angles), 0.95))
    new_angles = np.arctan2(moved[:, 1], moved[:, 2])
    assert (np.diff(new_angles) > 0).all()  # no lid passes through another
    lid = np.argmin(np.abs(angles - 0.4))
    assert abs(new_angles[lid] - (-0.3 + 0.05 * 0.7)) < 0.01  # margin nearly down on the lower lid
    np.testing.assert_allclose(np.linalg.norm(moved, axis=1), 12.0)  # slides over the eyeball


def test_furrow_set_depth_and_width():
    x = np.linspace(-20, 20, 4001)
    points = np.stack([np.zeros_like(x), x, np.zeros_like(x)], axis=1)  # a line across one furrow
    depth = furrow_set(points, np.zeros(3), 0.0, 0.0, np.array([2.0]), np.array([3.5]), np.array([1.5]),
                       np.array([-10.0]), np.array([10.0]), 1.0)
    assert depth.min() == pytest.approx(-1.5, abs=1e-3)
    assert x[np.argmin(depth)] == pytest.approx(3.0, abs=0.02)  # offset + slide
    below_half = x[depth < -0.75]
    assert below_half.max() - below_half.min() == pytest.approx(3.5, abs=0.05)  # FWHM


def test_mouth_rims_split_the_mouth(bfm):
    upper, lower = mouth_rims(bfm.mean_mm, bfm.faces)
    assert len(upper) + len(lower) == 80  # the 78-vertex loop, corners in both halves
    assert bfm.mean_mm[upper, 1].mean() > bfm.mean_mm[lower, 1].mean()
    assert (np.diff(bfm.mean_mm[upper, 0]) >= 0).all()
