"""A fits folder in the viewer: codes, targets found as imface eval finds them, metrics, refusals."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from imface.contracts.fits import (TARGET_NAME, fits_entry, read_fits_index, write_codes, write_fit,
                                   write_fits_index)
from imface.errors import ImfaceError
from imface.io.mesh import read_mesh, write_mesh
from imface.viewer.fits import FitsFolder
from imface.viewer.library import Library, Roots
from tests.model_fixtures import make_fits

SCANS = ("001/1_neutral", "002/2_smile")


@pytest.fixture(scope="module")
def fits_dir(tiny, trained_tiny, tmp_path_factory):
    return make_fits(tiny, trained_tiny[0], tmp_path_factory.mktemp("fits") / "fits", scans=SCANS, resolution=24)


def _folder(tiny, fits, data=None):
    roots = Roots([tiny.path, fits, data])
    return FitsFolder(tiny, fits, Library(tiny, data, roots), roots)


def test_fitted_scans_and_their_codes(tiny, fits_dir):
    folder = _folder(tiny, fits_dir)
    assert folder.names == list(SCANS)
    face = folder.face("002/2_smile")
    assert torch.allclose(face.id_code, tiny.identity_code("002")) and not face.neutral
    assert folder.face("001/1_neutral").neutral


def test_the_target_is_the_processed_scan_only_inside_the_given_folders(tiny, fits_dir, trained_tiny):
    data = trained_tiny[0]
    target, note = _folder(tiny, fits_dir).target("002/2_smile")
    assert target is None and "outside the folders given" in note and "--data" in note
    target, note = _folder(tiny, fits_dir, data).target("002/2_smile")
    mesh = read_mesh(data / "002/2_smile" / "mesh.ply")
    assert np.allclose(target.vertices, mesh.vertices) and np.array_equal(target.faces, mesh.faces)
    assert "mesh.ply" in note


def test_a_processed_target_moves_by_the_fit_s_pose(tiny, trained_tiny, tmp_path):
    data = trained_tiny[0]
    fits = make_fits(tiny, data, tmp_path / "fits", scans=SCANS[:1], resolution=24)
    face = _folder(tiny, fits).face(SCANS[0])
    shift = np.array([0.01, -0.02, 0.03])
    write_codes(fits / SCANS[0], face.id_code.numpy(), face.exp_code.numpy(), True, np.eye(3), shift)
    target, _ = _folder(tiny, fits, data).target(SCANS[0])
    assert np.allclose(target.vertices, read_mesh(data / SCANS[0] / "mesh.ply").vertices + shift, atol=1e-6)


def test_a_fit_of_a_raw_input_is_compared_with_its_own_target(tiny, fits_dir, tmp_path):
    fits = tmp_path / "fits"
    face = _folder(tiny, fits_dir).face(SCANS[0])
    write_codes(fits / "scan", face.id_code.numpy(), face.exp_code.numpy(), True, np.eye(3), np.zeros(3))
    points = np.random.default_rng(0).uniform(-0.5, 0.5, (50, 3))
    write_mesh(fits / "scan" / TARGET_NAME, points)  # a point set
    write_fits_index(fits, str(tiny.path), False, [fits_entry("scan", "scan", True, None, None, None)])
    target, note = _folder(tiny, fits).target("scan")
    assert target.faces is None and np.allclose(target.vertices, points, atol=1e-6) and TARGET_NAME in note
    (fits / "scan" / TARGET_NAME).unlink()
    target, note = _folder(tiny, fits).target("scan")
    assert target is None and "no target" in note


def test_metrics_from_the_fit_and_from_eval(tiny, fits_dir, tmp_path):
    folder = _folder(tiny, fits_dir)
    assert "no metrics recorded" in folder.metrics_text(SCANS[0])
    write_fit(fits_dir / SCANS[1], {"name": SCANS[1], "metrics": {"chamfer_mm": 0.61234, "fscore@1mm": 0.9}})
    evaluated = fits_dir / "eval" / f"{SCANS[1]}.json"
    evaluated.parent.mkdir(parents=True, exist_ok=True)
    evaluated.write_text(json.dumps({"name": SCANS[1], "metrics": {"chamfer_mm": 0.5, "normal_consistency": 0.97}}))
    text = folder.metrics_text(SCANS[1])
    assert "imface eval: Chamfer (mm) **0.500**" in text and "normal consistency **0.970**" in text
    assert "quick check: Chamfer (mm) **0.612**" in text
    assert folder.metrics(SCANS[1])["fit"]["fscore@1mm"] == 0.9


def test_baseline_fits_and_fits_of_another_model_are_refused(tiny, fits_dir, tmp_path):
    index = read_fits_index(fits_dir)
    baseline = tmp_path / "baseline"
    baseline.mkdir()
    write_fits_index(baseline, "pca", False, index["scans"], method="pca_256")
    with pytest.raises(ImfaceError, match="pca_256 fits"):
        _folder(tiny, baseline)
    other = tmp_path / "other"
    write_codes(other / "scan", np.zeros(3), np.zeros(3), True, np.eye(3), np.zeros(3))
    write_fits_index(other, "elsewhere", False, [fits_entry("scan", "scan", True, None, None, None)])
    with pytest.raises(ImfaceError, match="fitted with another model"):
        _folder(tiny, other)
