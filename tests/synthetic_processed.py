"""Processed datasets for the tests: a tiny one of spheres with exact SDF samples
(:func:`write_synthetic_dataset`), and the built-in generator's faces preprocessed
(:func:`write_builtin_processed`, needs the BFM statistics: the ``bfm`` fixture).

Each identity is a sphere whose front pole is the nose tip (0,0,0.4) and whose radius
depends on the identity; each expression moves the sphere's centre and changes its radius
a little. Spheres have a closed-form SDF (|p - c| - r) and gradient ((p - c)/|p - c|), so
the samples are exact and cheap. Landmarks are the canonical iBUG layout pushed radially
onto each sphere.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import trimesh

from imface.builtin.write import write_dataset
from imface.frame import CANONICAL_LANDMARKS_MM, FIVE_LANDMARK_IDS, MM_PER_UNIT
from imface.preprocess.run import preprocess_dataset
from imface.preprocess.scan import PreprocessConfig

NOSE_TIP = np.array([0.0, 0.0, 0.4])
# expression name -> (centre shift, radius change), model units
EXPRESSIONS: dict[str, tuple[tuple[float, float, float], float]] = {
    "neutral": ((0.0, 0.0, 0.0), 0.0),
    "smile": ((0.0, 0.03, 0.0), 0.02),
    "jaw_open": ((0.0, -0.05, -0.02), 0.04),
    "mouth_left": ((-0.04, 0.0, 0.0), -0.02),
}


def sphere_of(identity_index: int, expression: str) -> tuple[np.ndarray, float]:
    """Centre (3,) and radius of the sphere for an identity row and an expression name."""
    radius = 0.30 + 0.04 * identity_index
    shift, dr = EXPRESSIONS[expression]
    centre = NOSE_TIP - np.array([0.0, 0.0, radius]) + np.asarray(shift)
    return centre, radius + dr


def _write_scan(folder: Path, centre: np.ndarray, radius: float, rng: np.random.Generator,
                n_surface: int, n_space: int, five_only: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    directions = rng.normal(size=(n_surface, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    surface = centre + radius * directions
    space_dirs = rng.normal(size=(n_space, 3))
    space_dirs /= np.linalg.norm(space_dirs, axis=1, keepdims=True)
    space = space_dirs * rng.uniform(size=(n_space, 1)) ** (1.0 / 3.0)
    offset = space - centre
    dist = np.linalg.norm(offset, axis=1)
    arrays = {
        "surface_points": surface,
        "surface_normals": directions,
        "space_points": space,
        "space_sdf": dist - radius,
        "space_grad": offset / dist[:, None],
    }
    for stem, arr in arrays.items():
        np.save(folder / f"{stem}.npy", arr.astype(np.float32))
    canonical = CANONICAL_LANDMARKS_MM / MM_PER_UNIT - centre
    landmarks = centre + radius * canonical / np.linalg.norm(canonical, axis=1, keepdims=True)
    five = landmarks[list(FIVE_LANDMARK_IDS)]
    (folder / "landmarks.json").write_text(json.dumps(
        {"ibug68": None if five_only else landmarks.tolist(), "five": five.tolist()}))
    mesh = trimesh.creation.icosphere(subdivisions=1, radius=radius)
    mesh.apply_translation(centre)
    mesh.export(folder / "mesh.ply")


def write_synthetic_dataset(
    root: str | Path,
    *,
    num_identities: int = 3,
    expressions: tuple[str, ...] = ("neutral", "smile", "jaw_open"),
    test_identities: int = 0,
    surface_points: int = 512,
    space_points: int = 512,
    five_only: tuple[str, ...] = (),
    seed: int = 0,
) -> Path:
    """Write the dataset under ``root`` and return it. ``five_only`` lists scan names that
    get only the five landmarks. The last ``test_identities`` identities form the test split."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    scans, train, test = [], [], []
    identities = [f"{i + 1:03d}" for i in range(num_identities)]
    for i, identity in enumerate(identities):
        for k, expression in enumerate(expressions):
            name = f"{identity}/{k + 1}_{expression}"
            centre, radius = sphere_of(i, expression)
            _write_scan(root / name, centre, radius, rng, surface_points, space_points, name in five_only)
            meta = {"identity": identity, "expression": expression, "neutral": expression == "neutral"}
            (root / name / "meta.json").write_text(json.dumps(meta))
            scans.append({"name": name, "path": name, **meta})
            (test if i >= num_identities - test_identities else train).append(name)
    manifest = {
        "format_version": 1,
        "scans": scans,
        "identities": identities,
        "expressions": list(expressions),
        "split": {
            "test_identities": identities[num_identities - test_identities:] if test_identities else [],
            "test_expressions": [],
            "train": train,
            "test": test,
        },
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return root


def write_builtin_processed(root: str | Path, identities: int, expressions: str, **config) -> Path:
    """``imface data bfm`` scans (``identities``, comma-separated ``expressions``) in ``root/raw``,
    preprocessed into ``root/data`` (returned) with ``config``: PreprocessConfig fields."""
    root = Path(root)
    write_dataset(root / "raw", identities=identities, expressions=expressions)
    preprocess_dataset(root / "raw", root / "data", PreprocessConfig(**config), progress=False)
    return root / "data"
