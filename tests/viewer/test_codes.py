"""The latent space: principal directions, slider coordinates with residuals, face fingerprints."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from imface.generate import Face
from imface.pretrained import CodeStats
from imface.viewer.codes import CodeAxes, LatentSpace, face_key


def _stats(d: int = 6, rank: int = 3, seed: int = 0) -> CodeStats:
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((d, rank))
    id_cov = basis @ np.diag([4.0, 1.0, 0.25][:rank]) @ basis.T
    exp_cov = np.diag(np.linspace(2.0, 0.5, d))
    return CodeStats(rng.standard_normal(d), id_cov, rng.standard_normal(d), exp_cov, 10, 10)


def test_axes_are_the_leading_orthonormal_directions_with_their_spread():
    axes = CodeAxes.from_statistics(np.zeros(4), np.diag([0.5, 4.0, 0.0, 1.0]), components=3)
    assert axes.count == 3
    assert np.allclose(axes.sigmas, [2.0, 1.0, np.sqrt(0.5)])
    assert np.allclose(np.abs(axes.directions), np.eye(4)[[1, 3, 0]])


def test_rank_deficient_statistics_give_only_the_real_directions():
    space = LatentSpace.from_stats(_stats(rank=3))
    assert space.identity.count == 3  # the other 3 directions have no variance
    assert space.expression.count == 6
    zero = CodeAxes.from_statistics(np.zeros(3), np.zeros((3, 3)))
    assert zero.count == 0
    coords, residual = zero.split(np.array([1.0, 2.0, 3.0]))
    assert coords.shape == (0,) and np.allclose(zero.join(coords, residual), [1.0, 2.0, 3.0])


def test_split_and_join_are_inverse_and_one_sigma_is_one_unit():
    stats = _stats()
    axes = CodeAxes.from_statistics(stats.id_mean, stats.id_cov)
    code = np.random.default_rng(1).standard_normal(6)
    coords, residual = axes.split(code)
    assert np.allclose(axes.join(coords, residual), code)
    assert np.allclose(axes.directions @ residual, 0.0, atol=1e-12)
    step = axes.join(np.eye(axes.count)[0], np.zeros(6)) - axes.mean
    assert np.isclose(np.linalg.norm(step), axes.sigmas[0])


def test_a_state_draws_its_face_exactly_and_a_slider_moves_one_direction():
    space = LatentSpace.from_stats(_stats())
    rng = np.random.default_rng(2)
    face = Face("x", torch.tensor(rng.standard_normal(6), dtype=torch.float32),
                torch.tensor(rng.standard_normal(6), dtype=torch.float32), True)
    state = space.state_of(face)
    again = state.face(space)
    assert torch.allclose(again.id_code, face.id_code, atol=1e-6) and torch.allclose(again.exp_code, face.exp_code, atol=1e-6)
    assert again.neutral
    moved = state.with_coordinate("identity", 1, state.id_coords[1] + 1.0).face(space)
    delta = (moved.id_code - face.id_code).double().numpy()
    assert np.allclose(delta, space.identity.directions[1] * space.identity.sigmas[1], atol=1e-5)
    assert torch.equal(moved.exp_code, again.exp_code) and moved.neutral  # the identity slider keeps the expression
    expressive = state.with_coordinate("expression", 0, 1.0)
    assert not expressive.neutral and expressive.label.endswith("(edited)")
    with pytest.raises(ValueError):
        state.with_coordinate("pose", 0, 1.0)


def test_naming_an_identity_or_expression_keeps_the_other_code():
    space = LatentSpace.from_stats(_stats())
    start = space.mean_state()
    new_id = torch.arange(6, dtype=torch.float32)
    state = start.with_identity(space, new_id, "007")
    assert torch.allclose(state.face(space).id_code, new_id, atol=1e-5) and state.neutral
    assert state.label == "007 + neutral"
    new_exp = -torch.arange(6, dtype=torch.float32)
    state = state.with_expression(space, new_exp, False, "007/2_smile")
    face = state.face(space)
    assert torch.allclose(face.exp_code, new_exp, atol=1e-5) and torch.allclose(face.id_code, new_id, atol=1e-5)
    assert not face.neutral and state.label == "007 + 007/2_smile"


def test_the_mean_state_is_the_mean_identity_neutral():
    stats = _stats()
    space = LatentSpace.from_stats(stats)
    face = space.mean_state().face(space)
    assert np.allclose(face.id_code.numpy(), stats.id_mean, atol=1e-6) and face.neutral


def test_face_keys_follow_codes_and_the_neutral_flag():
    a = Face("a", torch.zeros(4), torch.ones(4), False)
    assert face_key(a) == face_key(Face("other name", torch.zeros(4), torch.ones(4), False))
    assert face_key(a) != face_key(Face("a", torch.zeros(4), torch.ones(4), True))
    assert face_key(a) != face_key(Face("a", torch.zeros(4), 2 * torch.ones(4), False))
    assert face_key(a) != face_key(Face("a", torch.full((4,), 1e-6), torch.ones(4), False))
