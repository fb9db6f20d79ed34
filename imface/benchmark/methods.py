"""The methods a benchmark scores and where their runs live: the ImFace variants (per seed) and
the built baselines. Used by every stage and by the report."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from imface.config.benchmark import VARIANTS, BenchmarkConfig
from imface.config.experiment import ExperimentConfig, apply_ablations, apply_overrides, preset, set_field
from imface.contracts.benchmark import NO_SEED, BenchmarkFolder, seed_folder
from imface.contracts.fits import MESH_NAME


def variant_experiment(config: BenchmarkConfig, variant: str, seed: int) -> ExperimentConfig:
    """The training config of one variant and seed (training preset + ablations + overrides)."""
    ablations, overrides = VARIANTS[variant]
    experiment = apply_ablations(preset(config.train_preset), ablations)
    for key, value in overrides.items():
        experiment = set_field(experiment, key, value)
    experiment = apply_overrides(experiment, config.train_overrides)
    experiment.train.seed = seed
    experiment.train.max_steps = config.train_steps
    experiment.train.max_minutes = 0.0
    experiment.train.keep_checkpoints = 0  # the learning curves fit the checkpoints of every segment
    return experiment


def latent_size(experiment: ExperimentConfig) -> int:
    return int(experiment.model.id_code_dim + experiment.model.exp_code_dim)


def baseline_names(bench_dir: Path) -> dict[str, dict[str, Any]]:
    """The built baselines: name -> {"path", "latent_size", "vertices", "condition"} (``baselines/baselines.json``)."""
    index = json.loads(BenchmarkFolder(bench_dir).baselines_index.read_text())
    return index["models"]


def methods(config: BenchmarkConfig, bench_dir: Path) -> list[dict[str, Any]]:
    """Every scored method: name, kind (imface | baseline), latent size, and per seed its
    fits folder and reconstruction file name."""
    folder = BenchmarkFolder(bench_dir)
    rows = []
    for variant in config.variants:
        rows.append({"name": variant, "kind": "imface",
                     "latent_size": latent_size(variant_experiment(config, variant, config.seeds[0])),
                     "runs": {seed_folder(s): (folder.imface_fits(variant, s), MESH_NAME) for s in config.seeds}})
    for name, entry in baseline_names(bench_dir).items():
        rows.append({"name": name, "kind": "baseline", "latent_size": int(entry["latent_size"]),
                     "condition": entry.get("condition", "oracle"), "vertices": entry.get("vertices"),
                     "runs": {NO_SEED: (folder.baseline_fits(name), MESH_NAME)}})
    return rows


def correspondence_model(config: BenchmarkConfig) -> tuple[str, int]:
    """The variant and seed whose fits carry the correspondence figures (the full model when run)."""
    return ("full" if "full" in config.variants else config.variants[0]), config.seeds[0]
