"""End to end on the built-in data: raw scans -> processed dataset -> baselines -> fits scored on the crop."""
from __future__ import annotations

import igl
import numpy as np
import pytest

from imface.baselines import build_baselines, fit_baseline
from imface.contracts.dataset import read_manifest
from imface.io.mesh import read_mesh
from tests.synthetic_processed import write_builtin_processed


@pytest.mark.slow
def test_baselines_fit_unseen_builtin_scans(tmp_path):
    write_builtin_processed(tmp_path, identities=5, expressions="neutral,smile,mouth_stretch,jaw_forward,brow_raiser",
                            surface_samples=20000, space_samples=1000, test_identities=1)
    built = build_baselines(tmp_path / "data", tmp_path / "models", pca_sizes=(8, 64), bilinear=(4, 4), flame=(3, 8))
    assert set(built.models) == {"pca8", "bilinear", "flame_like"} and "pca64" in built.notes
    manifest = read_manifest(tmp_path / "data")
    scan = manifest.folder(next(name for name in manifest.test if "mouth_stretch" in name))
    truth = read_mesh(scan / "mesh.ply")
    for name, path in built.models.items():
        result = fit_baseline(path, scan, tmp_path / "fits" / name)
        fitted = read_mesh(tmp_path / "fits" / name / "mesh_cropped.ply")
        to_truth = np.sqrt(igl.point_mesh_squared_distance(fitted.vertices, truth.vertices, truth.faces)[0])
        to_fit = np.sqrt(igl.point_mesh_squared_distance(truth.vertices, fitted.vertices, fitted.faces)[0])
        chamfer_mm = 50.0 * (to_truth.mean() + to_fit.mean())
        assert chamfer_mm < 2.0, (name, chamfer_mm)
        assert result.history[-1]["rms"] < result.history[0]["rms"]
