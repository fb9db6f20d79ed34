"""FLAME-like model: the learned jaw (pivot, skinning weights) explains jaw-open scans."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from imface.baselines.fitting import fit_to_vertices
from imface.baselines.flame_like import build_flame_like, graph_laplacian, unskin
from tests.baselines import TRUE_PIVOT, jaw_weights, make_dataset


@pytest.fixture(scope="module")
def data():
    return make_dataset(8, seed=0)


@pytest.fixture(scope="module")
def models(data):
    meshes, faces, identities, _, neutral, _ = data
    with_jaw = build_flame_like(meshes, identities, neutral, faces, 7, 3)
    without = build_flame_like(meshes, identities, neutral, faces, 7, 3, learn_jaw_joint=False)
    return with_jaw, without


def test_learned_pivot_and_weights_match_the_generator(data, models):
    meshes, *_ = data
    model, _ = models
    # The pivot's x is not determined by rotations about x; y and z are.
    assert np.abs(model.pivot[1:] - TRUE_PIVOT[1:]).max() < 0.03  # 3 mm
    truth = jaw_weights(meshes[0][:, 1])
    assert np.sqrt(np.mean((model.skinning_weights - truth) ** 2)) < 0.05
    assert model.latent_size == 7 + 3 + 3


def test_jaw_explains_jaw_open_scans_better_than_expression_pca(data, models):
    meshes, _, _, _, _, truth = data
    with_jaw, without = models
    jaw_open = [i for i, t in enumerate(truth) if t["jaw"] > 0.1]
    error_jaw = np.mean([fit_to_vertices(with_jaw, meshes[i], iterations=10).history[-1]["rms"] for i in jaw_open])
    error_pca = np.mean([fit_to_vertices(without, meshes[i], iterations=2).history[-1]["rms"] for i in jaw_open])
    assert error_jaw < 0.33 * error_pca


def test_skinning_round_trips_and_jacobians_are_consistent(models):
    model, _ = models
    rng = np.random.default_rng(0)
    coefficients = {"identity": rng.standard_normal(7) * model.identity_std,
                    "expression": rng.standard_normal(3) * model.expression_std, "jaw": np.array([0.2, 0.05, 0.0])}
    rest = model.rest_shape(coefficients)
    posed = model.reconstruct(coefficients)
    rotation = Rotation.from_rotvec(coefficients["jaw"]).as_matrix()
    np.testing.assert_allclose(unskin(posed[None], rotation[None], model.pivot, model.skinning_weights)[0], rest, atol=1e-10)
    ids = np.arange(0, model.vertex_count, 5)
    for block, size in (("identity", 7), ("jaw", 3)):
        step = np.zeros(size)
        step[1] = 1e-6
        moved = {**coefficients, block: coefficients[block] + step}
        numeric = (model.reconstruct(moved, ids) - model.reconstruct(coefficients, ids)) / 1e-6
        np.testing.assert_allclose(model.jacobian(coefficients, block, ids)[:, :, 1], numeric, atol=1e-4)


def test_graph_laplacian_matches_a_dense_reference():
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    laplacian = graph_laplacian(faces, 5).toarray()
    adjacency = np.zeros((5, 5))
    for a, b, c in faces:
        for i, j in ((a, b), (b, c), (c, a)):
            adjacency[i, j] = adjacency[j, i] = 1.0
    np.testing.assert_array_equal(laplacian, np.diag(adjacency.sum(1)) - adjacency)


def test_needs_neutral_scans(data):
    meshes, faces, identities, _, _, _ = data
    with pytest.raises(ValueError, match="neutral"):
        build_flame_like(meshes, identities, [False] * len(meshes), faces, 3, 3)
