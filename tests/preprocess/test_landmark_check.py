"""The landmark plausibility check: faces pass in any pose and unit, landmarks in wrong places
(swapped, mirrored, shuffled, scattered vertex ids, lopsided) are refused with one line."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from imface.errors import ImfaceError
from imface.frame import CANONICAL_LANDMARKS_MM, FIVE_LANDMARK_IDS
from imface.preprocess.landmark_check import (
    check_landmark_plausibility, check_scan_landmarks, fit_to_canonical, landmark_problems,
)
from imface.preprocess.layouts import ScanSource
from tests.synthetic_raw import make_canonical_scan, make_raw_scan


def _swap(points, a, b):
    points = points.copy()
    points[[a, b]] = points[[b, a]]
    return points


def _narrow_left_eye(points):
    points = points.copy()
    points[42] = 0.2 * points[42] + 0.8 * points[45]
    return points


def test_faces_in_any_pose_unit_and_width_pass():
    rng = np.random.default_rng(0)
    for unit in ("mm", "cm", "m"):
        scan = make_raw_scan(rng, unit=unit, step=8.0, width=rng.uniform(0.9, 1.1))
        assert landmark_problems(scan["landmarks"]) == []
        assert landmark_problems(scan["landmarks"][list(FIVE_LANDMARK_IDS)]) == []
    fit = fit_to_canonical(make_raw_scan(rng, unit="cm", step=8.0)["landmarks"])
    assert fit.scale == pytest.approx(10.0, rel=0.05)  # canonical mm per cm
    assert np.allclose(fit.at(30)[:2], CANONICAL_LANDMARKS_MM[30, :2], atol=3.0)  # x-y; its nose is shaped apart


def test_expression_like_moves_pass():
    open_mouth = CANONICAL_LANDMARKS_MM.copy()
    open_mouth[[7, 8, 9, 56, 57, 58, 65, 66, 67]] += [0.0, -25.0, -5.0]  # jaw dropped 25 mm
    pursed = CANONICAL_LANDMARKS_MM.copy()
    pursed[48:68] += [0.0, 0.0, 12.0]  # lips pushed 12 mm forward
    assert landmark_problems(open_mouth) == [] and landmark_problems(pursed) == []


@pytest.mark.parametrize("edit, problem", [
    (lambda p: _swap(p, 36, 48), "eye corner is not above the nose tip"),
    (lambda p: _swap(p, 30, 8), "nose tip"),
    (lambda p: _swap(p, 51, 57), "upper lip is not above the lower lip"),
    (lambda p: _swap(p, 36, 45), "eye corners are not in right-to-left order"),
    (_narrow_left_eye, "asymmetric eye widths"),
    (lambda p: p * [-1.0, 1.0, 1.0], "mirrored"),
    (lambda p: p[np.random.default_rng(3).permutation(68)], ""),  # shuffled: any refusal
])
def test_landmarks_in_wrong_places_are_refused(edit, problem):
    problems = landmark_problems(edit(CANONICAL_LANDMARKS_MM))
    assert problems and any(problem in p for p in problems), problems


def test_five_landmarks_in_wrong_places_are_refused():
    five = CANONICAL_LANDMARKS_MM[list(FIVE_LANDMARK_IDS)]
    assert landmark_problems(five) == []
    assert any("mouth corner is not below" in p for p in landmark_problems(five + [0.0, 45.0, 0.0] * (np.arange(5) >= 3)[:, None]))
    assert any("asymmetric" in p for p in landmark_problems(five + [[-45.0, 0, 0], [0, 0, 0], [0, 0, 0],
                                                                     [0, 0, 0], [0, 0, 0]]))


def test_shifted_vertex_ids_on_a_fixed_topology_are_refused():
    """Ids meant for another numbering of the same mesh land on the surface, scattered: refused."""
    scan = make_canonical_scan(step=4.0, extras=False)
    vertices = scan["vertices"]
    ids = cKDTree(vertices[:, :2]).query(scan["landmarks"][:, :2])[1]
    assert landmark_problems(vertices[ids]) == []
    for shift in (7, 39, 120):  # FaceScape's v10 has 39 vertices more than v16
        assert landmark_problems(vertices[(ids + shift) % len(vertices)]), shift


def test_the_error_is_one_line_naming_the_file():
    with pytest.raises(ImfaceError) as err:
        check_landmark_plausibility(_swap(CANONICAL_LANDMARKS_MM, 36, 48), "scan.lmk.txt")
    text = str(err.value)
    assert text.startswith("scan.lmk.txt: implausible landmarks: ") and "\n" not in text
    check_landmark_plausibility(CANONICAL_LANDMARKS_MM, "scan.lmk.txt")  # no error


def test_a_scan_names_its_landmark_file_or_for_vertex_ids_its_mesh():
    wrong = _swap(CANONICAL_LANDMARKS_MM, 36, 48)
    with_file = ScanSource("1/1_neutral", "1", "neutral", Path("m.obj"), Path("m.lmk.txt"))
    with_ids = ScanSource("1/1_neutral", "1", "neutral", Path("m.obj"), None, Path("ids_v16.txt"))
    with pytest.raises(ImfaceError, match=r"^m\.lmk\.txt: implausible landmarks: "):
        check_scan_landmarks(with_file, wrong)
    with pytest.raises(ImfaceError, match=r"^m\.obj: implausible landmarks \(vertex ids from ids_v16\.txt\): "):
        check_scan_landmarks(with_ids, wrong)
