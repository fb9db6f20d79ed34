"""The fits folder written by ``imface fit`` (read by ``imface correspond``), and model loading.

Contract (format_version 1), all files written atomically:

- ``DIR/fits.json``: ``{"format_version": 1, "model": "<path>", "same_identity": bool,
  "scans": [{"name", "folder", "neutral", "identity", "expression", "processed"}]}``
  (``processed``: the processed scan folder the targets came from, or null).
- ``DIR/<folder>/codes.safetensors``: ``id_code`` (d_id,), ``exp_code`` (d_exp,),
  ``neutral`` (1,) uint8, ``pose_rotation`` (3, 3) and ``pose_translation`` (3,), float32.
  The pose maps the input's points (model units, after the unit scale and the initial
  centring recorded in fit.json) into model space: ``p_model = R p + t``; identity when no
  pose was fitted.
- ``DIR/<folder>/fit.json``: name, steps, seconds, settings, final losses, metrics, frames.
- ``DIR/<folder>/loss_history.jsonl``: one JSON object of per-term losses per step.
- ``DIR/<folder>/mesh.ply``: the fitted surface in model units; ``mesh_raw.ply``: the same
  in the raw scan's frame and unit when the input was a raw scan.
- ``DIR/<folder>/target.ply``: for inputs without a processed scan (meshes, point sets), the
  input as fitted, in model space (a mesh cropped to the unit sphere, or the points inside it):
  what ``imface eval --fits DIR`` scores against without ``--data``.
- ``DIR/<folder>/preview.png`` and ``DIR/preview.png``: pictures (``imface fit --preview``).

Also here: loading the model to fit with (``imface.pretrained`` when present) and writing one
fitted scan's outputs (mesh extraction, raw-frame mesh, metrics).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from imface.errors import ImfaceError
from imface.io.atomic import atomic_path, write_json, write_text

if TYPE_CHECKING:
    from imface.fitting.inputs import FitTarget
    from imface.fitting.fitter import FitSettings, FitState

FITS_NAME, FIT_NAME, CODES_NAME, HISTORY_NAME = "fits.json", "fit.json", "codes.safetensors", "loss_history.jsonl"
MESH_NAME, MESH_RAW_NAME, TARGET_NAME = "mesh.ply", "mesh_raw.ply", "target.ply"
FORMAT_VERSION = 1


@dataclass
class LoadedModel:
    """A frozen model with what fitting needs: the code statistics of its training codes.

    code_stats: ``id_mean`` (d_id,), ``id_cov`` (d_id, d_id), ``exp_mean`` (d_exp,),
    ``exp_cov`` (d_exp, d_exp) torch tensors; experiment: the ExperimentConfig.
    """

    model: Any
    experiment: Any
    codes: dict[str, Any]
    code_stats: dict[str, torch.Tensor]
    path: Path
    extra: dict[str, Any] = field(default_factory=dict)


def code_statistics(id_table: torch.Tensor, exp_table: torch.Tensor) -> dict[str, torch.Tensor]:
    """Means and covariances of code tables: id_table (I, d_id), exp_table (E, d_exp) -> stats."""
    def stats(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        table = table.detach().float()
        mean = table.mean(dim=0)
        centred = table - mean
        cov = centred.T @ centred / max(1, len(table) - 1)
        return mean, cov

    id_mean, id_cov = stats(id_table)
    exp_mean, exp_cov = stats(exp_table)
    return {"id_mean": id_mean, "id_cov": id_cov, "exp_mean": exp_mean, "exp_cov": exp_cov}


def _load_experiment(path: Path, device: str) -> LoadedModel:
    """Minimal loader of an experiment folder (config.yaml, codes.json, latest checkpoint),
    used when ``imface.pretrained`` is not available."""
    from imface.training import checkpoint as ckpt
    from imface.config.experiment import load_config
    from imface.model import ImFace

    config_path, codes_path = path / "config.yaml", path / "codes.json"
    if not config_path.is_file() or not codes_path.is_file():
        raise ImfaceError(path, "not an experiment folder (needs config.yaml and codes.json)")
    experiment = load_config(config_path)
    try:
        codes = json.loads(codes_path.read_text())
        identities, expressions = dict(codes["identities"]), dict(codes["expressions"])
    except (ValueError, KeyError, TypeError) as err:
        raise ImfaceError(codes_path, f"unreadable code tables ({err})") from None
    weights = ckpt.latest_checkpoint(path)
    if weights is None:
        raise ImfaceError(path, "no checkpoint in checkpoints/ (train the model first)")
    model = ImFace(experiment.model, max(1, len(identities)), max(1, len(expressions)), torch.zeros(68, 3))
    ckpt.load_model_weights(model, weights)
    model.eval().requires_grad_(False)
    model.to(device)
    # Neutral scans have no expression row (per_scan: one row per non-neutral training scan).
    stats = code_statistics(model.identity_codes.weight, model.expression_codes.weight)
    return LoadedModel(model, experiment, codes, stats, path, {"weights": str(weights)})


def load_model(model_or_path: Any, device: str = "cpu") -> LoadedModel:
    """A model to fit with: an already loaded one (``imface.pretrained.Pretrained`` or
    :class:`LoadedModel`), or a path (experiment folder or exported model folder)."""
    if hasattr(model_or_path, "model") and hasattr(model_or_path, "code_stats"):
        loaded = model_or_path
        return LoadedModel(loaded.model, loaded.experiment, loaded.codes, _stats_dict(loaded.code_stats), Path(loaded.path))
    path = Path(model_or_path)
    if not path.exists():
        raise ImfaceError(path, "model not found")
    try:
        from imface.pretrained import load_pretrained
    except ImportError:
        return _load_experiment(path, device)
    pretrained = load_pretrained(path, device=device)
    return LoadedModel(pretrained.model, pretrained.experiment, pretrained.codes, _stats_dict(pretrained.code_stats),
                       Path(path))


def _stats_dict(stats: Any) -> dict[str, torch.Tensor]:
    """Code statistics as float32 tensors (``imface.pretrained.CodeStats`` or a dict of arrays)."""
    if hasattr(stats, "to_tensors"):
        stats = stats.to_tensors()
    return {k: torch.as_tensor(np.asarray(stats[k]), dtype=torch.float32)
            for k in ("id_mean", "id_cov", "exp_mean", "exp_cov")}


def write_codes(folder: Path, id_code: np.ndarray, exp_code: np.ndarray, neutral: bool,
                rotation: np.ndarray, translation: np.ndarray) -> None:
    """Write ``codes.safetensors`` (see the module docstring)."""
    import safetensors.torch

    tensors = {
        "id_code": torch.as_tensor(np.asarray(id_code, dtype=np.float32)).contiguous(),
        "exp_code": torch.as_tensor(np.asarray(exp_code, dtype=np.float32)).contiguous(),
        "neutral": torch.tensor([1 if neutral else 0], dtype=torch.uint8),
        "pose_rotation": torch.as_tensor(np.asarray(rotation, dtype=np.float32)).reshape(3, 3).contiguous(),
        "pose_translation": torch.as_tensor(np.asarray(translation, dtype=np.float32)).reshape(3).contiguous(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / CODES_NAME) as tmp:
        safetensors.torch.save_file(tensors, str(tmp), metadata={"format_version": str(FORMAT_VERSION)})


def read_codes(folder: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of ``<folder>/codes.safetensors``; ImfaceError when missing or unreadable."""
    import safetensors.torch

    path = Path(folder) / CODES_NAME
    if not path.is_file():
        raise ImfaceError(path, "codes file not found")
    try:
        tensors = safetensors.torch.load_file(str(path))
    except Exception as err:  # safetensors has its own error types for corrupt files
        raise ImfaceError(path, f"not a readable safetensors file ({' '.join(str(err).split())})") from None
    missing = sorted({"id_code", "exp_code", "neutral", "pose_rotation", "pose_translation"} - set(tensors))
    if missing:
        raise ImfaceError(path, f"missing tensors: {', '.join(missing)}")
    return tensors


def write_history(folder: Path, history: list[dict[str, float]]) -> None:
    write_text(folder / HISTORY_NAME, "".join(json.dumps(row) + "\n" for row in history))


def read_fit(folder: str | Path) -> dict[str, Any] | None:
    """``<folder>/fit.json`` as a dict, or None when it does not exist or is unreadable."""
    path = Path(folder) / FIT_NAME
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_fits_index(out_dir: Path, model_path: str, same_identity: bool, entries: list[dict[str, Any]]) -> None:
    """Write ``fits.json``, merging with the entries already listed there (by name)."""
    existing = read_fits_index(out_dir, missing_ok=True)
    merged = {e["name"]: e for e in (existing or {}).get("scans", [])}
    merged.update({e["name"]: e for e in entries})
    write_json(out_dir / FITS_NAME, {
        "format_version": FORMAT_VERSION,
        "model": str(model_path),
        "same_identity": bool(same_identity),
        "scans": [merged[name] for name in sorted(merged)],
    })


def read_fits_index(out_dir: str | Path, missing_ok: bool = False) -> dict[str, Any] | None:
    """``DIR/fits.json`` checked against the contract; ImfaceError naming the file when it is not."""
    path = Path(out_dir) / FITS_NAME
    if not path.is_file():
        if missing_ok:
            return None
        raise ImfaceError(path, "not a fits folder (no fits.json)")
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ImfaceError(path, f"unreadable ({err})") from None
    if not isinstance(index, dict) or index.get("format_version") != FORMAT_VERSION:
        raise ImfaceError(path, f"expected format_version {FORMAT_VERSION}")
    scans = index.get("scans")
    keys = {"name", "folder", "neutral", "identity", "expression", "processed"}
    if not isinstance(scans, list) or any(not isinstance(s, dict) or not keys <= set(s) for s in scans):
        raise ImfaceError(path, f"every scan entry needs {', '.join(sorted(keys))}")
    return index


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
    from imface.ops.metrics import evaluate_reconstruction

    result = evaluate_reconstruction(mesh.vertices, mesh.faces, target_vertices, target_faces, num_points=num_points,
                                     align="icp")
    values = result.to_dict()
    keep = ("chamfer_mm", "accuracy_mm", "completeness_mm", "normal_consistency", "fscore@1mm", "fscore@2.5mm",
            "fscore@5mm", "num_points", "align")
    return {k: values[k] for k in keep}


def raw_vertices(target: FitTarget, vertices: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray | None:
    """Model-space vertices in the raw scan's frame and unit, or None when there is no raw scan."""
    if target.raw_meta is not None:
        from imface.preprocess.scan import transform_to_raw

        return transform_to_raw(vertices, target.raw_meta)
    if target.kind in ("raw_mesh", "points") and (target.fit_pose or target.unit != "model"):
        input_frame = (vertices - translation) @ rotation  # inverse of p -> R p + t
        return input_frame / target.raw_to_input[0, 0]
    return None


def index_entry(target: FitTarget) -> dict:
    """The scan's entry of fits.json (see the module docstring)."""
    return {"name": target.name, "folder": target.name, "neutral": bool(target.neutral), "identity": target.identity,
            "expression": target.expression, "processed": None if target.processed is None else str(target.processed)}


def target_in_model_space(target: FitTarget, rotation: np.ndarray, translation: np.ndarray,
                          ) -> tuple[np.ndarray, np.ndarray | None]:
    """The target as fitted, in model space: its reference mesh cropped to the unit sphere (as
    the preprocessing crops), or, without a reference or with nothing of it inside the sphere,
    its surface points inside the sphere (faces None)."""
    from imface.ops.crop import crop_to_sphere

    if target.reference is not None:
        vertices, faces = target.reference
        vertices, faces = crop_to_sphere(np.asarray(vertices, dtype=np.float64) @ rotation.T + translation,
                                         np.asarray(faces), np.zeros(3), 1.0)
        if len(faces):
            return vertices, faces
    points = np.asarray(target.surface_points, dtype=np.float64) @ rotation.T + translation
    inside = np.linalg.norm(points, axis=1) <= 1.0
    return (points[inside] if inside.any() else points), None


def write_target(path: Path, vertices: np.ndarray, faces: np.ndarray | None) -> None:
    """The fitted target as a PLY: a mesh, or a point cloud when ``faces`` is None."""
    import trimesh

    from imface.io.atomic import atomic_path
    from imface.io.mesh import write_ply

    if faces is not None:
        write_ply(path, vertices, faces)
        return
    with atomic_path(path) as tmp:
        trimesh.PointCloud(np.asarray(vertices, dtype=np.float32)).export(tmp, file_type="ply", encoding="binary")


def write_scan_outputs(model, target: FitTarget, state: FitState, row: int, history: np.ndarray,
                       settings: FitSettings, run: dict, seconds: float, out_dir: Path, device,
                       metrics_points: int, preview: bool = False) -> ScanFit:
    """Write one fitted scan's folder (row ``row`` of ``state``; history (steps, len(TERMS)));
    fit.json last, so its presence (with the same settings) means the scan is done. ``preview``:
    also ``preview.png`` (:mod:`imface.fitting.preview`)."""
    from imface.fitting.fitter import TERMS, fitted_mesh
    from imface.io.mesh import write_ply

    folder = out_dir / target.name
    folder.mkdir(parents=True, exist_ok=True)
    rotation, translation = state.rotation[row].cpu().numpy(), state.translation[row].cpu().numpy()
    id_code, exp_code = state.id_codes[row].cpu().numpy(), state.exp_codes[row].cpu().numpy()
    if target.neutral:  # neutral scans have no z_exp (E is the identity map): store zeros
        exp_code = np.zeros_like(exp_code)
    write_codes(folder, id_code, exp_code, target.neutral, rotation, translation)
    write_history(folder, [{"step": s + 1, **{k: float(v) for k, v in zip(TERMS, values)}}
                           for s, values in enumerate(history)])
    mesh = fitted_mesh(model, state.id_codes[row], state.exp_codes[row], target.neutral, settings.resolution, device)
    write_ply(folder / MESH_NAME, mesh.vertices, mesh.faces)
    raw = raw_vertices(target, np.asarray(mesh.vertices), rotation.astype(np.float64), translation.astype(np.float64))
    if raw is not None:
        write_ply(folder / MESH_RAW_NAME, raw, mesh.faces)
    target_vertices, target_faces = None, None
    if metrics_points > 0 or preview or target.processed is None:  # cropping a large mesh is not free
        target_vertices, target_faces = target_in_model_space(target, rotation.astype(np.float64),
                                                              translation.astype(np.float64))
    metrics = scan_metrics(target_vertices, target_faces, mesh, metrics_points)
    if target.processed is None:
        write_target(folder / TARGET_NAME, target_vertices, target_faces)
    if preview and len(mesh.faces):
        from imface.fitting.preview import write_preview

        write_preview(folder, target.name, target_vertices, target_faces, np.asarray(mesh.vertices), np.asarray(mesh.faces))
    losses = {k: float(v) for k, v in zip(TERMS, history[-1])}
    write_json(folder / FIT_NAME, {
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
