"""imface.ops.similarity_search against known transforms."""
from __future__ import annotations

import numpy as np
import pytest

from imface.ops.rigid import random_rotation
from imface.ops.similarity_search import depth_peaks, neighbour_pairs, rotation_starts, search_similarity
from tests.baselines import sample_face_points
from tests.ops.meshes import rotation_angle_deg


def test_rotation_starts_are_proper_rotations():
    starts = rotation_starts(30.0)
    assert len(starts) == 27 and len(rotation_starts(0.0)) == 1
    np.testing.assert_allclose(starts[0], np.eye(3))
    for r in starts:
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)
    # every rotation of up to 40 degrees is within 25 degrees of a start
    rng = np.random.default_rng(0)
    for _ in range(200):
        turn = random_rotation(rng, 40.0)
        assert min(rotation_angle_deg(turn @ r.T) for r in starts) < 25.0


@pytest.mark.parametrize("scale, angle, seed", [(100.0, 35.0, 1), (0.043, 25.0, 2), (7.3, 40.0, 3)])
def test_search_finds_scale_and_pose_of_a_turned_face_in_any_unit_with_clutter(scale, angle, seed):
    rng = np.random.default_rng(seed)
    template = sample_face_points(np.zeros(6), 4000, seed=0)
    face = sample_face_points(np.zeros(6), 6000, seed=seed)  # the template's person, sampled anew
    # shoulders-like clutter below the face: a blob 2.2 units down (outside the crop sphere)
    shoulders = rng.normal(size=(3000, 3)) * [0.9, 0.3, 0.4] + [0.0, -2.2, -0.4]
    rotation = random_rotation(rng, angle)
    shift = rng.uniform(-1, 1, 3) * scale
    cloud = scale * np.concatenate([face, shoulders]) @ rotation.T + shift
    found = search_similarity(cloud, template)
    assert abs(found.scale * scale - 1) < 0.01  # model units per input unit
    assert rotation_angle_deg(found.rotation @ rotation) < 2.0
    moved = found.scale * cloud[: len(face)] @ found.rotation.T + found.translation
    assert np.abs(moved - face).max() < 0.05  # back where the face was, within 5 mm
    assert found.coverage > 0.9 and found.residual < 0.03
    # another person has no exact pose or size relative to the template (their nose, chin and
    # width differ); the search still lands within a few degrees and percent
    other = scale * sample_face_points(rng.normal(0, 0.15, 6), 6000, seed=seed) @ rotation.T + shift
    found = search_similarity(other, template)
    assert rotation_angle_deg(found.rotation @ rotation) < 5.0 and abs(found.scale * scale - 1) < 0.06


def test_search_with_a_known_scale_only_turns_and_shifts():
    rng = np.random.default_rng(4)
    template = sample_face_points(np.zeros(6), 3000, seed=0)
    rotation = random_rotation(rng, 30.0)
    cloud = template @ rotation.T + [0.2, 0.1, -0.3]
    found = search_similarity(cloud, template, scale=1.0)
    assert found.scale == 1.0
    assert rotation_angle_deg(found.rotation @ rotation) < 1.0


def test_a_sphere_cap_is_a_poor_match_to_a_face():
    rng = np.random.default_rng(5)
    template = sample_face_points(np.zeros(6), 3000, seed=0)
    cap = rng.normal(size=(8000, 3))
    cap = 0.9 * cap / np.linalg.norm(cap, axis=1, keepdims=True)
    cap = cap[cap[:, 2] > 0.0]
    face = search_similarity(sample_face_points(np.zeros(6), 3000, seed=7), template)
    sphere = search_similarity(cap, template)
    assert sphere.residual > 2 * face.residual
    with pytest.raises(ValueError, match="at least 10"):
        search_similarity(cap[:5], template)


def test_depth_peaks_are_the_frontmost_points_of_their_neighbourhoods():
    x = np.linspace(-3, 3, 121)
    points = np.column_stack([x, np.zeros_like(x), np.exp(-(x + 1.5) ** 2 * 8) + 0.6 * np.exp(-(x - 1.5) ** 2 * 8)])
    pairs = neighbour_pairs(points * [1.0, 1.0, 0.0], 0.5)  # neighbours in the image plane
    peaks = depth_peaks(points[:, 2], pairs, 3)
    # the two bumps, the higher first, then the edge points that are the frontmost of their ends
    np.testing.assert_allclose(points[peaks[:2], 0], [-1.5, 1.5])
    assert len(depth_peaks(points[:, 2], pairs, 1)) == 1


def test_a_shoulder_in_front_of_the_nose_does_not_hide_the_face():
    # Shoulders reaching further toward the viewer than the nose tip: the frontmost point of the
    # whole input is on a shoulder for every rotation start, so only a peak anchor finds the face.
    rng = np.random.default_rng(11)
    template = sample_face_points(np.zeros(6), 4000, seed=0)
    face = sample_face_points(np.zeros(6), 6000, seed=11)
    nose = face[:, 2].max()
    shoulders = [rng.normal(size=(2500, 3)) * [0.4, 0.25, 0.25] + [side, -2.1, nose + 0.5] for side in (-1.4, 1.4)]
    rotation = random_rotation(rng, 20.0)
    cloud = 3.0 * np.concatenate([face, *shoulders]) @ rotation.T + [4.0, -2.0, 1.0]
    found = search_similarity(cloud, template)
    assert abs(found.scale * 3.0 - 1) < 0.01 and rotation_angle_deg(found.rotation @ rotation) < 2.0
    assert found.nose_coverage > 0.9
