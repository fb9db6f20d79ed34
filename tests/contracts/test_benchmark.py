"""The benchmark folder's layout: every stage's path from one place."""
from __future__ import annotations

from imface.contracts.benchmark import NO_SEED, BenchmarkFolder, seed_folder


def test_paths_of_each_stage(tmp_path):
    folder = BenchmarkFolder(str(tmp_path))
    assert folder.root == tmp_path and folder.config == tmp_path / "benchmark.yaml"
    assert folder.experiment("full", 2) == tmp_path / "imface" / "full" / "seed-2"
    assert folder.imface_fits("full", 2) == tmp_path / "fits" / "imface" / "full" / "seed-2"
    assert folder.baseline_fits("pca64") == tmp_path / "fits" / "baselines" / "pca64"
    assert folder.baselines_index == tmp_path / "baselines" / "baselines.json"
    assert folder.evaluation("pca64", NO_SEED) == tmp_path / "eval" / "pca64" / "seed-none"
    assert seed_folder(None) == NO_SEED and seed_folder(0) == "seed-0"
    assert len({folder.results, folder.report, folder.timings, folder.data}) == 4
