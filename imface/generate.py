"""Meshes from codes: extraction with colouring, random samples, interpolation, expression transfer.

A *face* is a (z_id, z_exp, neutral) triple (:class:`Face`); neutral faces bypass ExpNet
(neutral suppression), so their expression code is unused. Meshes come out of marching cubes
(:func:`imface.ops.marching_cubes.extract_mesh`) in model units (1 = 100 mm).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import trimesh

from imface.contracts.fits import fits_face, read_fitted_scans
from imface.errors import ImfaceError
from imface.frame import MM_PER_UNIT
from imface.io.atomic import save_npy as save_npy_atomic
from imface.io.atomic import write_json
from imface.io.mesh import WRITE_FORMATS, write_mesh
from imface.model import ImFace
from imface.ops.colors import error_colors
from imface.ops.contact_sheet import contact_sheet, save_png
from imface.ops.marching_cubes import EmptySurfaceError, extract_mesh
from imface.ops.metrics import surface_distance_mm
from imface.ops.render import render_mesh
from imface.pretrained import CodeStats, Pretrained

#: Template-space colouring: p'' mapped linearly from this box (model units) to [0, 1]^3 and
#: clipped; it holds the template face (nose tip at z = 0.4, crop radius 1), so the colours of
#: one point of the face are the same on every scan.
TEMPLATE_BOX_LOW = np.array([-0.8, -0.9, -0.5])
TEMPLATE_BOX_HIGH = np.array([0.8, 0.9, 0.5])
COLOR_MODES = ("none", "template", "blend", "error")
UNITS = ("model", "mm")


@dataclass(frozen=True)
class Face:
    """One face to generate: name (used for file names and labels), id_code (d_id,),
    exp_code (d_exp,) float32 tensors on the model's device, neutral flag."""

    name: str
    id_code: torch.Tensor
    exp_code: torch.Tensor
    neutral: bool


def check_face(pretrained: Pretrained, face: Face) -> None:
    """Raise ImfaceError unless the face's codes have the model's code widths."""
    config = pretrained.experiment.model
    got = (face.id_code.reshape(-1).shape[0], face.exp_code.reshape(-1).shape[0])
    if got != (config.id_code_dim, config.exp_code_dim):
        raise ImfaceError(pretrained.path, f"{face.name}: codes are {got[0]}/{got[1]} wide but this model's are "
                          f"{config.id_code_dim}/{config.exp_code_dim} (fitted with another model?)")


def face_sdf(pretrained: Pretrained, face: Face):
    """The SDF of one face as (N, 3) points -> (N,) values (model units), on the model's device."""
    check_face(pretrained, face)
    return pretrained.model.face_sdf(face.id_code, face.exp_code, face.neutral)


def evaluate_at(pretrained: Pretrained, points: np.ndarray, face: Face, chunk: int = 16384) -> dict[str, np.ndarray]:
    """Model intermediates at given points, chunked and without autograd.

    points: (N, 3) model units. Returns float32 arrays: ``sdf`` (N,), ``template_points`` p''
    (N, 3), ``template_weights``, ``identity_weights`` and (not for the joint model)
    ``expression_weights`` (N, k) blend weights.
    """
    check_face(pretrained, face)
    device = pretrained.device
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    id_codes, exp_codes = face.id_code.to(device)[None], face.exp_code.to(device)[None]
    neutral = torch.tensor([face.neutral], device=device)
    parts: dict[str, list[np.ndarray]] = {"sdf": [], "template_points": [], "template_weights": [], "identity_weights": []}
    with torch.no_grad():
        for start in range(0, max(len(points), 1), chunk):
            batch = torch.from_numpy(points[start:start + chunk]).to(device)[None]
            out = pretrained.model.evaluate(batch, id_codes, exp_codes, neutral)
            for key in parts:
                parts[key].append(getattr(out, key)[0].float().cpu().numpy())
            if out.expression_weights is not None:
                parts.setdefault("expression_weights", []).append(out.expression_weights[0].float().cpu().numpy())
    return {key: np.concatenate(values) for key, values in parts.items()}


def face_mesh(model: ImFace, id_code: torch.Tensor, exp_code: torch.Tensor, neutral: bool, resolution: int = 128,
              **extract_options) -> trimesh.Trimesh:
    """Marching-cubes mesh (model units) of one face of ``model`` (id_code (d_id,), exp_code
    (d_exp,), neutral), coarse to fine on the model's device; ``extract_options`` go to
    :func:`imface.ops.marching_cubes.extract_mesh`. Raises EmptySurfaceError without a surface."""
    device = model.template_landmarks.device
    return extract_mesh(model.face_sdf(id_code, exp_code, neutral), resolution, device=device, **extract_options)


def extract_scan_mesh(
    pretrained: Pretrained,
    id_code: torch.Tensor,
    exp_code: torch.Tensor,
    neutral: bool,
    resolution: int = 256,
    *,
    coarse_to_fine: bool = True,
    chunk_size: int | None = None,
    progress: bool = False,
) -> trimesh.Trimesh:
    """Marching-cubes mesh (model units) of the face (id_code (d_id,), exp_code (d_exp,), neutral).

    chunk_size: points per network call (default 4096 on CPU, 65536 on CUDA).
    Raises ImfaceError when the SDF has no surface inside the unit sphere.
    """
    device = pretrained.device
    face = Face("face", torch.as_tensor(id_code, dtype=torch.float32, device=device),
                torch.as_tensor(exp_code, dtype=torch.float32, device=device), bool(neutral))
    check_face(pretrained, face)
    chunk = chunk_size or (65536 if device.type == "cuda" else 4096)
    try:
        return face_mesh(pretrained.model, face.id_code, face.exp_code, face.neutral, resolution,
                         coarse_to_fine=coarse_to_fine, chunk_size=chunk, progress=progress)
    except EmptySurfaceError as err:
        raise ImfaceError(pretrained.path, f"the model gives no surface for this code ({err})") from None


def template_colors(template_points: np.ndarray) -> np.ndarray:
    """Template-space coordinates p'' (N, 3) model units -> (N, 3) RGB in [0, 1] (fixed box)."""
    unit = (np.asarray(template_points, dtype=np.float64) - TEMPLATE_BOX_LOW) / (TEMPLATE_BOX_HIGH - TEMPLATE_BOX_LOW)
    return np.clip(unit, 0.0, 1.0)


def blend_colors(weights: np.ndarray) -> np.ndarray:
    """Blend weights (N, k) (rows sum to 1) -> (N, 3) RGB: k distinct colours mixed by weight."""
    # here, not at the top: matplotlib is heavy and only colours need it
    import matplotlib

    weights = np.asarray(weights, dtype=np.float64)
    palette = np.asarray(matplotlib.colormaps["tab10"].colors, dtype=np.float64)
    palette = palette[np.arange(weights.shape[1]) % len(palette)]
    return np.clip(weights @ palette, 0.0, 1.0)


def mesh_colors(
    pretrained: Pretrained,
    vertices: np.ndarray,
    face: Face,
    mode: str,
    *,
    target: tuple[np.ndarray, np.ndarray] | None = None,
    blend_field: str = "template",
    error_max_mm: float = 5.0,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Vertex colours (V, 3) in [0, 1] (None for mode "none") and, for mode "error", the
    errors (V,) mm against ``target`` = (vertices (T, 3), faces (F, 3)) in model units."""
    if mode not in COLOR_MODES:
        raise ImfaceError(None, f"--color must be one of {', '.join(COLOR_MODES)}, got {mode!r}")
    if mode == "none":
        return None, None
    if mode == "error":
        if target is None:
            raise ImfaceError(None, "--color error needs --target MESH")
        errors = surface_distance_mm(vertices, *target)
        return error_colors(errors, error_max_mm), errors
    values = evaluate_at(pretrained, vertices, face)
    if mode == "template":
        return template_colors(values["template_points"]), None
    return blend_colors(values["identity_weights" if blend_field == "identity" else "template_weights"]), None


def safe_name(name: str) -> str:
    """A scan/face name as one file name: path separators and odd characters become '-'."""
    cleaned = re.sub(r"[^A-Za-z0-9._+=-]+", "-", name).strip("-.")
    return cleaned or "face"


# ----- faces from names, fits, statistics -------------------------------------------------------

def resolve_face(pretrained: Pretrained, spec: str) -> Face:
    """A face named on the command line.

    ``IDENTITY`` (neutral face of a training identity), ``IDENTITY+EXPRESSION`` (an expression
    key of codes.json, or ``neutral``), or ``FITS_DIR:SCAN`` (a fitted scan's codes).
    """
    fitted_face = fits_face(spec)
    if fitted_face is not None:
        fitted = read_fitted_scans(fitted_face[0], [fitted_face[1]])[0]
        return Face(spec, fitted.id_code.to(pretrained.device), fitted.exp_code.to(pretrained.device), fitted.neutral)
    identity, plus, expression = spec.partition("+")
    id_code = pretrained.identity_code(identity)
    exp_code, neutral = pretrained.expression_code(expression if plus else "neutral")
    return Face(spec, id_code, exp_code, neutral)


def sample_faces(
    stats: CodeStats, count: int, *, seed: int = 0, scale: float = 1.0, neutral: bool = False,
    device: torch.device | str = "cpu",
) -> list[Face]:
    """``count`` random faces drawn from the code statistics: z = mean + scale * L eps with
    L L^T = cov (eigen-decomposition, so rank-deficient covariances work), eps ~ N(0, I).

    Deterministic per seed. neutral: every face neutral (no expression code drawn from the
    statistics; also the case when the training set had no expressions).
    """
    if count < 1:
        raise ImfaceError(None, f"--count must be >= 1, got {count}")
    rng = np.random.default_rng(seed)

    def draw(mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
        values, vectors = np.linalg.eigh((cov + cov.T) / 2.0)
        root = vectors * np.sqrt(np.clip(values, 0.0, None))
        return mean + scale * rng.standard_normal((count, len(mean))) @ root.T

    ids = draw(stats.id_mean, stats.id_cov)
    all_neutral = neutral or stats.exp_count == 0
    exps = np.zeros((count, len(stats.exp_mean))) if all_neutral else draw(stats.exp_mean, stats.exp_cov)
    return [Face(f"sample-{seed}-{i:03d}", torch.tensor(ids[i], dtype=torch.float32, device=device),
                 torch.tensor(exps[i], dtype=torch.float32, device=device), all_neutral) for i in range(count)]


def interpolate_faces(start: Face, end: Face, steps: int) -> list[Face]:
    """``steps`` faces linear in code space from ``start`` to ``end`` (both included, exactly).

    A neutral end point stands for the zero expression code in between (neutral suppression
    holds only at the end point itself), so a neutral-to-expression sequence is linear in
    z_exp from 0.
    """
    if steps < 2:
        raise ImfaceError(None, f"--steps must be >= 2 (the two end points), got {steps}")
    zero = torch.zeros_like(start.exp_code)
    a_exp = zero if start.neutral else start.exp_code
    b_exp = zero if end.neutral else end.exp_code.to(start.exp_code.device)
    b_id = end.id_code.to(start.id_code.device)
    faces = []
    for i, t in enumerate(np.linspace(0.0, 1.0, steps)):
        if i == 0 or i == steps - 1:
            face = start if i == 0 else end
            faces.append(Face(f"{i:03d}-t{t:.3f}", face.id_code, face.exp_code, face.neutral))
            continue
        faces.append(Face(f"{i:03d}-t{t:.3f}", torch.lerp(start.id_code, b_id, float(t)),
                          torch.lerp(a_exp, b_exp, float(t)), start.neutral and end.neutral))
    return faces


def transfer_face(identity_from: Face, expression_from: Face) -> Face:
    """z_id of one face with z_exp (and neutral flag) of another."""
    return Face(f"{identity_from.name}~{expression_from.name}", identity_from.id_code,
                expression_from.exp_code.to(identity_from.id_code.device), expression_from.neutral)


def face_landmarks(pretrained: Pretrained, face: Face) -> tuple[np.ndarray, np.ndarray | None]:
    """Landmark-Net predictions: observed l = eta(z_exp (+) z_id) (l' on neutral faces) and
    canonical l' = eta'(z_id), each (k, 3) model units (l' None for the joint ablation)."""
    device = pretrained.device
    with torch.no_grad():
        observed, canonical = pretrained.model.predict_landmarks(
            face.id_code.to(device)[None], face.exp_code.to(device)[None], torch.tensor([face.neutral], device=device))
    return observed[0].cpu().numpy(), None if canonical is None else canonical[0].cpu().numpy()


# ----- writing a set of faces ---------------------------------------------------------------------

def generate_meshes(
    pretrained: Pretrained,
    faces: Sequence[Face],
    out_dir: str | Path,
    *,
    resolution: int = 128,
    units: str = "model",
    fmt: str = "ply",
    color: str = "none",
    targets: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    blend_field: str = "template",
    error_max_mm: float = 5.0,
    coarse_to_fine: bool = True,
    title: str | None = None,
    sheet: bool = True,
    sheet_columns: int = 8,
    progress: bool = False,
) -> dict:
    """Extract and write each face's mesh (``out_dir/<name>.<fmt>``, in ``units``: model or
    mm), coloured by ``color`` (see :func:`mesh_colors`; ``targets`` maps face names to target
    meshes (vertices, faces) in model units for "error", whose per-vertex errors also go to
    ``<name>.error_mm.npy``), a contact sheet ``out_dir/sheet.png`` (front and side views) and
    ``out_dir/faces.json`` (names, codes, counts, error stats). Returns that summary."""
    if units not in UNITS or fmt not in WRITE_FORMATS:
        raise ImfaceError(None, f"--units must be one of {', '.join(UNITS)} and --format one of {', '.join(WRITE_FORMATS)}")
    if color not in COLOR_MODES:
        raise ImfaceError(None, f"--color must be one of {', '.join(COLOR_MODES)}, got {color!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records, pictures = [], []
    scale = MM_PER_UNIT if units == "mm" else 1.0
    for face in faces:
        check_face(pretrained, face)
        mesh = extract_scan_mesh(pretrained, face.id_code, face.exp_code, face.neutral, resolution,
                                 coarse_to_fine=coarse_to_fine, progress=progress)
        target = (targets or {}).get(face.name)
        colors, errors = mesh_colors(pretrained, mesh.vertices, face, color, target=target, blend_field=blend_field,
                                     error_max_mm=error_max_mm)
        stem = safe_name(face.name)
        path = write_mesh(out_dir / f"{stem}.{fmt}", mesh.vertices * scale, mesh.faces, colors)
        pictures.append((face.name, mesh.vertices, mesh.faces, colors))
        record = {"name": face.name, "file": path.name, "neutral": face.neutral, "vertices": len(mesh.vertices),
                  "faces": len(mesh.faces), "points_evaluated": mesh.metadata.get("points_evaluated"),
                  "id_code": face.id_code.cpu().tolist(), "exp_code": face.exp_code.cpu().tolist()}
        if errors is not None:
            save_npy_atomic(out_dir / f"{stem}.error_mm.npy", errors.astype(np.float32))
            record["error_mm"] = {"mean": float(errors.mean()), "median": float(np.median(errors)),
                                  "max": float(errors.max())}
        records.append(record)
    summary = {"model": str(pretrained.path), "units": units, "resolution": resolution, "color": color, "faces": records}
    write_json(out_dir / "faces.json", summary)
    if sheet:
        write_mesh_sheet(out_dir / "sheet.png", pictures, title=title, columns=sheet_columns)
    return summary


def write_mesh_sheet(
    path: str | Path,
    meshes: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]],
    *,
    title: str | None = None,
    columns: int = 8,
    views: Sequence[str] = ("front", "side"),
    size: int = 256,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
) -> None:
    """A PNG contact sheet of (label, vertices, faces, colours or None) meshes: each mesh's
    views stacked in one cell, ``columns`` meshes per row. Without explicit labels, a single
    row is labelled by mesh and several rows by their first and last mesh."""

    cells = [np.concatenate([render_mesh(vertices, faces, vertex_colors=colors, view=v, size=(size, size))
                             for v in views], axis=0) for _, vertices, faces, colors in meshes]
    labels = [label for label, *_ in meshes]
    rows = [cells[i:i + columns] for i in range(0, len(cells), columns)]
    if row_labels is None and col_labels is None:
        if len(rows) == 1:
            col_labels = labels
        else:
            row_labels = [f"{labels[i]}\n.. {labels[min(i + columns, len(labels)) - 1]}" for i in range(0, len(cells), columns)]
    save_png(path, contact_sheet(rows, row_labels, col_labels, title))
