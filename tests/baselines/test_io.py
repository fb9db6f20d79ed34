"""Saving and loading baselines; building them from a processed dataset and fitting a test scan."""
from __future__ import annotations

import json

import numpy as np
import pytest

from imface.baselines.bilinear import build_bilinear
from imface.baselines.flame_like import build_flame_like
from imface.baselines.io import build_baselines, fit_baseline, load_model, save_model
from imface.baselines.pca import build_pca
from imface.errors import ImfaceError
from imface.contracts.dataset import read_manifest
from imface.io.mesh import read_mesh
from tests.baselines import make_dataset, write_dataset


@pytest.fixture(scope="module")
def data():
    return make_dataset(4, seed=2, expressions_per_identity=3)


def test_every_kind_round_trips(tmp_path, data):
    meshes, faces, identities, expressions, neutral, _ = data
    models = [build_pca(meshes, 5, faces), build_bilinear(meshes, identities, expressions, faces, 3, 2),
              build_flame_like(meshes, identities, neutral, faces, 3, 2)]
    rng = np.random.default_rng(0)
    for model in models:
        folder = save_model(model, tmp_path / model.name)
        loaded = load_model(folder)
        assert type(loaded) is type(model) and loaded.latent_size == model.latent_size and loaded.name == model.name
        coefficients = {k: v + rng.normal(0, 0.01, v.shape) for k, v in model.initial_coefficients().items()}
        np.testing.assert_array_equal(loaded.reconstruct(coefficients), model.reconstruct(coefficients))
        np.testing.assert_array_equal(loaded.faces, model.faces)
        meta = json.loads((folder / "model.json").read_text())
        assert meta["kind"] == model.kind and meta["latent_size"] == model.latent_size


def test_bad_model_folders_are_refused(tmp_path, data):
    meshes, faces, *_ = data
    with pytest.raises(ImfaceError, match="not a baseline model folder"):
        load_model(tmp_path)
    folder = save_model(build_pca(meshes, 3, faces), tmp_path / "pca")
    meta = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**meta, "kind": "pickle"}))
    with pytest.raises(ImfaceError, match="unknown model kind"):
        load_model(folder)
    (folder / "model.json").write_text(json.dumps(meta))
    (folder / "arrays.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ImfaceError, match="cannot read model arrays"):
        load_model(folder)


def test_build_and_fit_on_a_processed_dataset(tmp_path):
    root = write_dataset(tmp_path / "data", identities=6, test_identities=1)
    built = build_baselines(root, tmp_path / "models", pca_sizes=(8, 1000), bilinear=(10, 3), flame=(4, 6))
    manifest = read_manifest(root)
    train_count = len(manifest.train)
    assert set(built.models) == {"pca8", "bilinear", "flame_like"}
    assert "pca1000" in built.notes and str(train_count - 1) in built.notes["pca1000"]
    assert "lowered" in built.notes["bilinear"]  # 5 training identities < 10
    index = json.loads((tmp_path / "models" / "baselines.json").read_text())
    assert index["models"]["flame_like"]["latent_size"] == 4 + 6 + 3
    test_scan = manifest.folder(manifest.test[1])
    for name, path in built.models.items():
        out = tmp_path / "fits" / name
        result = fit_baseline(path, test_scan, out)
        fitted = read_mesh(out / "mesh.ply")
        cropped = read_mesh(out / "mesh_cropped.ply")
        registered = read_mesh(test_scan / "registered.ply")
        assert np.linalg.norm(cropped.vertices, axis=1).max() <= 1.0 + 1e-5
        inside = np.linalg.norm(registered.vertices, axis=1) < 0.9
        error = np.linalg.norm(fitted.vertices - registered.vertices, axis=1)[inside]
        start = load_model(path).reconstruct(load_model(path).initial_coefficients())
        start_error = np.linalg.norm(start - registered.vertices, axis=1)[inside]
        assert np.sqrt(np.mean(error**2)) < 0.5 * np.sqrt(np.mean(start_error**2)), name
        report = json.loads((out / "fit.json").read_text())
        assert report["latent_size"] == load_model(path).latent_size
        assert report["history"][-1]["energy"] < report["history"][0]["energy"]
        assert result.seconds < 30
