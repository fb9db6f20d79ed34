"""What the experiment scripts share: training overrides, a train-or-reuse step and the
mouth-region score (model units in, millimetres out)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from imface.config.experiment import apply_overrides, preset
from imface.contracts.experiment import CONFIG_NAME, checkpoint_path
from imface.frame import MM_PER_UNIT
from imface.io.mesh import read_mesh
from imface.training.trainer import train


def split_overrides(text: str) -> list[str]:
    """``section.field=value,section.field=value`` (may be empty) as a list of overrides."""
    return [item for item in text.split(",") if item]


def train_or_reuse(data: Path, exp: Path, steps: int, seed: int, preset_name: str = "cpu",
                   overrides: list[str] | tuple[str, ...] = ()) -> None:
    """Train ``preset_name`` with ``overrides`` and ``train.seed=seed`` for ``steps`` steps (no time
    limit) into ``exp``; nothing when its checkpoint at ``steps`` exists, a resume when a shorter
    run does."""
    if checkpoint_path(exp, steps).is_file():
        return
    config = apply_overrides(preset(preset_name), [*overrides, f"train.seed={seed}"])
    config.train.max_minutes, config.train.max_steps = 0.0, steps
    train(config, data, exp, resume=(exp / CONFIG_NAME).is_file(), progress=False)


def mouth(vertices: np.ndarray) -> np.ndarray:
    """The lower-central part of a face's central disc: vertices (V, 3) model units -> (M, 3)."""
    centre = vertices.mean(0)
    radius = np.linalg.norm(vertices[:, :2] - centre[:2], axis=1)
    vertices = vertices[radius < 0.6 * radius.max()]
    low = vertices[:, 1] < np.percentile(vertices[:, 1], 40)
    return vertices[low & (np.abs(vertices[:, 0] - centre[0]) < 0.3)]


def mouth_p90_mm(target: Path, fitted: Path) -> float:
    """90th percentile (mm) of the distance from the target mesh's mouth region to the fitted
    mesh's nearest vertex: where the expressive scans' fits differ most."""
    distance = cKDTree(read_mesh(fitted).vertices).query(mouth(read_mesh(target).vertices))[0] * MM_PER_UNIT
    return float(np.percentile(distance, 90))
