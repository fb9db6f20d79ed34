"""imface.builtin.perturb: the perturbed inputs behind bench/fit_any.py."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from imface.builtin import perturb
from imface.frame import MM_PER_INPUT_UNIT, MM_PER_UNIT
from tests.baselines import make_face


def test_random_similarity_ranges_and_inverse():
    rng = np.random.default_rng(0)
    for _ in range(50):
        sim = perturb.random_similarity(rng)
        assert sim.unit in MM_PER_INPUT_UNIT and 0.3 <= sim.factor <= 3.0
        assert sim.scale == pytest.approx(MM_PER_UNIT / MM_PER_INPUT_UNIT[sim.unit] * sim.factor)
        angle = np.degrees(np.arccos(np.clip((np.trace(sim.rotation) - 1) / 2, -1, 1)))
        assert angle <= 40.0 + 1e-9
        points = rng.normal(size=(5, 3))
        back = (sim.apply(points) - sim.translation) @ sim.rotation / sim.scale
        np.testing.assert_allclose(back, points, atol=1e-9)


def test_clutter_surrounds_the_face_without_covering_it():
    vertices, _ = make_face(np.zeros(6))
    extra = perturb.clutter(np.random.default_rng(1))
    assert len(extra.faces) > 1000

    inner = vertices[np.linalg.norm(vertices[:, :2], axis=1) < 0.6]  # the face's middle: eyes, nose, mouth
    distance, _ = cKDTree(extra.vertices).query(inner)
    assert distance.min() > 0.1  # nothing within 1 cm of the middle of the face
    assert extra.vertices[:, 1].min() < -1.5 and extra.vertices[:, 1].max() > 0.9  # shoulders below, hair above


def test_holes_noise_and_one_view_cloud():
    rng = np.random.default_rng(2)
    vertices, faces = make_face(np.zeros(6), step=0.03)
    holed = perturb.punch_holes(vertices, faces, rng, count=3, radius=0.06)
    assert len(faces) * 0.8 < len(holed) < len(faces)
    noisy = perturb.add_noise(vertices, faces, rng, 0.005)
    assert 0.0035 < np.linalg.norm(noisy - vertices, axis=1).mean() < 0.0045  # sigma * sqrt(2 / pi)
    assert noisy is not vertices and not np.shares_memory(noisy, vertices)
    cloud, view = perturb.single_view_cloud(vertices, faces, rng, count=3000)
    assert len(cloud) == 3000 and np.linalg.norm(view) == pytest.approx(1.0)
    assert np.degrees(np.arccos(view[2])) <= 40.0 + 1e-9
