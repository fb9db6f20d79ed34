"""Unit detection, landmark alignment onto the canonical frame, and the raw <-> model matrices."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from imface.errors import ImfaceError
from imface.frame import CANONICAL_LANDMARKS_MM, FIVE_LANDMARK_IDS, MM_PER_INPUT_UNIT, NOSE_TIP_POSITION_MM
from imface.io.landmarks import validate_landmarks
from imface.preprocess.align import (
    align_landmarks, apply_matrix, detect_unit_scale, landmark_surface_distance, model_to_raw_matrix,
    raw_to_model_matrix,
)


def _posed_landmarks(rotvec=(0.1, -0.2, 0.05), shift=(5.0, -3.0, 200.0)):
    rotation = Rotation.from_rotvec(rotvec).as_matrix()
    return CANONICAL_LANDMARKS_MM @ rotation.T + np.asarray(shift), rotation


@pytest.mark.parametrize("unit", ["mm", "cm", "m"])
def test_every_physical_unit_is_detected_from_the_eye_distance(unit: str) -> None:
    five = CANONICAL_LANDMARKS_MM[list(FIVE_LANDMARK_IDS)] / MM_PER_INPUT_UNIT[unit]
    assert detect_unit_scale(five, None, (70.0, 120.0), "s.obj") == (unit, MM_PER_INPUT_UNIT[unit])
    assert detect_unit_scale(five, unit, (70.0, 120.0), "s.obj") == (unit, MM_PER_INPUT_UNIT[unit])


def test_alignment_undoes_a_rigid_pose_and_puts_the_nose_tip_in_place() -> None:
    posed, rotation = _posed_landmarks()
    found_rotation, translation, rms = align_landmarks(validate_landmarks(posed, "l.txt"), "l.txt")
    assert rms < 1e-9 and np.allclose(found_rotation, rotation.T, atol=1e-9)
    nose = posed[30] @ found_rotation.T + translation
    np.testing.assert_allclose(nose, NOSE_TIP_POSITION_MM, atol=1e-9)
    _, shift, _ = align_landmarks(validate_landmarks(posed, "l.txt"), "l.txt", align="none")
    np.testing.assert_allclose(posed[30] + shift, NOSE_TIP_POSITION_MM, atol=1e-9)


def test_mirrored_or_scrambled_landmarks_are_refused() -> None:
    mirrored = CANONICAL_LANDMARKS_MM * [-1.0, 1.0, 1.0]
    with pytest.raises(ImfaceError, match="mirrored"):
        align_landmarks(validate_landmarks(mirrored, "l.txt"), "l.txt")
    scrambled = CANONICAL_LANDMARKS_MM[np.random.default_rng(0).permutation(68)]
    with pytest.raises(ImfaceError, match="RMS|mirrored"):
        align_landmarks(validate_landmarks(scrambled, "l.txt"), "l.txt", max_rms_mm=5.0)


def test_landmarks_off_the_surface_are_refused() -> None:
    vertices = np.array([[-200.0, -200.0, 0.0], [200.0, -200.0, 0.0], [0.0, 200.0, 0.0]])
    flat = CANONICAL_LANDMARKS_MM * [1.0, 0.5, 0.0]  # inside the triangle, on its plane
    landmarks = validate_landmarks(flat, "l.txt")
    distance = landmark_surface_distance(landmarks, vertices, np.array([[0, 1, 2]]), "l.txt", 5.0)
    assert distance.shape == (68,) and distance.max() < 1e-9
    lifted = validate_landmarks(flat + [0.0, 0.0, 9.0], "l.txt")
    with pytest.raises(ImfaceError, match="off the surface"):
        landmark_surface_distance(lifted, vertices, np.array([[0, 1, 2]]), "l.txt", 5.0)


def test_model_to_raw_inverts_raw_to_model() -> None:
    rotation = Rotation.from_rotvec([0.3, -0.1, 0.2]).as_matrix()
    translation, unit_scale = np.array([10.0, -20.0, 5.0]), 10.0
    forward = raw_to_model_matrix(rotation, translation, unit_scale)
    backward = model_to_raw_matrix(rotation, translation, unit_scale)
    np.testing.assert_allclose(forward @ backward, np.eye(4), atol=1e-12)
    raw = np.random.default_rng(1).normal(size=(20, 3)) * 10.0
    expected = (unit_scale * raw @ rotation.T + translation) / 100.0  # mm, then model units
    np.testing.assert_allclose(apply_matrix(raw, forward), expected, atol=1e-12)


@pytest.mark.parametrize("unit, scale", [("mm", 1.0), ("cm", 0.1), ("m", 0.001)])
def test_unit_detection(unit, scale):
    five = np.array([[-45.0, 35, 0], [45, 35, 0], [0, 0, 40], [-25, -33, 7], [25, -33, 7]]) * scale
    assert detect_unit_scale(five, None, (70.0, 120.0), "s.obj") == (unit, {"mm": 1.0, "cm": 10.0, "m": 1e3}[unit])
    with pytest.raises(ImfaceError, match="not a face in mm, cm or m; pass --unit"):
        detect_unit_scale(five * 0.3, None, (70.0, 120.0), "s.obj")
    wrong = "cm" if unit != "cm" else "mm"
    with pytest.raises(ImfaceError, match=f"with unit {wrong}"):
        detect_unit_scale(five, wrong, (70.0, 120.0), "s.obj")
