"""``imface fit``: fit a trained model to new scans and write a fits folder (paper Eq. 17).

The inputs are read and aligned by :mod:`imface.fitting.inputs`, fitted in batches by
:func:`imface.fitting.fitter.optimise`, and each scan's folder is written by
:mod:`imface.fitting.outputs`. Re-running skips scans already fitted with the same settings.
"""
from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np
import torch

from imface.config.fit import (DEFAULT_FIT_CODE_PRIOR, DEFAULT_FIT_EXP_CODE_PRIOR, DEFAULT_FIT_LR, DEFAULT_FIT_ROBUST_MM,
                               DEFAULT_FIT_SPACE_POINTS, DEFAULT_SCALE_SWEEP, FitSettings)
from imface.contracts.fits import CODES_NAME, PREVIEW_NAME, read_fit, read_fits_index, write_fits_index
from imface.devices import resolve_device
from imface.errors import ImfaceError
from imface.fitting import code_space
from imface.fitting.align import prepare_poses, rescale_target
from imface.fitting.fitter import optimise
from imface.fitting.inputs import FitTarget, gather_targets
from imface.fitting.outputs import ScanFit, index_entry, load_model, read_scan_fit, write_scan_outputs
from imface.fitting.preview import stack_previews
from imface.weights import model_label
from imface.fitting.scale_sweep import sweep_scales
from imface.frame import MM_PER_UNIT
from imface.generate import face_mesh


def _run_settings(settings: FitSettings, model_path: Path, same_identity: bool, options: dict) -> dict:
    return {**settings.to_dict(), "model": model_label(model_path), "same_identity": same_identity, **options}


def fit(model_or_path, inputs, out_dir, *, same_identity: bool = False, steps: int = 200, points: int = 2048,
        space_points: int = DEFAULT_FIT_SPACE_POINTS,
        lr: float = DEFAULT_FIT_LR, landmarks: bool = True, resolution: int = 128, split: str = "test",
        scans: list[str] | None = None, neutral: str = "auto", unit: str = "auto", pose: str = "auto",
        device: str = "auto", batch_size: int = 16, seed: int = 0, metrics_points: int = 50_000,
        preview: bool = False, progress: bool = False, robust_distance: float | None = None,
        code_prior: float = DEFAULT_FIT_CODE_PRIOR, exp_code_prior: float | None = DEFAULT_FIT_EXP_CODE_PRIOR,
        scale_lr: float = 0.0,
        code_basis: str = "diagonal",
        scale_sweep: int = DEFAULT_SCALE_SWEEP) -> list[ScanFit]:
    """Fit codes (and poses) to new scans and write the fits folder ``out_dir`` (see
    the fits contract, :mod:`imface.contracts.fits`). Re-running skips scans already fitted with the same settings.

    model_or_path: an experiment / exported model folder or a loaded model; inputs: a path or
    paths (see :mod:`imface.fitting.inputs`); same_identity: one z_id per identity;
    steps / points / space_points / lr: the schedule (points: surface samples per scan and step;
    space_points: free-space samples, or jittered surface points for surface-only input);
    neutral: auto | yes | no for scans whose neutrality is unknown; unit: auto | model | mm |
    cm | m for landmark-free input; pose: auto | fit | none; batch_size: scans per batch;
    metrics_points: samples for the quick metrics in each fit.json (0: none, e.g. when
    :func:`imface.eval.evaluate.evaluate_folder` scores the fits afterwards); preview: write each
    scan's ``preview.png`` (target | fit | error, front and side) and the sheet ``out_dir/preview.png``;
    robust_distance, code_prior, exp_code_prior, scale_lr, code_basis, scale_sweep: see :class:`FitSettings`;
    robust_distance None:
    ``DEFAULT_FIT_ROBUST_MM`` when any input is a raw mesh or point set, else 0 (processed scans).
    """
    _check_options(steps=steps, points=points, space_points=space_points, resolution=resolution,
                   batch_size=batch_size, lr=lr, scale_lr=scale_lr, scale_sweep=scale_sweep,
                   robust_distance=robust_distance, code_basis=code_basis)
    device = resolve_device(device)
    out_dir = Path(out_dir)
    loaded = load_model(model_or_path, device)
    model = loaded.model.to(device).eval().requires_grad_(False)
    targets = gather_targets(inputs, work_dir=out_dir, split=split, scans=scans, unit=unit, pose=pose, neutral=neutral)
    if robust_distance is None:  # clutter and outliers come with raw input, not with processed scans
        raw = any(t.kind != "processed" for t in targets)
        robust_distance = DEFAULT_FIT_ROBUST_MM / MM_PER_UNIT if raw else 0.0
    settings = FitSettings(steps=steps, lr=lr, surface_points=points, space_points=space_points, landmarks=landmarks,
                           resolution=resolution, seed=seed, robust_distance=robust_distance, code_prior=code_prior,
                           exp_code_prior=exp_code_prior,
                           scale_lr=scale_lr, code_basis=code_basis, scale_sweep=scale_sweep)
    run = _run_settings(settings, loaded.path, same_identity, {"neutral": neutral, "unit": unit, "pose": pose})
    identities = sorted({t.identity for t in targets})
    group_of = {t.name: (identities.index(t.identity) if same_identity else i) for i, t in enumerate(targets)}
    done = {t.name for t in targets if (read_fit(out_dir / t.name) or {}).get("settings") == run
            and (out_dir / t.name / CODES_NAME).is_file()
            and (not preview or (out_dir / t.name / PREVIEW_NAME).is_file())}
    # Scans sharing a z_id are fitted together, so a group with any scan left is refitted whole.
    pending_groups = {group_of[t.name] for t in targets if t.name not in done}
    pending = [t for t in targets if group_of[t.name] in pending_groups]

    mean_face = functools.cache(lambda: _mean_face_front(model, loaded.code_stats))
    prepare_poses(pending, mean_face)
    swept = [t for t in pending if t.fit_scale]
    if settings.scale_sweep and swept:
        sweep_scales(model, swept, settings, loaded.code_stats, loaded.experiment.loss, mean_face(),
                     device=device, batch_size=batch_size, optimise=optimise)
    chunks = _batches(pending, group_of, batch_size)
    results: dict[str, ScanFit] = {}
    weights = loaded.experiment.loss
    for chunk in chunks:
        local = {g: i for i, g in enumerate(dict.fromkeys(group_of[t.name] for t in chunk))}
        started = time.perf_counter()
        state, history = optimise(model, chunk, settings, loaded.code_stats, weights,
                                  groups=[local[group_of[t.name]] for t in chunk], device=device)
        seconds = time.perf_counter() - started
        entries = []
        for row, target in enumerate(chunk):  # per-scan file output, not the optimisation
            if target.fit_scale and settings.scale_lr > 0:
                rescale_target(target, float(state.scale[row]))
            codes = (state.id_codes[row], state.exp_codes[row])
            pose = (state.rotation[row].cpu().numpy(), state.translation[row].cpu().numpy())
            results[target.name] = write_scan_outputs(model, target, codes, pose, history[:, row], settings, run,
                                                      seconds, out_dir, metrics_points, preview)
            entries.append(index_entry(target))
            if progress:
                print(_progress_line(target, results[target.name], seconds))
        write_fits_index(out_dir, model_label(loaded.path), same_identity, entries)
    for target in targets:
        if target.name not in results:
            results[target.name] = read_scan_fit(out_dir, target)
    if not pending:
        write_fits_index(out_dir, model_label(loaded.path), same_identity, [index_entry(t) for t in targets])
    if preview:
        folders = [e["folder"] for e in (read_fits_index(out_dir, missing_ok=True) or {}).get("scans", [])]
        stack_previews([out_dir / f / PREVIEW_NAME for f in folders], out_dir / PREVIEW_NAME)  # every scan of the folder
    return [results[t.name] for t in targets]


def _check_options(*, steps: int, points: int, space_points: int, resolution: int, batch_size: int, lr: float,
                   scale_lr: float, scale_sweep: int, robust_distance: float | None, code_basis: str) -> None:
    """One ImfaceError line for the first option out of its range."""
    for name, value, low in (("--steps", steps, 1), ("--points", points, 16), ("--space-points", space_points, 1),
                             ("--resolution", resolution, 16),
                             ("batch_size", batch_size, 1)):
        if value < low:
            raise ImfaceError(None, f"{name} must be >= {low}, got {value}")
    if not lr > 0:
        raise ImfaceError(None, f"--lr must be > 0, got {lr}")
    if not scale_lr >= 0:
        raise ImfaceError(None, f"--scale-lr must be >= 0, got {scale_lr}")
    if scale_sweep < 0 or scale_sweep in (1, 2):
        raise ImfaceError(None, f"--scale-sweep must be 0 (off) or >= 3 scales, got {scale_sweep}")
    if robust_distance is not None and not robust_distance >= 0:
        raise ImfaceError(None, f"--robust must be >= 0, got {robust_distance}")
    if code_basis not in code_space.CODE_BASES:
        raise ImfaceError(None, f"--code-basis must be one of {', '.join(code_space.CODE_BASES)}, got {code_basis!r}")


def _mean_face_front(model: torch.nn.Module, code_stats: dict[str, torch.Tensor]) -> np.ndarray:
    """The mean face's front surface (M, 3), model units: the similarity search's template."""
    mesh = face_mesh(model, code_stats["id_mean"], code_stats["exp_mean"], True, resolution=64)
    vertices = np.asarray(mesh.vertices)
    front = (np.asarray(mesh.vertex_normals)[:, 2] > 0.0) & (np.linalg.norm(vertices, axis=1) <= 1.0)
    return vertices[front] if front.sum() >= 100 else vertices


def _batches(pending: list[FitTarget], group_of: dict[str, int], batch_size: int) -> list[list[FitTarget]]:
    """Pending scans in batches of at most ``batch_size``; the scans of one group (one shared z_id)
    stay in one batch."""
    chunks: list[list[FitTarget]] = []
    for group in sorted({group_of[t.name] for t in pending}):
        members = [t for t in pending if group_of[t.name] == group]
        if chunks and len(chunks[-1]) + len(members) <= batch_size:
            chunks[-1] += members
        else:
            chunks.append(members)
    return chunks


def _progress_line(target: FitTarget, result: ScanFit, seconds: float) -> str:
    """The one line printed per fitted scan."""
    found = target.alignment
    aligned = "" if found is None else (
        f", {found['mm_per_input_unit']:.4g} mm per input unit ({found['unit']}), "
        f"alignment residual {found['residual_mm']:.2f} mm, coverage {100 * found['coverage']:.0f}%"
        + ("" if "scale_sweep" not in found else
           f", scale {found['scale_sweep']['chosen']:.3f} x the search's, chosen by "
           f"{len(found['scale_sweep']['factors'])} short fits"))
    chamfer = "" if not result.metrics else f"  chamfer to the input {result.metrics['chamfer_mm']:.3f} mm"
    return f"{target.name}: {seconds:.1f} s  loss {result.losses.get('total', float('nan')):.4g}" + chamfer + aligned
