"""Writing one fitted scan's folder (mesh extraction, raw-frame mesh, metrics, fit.json) and the
model a fit uses. The folder's layout is the fits contract, :mod:`imface.contracts.fits`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imface.config.fit import FitSettings
from imface.contracts.fits import (MESH_NAME, MESH_RAW_NAME, TARGET_NAME, fits_entry, read_codes, read_fit, write_codes,
                                   write_fit, write_history)
from imface.fitting.inputs import FitTarget
from imface.generate import face_mesh
from imface.io.mesh import write_mesh
from imface.ops.crop import crop_to_sphere
from imface.ops.metrics import evaluate_reconstruction
from imface.preprocess.scan import transform_to_raw
from imface.pretrained import Pretrained, load_pretrained
from imface.weights import resolve_model

#: The loss terms of a fit, in the order of a history row (``loss_history.jsonl``).
TERMS = ("total", "sdf", "normal", "eikonal", "embedding", "landmark", "prior")


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


def scan_metrics(target_vertices: np.ndarray, target_faces: np.ndarray | None, mesh, num_points: int) -> dict | None:
    """Chamfer / F-score / normal consistency of the fitted mesh against the target as fitted
    (:func:`target_in_model_space`). None without a target mesh (faces None), for an empty mesh,
    or with ``num_points`` 0 (no quick metrics asked)."""
    if num_points <= 0 or target_faces is None or len(mesh.faces) == 0:
        return None
    result = evaluate_reconstruction(mesh.vertices, mesh.faces, target_vertices, target_faces, num_points=num_points,
                                     align="icp")
    values = result.to_dict()
    keep = ("chamfer_mm", "accuracy_mm", "completeness_mm", "normal_consistency", "fscore@1mm", "fscore@2.5mm",
            "fscore@5mm", "num_points", "align")
    return {k: values[k] for k in keep}


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
    metrics = scan_metrics(target_vertices, target_faces, mesh, metrics_points)
    if target.processed is None:
        write_mesh(folder / TARGET_NAME, target_vertices, target_faces)
    if preview and len(mesh.faces):
        from imface.fitting.preview import write_preview  # moderngl loads only when pictures are asked for

        write_preview(folder, target.name, target_vertices, target_faces, np.asarray(mesh.vertices), np.asarray(mesh.faces))
    losses = {k: float(v) for k, v in zip(TERMS, history[-1])}
    write_fit(folder, {
        "name": target.name, "source": str(target.source), "kind": target.kind, "steps": settings.steps,
        "seconds": seconds, "losses": losses, "settings": run, "metrics": metrics,
        "frames": {"unit": target.unit, "raw_to_input": np.asarray(target.raw_to_input).tolist(),
                   "pose_fitted": target.fit_pose, "pose_rotation": rotation.tolist(),
                   "pose_translation": translation.tolist(),
                   "model_to_raw": None if target.raw_meta is None else target.raw_meta["model_to_raw"],
                   "mesh_raw": raw is not None, "alignment": target.alignment},
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
