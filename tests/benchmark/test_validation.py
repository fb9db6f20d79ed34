"""The validation split: training identities only, and settings that test scans cannot move."""
from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np

from imface.benchmark import benchmark_preset
from imface.benchmark.validation import choose_regularisation, validation_identities, validation_scans
from imface.contracts.dataset import read_manifest
from imface.io.mesh import read_mesh, write_mesh
from tests.baselines import write_dataset


def _manifest(train_ids, test_ids, expressions=("neutral", "smile", "anger")):
    train = [f"{i}/{e}" for i in train_ids for e in expressions]
    test = [f"{i}/{e}" for i in test_ids for e in expressions]
    scans = {n: SimpleNamespace(identity=n.split("/")[0], expression=n.split("/")[1]) for n in train + test}
    return SimpleNamespace(train=tuple(train), test=tuple(test), test_identities=tuple(test_ids),
                           scan=lambda name: scans[name], root="data")


def test_validation_split_holds_training_identities_only():
    for train_count in range(3, 60, 7):
        train_ids = [f"{k:03d}" for k in range(train_count)]
        manifest = _manifest(train_ids, ["900", "901", "902"])
        for count in (1, 2, 5):
            chosen = validation_identities(manifest, count)
            assert len(chosen) == len(set(chosen)) == min(count, train_count - 2)
            assert set(chosen) <= set(train_ids) and not set(chosen) & set(manifest.test_identities)
            assert chosen == validation_identities(manifest, count)  # deterministic
            scans = validation_scans(manifest, chosen, 4)
            assert len(scans) == min(4, 3 * len(chosen)) and set(scans) <= set(manifest.train)
            assert {manifest.scan(s).identity for s in scans} <= set(chosen)


def test_chosen_regularisation_ignores_the_test_scans(tmp_path):
    data = write_dataset(tmp_path / "data", identities=7, test_identities=2)
    config = benchmark_preset("tiny")
    config.pca_sizes, config.bilinear_ranks, config.flame_ranks = [4], [3, 2], [2, 2]
    config.paper_resolution, config.baseline_fit_points = 0, 1500
    config.validation_identities, config.validation_scans = 2, 2
    config.regularisation_grid = [1e-9, 1e-6, 1e-3]
    assert choose_regularisation(config, data, tmp_path / "a")
    first = json.loads((tmp_path / "a" / "validation" / "chosen.json").read_text())
    assert not choose_regularisation(config, data, tmp_path / "a")  # resumes

    # The same dataset with every test scan's geometry replaced by noise.
    altered = tmp_path / "altered"
    shutil.copytree(data, altered)
    manifest = read_manifest(altered)
    rng = np.random.default_rng(0)
    for name in manifest.test:
        for file in ("mesh.ply", "registered.ply"):
            mesh = read_mesh(manifest.folder(name) / file)
            write_mesh(manifest.folder(name) / file, mesh.vertices + rng.normal(0, 0.05, mesh.vertices.shape), mesh.faces)
    assert choose_regularisation(config, altered, tmp_path / "b", workers=2)  # a process pool: same numbers
    second = json.loads((tmp_path / "b" / "validation" / "chosen.json").read_text())
    assert second["chosen"] == first["chosen"] and second["chamfer_mm"] == first["chamfer_mm"]
    assert set(first["chosen"]) == {"pca4", "bilinear", "flame_like"}
    assert not set(first["identities"]) & set(manifest.test_identities)
    # the scores differ across the grid, so the choice is a real one
    assert any(len(set(row.values())) > 1 for row in first["chamfer_mm"].values())
