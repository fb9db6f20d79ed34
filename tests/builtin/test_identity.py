"""One synthetic person: determinism per (seed, index), the random fields' statistics, the traits'
ranges, and the mouth line between the lips."""
from __future__ import annotations

import numpy as np
import pytest

from imface.builtin import expressions as ex
from imface.builtin.identity import keyed_rng, make_identity, mouth_line_of, plane_waves, smooth_detail, unit_field
from imface.builtin.bfm import BFMSource


@pytest.fixture(scope="module")
def lips(bfm):
    return ex.mouth_rims(bfm.mean_mm, bfm.faces)


def _person(bfm, lips, index: int, seed: int = 0, skin_detail: bool = True):
    return make_identity(BFMSource(bfm), index, seed=seed, skin_detail=skin_detail,
                         lips=lips)


def test_keyed_generators_repeat_per_key_and_differ_between_keys() -> None:
    assert keyed_rng(1, 2, 3).normal() == keyed_rng(1, 2, 3).normal()
    assert keyed_rng(1, 2, 3).normal() != keyed_rng(1, 2, 4).normal()


def test_random_fields_have_their_documented_ranges() -> None:
    points = np.random.default_rng(0).uniform(-90, 90, (3000, 3))
    waves = plane_waves(points, keyed_rng(0), (15.0, 45.0))
    assert waves.shape == (3000, 96) and waves.dtype == np.float32 and np.abs(waves).max() <= 1.0
    field = unit_field(waves, keyed_rng(1))
    assert abs(field.mean()) < 1e-9 and field.std() == pytest.approx(1.0)
    detail = smooth_detail(points, keyed_rng(2))
    assert detail.shape == (3000,) and 0.03 < np.sqrt(np.mean(detail**2)) < 0.3  # RMS ~0.1 mm


def test_a_person_is_deterministic_and_differs_from_the_next(bfm, lips) -> None:
    first, again, other = _person(bfm, lips, 2), _person(bfm, lips, 2), _person(bfm, lips, 3)
    np.testing.assert_array_equal(first.rest, again.rest)
    np.testing.assert_array_equal(first.jaw_weights, again.jaw_weights)
    assert repr(first.traits) == repr(again.traits)
    assert np.linalg.norm(first.rest - other.rest, axis=1).mean() > 1.0
    assert not _person(bfm, lips, 2, skin_detail=False).skin_detail.any()


def test_traits_stay_in_their_ranges(bfm, lips) -> None:
    person = _person(bfm, lips, 1)
    v = len(bfm.mean_mm)
    assert person.rest.shape == person.normals.shape == (v, 3) and person.landmarks.shape == (68, 3)
    np.testing.assert_allclose(np.linalg.norm(person.normals, axis=1), 1.0, atol=1e-6)
    assert 0.0 <= person.jaw_weights.min() and person.jaw_weights.max() <= 1.0
    assert 0.0 <= person.eye_closure_mask.min() and person.eye_closure_mask.max() <= 1.0
    assert np.deg2rad(16.0) <= person.jaw_max_rad <= np.deg2rad(23.0)
    assert ((0.7 <= person.response) & (person.response <= 1.8)).all() and person.response.shape == (8,)
    assert person.eye_centres.shape == (2, 3) and person.eye_centres[0, 0] * person.eye_centres[1, 0] < 0
    assert len(person.traits["crows"]) == 2 and 3 <= person.traits["crows"][0]["count"] <= 5


def test_mouth_line_runs_between_the_lips_corner_to_corner(bfm, lips) -> None:
    rest = bfm.mean_mm.astype(np.float64)
    line = mouth_line_of(rest, *lips, samples=21)
    assert line.shape == (21, 3) and np.all(np.diff(line[:, 0]) > 0)
    upper, lower = rest[lips[0]], rest[lips[1]]
    middle = line[10]
    assert lower[:, 1].min() - 1.0 <= middle[1] <= upper[:, 1].max() + 1.0
