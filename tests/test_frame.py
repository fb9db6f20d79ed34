"""The canonical frame: 68 landmarks in mm with the nose tip where the frame says, a face that is
left-right symmetric about x = 0 and frontal (x along the eyes, y up, z toward the viewer), and
one unit table."""
from __future__ import annotations

import numpy as np
import pytest

from imface.frame import (
    CANONICAL_LANDMARKS_MM,
    CROP_RADIUS_MM,
    FIVE_LANDMARK_IDS,
    LENGTH_UNITS,
    MM_PER_INPUT_UNIT,
    MM_PER_UNIT,
    NOSE_TIP_ID,
    NOSE_TIP_POSITION_MM,
    OUTER_EYE_IDS,
)

# iBUG 68 left/right pairs (jaw, brows, eyes, nose wings, mouth); the rest lie on the midline.
_JAW = [(i, 16 - i) for i in range(8)]
_BROWS = [(17 + i, 26 - i) for i in range(5)]
_EYES = [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
_NOSE = [(31, 35), (32, 34)]
_MOUTH = [(48, 54), (49, 53), (50, 52), (59, 55), (58, 56), (60, 64), (61, 63), (67, 65)]
PAIRS = _JAW + _BROWS + _EYES + _NOSE + _MOUTH
MIDLINE = [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]


def test_landmarks_are_68_read_only_points_with_the_nose_tip_in_place():
    assert CANONICAL_LANDMARKS_MM.shape == (68, 3) and np.isfinite(CANONICAL_LANDMARKS_MM).all()
    with pytest.raises(ValueError):
        CANONICAL_LANDMARKS_MM[0, 0] = 1.0
    np.testing.assert_array_equal(CANONICAL_LANDMARKS_MM[NOSE_TIP_ID], NOSE_TIP_POSITION_MM)
    assert NOSE_TIP_ID in FIVE_LANDMARK_IDS and set(OUTER_EYE_IDS) <= set(FIVE_LANDMARK_IDS)
    assert CANONICAL_LANDMARKS_MM[:, 2].argmax() == NOSE_TIP_ID  # the nose tip is the frontmost point


def test_the_face_is_mirror_symmetric_and_frontal():
    assert len(PAIRS) * 2 + len(MIDLINE) == 68
    left, right = CANONICAL_LANDMARKS_MM[[a for a, _ in PAIRS]], CANONICAL_LANDMARKS_MM[[b for _, b in PAIRS]]
    np.testing.assert_allclose(left * [-1, 1, 1], right, atol=2.0)  # mm
    np.testing.assert_allclose(CANONICAL_LANDMARKS_MM[MIDLINE, 0], 0.0, atol=0.5)
    right_eye, left_eye = CANONICAL_LANDMARKS_MM[list(OUTER_EYE_IDS)]
    assert left_eye[0] > 0 > right_eye[0]  # x toward the subject's left
    assert CANONICAL_LANDMARKS_MM[27, 1] > CANONICAL_LANDMARKS_MM[8, 1]  # y up: nose bridge above the chin
    eye_distance = np.linalg.norm(left_eye - right_eye)
    assert 80.0 < eye_distance < 100.0  # an adult's outer eye corners, mm


def test_units():
    assert MM_PER_UNIT == CROP_RADIUS_MM  # the crop sphere is the unit sphere of the model
    assert MM_PER_INPUT_UNIT["model"] == MM_PER_UNIT
    assert [MM_PER_INPUT_UNIT[u] for u in LENGTH_UNITS] == [1.0, 10.0, 1000.0]
    assert list(MM_PER_INPUT_UNIT) == ["model", *LENGTH_UNITS]
