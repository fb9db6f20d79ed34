"""Dense correspondence through template space on the tiny trained model.

Fits folders are made from the training code tables (the trained rows are fitted codes of the
training scans), with meshes extracted at a small resolution.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import trimesh

from imface.correspondence import (
    GroundTruth,
    dense_correspondence_errors,
    landmark_transfer_errors,
    load_fits,
    match_points,
    parse_pairs,
    run_correspondence,
)
from imface.errors import ImfaceError
from imface.generate import resolve_face
from imface.pretrained import load_pretrained
from tests.model_fixtures import FIT_SCANS as SCANS
from tests.model_fixtures import add_registered_meshes, make_fits


@pytest.fixture(scope="module")
def setup(trained_tiny, tmp_path_factory):
    data_dir, exp_dir = trained_tiny
    root = tmp_path_factory.mktemp("corr")
    data = shutil.copytree(data_dir, root / "data")
    add_registered_meshes(data)
    pretrained = load_pretrained(exp_dir)
    return pretrained, make_fits(pretrained, data, root / "fits")


def test_match_points_equals_brute_force():
    rng = np.random.default_rng(0)
    source, target = rng.normal(size=(200, 3)), rng.normal(size=(150, 3))
    indices, distances = match_points(source, target)
    pairwise = np.linalg.norm(source[:, None] - target[None], axis=2)
    assert np.array_equal(indices, pairwise.argmin(1)) and np.allclose(distances, pairwise.min(1))


def test_a_scan_corresponds_to_itself_vertex_by_vertex(setup, tmp_path):
    pretrained, fits = setup
    name = SCANS[1]
    summary = run_correspondence(pretrained, fits, tmp_path, [(name, name)], metric_pairs="listed", render=False)
    folder = tmp_path / summary["pairs"][0]["folder"]
    matches = np.load(folder / "matches.npy")
    assert np.array_equal(matches, np.arange(len(matches)))
    assert np.allclose(np.load(folder / "distances.npy"), 0.0)
    a, b = trimesh.load(folder / "a.ply", process=False), trimesh.load(folder / "b.ply", process=False)
    assert np.array_equal(a.visual.vertex_colors, b.visual.vertex_colors)
    # The same scan with itself: registered vertex i matches vertex i exactly.
    assert summary["dense_correspondence_error"]["mean_mm"] == pytest.approx(0.0, abs=1e-9)


def test_outputs_and_metrics(setup, tmp_path):
    pretrained, fits = setup
    summary = run_correspondence(pretrained, fits, tmp_path)
    assert [(p["a"], p["b"]) for p in summary["pairs"]] == [(SCANS[0], other) for other in SCANS[1:]]
    for record in summary["pairs"]:
        folder = tmp_path / record["folder"]
        matches = np.load(folder / "matches.npy")
        vertices_b = len(trimesh.load(fits / record["b"] / "mesh.ply", process=False).vertices)
        assert matches.dtype == np.int64 and matches.min() >= 0 and matches.max() < vertices_b
        assert len(matches) == record["vertices_a"]
        for name in ("distances.npy", "a.ply", "b.ply", "pair.json"):
            assert (folder / name).is_file()
    assert (tmp_path / "correspondence.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "correspondence.json").read_text())
    assert saved["metric_pairs"] == len(SCANS) * (len(SCANS) - 1)
    for key in ("landmark_transfer_error", "dense_correspondence_error"):
        assert np.isfinite(saved[key]["mean_mm"]) and np.isfinite(saved[key]["median_mm"])
        assert saved[key]["pairs"] == saved["metric_pairs"]


def test_landmark_transfer_same_identity_is_below_a_crude_bound(setup):
    pretrained, fits = setup
    a, b = (GroundTruth(pretrained, s) for s in load_fits(fits, [SCANS[1], SCANS[2]]))
    errors = landmark_transfer_errors(a, b)
    landmarks_b, mask_b, _ = b.landmarks()
    assert len(errors) == int(mask_b.sum()) == 68 and np.all(np.isfinite(errors))
    # Crude bound: far better than guessing (B's landmarks against each other, in mm).
    spread = np.linalg.norm(landmarks_b[:, None] - landmarks_b[None], axis=2).mean() * 100
    assert errors.mean() < 0.5 * spread
    assert errors.mean() < 20.0


def test_dense_error_of_a_pair_is_finite_and_uses_the_face_region(setup):
    pretrained, fits = setup
    a, b = (GroundTruth(pretrained, s) for s in load_fits(fits, [SCANS[0], SCANS[3]]))
    errors = dense_correspondence_errors(a, b)
    vertices_a, region_a, _ = a.registered()
    assert len(errors) == len(region_a) < len(vertices_a) + 1 and np.all(np.isfinite(errors))
    assert np.all(np.linalg.norm(vertices_a[region_a], axis=1) <= 1.0)


def test_a_fitted_scan_names_a_face(setup):
    pretrained, fits = setup
    face = resolve_face(pretrained, f"{fits}:001/2_smile")
    named = resolve_face(pretrained, "001+001/2_smile")
    assert torch.equal(face.id_code, named.id_code) and torch.equal(face.exp_code, named.exp_code) and not face.neutral
    assert resolve_face(pretrained, f"{fits}:001/1_neutral").neutral


def test_bad_inputs(setup, tmp_path):
    pretrained, fits = setup
    with pytest.raises(ImfaceError, match="nearest: 001/2_smile"):
        run_correspondence(pretrained, fits, tmp_path, [("001/2_smile", "001/2_smilee")])
    with pytest.raises(ImfaceError, match="not a fits folder"):
        load_fits(tmp_path)
    with pytest.raises(ImfaceError, match="scanA:scanB"):
        parse_pairs("001/1_neutral", ["001/1_neutral"])
