"""Decimated topologies and the paper-condition (FLAME-resolution) baseline built on one."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial import cKDTree

from imface.baselines.decimate import decimate_topology
from imface.baselines.fitting import fit_to_vertices
from imface.baselines.io import build_baselines, load_model, load_training_meshes
from tests.baselines import make_dataset, write_dataset


def test_decimation_keeps_original_vertices_and_a_valid_mesh():
    meshes, faces, *_ = make_dataset(3, seed=1, expressions_per_identity=2)
    mean = meshes.mean(axis=0)
    vertex_ids, coarse = decimate_topology(mean, faces, 300)
    assert 250 <= len(vertex_ids) <= 350 and len(np.unique(vertex_ids)) == len(vertex_ids)
    assert coarse.min() == 0 and coarse.max() == len(vertex_ids) - 1
    assert len(np.unique(coarse)) == len(vertex_ids)  # every kept vertex is used
    assert np.all(np.diff(np.sort(coarse, axis=1), axis=1) > 0)  # no degenerate triangles
    # The coarse surface still covers the face: its area is close to the original's.
    def area(v, f):
        return 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1).sum()
    assert area(mean[vertex_ids], coarse) == pytest.approx(area(mean, faces), rel=0.1)
    with pytest.raises(ValueError, match="target_vertices"):
        decimate_topology(mean, faces, len(mean) + 1)


def test_decimated_baseline_reconstructs_its_own_training_meshes(tmp_path):
    data = write_dataset(tmp_path / "data", identities=6, test_identities=1)
    training = load_training_meshes(data)
    built = build_baselines(data, tmp_path / "models", pca_sizes=(), bilinear=None, flame=(4, 12), paper_resolution=400)
    assert set(built.models) == {"flame_like", "flame_like_400"}
    index = json.loads((tmp_path / "models" / "baselines.json").read_text())["models"]
    assert index["flame_like_400"]["condition"] == "paper" and index["flame_like"]["condition"] == "oracle"
    coarse, full = load_model(built.models["flame_like_400"]), load_model(built.models["flame_like"])
    assert coarse.vertex_count == index["flame_like_400"]["vertices"] < full.vertex_count
    errors_coarse, errors_full, spread = [], [], []
    mean_full = training.vertices.mean(axis=0)
    for mesh in training.vertices:
        target = mesh[_kept(full.mean, coarse.mean)]
        errors_coarse.append(fit_to_vertices(coarse, target, iterations=10).history[-1]["rms"])
        errors_full.append(fit_to_vertices(full, mesh, iterations=10).history[-1]["rms"])
        spread.append(np.sqrt(np.mean(np.sum((mesh - mean_full) ** 2, axis=1))))
    # Near-exact on its training data (the jaw is fitted by Gauss-Newton, so not to float precision),
    # and as good as the same model at full resolution.
    assert np.mean(errors_coarse) < 0.05 * np.mean(spread)
    assert np.mean(errors_coarse) < 1.5 * np.mean(errors_full) + 1e-6


def _kept(full_mean: np.ndarray, coarse_mean: np.ndarray) -> np.ndarray:
    """Indices of the coarse model's vertices in the full topology (their means coincide)."""
    distance, index = cKDTree(full_mean).query(coarse_mean)
    assert distance.max() < 1e-6
    return index
