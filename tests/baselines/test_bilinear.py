"""Bilinear (Tucker) identity x expression model."""
from __future__ import annotations

import numpy as np
import pytest

from imface.baselines.bilinear import build_bilinear, fill_tensor
from imface.baselines.fitting import fit_to_points
from imface.ops.ground_truth_crop import crop_like_ground_truth
from imface.ops.sdf_sampling import sample_surface
from tests.baselines import make_dataset


@pytest.fixture(scope="module")
def data():
    return make_dataset(5, seed=4, expressions_per_identity=4)


def test_full_ranks_reconstruct_every_training_mesh(data):
    meshes, faces, identities, expressions, *_ = data
    model = build_bilinear(meshes, identities, expressions, faces, 5, 5, dtype=np.float64)
    assert model.latent_size == 10 and model.info["filled_cells"] == 0
    for mesh, identity, expression in zip(meshes, identities, expressions):
        np.testing.assert_allclose(model.reconstruct(model.coefficients_for(identity, expression)), mesh, atol=1e-9)


def test_reconstruction_is_the_tucker_mode_product(data):
    meshes, faces, identities, expressions, *_ = data
    model = build_bilinear(meshes, identities, expressions, faces, 3, 2, dtype=np.float64)
    rng = np.random.default_rng(0)
    coefficients = {"identity": rng.standard_normal(3), "expression": rng.standard_normal(2)}
    # Naive reference: sum over the core's entries one (a, b) pair at a time.
    expected = model.mean.copy()
    for a in range(3):
        for b in range(2):
            expected += model.core[:, :, a, b] * coefficients["identity"][a] * coefficients["expression"][b]
    np.testing.assert_allclose(model.reconstruct(coefficients), expected, atol=1e-12)
    # Each block's Jacobian is exact: the model is linear in one block when the other is fixed.
    ids = np.arange(0, model.vertex_count, 7)
    step = {"identity": rng.standard_normal(3) * 0.1, "expression": np.zeros(2)}
    moved = {k: coefficients[k] + step[k] for k in coefficients}
    predicted = model.reconstruct(coefficients, ids) + model.jacobian(coefficients, "identity", ids) @ step["identity"]
    np.testing.assert_allclose(model.reconstruct(moved, ids), predicted, atol=1e-12)


def test_missing_cells_get_the_additive_estimate():
    rng = np.random.default_rng(1)
    identity_effect, expression_effect = rng.standard_normal((3, 4)), rng.standard_normal((2, 4))
    cells = [(i, e) for i in range(3) for e in range(2) if (i, e) != (2, 1)]
    meshes = np.stack([identity_effect[i] + expression_effect[e] for i, e in cells])
    tensor, filled = fill_tensor(meshes, np.array([c[0] for c in cells]), np.array([c[1] for c in cells]), 3, 2)
    assert filled == 1
    # Additive data: identity mean + expression mean - grand mean over the present cells.
    present_identity = identity_effect[2] + expression_effect[0]
    expression_1 = np.mean([identity_effect[0] + expression_effect[1], identity_effect[1] + expression_effect[1]], axis=0)
    grand = meshes.mean(axis=0)
    np.testing.assert_allclose(tensor[2, 1], present_identity + expression_1 - grand, atol=1e-12)


def test_fitting_a_mesh_in_the_span_converges(data):
    meshes, faces, identities, expressions, *_ = data
    model = build_bilinear(meshes, identities, expressions, faces, 4, 3)
    truth = model.coefficients_for("002", "expr3")
    truth = {"identity": truth["identity"] * 1.05, "expression": truth["expression"]}
    target = model.reconstruct(truth)
    rng = np.random.default_rng(2)
    points, normals = sample_surface(*crop_like_ground_truth(target, faces), 20000, rng)
    result = fit_to_points(model, points, normals, fit_pose=False, regularisation=1e-9, iterations=30)
    inside = np.linalg.norm(target, axis=1) < 1.0
    error = np.linalg.norm(result.vertices - target, axis=1)
    start = np.linalg.norm(model.reconstruct(model.initial_coefficients()) - target, axis=1)
    assert np.sqrt(np.mean(error[inside] ** 2)) < 0.003
    assert np.sqrt(np.mean(error[inside] ** 2)) < 0.1 * np.sqrt(np.mean(start[inside] ** 2))
    assert result.history[-1]["energy"] < 0.05 * result.history[0]["energy"]


def test_ranks_are_checked(data):
    meshes, faces, identities, expressions, *_ = data
    with pytest.raises(ValueError, match="ranks"):
        build_bilinear(meshes, identities, expressions, faces, 6, 2)
