"""The renderer's orthographic camera: proper view rotations and hand-computed framing."""
from __future__ import annotations

import numpy as np
import pytest

from imface.errors import ImfaceError
from imface.ops.camera import Camera, view_rotation


def test_view_rotations_are_proper_and_side_looks_along_minus_x() -> None:
    for view in ("front", "side", "three_quarter", (123.0, -30.0)):
        rotation = view_rotation(view)
        assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rotation) == pytest.approx(1.0)
        assert rotation[0, 1] == pytest.approx(0.0)  # the image stays upright
    assert np.allclose(view_rotation("front"), np.eye(3))
    side = view_rotation("side")
    assert np.allclose(side[2], [1, 0, 0])  # the camera sits on +x
    assert (side @ [0, 0, 1])[0] < 0  # so a face (pointing +z) looks to the image's left


def test_camera_framing_matches_a_hand_computed_projection() -> None:
    box = np.array([[-1.0, -2.0, 0.0], [3.0, 2.0, 5.0]])
    camera = Camera.framing(box, "front", size=(100, 50), margin=0.1)
    # Height limits: 4 units must fill 0.8 * 50 = 40 px, so 10 px per unit; centre (1, 0).
    assert camera.pixels_per_unit == pytest.approx(10.0)
    projected = camera.project(np.array([[1.0, 0.0, 0.0], [-1.0, -2.0, 0.0], [3.0, 2.0, 0.0]]))
    assert np.allclose(projected[:, :2], [[50, 25], [30, 45], [70, 5]])


def test_framing_refuses_bad_sizes_margins_and_points() -> None:
    points = np.zeros((2, 3))
    with pytest.raises(ImfaceError, match="image size"):
        Camera.framing(points, size=(0, 10))
    with pytest.raises(ImfaceError, match="margin"):
        Camera.framing(points, margin=0.5)
    with pytest.raises(ImfaceError, match="unknown view"):
        view_rotation("top-down")
    with pytest.raises(ImfaceError, match="NaN"):
        Camera.framing(np.full((2, 3), np.nan))
