"""Regularised non-rigid ICP: helpers against naive references, convergence, and the prior's effect."""
from __future__ import annotations

import igl
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from imface.baselines.fitting import BaselineFitSettings, barycentric, fit_to_points
from imface.baselines.pca import build_pca
from imface.ops.ground_truth_crop import crop_like_ground_truth
from imface.ops.normals import vertex_normals
from imface.ops.sdf_sampling import sample_surface
from tests.baselines import make_dataset, make_face


@pytest.fixture(scope="module")
def model():
    meshes, faces, *_ = make_dataset(5, seed=7)
    return build_pca(meshes, 16, faces)


@pytest.fixture(scope="module")
def target():
    """An unseen synthetic face (not in the model's span), cropped like a ground truth, moved slightly."""
    vertices, faces = make_face(np.full(6, 0.4), (0.5, -0.3, 0.2), 0.1, step=0.025)
    rotation = Rotation.from_rotvec([0.02, 0.03, -0.02]).as_matrix()
    return crop_like_ground_truth(vertices @ rotation.T + np.array([0.005, -0.01, 0.0]), faces)


def test_vertex_normals_match_a_loop_reference(model):
    vertices = model.reconstruct(model.initial_coefficients())
    expected = np.zeros_like(vertices)
    for face in model.faces:  # naive reference: area-weighted face normals, one face at a time
        a, b, c = vertices[face]
        expected[face] += np.cross(b - a, c - a)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vertex_normals(vertices, model.faces, weighting="area"), expected, atol=1e-12)


def test_barycentric_coordinates_rebuild_the_point():
    rng = np.random.default_rng(0)
    corners = rng.standard_normal((50, 3, 3))
    weights = rng.dirichlet(np.ones(3), 50)
    points = np.einsum("pk,pkd->pd", weights, corners)
    np.testing.assert_allclose(barycentric(points, corners), weights, atol=1e-10)


def test_energy_decreases_and_fit_improves(model, target):
    rng = np.random.default_rng(1)
    points, normals = sample_surface(*target, 20000, rng)
    result = fit_to_points(model, points, normals, iterations=25)
    energy = np.array([h["energy"] for h in result.history])
    rms = np.array([h["rms"] for h in result.history])
    assert energy[-1] < 0.1 * energy[0]
    # Monotone up to small wobbles from re-pairing.
    assert np.all(energy[1:] <= energy[:-1] * 1.05 + 1e-9)
    assert rms[-1] < 0.5 * rms[0]
    squared, _, _ = igl.point_mesh_squared_distance(points, result.vertices, model.faces)
    assert np.sqrt(np.median(squared)) < 0.003  # 3 mm: the face is not in the small model's span
    assert set(result.coefficients) == {"shape"} and result.vertices.shape == (model.vertex_count, 3)


def test_both_pose_solvers_recover_a_rigid_motion(model):
    rng = np.random.default_rng(2)
    rotation = Rotation.from_rotvec([0.05, -0.04, 0.03]).as_matrix()
    translation = np.array([0.02, 0.01, -0.015])
    shape = model.reconstruct({"shape": rng.standard_normal(16) * model.std * 0.5})
    points, normals = sample_surface(*crop_like_ground_truth(shape @ rotation.T + translation, model.faces), 20000, rng)
    errors = {}
    for solver in ("joint", "kabsch"):
        result = fit_to_points(model, points, normals, pose_solver=solver, iterations=40, regularisation=1e-9)
        errors[solver] = np.linalg.norm(result.translation - translation)
    assert errors["joint"] < 0.002 and errors["kabsch"] < 0.02


def test_regularisation_keeps_coefficients_bounded_on_noisy_targets(model, target):
    rng = np.random.default_rng(3)
    points, _ = sample_surface(*target, 4000, rng)
    noisy = points + rng.normal(0.0, 0.02, points.shape)  # 2 mm noise, no normals
    whitened = {}
    for weight in (1e-10, 1e-5):
        result = fit_to_points(model, noisy, None, iterations=15, regularisation=weight, max_distance=0.2)
        whitened[weight] = np.linalg.norm(result.coefficients["shape"] / model.std)
    assert whitened[1e-5] < 0.5 * whitened[1e-10]
    assert whitened[1e-5] < 3.0 * np.sqrt(model.latent_size)


def test_bad_inputs_are_refused(model):
    with pytest.raises(ValueError, match="shape"):
        fit_to_points(model, np.zeros((10, 2)))
    with pytest.raises(ValueError, match="too far"):
        fit_to_points(model, np.random.default_rng(0).uniform(-0.05, 0.05, (100, 3)) + np.array([0, 0, 0.9]),
                      iterations=2, max_distance=0.01)
    with pytest.raises(ValueError, match="pose_solver"):
        BaselineFitSettings(pose_solver="magic")
