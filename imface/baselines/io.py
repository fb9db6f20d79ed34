"""Baseline models on disk, building them from a processed dataset, and fitting one to a test scan.

A saved model is a folder: ``arrays.safetensors`` (every array, read without pickle) and
``model.json`` (``{"format_version", "kind", "name", "latent_size", "info"}``). Both are
written atomically, ``model.json`` last, so a folder with ``model.json`` is complete.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from imface.baselines.bilinear import BilinearModel, build_bilinear
from imface.baselines.decimate import decimate_topology
from imface.baselines.fitting import BaselineFitSettings, FitResult, fit_to_points
from imface.baselines.flame_like import FlameLikeModel, build_flame_like
from imface.baselines.pca import PCAModel, build_pca
from imface.contracts.dataset import MESH_NAME as SCAN_MESH_NAME
from imface.contracts.dataset import Manifest, read_manifest
from imface.contracts.fits import MESH_CROPPED_NAME, MESH_NAME, fits_entry, write_fit, write_fits_index
from imface.errors import ImfaceError
from imface.io.atomic import atomic_path, write_json
from imface.io.mesh import read_mesh, write_mesh
from imface.ops.ground_truth_crop import crop_like_ground_truth
from imface.ops.sdf_sampling import sample_surface

MODEL_FORMAT_VERSION = 1
ARRAYS_NAME = "arrays.safetensors"
MODEL_JSON = "model.json"
KINDS = {"pca": PCAModel, "bilinear": BilinearModel, "flame_like": FlameLikeModel}
BaselineModel = PCAModel | BilinearModel | FlameLikeModel


def save_model(model: BaselineModel, folder: str | os.PathLike) -> Path:
    """Write ``model`` into ``folder`` (created); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_JSON).unlink(missing_ok=True)  # incomplete until model.json is rewritten
    arrays = {key: np.ascontiguousarray(value) for key, value in model.arrays().items()}
    with atomic_path(folder / ARRAYS_NAME) as tmp:
        save_file(arrays, str(tmp))
    write_json(folder / MODEL_JSON, {"format_version": MODEL_FORMAT_VERSION, "kind": model.kind, "name": model.name,
                                     "latent_size": model.latent_size, "info": model.info})
    return folder


def load_model(folder: str | os.PathLike) -> BaselineModel:
    """Read a model written by :func:`save_model`; :class:`ImfaceError` for a missing or malformed folder."""
    folder = Path(folder)
    meta_path = folder / MODEL_JSON
    if not meta_path.is_file() or not (folder / ARRAYS_NAME).is_file():
        raise ImfaceError(folder, f"not a baseline model folder (needs {MODEL_JSON} and {ARRAYS_NAME})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        kind, name, info = meta["kind"], meta["name"], meta.get("info") or {}
    except (ValueError, KeyError, TypeError) as err:
        raise ImfaceError(meta_path, f"unreadable model description ({err})") from None
    if meta.get("format_version") != MODEL_FORMAT_VERSION:
        raise ImfaceError(meta_path, f"unsupported format_version {meta.get('format_version')!r}")
    if kind not in KINDS:
        raise ImfaceError(meta_path, f"unknown model kind {kind!r} (known: {', '.join(KINDS)})")
    try:
        arrays = load_file(str(folder / ARRAYS_NAME))
        return KINDS[kind].from_arrays(arrays, name, info)
    except (KeyError, OSError, ValueError, SafetensorError) as err:
        raise ImfaceError(folder / ARRAYS_NAME, f"cannot read model arrays ({type(err).__name__}: {err})") from None


@dataclass
class TrainingMeshes:
    """Registered training meshes (S, V, 3) model units, their faces and labels."""
    vertices: np.ndarray
    faces: np.ndarray
    names: list[str]
    identities: list[str]
    expressions: list[str]
    neutral: list[bool]


def load_training_meshes(data_dir: str | os.PathLike, split: str = "train", *,
                         exclude_identities: tuple[str, ...] = ()) -> TrainingMeshes:
    """Every ``registered.ply`` of one split of a processed dataset (one fixed topology required),
    leaving out the scans of ``exclude_identities`` (e.g. a validation split)."""

    manifest = read_manifest(data_dir)
    names = [n for n in getattr(manifest, split) if manifest.scan(n).identity not in set(exclude_identities)]
    if not names:
        raise ImfaceError(data_dir, f"the '{split}' split is empty" + (" without the excluded identities"
                                                                      if exclude_identities else ""))
    vertices, faces = [], None
    for name in names:  # file reading: one read per scan is unavoidable
        path = manifest.folder(name) / "registered.ply"
        if not path.is_file():
            raise ImfaceError(path, "missing: the baselines need registered meshes in one fixed topology")
        mesh = read_mesh(path)
        if faces is None:
            faces = mesh.faces
        elif mesh.faces.shape != faces.shape or not np.array_equal(mesh.faces, faces):
            raise ImfaceError(path, "registered mesh topology differs from the other scans'")
        vertices.append(mesh.vertices.astype(np.float32))
    scans = [manifest.scan(name) for name in names]
    return TrainingMeshes(np.stack(vertices), faces, names, [s.identity for s in scans],
                          [s.expression for s in scans], [s.neutral for s in scans])


@dataclass
class BuiltBaselines:
    """Paths of the models written (name -> folder) and the ones skipped or shrunk, with why."""
    models: dict[str, Path] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def build_baselines(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    pca_sizes: tuple[int, ...] = (32, 64, 128, 256),
    bilinear: tuple[int, int] | None = (32, 16),
    flame: tuple[int, int] | None = (32, 32),
    paper_resolution: int = 0,
    exclude_identities: tuple[str, ...] = (),
) -> BuiltBaselines:
    """Build the PCA, bilinear and FLAME-like baselines from a processed dataset's training split.

    PCA sizes above S - 1 (S training scans) are skipped; bilinear and FLAME-like ranks
    above what the data holds are lowered to it; each skip or change is named in
    ``notes``. ``None`` leaves a model out. ``paper_resolution`` > 0 adds the FLAME-like
    model on a topology decimated to about that many vertices (``flame_like_<n>k``, the
    paper's conditions: FLAME has 5,023 vertices). ``exclude_identities``: training
    identities left out (a validation split). Models go to ``out_dir/<name>/``; an index
    ``out_dir/baselines.json`` lists them, each with its vertex count and condition
    (``oracle``: the full-resolution registered topology the test scans were made in;
    ``paper``: decimated).
    """
    out_dir = Path(out_dir)
    data = load_training_meshes(data_dir, exclude_identities=tuple(exclude_identities))
    result = BuiltBaselines()
    meshes, count = data.vertices, len(data.vertices)
    for size in pca_sizes:
        if size > count - 1:
            result.notes[f"pca{size}"] = f"skipped: {count} training scans allow at most {count - 1} components"
            continue
        result.models[f"pca{size}"] = save_model(build_pca(meshes, size, data.faces), out_dir / f"pca{size}")
    if bilinear is not None:
        identities, expressions = len(set(data.identities)), len(set(data.expressions))
        ranks = (min(bilinear[0], identities), min(bilinear[1], expressions))
        if ranks != tuple(bilinear):
            result.notes["bilinear"] = f"ranks lowered from {tuple(bilinear)} to {ranks} ({identities} identities, {expressions} expressions)"
        model = build_bilinear(meshes, data.identities, data.expressions, data.faces, *ranks)
        result.models["bilinear"] = save_model(model, out_dir / "bilinear")
    if flame is not None:
        with_neutral = len({i for i, n in zip(data.identities, data.neutral) if n})
        expressive = sum(1 for n in data.neutral if not n)
        ranks = (min(flame[0], with_neutral - 1), min(flame[1], expressive))
        if ranks != tuple(flame):
            result.notes["flame_like"] = (f"ranks lowered from {tuple(flame)} to {ranks} ({with_neutral} identities "
                                          f"with a neutral scan, {expressive} expression scans)")
        model = build_flame_like(meshes, data.identities, data.neutral, data.faces, *ranks)
        result.models["flame_like"] = save_model(model, out_dir / "flame_like")
        if paper_resolution and paper_resolution < meshes.shape[1]:
            vertex_ids, coarse_faces = decimate_topology(meshes.mean(axis=0), data.faces, paper_resolution)
            name = f"flame_like_{round(paper_resolution / 1000)}k" if paper_resolution >= 1000 else f"flame_like_{paper_resolution}"
            model = build_flame_like(meshes[:, vertex_ids], data.identities, data.neutral, coarse_faces, *ranks, name=name)
            model.info.update(decimated_from=int(meshes.shape[1]))
            result.models[name] = save_model(model, out_dir / name)
        elif paper_resolution:
            result.notes["flame_like_decimated"] = f"skipped: the topology has only {meshes.shape[1]} vertices"
    full_vertices = meshes.shape[1]

    def entry(path: Path) -> dict:
        model = load_model(path)
        return {"path": path.name, "latent_size": model.latent_size, "vertices": model.vertex_count,
                "condition": "oracle" if model.vertex_count == full_vertices else "paper"}

    write_json(out_dir / "baselines.json", {
        "data": str(Path(data_dir).resolve()), "training_scans": count,
        "excluded_identities": sorted(exclude_identities),
        "models": {name: entry(path) for name, path in result.models.items()},
        "notes": result.notes,
    })
    return result


def fit_baseline(
    model_path: str | os.PathLike, scan_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
    settings: BaselineFitSettings | None = None, points: int = 20000, seed: int = 0,
) -> FitResult:
    """Fit a saved baseline to a processed scan's ``mesh.ply`` (never its registered mesh).

    Writes, atomically, into ``out_dir`` (one scan folder of a fits folder,
    :mod:`imface.contracts.fits`): ``mesh.ply`` (the whole fitted model mesh, model units, the
    scan's frame), ``mesh_cropped.ply`` (the same cropped like the ground truth,
    :func:`imface.ops.ground_truth_crop.crop_like_ground_truth`) and ``fit.json`` (coefficients,
    pose, history, seconds). :func:`write_baseline_index` lists the scans in ``fits.json``.
    """

    model = load_model(model_path)
    mesh_path = Path(scan_dir) / SCAN_MESH_NAME
    mesh = read_mesh(mesh_path)
    target, normals = sample_surface(mesh.vertices, mesh.faces, points, np.random.default_rng(seed))
    try:
        result = fit_to_points(model, target, normals, settings=settings)
    except ValueError as err:
        raise ImfaceError(mesh_path, f"fitting {model.name} failed: {err}") from None
    out_dir = Path(out_dir)
    started = time.perf_counter()
    write_mesh(out_dir / MESH_NAME, result.vertices, model.faces)
    try:
        cropped_vertices, cropped_faces = crop_like_ground_truth(result.vertices, model.faces)
        write_mesh(out_dir / MESH_CROPPED_NAME, cropped_vertices, cropped_faces)
    except ValueError as err:
        raise ImfaceError(mesh_path, f"fitted {model.name} mesh cannot be cropped: {err}") from None
    write_fit(out_dir, {
        "model": str(Path(model_path).resolve()), "model_name": model.name, "scan": str(Path(scan_dir).resolve()),
        "latent_size": model.latent_size,
        "coefficients": {key: np.asarray(value).tolist() for key, value in result.coefficients.items()},
        "rotation": result.rotation.tolist(), "translation": result.translation.tolist(),
        "history": result.history, "fit_seconds": result.seconds,
        "write_seconds": time.perf_counter() - started, "target_points": points, "seed": seed,
    })
    return result


def write_baseline_index(fits_dir: str | os.PathLike, model_path: str | os.PathLike, manifest: Manifest,
                         names: list[str]) -> None:
    """List baseline fits of processed scans (``fits_dir/<scan>/``) in ``fits.json``, so every verb
    reads them as it reads an ImFace fits folder."""
    model = load_model(model_path)
    entries = [fits_entry(name, name, scan.neutral, scan.identity, scan.expression, manifest.folder(scan))
               for name in names for scan in [manifest.scan(name)]]
    write_fits_index(Path(fits_dir), str(Path(model_path).resolve()), False, entries, method=model.name)
