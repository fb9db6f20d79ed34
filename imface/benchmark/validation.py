"""Settings chosen on validation identities, never on test scans.

The validation split is a few *training* identities (``validation_identities``). For each
baseline, the benchmark builds the same model without them, fits ``validation_scans`` of
their scans with every value of ``regularisation_grid`` and keeps the value with the lowest
mean Chamfer (cropped like the ground truth, ICP, ``VALIDATION_EVAL_POINTS`` samples). The
final baselines are then built from all training identities and fitted to the test scans
with the chosen values. ImFace's fit settings were chosen the same way, once: the free-space
samples with ``experiments/recipe_curves.py`` on a separate tuning dataset (``imface data bfm --seed
1``: other people), the code lr with ``experiments/fit_settings.py`` on models trained without the
validation identities (``experiments/validation_view.py``); see docs/lab/2026-12-03-training-recipe.md.

Folder: ``<bench>/validation/`` with ``baselines/``, ``fits/<model>/reg-<value>/<scan>/`` and
``chosen.json`` (identities, scans, per-model scores per value, the chosen value).
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from imface.baselines import build_baselines, fit_baseline
from imface.baselines.fitting import BaselineFitSettings
from imface.benchmark.parallel import run_calls
from imface.config.benchmark import BenchmarkConfig
from imface.contracts.benchmark import BenchmarkFolder
from imface.contracts.dataset import MESH_NAME as SCAN_MESH_NAME
from imface.contracts.dataset import Manifest, read_manifest
from imface.contracts.fits import FIT_NAME, MESH_CROPPED_NAME
from imface.errors import ImfaceError
from imface.io.atomic import write_json
from imface.io.mesh import read_mesh
from imface.ops.metrics import evaluate_reconstruction

CHOSEN_NAME = "chosen.json"
VALIDATION_EVAL_POINTS = 50_000


def validation_identities(manifest: Manifest, count: int) -> list[str]:
    """``count`` training identities spread over the sorted training identities (deterministic);
    at least two training identities are always left to build the models from."""
    test = set(manifest.test_identities)
    training = sorted({manifest.scan(n).identity for n in manifest.train} - test)
    if len(training) < 3:
        raise ImfaceError(manifest.root, f"{len(training)} training identities: a validation split needs at least 3")
    count = min(count, len(training) - 2)
    return [training[(2 * i + 1) * len(training) // (2 * count)] for i in range(count)]


def validation_scans(manifest: Manifest, identities: list[str], count: int) -> list[str]:
    """``count`` training scans of the validation identities, identities taking turns; each turn
    takes the scan at a fixed stride into what is left of the identity's sorted scans (7 per turn,
    3 per identity), so the expressions differ (deterministic)."""
    by_identity = {i: sorted(n for n in manifest.train if manifest.scan(n).identity == i) for i in identities}
    picks: list[str] = []
    turn = 0
    while len(picks) < count and any(by_identity.values()):
        for index, identity in enumerate(identities):
            names = by_identity[identity]
            if names and len(picks) < count:
                picks.append(names.pop((turn * 7 + index * 3) % len(names)))
        turn += 1
    return picks


def _score(fit_dir: Path, truth_path: Path) -> float:
    fitted, truth = read_mesh(fit_dir / MESH_CROPPED_NAME), read_mesh(truth_path)
    return evaluate_reconstruction(fitted.vertices, fitted.faces, truth.vertices, truth.faces,
                                   num_points=VALIDATION_EVAL_POINTS, footprint=False).chamfer_mm


def choose_regularisation(config: BenchmarkConfig, data_dir: Path, bench_dir: Path, workers: int = 1) -> bool:
    """Write ``validation/chosen.json`` (see the module docstring); True when work was done.

    ``workers``: processes for the fits and their scores (the result does not depend on it)."""

    out = BenchmarkFolder(bench_dir).validation
    if (out / CHOSEN_NAME).is_file():
        return False
    manifest = read_manifest(data_dir)
    identities = validation_identities(manifest, config.validation_identities)
    scans = validation_scans(manifest, identities, config.validation_scans)
    if not (out / "baselines" / "baselines.json").is_file():
        build_baselines(data_dir, out / "baselines", pca_sizes=tuple(config.pca_sizes),
                        bilinear=tuple(config.bilinear_ranks), flame=tuple(config.flame_ranks),
                        paper_resolution=config.paper_resolution, exclude_identities=tuple(identities))
    models = json.loads((out / "baselines" / "baselines.json").read_text())["models"]
    grid = [(name, value, scan) for name in models for value in config.regularisation_grid for scan in scans]

    def fit_dir(name: str, value: float, scan: str) -> Path:
        return out / "fits" / name / f"reg-{value:g}" / scan

    run_calls([(fit_baseline, {"model_path": out / "baselines" / models[name]["path"],
                               "scan_dir": manifest.folder(scan), "out_dir": fit_dir(name, value, scan),
                               "settings": BaselineFitSettings(regularisation=value),
                               "points": config.baseline_fit_points, "seed": 0})
               for name, value, scan in grid if not (fit_dir(name, value, scan) / FIT_NAME).is_file()], workers)
    chamfers = run_calls([(_score, {"fit_dir": fit_dir(name, value, scan),
                                    "truth_path": manifest.folder(scan) / SCAN_MESH_NAME})
                          for name, value, scan in grid], workers)
    scores: dict[str, dict[str, float]] = {name: {} for name in models}
    for name in models:
        for value in config.regularisation_grid:
            scores[name][f"{value:g}"] = statistics.fmean(
                c for (n, v, _), c in zip(grid, chamfers) if n == name and v == value)
    chosen = {name: float(min(row, key=row.get)) for name, row in scores.items()}
    write_json(out / CHOSEN_NAME, {"identities": identities, "scans": scans, "grid": list(config.regularisation_grid),
                                   "eval_points": VALIDATION_EVAL_POINTS, "chamfer_mm": scores, "chosen": chosen})
    return True


def read_chosen(bench_dir: Path) -> dict[str, Any] | None:
    path = BenchmarkFolder(bench_dir).validation / CHOSEN_NAME
    return json.loads(path.read_text()) if path.is_file() else None
