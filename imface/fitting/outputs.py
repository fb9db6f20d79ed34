"""Writing one fitted scan's folder (mesh extraction, raw-frame mesh, metrics, fit.json) and the
model a fit uses. The folder's layout is the fits contract, :mod:`imface.contracts.fits`.

Metrics: a processed scan is scored with the authors' protocol (ICP, then Chamfer and F-scores
against its cropped mesh). A raw mesh or point set is scored as fitted (no ICP: the pose is part of
the fit) within the input's footprint (:func:`footprint_metrics`), in mm, or in the input's own
units when its unit is arbitrary; ``imface eval --fits`` scores such fits the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import igl
import numpy as np
import torch

from imface.config.fit import FitSettings
from imface.contracts.fits import (MESH_NAME, MESH_RAW_NAME, TARGET_NAME, fits_entry, read_codes, read_fit, write_codes,
                                   write_fit, write_history)
from imface.errors import ImfaceError
from imface.fitting.inputs import FitTarget, read_input_geometry
from imface.frame import MM_PER_INPUT_UNIT, MM_PER_UNIT
from imface.generate import face_mesh
from imface.io.mesh import write_mesh
from imface.ops.crop import crop_to_sphere
from imface.ops.footprint import footprint_distances
from imface.ops.metrics import evaluate_reconstruction, fscore
from imface.preprocess.scan import transform_to_raw
from imface.pretrained import Pretrained, load_pretrained
from imface.weights import resolve_model

#: The loss terms of a fit, in the order of a history row (``loss_history.jsonl``).
TERMS = ("total", "sdf", "normal", "eikonal", "embedding", "landmark", "prior")
#: Target kinds scored within the input's footprint (:func:`footprint_metrics`).
RAW_KINDS = ("raw_mesh", "points")
#: F-score thresholds of the footprint metrics, mm (none when the distances are in input units).
TAUS_MM = (1.0, 2.5, 5.0)
INPUT_UNITS = "input units"


@dataclass
class LoadedModel:
    """A frozen model with what fitting needs: the code statistics of its training codes.

    code_stats: ``id_mean`` (d_id,), ``id_cov`` (d_id, d_id), ``exp_mean`` (d_exp,),
    ``exp_cov`` (d_exp, d_exp) float32 torch tensors; experiment: the ExperimentConfig.
    """

    model: Any
    experiment: Any
    codes: Any
    code_stats: dict[str, torch.Tensor]
    path: Path


def load_model(model_or_path: LoadedModel | Pretrained | str | Path | None,
               device: str | torch.device = "auto") -> LoadedModel:
    """A model to fit with: one already loaded (:class:`LoadedModel` or
    :class:`imface.pretrained.Pretrained`), a path (an experiment or exported model folder), a
    shipped model's name, or None (the default shipped model)."""
    if isinstance(model_or_path, LoadedModel):
        return model_or_path
    if isinstance(model_or_path, Pretrained):
        pretrained, path = model_or_path, Path(model_or_path.path)
    else:
        path = resolve_model(model_or_path)  # None or a shipped name: the model shipped with imface
        pretrained = load_pretrained(path, device=device)
    stats = pretrained.code_stats.to_tensors()
    stats = {k: stats[k].to(torch.float32) for k in ("id_mean", "id_cov", "exp_mean", "exp_cov")}
    return LoadedModel(pretrained.model, pretrained.experiment, pretrained.codes, stats, path)


@dataclass
class ScanFit:
    """The result of one scan: codes, pose (input frame -> model space), final weighted losses,
    metrics (None without a reference mesh), seconds of its batch's optimisation."""

    name: str
    folder: Path
    id_code: np.ndarray
    exp_code: np.ndarray
    neutral: bool
    rotation: np.ndarray
    translation: np.ndarray
    losses: dict[str, float]
    metrics: dict | None
    seconds: float
    steps: int
    skipped: bool = False


def scan_metrics(target_vertices: np.ndarray, target_faces: np.ndarray | None, mesh, num_points: int, *,
                 kind: str = "processed", frames: dict | None = None) -> dict | None:
    """A fit's metrics against its target as fitted (:func:`target_in_model_space`); None for an
    empty mesh or with ``num_points`` 0 (no quick metrics asked).

    ``kind`` a raw input's (``RAW_KINDS``): :func:`footprint_metrics`, with ``frames`` (fit.json's)
    for the unit. Otherwise the authors' protocol: Chamfer / F-score / normal consistency after ICP,
    None without a target mesh (faces None)."""
    if num_points <= 0 or len(mesh.faces) == 0:
        return None
    if kind in RAW_KINDS:
        return footprint_metrics(mesh.vertices, mesh.faces, target_vertices, target_faces, num_points, frames)
    if target_faces is None:
        return None
    result = evaluate_reconstruction(mesh.vertices, mesh.faces, target_vertices, target_faces, num_points=num_points,
                                     align="icp")
    values = result.to_dict()
    keep = ("chamfer_mm", "accuracy_mm", "completeness_mm", "normal_consistency", "fscore@1mm", "fscore@2.5mm",
            "fscore@5mm", "num_points", "align")
    return {k: values[k] for k in keep}


def distance_scale(frames: dict | None) -> tuple[float, str]:
    """How a distance in model space reads in a fit's figures: (units per model unit, their name).

    ``frames``: fit.json's (``unit``, ``raw_to_input``). The input's own frame sets the scale: a
    model-space distance d is d / s input units (s = raw_to_input's scale, refined by the fit or
    not), which is d / s * (mm per unit) mm for a named unit (mm, cm, m, model). An ``arbitrary``
    unit has no mm: the figures stay in input units. No frames: model units, 100 mm each.
    ValueError for a raw_to_input that is no positive scale."""
    frames = frames or {}
    unit, matrix = frames.get("unit"), frames.get("raw_to_input")
    if matrix is None or unit not in (*MM_PER_INPUT_UNIT, "arbitrary"):
        return MM_PER_UNIT, "mm"
    try:
        scale = float(np.asarray(matrix, dtype=np.float64).reshape(4, 4)[0, 0])
    except (TypeError, ValueError):
        scale = float("nan")
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"frames: raw_to_input {matrix!r} is not a 4x4 scale")
    if unit == "arbitrary":
        return 1.0 / scale, INPUT_UNITS
    return MM_PER_INPUT_UNIT[unit] / scale, "mm"


def footprint_metrics(fit_vertices: np.ndarray, fit_faces: np.ndarray, input_vertices: np.ndarray,
                      input_faces: np.ndarray | None, num_points: int, frames: dict | None, seed: int = 0) -> dict:
    """A raw input's fit scored as fitted, within the input's footprint (fit and input in model space).

    :func:`imface.ops.footprint.footprint_distances`: ``input_to_fit_mm`` (mean distance of every
    input sample to the fit), ``fit_to_input_mm`` (mean distance back of the fit's surface that lies
    over the input), their medians, ``footprint_share`` (that surface's share of the fit),
    ``chamfer_mm`` the mean of the two means; ``fscore@<tau>mm`` from the same distances and
    ``normal_consistency``. Distances in ``distance_unit``: "mm", or "input units" for an arbitrary
    unit (:func:`distance_scale`; F-scores are then None). Nothing over the input: the fit-to-input
    values and the Chamfer are None."""
    scored = footprint_distances(fit_vertices, fit_faces, input_vertices, input_faces, num_points=num_points, seed=seed)
    per_unit, unit = distance_scale(frames)
    into, back = scored.input_to_fit * per_unit, scored.fit_to_input * per_unit
    over = len(back) > 0
    metrics = {
        "chamfer_mm": 0.5 * (float(into.mean()) + float(back.mean())) if over else None,
        "input_to_fit_mm": float(into.mean()), "fit_to_input_mm": float(back.mean()) if over else None,
        "input_to_fit_median_mm": float(np.median(into)),
        "fit_to_input_median_mm": float(np.median(back)) if over else None,
        "footprint_share": scored.footprint_share, "distance_unit": unit,
        "normal_consistency": scored.normal_consistency,
    }
    for tau in TAUS_MM:
        metrics[f"fscore@{tau:g}mm"] = fscore(into, back, tau) if over and unit == "mm" else None
    return {**metrics, "num_points": int(num_points), "input_points": int(len(into)), "align": "none"}


def input_share(target: FitTarget, cropped_faces: np.ndarray | None, cropped_vertices: np.ndarray,
                rotation: np.ndarray, translation: np.ndarray) -> float | None:
    """The share of a raw input inside the fitted region (the unit sphere under the fitted pose),
    the part its figures score: of a mesh's area (``cropped_*``: :func:`target_in_model_space`), or
    of a point set's points (read again from its file: the fit keeps only those inside). None where
    it cannot be told."""
    if target.reference is not None:
        whole = float(igl.doublearea(np.asarray(target.reference[0], dtype=np.float64),
                                     np.asarray(target.reference[1], dtype=np.int64)).sum())
        if cropped_faces is None or not whole > 0:  # nothing of the mesh inside the sphere
            return 0.0
        return float(igl.doublearea(np.asarray(cropped_vertices, dtype=np.float64),
                                    np.asarray(cropped_faces, dtype=np.int64)).sum()) / whole
    try:
        points = read_input_geometry(target.source)[0]
    except ImfaceError:  # the file moved or changed since it was read
        return None
    scale = float(np.asarray(target.raw_to_input)[0, 0])
    return float(np.mean(np.linalg.norm((points * scale) @ rotation.T + translation, axis=1) <= 1.0))


def raw_vertices(target: FitTarget, vertices: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray | None:
    """Model-space vertices in the raw scan's frame and unit, or None when there is no raw scan."""
    if target.raw_meta is not None:
        return transform_to_raw(vertices, target.raw_meta)
    if target.kind in ("raw_mesh", "points") and (target.fit_pose or target.unit != "model"):
        input_frame = (vertices - translation) @ rotation  # inverse of p -> R p + t
        return input_frame / target.raw_to_input[0, 0]
    return None


def index_entry(target: FitTarget) -> dict:
    """The scan's entry of fits.json."""
    return fits_entry(target.name, target.name, target.neutral, target.identity, target.expression, target.processed)


def target_in_model_space(target: FitTarget, rotation: np.ndarray, translation: np.ndarray,
                          ) -> tuple[np.ndarray, np.ndarray | None]:
    """The target as fitted, in model space: its reference mesh cropped to the unit sphere (as
    the preprocessing crops), or, without a reference or with nothing of it inside the sphere,
    its surface points inside the sphere (faces None)."""
    if target.reference is not None:
        vertices, faces = target.reference
        vertices, faces = crop_to_sphere(np.asarray(vertices, dtype=np.float64) @ rotation.T + translation,
                                         np.asarray(faces), np.zeros(3), 1.0)
        if len(faces):
            return vertices, faces
    points = np.asarray(target.surface_points, dtype=np.float64) @ rotation.T + translation
    inside = np.linalg.norm(points, axis=1) <= 1.0
    return (points[inside] if inside.any() else points), None


def write_scan_outputs(model: torch.nn.Module, target: FitTarget, codes: tuple[torch.Tensor, torch.Tensor],
                       pose: tuple[np.ndarray, np.ndarray], history: np.ndarray, settings: FitSettings, run: dict,
                       seconds: float, out_dir: Path, metrics_points: int, preview: bool = False) -> ScanFit:
    """Write one fitted scan's folder: codes (z_id (d_id,), z_exp (d_exp,)), pose (rotation (3, 3),
    translation (3,): input frame -> model space), history (steps, len(TERMS)); fit.json last, so
    its presence (with the same settings) means the scan is done. ``preview``: also
    ``preview.png`` (:mod:`imface.fitting.preview`)."""
    folder = out_dir / target.name
    folder.mkdir(parents=True, exist_ok=True)
    rotation, translation = (np.asarray(value, dtype=np.float32) for value in pose)
    id_code, exp_code = codes[0].cpu().numpy(), codes[1].cpu().numpy()
    if target.neutral:  # neutral scans have no z_exp (E is the identity map): store zeros
        exp_code = np.zeros_like(exp_code)
    write_codes(folder, id_code, exp_code, target.neutral, rotation, translation)
    write_history(folder, [{"step": s + 1, **{k: float(v) for k, v in zip(TERMS, values)}}
                           for s, values in enumerate(history)])
    mesh = face_mesh(model, codes[0], codes[1], target.neutral, settings.resolution)
    write_mesh(folder / MESH_NAME, mesh.vertices, mesh.faces)
    raw = raw_vertices(target, np.asarray(mesh.vertices), rotation.astype(np.float64), translation.astype(np.float64))
    if raw is not None:
        write_mesh(folder / MESH_RAW_NAME, raw, mesh.faces)
    target_vertices, target_faces = None, None
    if metrics_points > 0 or preview or target.processed is None:  # cropping a large mesh is not free
        target_vertices, target_faces = target_in_model_space(target, rotation.astype(np.float64),
                                                              translation.astype(np.float64))
    frames = {"unit": target.unit, "raw_to_input": np.asarray(target.raw_to_input).tolist(),
              "pose_fitted": target.fit_pose, "pose_rotation": rotation.tolist(), "pose_translation": translation.tolist(),
              "model_to_raw": None if target.raw_meta is None else target.raw_meta["model_to_raw"],
              "mesh_raw": raw is not None, "alignment": target.alignment}
    metrics = scan_metrics(target_vertices, target_faces, mesh, metrics_points, kind=target.kind, frames=frames)
    if metrics is not None and target.kind in RAW_KINDS:
        metrics["input_share"] = input_share(target, target_faces, target_vertices, rotation.astype(np.float64),
                                             translation.astype(np.float64))
    if target.processed is None:
        write_mesh(folder / TARGET_NAME, target_vertices, target_faces)
    if preview and len(mesh.faces):
        from imface.fitting.preview import write_preview  # moderngl loads only when pictures are asked for

        write_preview(folder, target.name, target_vertices, target_faces, np.asarray(mesh.vertices), np.asarray(mesh.faces),
                      metrics)
    losses = {k: float(v) for k, v in zip(TERMS, history[-1])}
    write_fit(folder, {
        "name": target.name, "source": str(target.source), "kind": target.kind, "steps": settings.steps,
        "seconds": seconds, "losses": losses, "settings": run, "metrics": metrics, "frames": frames,
    })
    return ScanFit(target.name, folder, id_code, exp_code, bool(target.neutral), rotation, translation, losses,
                   metrics, seconds, settings.steps)


def read_scan_fit(out_dir: Path, target: FitTarget) -> ScanFit:
    """The ScanFit of a scan fitted by an earlier run (``skipped`` set)."""
    folder = out_dir / target.name
    info = read_fit(folder) or {}
    codes = read_codes(folder)
    return ScanFit(target.name, folder, codes["id_code"].numpy(), codes["exp_code"].numpy(), bool(codes["neutral"][0]),
                   codes["pose_rotation"].numpy(), codes["pose_translation"].numpy(), info.get("losses", {}),
                   info.get("metrics"), float(info.get("seconds", 0.0)), int(info.get("steps", 0)), skipped=True)
