"""The non-face check: shape measures of planes, noise and face-like caps, in any unit."""
from __future__ import annotations

import numpy as np
import pytest

from imface.errors import ImfaceError
from imface.fitting.face_check import MAX_LOCAL_THICKNESS, MIN_RELATIVE_DEPTH, check_face_like, surface_shape


def _cap(rng: np.random.Generator, count: int = 5000, radius: float = 90.0) -> np.ndarray:
    """The front of a sphere (a face-sized dome), mm."""
    points = rng.normal(size=(count, 3))
    points = radius * points / np.linalg.norm(points, axis=1, keepdims=True)
    return points[points[:, 2] > radius / 3]


def test_shape_measures_tell_planes_noise_and_caps_apart() -> None:
    rng = np.random.default_rng(0)
    plane = np.c_[rng.uniform(-100, 100, (4000, 2)), np.zeros(4000)]
    noise = rng.uniform(-100, 100, (4000, 3))
    cap = _cap(rng)
    assert surface_shape(plane)[0] < MIN_RELATIVE_DEPTH
    assert surface_shape(noise)[1] > MAX_LOCAL_THICKNESS
    depth, thickness = surface_shape(cap)
    assert depth > MIN_RELATIVE_DEPTH and thickness < MAX_LOCAL_THICKNESS


def test_the_measures_do_not_depend_on_the_unit() -> None:
    cap = _cap(np.random.default_rng(1))
    np.testing.assert_allclose(surface_shape(cap / 1000.0), surface_shape(cap), rtol=1e-9)


def test_check_face_like_names_the_problem_in_one_line() -> None:
    rng = np.random.default_rng(2)
    check_face_like(_cap(rng), "cap.npy")  # passes
    with pytest.raises(ImfaceError, match="too few"):
        check_face_like(np.zeros((10, 3)), "few.npy")
    with pytest.raises(ImfaceError, match="a plane, not a face"):
        check_face_like(np.c_[rng.uniform(-1, 1, (500, 2)), np.zeros(500)], "plane.npy")
    with pytest.raises(ImfaceError, match="noise, not a face") as err:
        check_face_like(rng.uniform(-1, 1, (3000, 3)), "noise.npy")
    assert "\n" not in str(err.value) and "noise.npy" in str(err.value)
