"""The methods a benchmark scores: each variant's experiment config and where every run lives."""
from __future__ import annotations

import json

from imface.benchmark.methods import correspondence_model, latent_size, methods, variant_experiment
from imface.config.benchmark import benchmark_preset
from imface.contracts.benchmark import NO_SEED, BenchmarkFolder


def test_variants_and_runs(tmp_path):
    config = benchmark_preset("tiny")
    full = variant_experiment(config, "full", 3)
    joint = variant_experiment(config, "no-dist", 3)
    assert full.train.seed == 3 and full.train.max_steps == config.train_steps
    assert full.model.deformation == "disentangled" and joint.model.deformation == "joint"
    folder = BenchmarkFolder(tmp_path)
    folder.baselines.mkdir()
    folder.baselines_index.write_text(json.dumps({"models": {"pca8": {"path": "pca8", "latent_size": 8}}}))
    rows = {row["name"]: row for row in methods(config, tmp_path)}
    assert set(rows) == {*config.variants, "pca8"}
    assert rows["pca8"]["runs"] == {NO_SEED: (folder.baseline_fits("pca8"), "mesh.ply")}
    variant = config.variants[0]
    assert rows[variant]["runs"][f"seed-{config.seeds[0]}"][0] == folder.imface_fits(variant, config.seeds[0])
    assert rows[variant]["latent_size"] == latent_size(variant_experiment(config, variant, config.seeds[0]))
    assert correspondence_model(config) == (("full" if "full" in config.variants else config.variants[0]),
                                            config.seeds[0])
