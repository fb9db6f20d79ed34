"""A linear baseline fitted to what ``imface fit`` accepts: raw meshes and point sets in any unit.

The input goes through the same steps as an ImFace fit (:mod:`imface.fitting.inputs`):
read, refuse what is no face, find scale and pose by similarity search onto the baseline's
own mean face (front half, inside the crop sphere), crop to the unit sphere; an input refused
or failed is one line and the others go on. Then the
baseline's regularised non-rigid ICP (:func:`imface.baselines.fitting.fit_to_points`) fits
its coefficients and refines the pose. The folder has the layout of an ImFace fits folder,
so ``imface eval --fits OUT`` scores both against their own inputs, and the pictures match:

- ``OUT/fits.json``;
- ``OUT/<scan>/mesh.ply``: the fitted model mesh in model space; ``mesh_raw.ply``: the same in
  the input's frame and unit; ``target.ply``: the input as fitted (model space, cropped);
  ``fit.json``: coefficients, pose, frames (unit, scale, alignment), seconds;
  ``preview.png`` with ``preview=True``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from imface.baselines.fitting import fit_to_points
from imface.baselines.io import load_model
from imface.contracts.fits import MESH_NAME, MESH_RAW_NAME, PREVIEW_NAME, TARGET_NAME, write_fit, write_fits_index
from imface.errors import ImfaceError
from imface.fitting.align import prepare_poses
from imface.fitting.gather import InputProblem, InputReport, gather_targets, raise_problems
from imface.fitting.inputs import FitTarget
from imface.fitting.outputs import index_entry, raw_vertices, target_in_model_space
from imface.fitting.preview import stack_previews, write_preview
from imface.io.mesh import write_mesh
from imface.ops.normals import vertex_normals
from imface.ops.sdf_sampling import sample_surface


def mean_face_front(model, count: int = 20_000) -> np.ndarray:
    """``count`` points (M, 3) sampled on a baseline's mean mesh where it faces +z inside the unit
    sphere, model units (samples, not vertices: a coarse mesh's vertices are too sparse a template)."""

    vertices = model.reconstruct(model.initial_coefficients())
    front = (vertex_normals(vertices, model.faces, weighting="area")[:, 2] > 0.0) & (np.linalg.norm(vertices, axis=1) <= 1.0)
    faces = model.faces[front[model.faces].all(axis=1)]
    if len(faces) < 100:
        faces = model.faces
    points, _ = sample_surface(vertices, faces, count, np.random.default_rng(0))
    return np.asarray(points, dtype=np.float64)


def fit_baseline_inputs(model_path: str | Path, inputs: Sequence[str | Path], out_dir: str | Path, *,
                        unit: str = "auto", pose: str = "auto", neutral: str = "auto", points: int = 20000,
                        seed: int = 0, preview: bool = False, settings=None,
                        report: InputReport | None = None) -> list[dict]:
    """Fit a saved baseline to raw meshes / point sets; returns one summary dict per fitted scan
    (name, rms, seconds, unit, alignment). One bad scan does not stop the batch: an input refused
    (not a face, a bad file) or failed (an error fitting or writing it) is one line
    (:class:`InputProblem`, naming the file) and the others are fitted and written. report: an
    :class:`InputReport` collecting those lines; None raises after the batch (the one problem's
    own error, or one ImfaceError line counting them)."""

    out_dir = Path(out_dir)
    model = load_model(model_path)
    problems = InputReport() if report is None else report
    known = len(problems.problems)
    targets = gather_targets([Path(p) for p in inputs], work_dir=out_dir, unit=unit, pose=pose, neutral=neutral,
                             report=problems)
    template = mean_face_front(model)
    rng = np.random.default_rng(seed)
    rows, entries = [], []
    for target in targets:
        try:
            prepare_poses([target], lambda: template)
        except Exception as err:  # noqa: BLE001 - an ImfaceError refuses it; anything else fails it
            problems.problems.append(InputProblem.of(target.name, target.source, err,
                                                     fitting=not isinstance(err, ImfaceError)))
            continue
        try:
            rows.append(_fit_one(model, model_path, target, rng, points, out_dir, preview, settings))
        except Exception as err:  # noqa: BLE001 - one scan's fit or output failing leaves the others
            problems.problems.append(InputProblem.of(target.name, target.source, err, fitting=True))
            continue
        entries.append(index_entry(target))
    if entries:
        write_fits_index(out_dir, str(model_path), False, entries, method=model.name)
    if preview:
        stack_previews([out_dir / e["folder"] / PREVIEW_NAME for e in entries], out_dir / PREVIEW_NAME)
    if report is None:  # the other scans are written: now say what was not
        new = problems.problems[known:]
        raise_problems(new, len(targets) + sum(p.name not in {t.name for t in targets} for p in new))
    return rows


def _fit_one(model, model_path: str | Path, target: FitTarget, rng: np.random.Generator, points: int, out_dir: Path,
             preview: bool, settings) -> dict:
    """Fit one posed, cropped target and write its folder (fit.json last); its summary row."""
    rotation, translation = np.asarray(target.init_rotation), np.asarray(target.init_translation)
    cloud = np.asarray(target.surface_points, dtype=np.float64)
    pick = rng.choice(len(cloud), min(points, len(cloud)), replace=False)
    normals = None if target.surface_normals is None else np.asarray(target.surface_normals)[pick] @ rotation.T
    started = time.perf_counter()
    try:
        result = fit_to_points(model, cloud[pick] @ rotation.T + translation, normals, settings=settings)
    except ValueError as err:
        raise ImfaceError(target.source, f"fitting {model.name} failed: {err}") from None
    seconds = time.perf_counter() - started
    folder = out_dir / target.name
    write_mesh(folder / MESH_NAME, result.vertices, model.faces)
    raw = raw_vertices(target, result.vertices, rotation, translation)
    if raw is not None:
        write_mesh(folder / MESH_RAW_NAME, raw, model.faces)
    target_vertices, target_faces = target_in_model_space(target, rotation, translation)
    write_mesh(folder / TARGET_NAME, target_vertices, target_faces)
    if preview:
        write_preview(folder, target.name, target_vertices, target_faces, result.vertices, model.faces)
    write_fit(folder, {
        "name": target.name, "source": str(target.source), "kind": target.kind, "model": str(model_path),
        "model_name": model.name, "latent_size": model.latent_size, "seconds": seconds,
        "coefficients": {k: np.asarray(v).tolist() for k, v in result.coefficients.items()},
        "history": result.history,
        "frames": {"unit": target.unit, "raw_to_input": np.asarray(target.raw_to_input).tolist(),
                   "pose_fitted": target.fit_pose, "pose_rotation": rotation.tolist(),
                   "pose_translation": translation.tolist(), "fit_rotation": result.rotation.tolist(),
                   "fit_translation": result.translation.tolist(), "mesh_raw": raw is not None,
                   "alignment": target.alignment},
    })
    return {"name": target.name, "rms": result.history[-1]["rms"], "seconds": seconds, "unit": target.unit,
            "alignment": target.alignment}
