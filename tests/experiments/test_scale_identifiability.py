"""experiments/scale_identifiability.py: how far a scale error shows once a shape model absorbs what it can."""
import numpy as np
import pytest

from experiments import scale_identifiability


def _shape(count: int = 200) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(count, 3)) * [0.7, 0.9, 0.5] + [0.1, -0.2, 0.3]


def test_without_components_a_rescale_is_all_signal():
    # A rescale about the centroid is orthogonal to every shift and small rotation, so nothing absorbs it.
    mean = _shape()
    centred = mean - mean.mean(axis=0)
    expected = 100 * 0.02 * np.sqrt(np.mean(np.sum(centred**2, axis=1)))
    assert scale_identifiability.scale_signal_mm(mean, np.zeros((0, mean.size))) == pytest.approx(expected, rel=1e-9)


def test_a_component_along_the_rescale_absorbs_it_and_an_unrelated_one_does_not():
    mean = _shape()
    centred = (mean - mean.mean(axis=0)).ravel()
    along = (centred / np.linalg.norm(centred))[None]
    assert scale_identifiability.scale_signal_mm(mean, along) == pytest.approx(0.0, abs=1e-9)
    other = np.random.default_rng(1).normal(size=(1, mean.size))
    other -= (other @ along.T) * along  # orthogonal to the rescale
    other /= np.linalg.norm(other)
    alone = scale_identifiability.scale_signal_mm(mean, np.zeros((0, mean.size)))
    assert scale_identifiability.scale_signal_mm(mean, other) == pytest.approx(alone, rel=1e-6)
