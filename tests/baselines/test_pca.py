"""Linear PCA 3DMM: exact at full rank, against a covariance-eigenvector reference, and fitted to scans."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from imface.baselines.fitting import fit_to_points
from imface.baselines.pca import build_pca
from imface.ops.ground_truth_crop import crop_like_ground_truth
from imface.ops.sdf_sampling import sample_surface
from tests.baselines import make_dataset


@pytest.fixture(scope="module")
def data():
    meshes, faces, *_ = make_dataset(4, seed=3)
    noisy = meshes + np.random.default_rng(0).normal(0.0, 1e-3, meshes.shape)  # full rank
    return noisy, faces


def test_all_components_reconstruct_training_meshes_exactly(data):
    meshes, faces = data
    model = build_pca(meshes, len(meshes) - 1, faces, dtype=np.float64)
    for index in (0, 7, len(meshes) - 1):
        coefficients = {"shape": model.project(meshes[index])}
        np.testing.assert_allclose(model.reconstruct(coefficients), meshes[index], atol=1e-9)
    ratio = model.explained_variance_ratio
    assert np.all(np.diff(ratio) <= 1e-15) and abs(ratio.sum() - 1.0) < 1e-9
    assert np.all(np.diff(model.std) <= 0)


def test_truncated_model_matches_covariance_eigenvectors(data):
    meshes, faces = data
    small = meshes[:, :40]  # naive reference on a small vertex set: eigen-decomposition of np.cov
    model = build_pca(small, 5, faces[:0], dtype=np.float64)
    covariance = np.cov(small.reshape(len(small), -1), rowvar=False)
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1][:5]
    np.testing.assert_allclose(model.std**2, values[order], rtol=1e-8)
    overlap = np.abs(np.einsum("kd,dk->k", model.components.reshape(5, -1), vectors[:, order]))
    np.testing.assert_allclose(overlap, 1.0, atol=1e-6)
    np.testing.assert_allclose(model.mean, small.mean(axis=0), atol=1e-12)
    # Subset reconstruction agrees with the full one.
    coefficients = {"shape": np.arange(5.0) * 0.01}
    ids = np.array([3, 0, 17])
    np.testing.assert_allclose(model.reconstruct(coefficients, ids), model.reconstruct(coefficients)[ids], atol=1e-12)


def test_size_limits_are_enforced(data):
    meshes, faces = data
    with pytest.raises(ValueError, match="between 1 and"):
        build_pca(meshes, len(meshes), faces)


def test_fit_recovers_an_in_span_mesh_under_a_rigid_motion(data):
    meshes, faces = data
    model = build_pca(meshes[:-1], 12, faces)
    rng = np.random.default_rng(5)
    truth = rng.standard_normal(12) * model.std
    rotation = Rotation.from_rotvec([0.04, -0.03, 0.05]).as_matrix()
    translation = np.array([0.015, -0.02, 0.01])
    target = model.reconstruct({"shape": truth}) @ rotation.T + translation
    points, normals = sample_surface(*crop_like_ground_truth(target, faces), 20000, rng)
    result = fit_to_points(model, points, normals, regularisation=1e-9, iterations=30)
    angle = np.degrees(np.arccos(np.clip((np.trace(result.rotation.T @ rotation) - 1) / 2, -1, 1)))
    assert angle < 0.1
    assert np.linalg.norm(result.translation - translation) < 0.002  # 0.2 mm
    inside = np.linalg.norm(target, axis=1) < 1.0
    error = np.linalg.norm(result.vertices - target, axis=1)
    assert np.sqrt(np.mean(error[inside] ** 2)) < 0.003  # 0.3 mm over the fitted region
    start_error = np.linalg.norm(model.mean - target, axis=1)
    assert np.sqrt(np.mean(error**2)) < 0.1 * np.sqrt(np.mean(start_error**2))
