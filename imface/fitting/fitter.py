"""Fitting codes to new scans (paper Eq. 17): the network is frozen, each scan's (z_exp, z_id)
(and, for landmark-free raw input, a rigid pose) minimise the SDF, normal, Eikonal and
embedding terms, plus the landmark term when the scan has landmarks.

Many scans are fitted together: every tensor carries a leading scan axis and the loss is a
sum of per-scan losses, so each scan's codes get exactly the gradient they would get alone
(Adam works per entry), and batching only saves time. Each scan's samples are drawn from a
fixed per-scan permutation (a window moved along it every step), so the samples a scan sees
do not depend on which other scans share its batch.

Schedule: codes start from the mean of the training codes and are optimised in units of the
training codes' spread (z = mean + u @ basis.T, :mod:`imface.fitting.code_space`), so one lr suits
models whose codes have very different scales; Adam at ``lr`` (spread units per step) with cosine decay to
``lr * final_lr_fraction`` over ``steps`` (default 200), instead of the authors' 1,500 epochs
at 1e-4. Samples are redrawn every step.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from imface.config import DEFAULT_FIT_LR, DEFAULT_FIT_ROBUST_MM, DEFAULT_FIT_SPACE_POINTS, DEFAULT_SCALE_SWEEP
from imface.frame import MM_PER_UNIT
from imface.fitting import outputs as fit_io
from imface.fitting import code_space
from imface.fitting.inputs import FitTarget
from imface.fitting.outputs import ScanFit
from imface.ops.se3 import se3_exp

TERMS = ("total", "sdf", "normal", "eikonal", "embedding", "landmark", "prior")


@dataclass
class FitSettings:
    """Everything that changes a fit's result. ``surface_points`` / ``space_points``: samples per
    scan and step; ``pose_lr``: Adam lr of the pose twist (radians, model units); ``near_sigma``:
    model units, the jitter of the Eikonal points of surface-only scans; ``landmarks``: use the
    landmark term when the scan has landmarks; ``resolution``: output mesh grid.
    ``robust_distance`` (model units, 0: off): surface points farther than this from the
    fitted surface stop pulling (truncated L1) in the second half of the fit, once the codes
    have found the face: clutter the crop kept (hair, a collar) and outliers. ``code_prior``:
    weight of a Mahalanobis prior on the codes, the mean squared code in units of the training
    codes' spread (0: only the paper's embedding term). ``scale_lr``: Adam lr of the log-scale
    of scans whose unit the similarity search found (``--unit auto``), refined with the codes and
    the pose (0: the search's scale is kept). ``code_basis``: the axes the codes move along,
    ``diagonal`` or ``principal`` (:mod:`imface.fitting.code_space`). ``scale_sweep``: for those
    scans, short fits (``scale_sweep_steps``, 0: ``steps``) at this many scales spread evenly in
    log scale within ``1 +- scale_sweep_range`` of the search's choose the scale the fit runs at
    (:mod:`imface.fitting.scale_sweep`; 0: off)."""

    steps: int = 200
    lr: float = DEFAULT_FIT_LR
    final_lr_fraction: float = 0.05
    pose_lr: float = 2.0e-3
    surface_points: int = 2048
    space_points: int = 2048
    landmarks: bool = True
    near_sigma: float = 0.03
    resolution: int = 128
    seed: int = 0
    robust_distance: float = 0.0
    code_prior: float = 0.0
    scale_lr: float = 0.0
    code_basis: str = "diagonal"
    scale_sweep: int = DEFAULT_SCALE_SWEEP
    scale_sweep_range: float = 0.075
    scale_sweep_steps: int = 60

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class FitState:
    """Current (or final) values for B scans: id_codes (B, d_id), exp_codes (B, d_exp),
    neutral (B,) bool, rotation (B, 3, 3), translation (B, 3) and scale (B,): the input frame maps
    to model space as ``scale * rotation @ x + translation`` (scale 1 unless refined)."""

    id_codes: torch.Tensor
    exp_codes: torch.Tensor
    neutral: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    scale: torch.Tensor


def _padded(arrays: list[np.ndarray | None], width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ragged (N_b, width) arrays into (B, max N, width) zeros-padded, with counts (B,)."""
    counts = [0 if a is None else len(a) for a in arrays]
    out = torch.zeros(len(arrays), max(1, max(counts)), width)
    for row, array in enumerate(arrays):  # setup copy, once per fit
        if array is not None and len(array):
            out[row, : len(array)] = torch.from_numpy(np.array(array, dtype=np.float32).reshape(len(array), width))
    return out.to(device), torch.tensor(counts, device=device)


def _permutations(counts: torch.Tensor, width: int, seeds: list[int]) -> torch.Tensor:
    """(B, width) per-scan random orders of each scan's rows (padding beyond the count unused)."""
    rows = []
    for count, seed in zip(counts.tolist(), seeds):  # setup, once per fit
        generator = torch.Generator().manual_seed(seed)
        perm = torch.randperm(max(1, count), generator=generator)
        rows.append(torch.cat((perm, torch.zeros(width - len(perm), dtype=torch.long))))
    return torch.stack(rows).to(counts.device)


def _scan_seed(name: str, seed: int) -> int:
    import zlib

    return (zlib.crc32(name.encode()) + 7919 * seed) % (2**31)


class FitBatch:
    """Per-scan targets as padded tensors and the per-step sampler."""

    def __init__(self, targets: list[FitTarget], settings: FitSettings, device: torch.device) -> None:
        self.settings = settings
        seeds = [_scan_seed(t.name, settings.seed) for t in targets]
        self.surface, self.surface_count = _padded([t.surface_points for t in targets], 3, device)
        # Scans without normals get zero rows (masked out) so every array lines up with its points.
        self.normals, _ = _padded([np.zeros_like(t.surface_points) if t.surface_normals is None else t.surface_normals
                                   for t in targets], 3, device)
        self.has_normals = torch.tensor([t.surface_normals is not None for t in targets], device=device)
        space, self.space_count = _padded([t.space_points for t in targets], 3, device)
        self.space = space
        self.space_sdf, _ = _padded([None if t.space_sdf is None else t.space_sdf[:, None] for t in targets], 1, device)
        self.space_grad, _ = _padded([t.space_grad for t in targets], 3, device)
        self.has_space = self.space_count > 0
        self.surface_perm = _permutations(self.surface_count, self.surface.shape[1], seeds)
        self.space_perm = _permutations(self.space_count, self.space.shape[1], [s + 1 for s in seeds])
        noise = [torch.randn(settings.space_points, 3, generator=torch.Generator().manual_seed(s + 2)) for s in seeds]
        self.near_noise = torch.stack(noise).to(device) * settings.near_sigma
        lmk = [t.landmarks.reshape(1, 15) if (t.landmarks is not None and settings.landmarks) else None for t in targets]
        self.landmarks, lmk_count = _padded(lmk, 15, device)
        self.landmarks = self.landmarks[:, 0].reshape(len(targets), 5, 3)
        self.has_landmarks = lmk_count > 0

    def _take(self, data: torch.Tensor, perm: torch.Tensor, count: torch.Tensor, start: int, n: int) -> torch.Tensor:
        positions = (start + torch.arange(n, device=data.device))[None, :] % count.clamp_min(1)[:, None]
        index = perm.gather(1, positions)
        return data.gather(1, index[..., None].expand(-1, -1, data.shape[-1]))

    def sample(self, step: int) -> dict[str, torch.Tensor]:
        """Samples of step ``step``: surface (B, Ns, 3) + normals, and the "space slot" (B, Nq, 3):
        space samples, or for surface-only scans jittered surface points (Eikonal only)."""
        ns, nq = self.settings.surface_points, self.settings.space_points
        surface = self._take(self.surface, self.surface_perm, self.surface_count, step * ns, ns)
        normals = self._take(self.normals, self.surface_perm, self.surface_count, step * ns, ns)
        space = self._take(self.space, self.space_perm, self.space_count, step * nq, nq)
        sdf = self._take(self.space_sdf, self.space_perm, self.space_count, step * nq, nq)[..., 0]
        grad = self._take(self.space_grad, self.space_perm, self.space_count, step * nq, nq)
        near = self._take(self.surface, self.surface_perm, self.surface_count, step * nq + ns // 2, nq) + self.near_noise
        slot = torch.where(self.has_space[:, None, None], space, near)
        return {"surface": surface, "normals": normals, "slot": slot, "sdf": sdf, "grad": grad}


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-scan mean of values (B, N) over mask (B, N) bool -> (B,); 0 where nothing is selected."""
    weights = mask.to(values.dtype)
    return (values * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def per_scan_losses(model: torch.nn.Module, batch: FitBatch, samples: dict[str, torch.Tensor], id_codes: torch.Tensor,
                    exp_codes: torch.Tensor, neutral: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor,
                    weights, robust_distance: float = 0.0, scale: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Weighted Eq. 17 terms per scan, each (B,). Points are posed into model space first
    (``scale`` (B,) times the rotated points plus the translation; None: 1).

    The per-point terms are those of :mod:`imface.losses` (|f - s|, 1 - cos, | |grad| - 1 |,
    z^2, L1 of landmarks) written as per-scan masked means, so scans do not mix (a single
    scan gives exactly the library functions' values; tested).
    """
    surface, slot = samples["surface"], samples["slot"]
    ns = surface.shape[1]
    scale = torch.ones_like(translation[:, 0]) if scale is None else scale
    points = scale[:, None, None] * (torch.cat((surface, slot), dim=1) @ rotation.transpose(1, 2)) + translation[:, None, :]
    out = model.evaluate(points, id_codes, exp_codes, neutral, with_gradients=True)
    f, gradient = out.sdf, out.gradient
    has_space = batch.has_space[:, None]
    nq = slot.shape[1]
    surface_error = f[:, :ns].abs()
    inlier = torch.ones_like(surface_error, dtype=torch.bool)
    if robust_distance > 0:  # truncated L1: farther points add a constant, no gradient
        inlier = surface_error.detach() <= robust_distance
        surface_error = torch.where(inlier, surface_error, torch.full_like(surface_error, robust_distance))
    sdf_error = torch.cat((surface_error, (f[:, ns:] - scale[:, None] * samples["sdf"]).abs()), dim=1)
    sdf_mask = torch.cat((torch.ones_like(f[:, :ns], dtype=torch.bool), has_space.expand(-1, nq)), dim=1)
    normals = samples["normals"] @ rotation.transpose(1, 2)
    grad_targets = samples["grad"] @ rotation.transpose(1, 2)
    cosine = torch.nn.functional.cosine_similarity(gradient, torch.cat((normals, grad_targets), dim=1), dim=-1, eps=1e-8)
    normal_mask = torch.cat((batch.has_normals[:, None].expand(-1, ns) & inlier, has_space.expand(-1, nq)), dim=1)
    if not weights.normal_on_space_points:
        normal_mask[:, ns:] = False
    eikonal = (gradient.norm(dim=-1) - 1.0).abs().mean(dim=1)
    embedding = (id_codes**2).mean(dim=1) + (exp_codes**2).mean(dim=1) * (~neutral).to(exp_codes.dtype)
    landmark = _masked_mean((out.landmarks - batch.landmarks).abs().flatten(1),
                            batch.has_landmarks[:, None].expand(-1, out.landmarks[0].numel()))
    terms = {
        "sdf": weights.sdf * _masked_mean(sdf_error, sdf_mask),
        "normal": weights.normal * _masked_mean(1.0 - cosine, normal_mask),
        "eikonal": weights.eikonal * eikonal,
        "embedding": weights.embedding * embedding,
        "landmark": weights.landmark_generation * landmark,
        "prior": torch.zeros_like(landmark),  # filled by optimise (it needs the codes' training spread)
    }
    terms["total"] = torch.stack(list(terms.values())).sum(dim=0)
    return terms


def optimise(model: torch.nn.Module, targets: list[FitTarget], settings: FitSettings, code_stats: dict[str, torch.Tensor],
             loss_weights, *, groups: list[int] | None = None, device: str | torch.device = "cpu",
             callback: Callable[[int, FitState], None] | None = None, callback_every: int = 0,
             ) -> tuple[FitState, np.ndarray]:
    """Fit B targets together. groups: (B,) identity group per scan (scans of one group share
    z_id); None gives each scan its own. callback(step, state) runs before step 0 and every
    ``callback_every`` steps and after the last step (state detached).

    Returns the final FitState and the loss history (steps, B, len(TERMS)) of weighted terms.
    """
    device = torch.device(device)
    model.requires_grad_(False)
    batch = FitBatch(targets, settings, device)
    count = len(targets)
    groups = list(range(count)) if groups is None else list(groups)
    group_index = torch.tensor(groups, device=device)
    # Codes are optimised in units of the training codes' spread (z = mean + u @ basis.T, u from 0;
    # imface.fitting.code_space), so one lr suits any model: the code scale depends on the embedding
    # weight and training length.
    id_mean, id_basis = code_space.code_basis(code_stats["id_mean"], code_stats["id_cov"], settings.code_basis, device)
    exp_mean, exp_basis = code_space.code_basis(code_stats["exp_mean"], code_stats["exp_cov"], settings.code_basis,
                                                 device)
    id_table_u = torch.zeros(max(groups) + 1, id_mean.shape[0], device=device, requires_grad=True)
    exp_codes_u = torch.zeros(count, exp_mean.shape[0], device=device, requires_grad=True)
    neutral = torch.tensor([t.neutral for t in targets], device=device)
    twist = torch.zeros(count, 6, device=device, requires_grad=True)
    log_scale = torch.zeros(count, device=device, requires_grad=True)
    scale_mask = torch.tensor([t.fit_scale for t in targets], device=device, dtype=torch.float32)
    pose_mask = torch.tensor([t.fit_pose for t in targets], device=device, dtype=torch.float32)[:, None]
    rotation0 = torch.tensor(np.stack([t.init_rotation for t in targets]), dtype=torch.float32, device=device)
    translation0 = torch.tensor(np.stack([t.init_translation for t in targets]), dtype=torch.float32, device=device)
    param_groups = [{"params": [id_table_u, exp_codes_u], "lr": settings.lr}]

    def codes() -> tuple[torch.Tensor, torch.Tensor]:
        return id_mean + id_table_u[group_index] @ id_basis.T, exp_mean + exp_codes_u @ exp_basis.T
    if bool(pose_mask.any()):
        param_groups.append({"params": [twist], "lr": settings.pose_lr})
    if settings.scale_lr > 0 and bool(scale_mask.any()):
        param_groups.append({"params": [log_scale], "lr": settings.scale_lr})
    # The scale acts about each scan's centroid as first posed (a fixed model-space point), not
    # about the input's origin, which may lie far away and would tie the scale to the translation.
    centroids = torch.tensor(np.stack([t.surface_points.mean(axis=0) for t in targets]), dtype=torch.float32,
                             device=device)
    pivot = (rotation0 @ centroids[..., None])[..., 0] + translation0
    optimiser = torch.optim.Adam(param_groups)
    base = [g["lr"] for g in optimiser.param_groups]

    def pose() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """rotation (B, 3, 3), translation (B, 3), scale (B,): input -> model is scale * R x + t."""
        motion = se3_exp(twist * pose_mask)
        rot, shift = motion[:, :3, :3], motion[:, :3, 3]
        scale = torch.exp(log_scale * scale_mask)
        shift = (rot @ translation0[..., None])[..., 0] + shift
        # pivot + scale * (R x + shift - pivot)
        return rot @ rotation0, scale[:, None] * shift + (1 - scale[:, None]) * pivot, scale

    def state() -> FitState:
        with torch.no_grad():
            rot, shift, scale = pose()
            ids, exps = codes()
            return FitState(ids.detach().clone(), exps.detach().clone(), neutral.clone(),
                            rot.detach().clone(), shift.detach().clone(), scale.detach().clone())

    history = np.zeros((settings.steps, count, len(TERMS)), dtype=np.float32)
    if callback is not None:
        callback(0, state())
    for step in range(settings.steps):
        progress = step / max(1, settings.steps - 1)
        factor = settings.final_lr_fraction + (1 - settings.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress))
        for group, lr in zip(optimiser.param_groups, base):
            group["lr"] = lr * factor
        rot, shift, scale = pose()
        ids, exps = codes()
        robust = settings.robust_distance if progress >= 0.5 else 0.0
        terms = per_scan_losses(model, batch, batch.sample(step), ids, exps, neutral, rot, shift, loss_weights, robust,
                                scale)
        if settings.code_prior > 0:
            terms["prior"] = settings.code_prior * (id_table_u[group_index].square().mean(dim=1)
                                                    + exp_codes_u.square().mean(dim=1) * (~neutral).float())
            terms["total"] = terms["total"] + terms["prior"]
        optimiser.zero_grad(set_to_none=True)
        terms["total"].sum().backward()
        optimiser.step()
        history[step] = torch.stack([terms[k].detach() for k in TERMS], dim=1).cpu().numpy()
        done = step + 1
        if callback is not None and ((callback_every and done % callback_every == 0) or done == settings.steps):
            callback(done, state())
    return state(), history


def scan_sdf(model: torch.nn.Module, id_code: torch.Tensor, exp_code: torch.Tensor, neutral: bool,
             device: str | torch.device = "cpu") -> Callable[[torch.Tensor], torch.Tensor]:
    """f(p) of one scan's codes: (N, 3) model units -> (N,) model units (for extract_mesh)."""
    device = torch.device(device)
    ids, exps = id_code.to(device).reshape(1, -1), exp_code.to(device).reshape(1, -1)
    flag = torch.tensor([bool(neutral)], device=device)

    def sdf(points: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model.sdf(points.to(device)[None], ids, exps, flag)[0]

    return sdf


def fitted_mesh(model: torch.nn.Module, id_code: torch.Tensor, exp_code: torch.Tensor, neutral: bool,
                resolution: int = 128, device: str | torch.device = "cpu"):
    """The fitted surface as a trimesh.Trimesh in model units (coarse-to-fine marching cubes)."""
    from imface.ops.marching_cubes import extract_mesh

    return extract_mesh(scan_sdf(model, id_code, exp_code, neutral, device), resolution, device=device)


def _run_settings(settings: FitSettings, model_path: Path, same_identity: bool, options: dict) -> dict:
    return {**settings.to_dict(), "model": str(model_path), "same_identity": same_identity, **options}


def fit(model_or_path, inputs, out_dir, *, same_identity: bool = False, steps: int = 200, points: int = 2048,
        space_points: int = DEFAULT_FIT_SPACE_POINTS,
        lr: float = DEFAULT_FIT_LR, landmarks: bool = True, resolution: int = 128, split: str = "test",
        scans: list[str] | None = None, neutral: str = "auto", unit: str = "auto", pose: str = "auto",
        device: str = "cpu", batch_size: int = 16, seed: int = 0, metrics_points: int = 50_000,
        preview: bool = False, progress: bool = False, robust_distance: float | None = None,
        code_prior: float = 0.0, scale_lr: float = 0.0, code_basis: str = "diagonal",
        scale_sweep: int = DEFAULT_SCALE_SWEEP) -> list[ScanFit]:
    """Fit codes (and poses) to new scans and write the fits folder ``out_dir`` (see
    :mod:`imface.fitting.outputs`). Re-running skips scans already fitted with the same settings.

    model_or_path: an experiment / exported model folder or a loaded model; inputs: a path or
    paths (see :mod:`imface.fitting.inputs`); same_identity: one z_id per identity;
    steps / points / space_points / lr: the schedule (points: surface samples per scan and step;
    space_points: free-space samples, or jittered surface points for surface-only input);
    neutral: auto | yes | no for scans whose neutrality is unknown; unit: auto | model | mm |
    cm | m for landmark-free input; pose: auto | fit | none; batch_size: scans per batch;
    metrics_points: samples for the quick metrics in each fit.json (0: none, e.g. when
    :func:`imface.eval.evaluate.evaluate_folder` scores the fits afterwards); preview: write each
    scan's ``preview.png`` (target | fit | error, front and side) and the sheet ``out_dir/preview.png``;
    robust_distance, code_prior, scale_lr, code_basis, scale_sweep: see :class:`FitSettings`; robust_distance None:
    ``DEFAULT_FIT_ROBUST_MM`` when any input is a raw mesh or point set, else 0 (processed scans).
    """
    import time

    from imface.fitting.inputs import gather_targets, prepare_poses, rescale_target
    from imface.fitting.preview import PREVIEW_NAME
    from imface.errors import ImfaceError

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
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    out_dir = Path(out_dir)
    loaded = fit_io.load_model(model_or_path, device)
    model = loaded.model.to(device).eval().requires_grad_(False)
    targets = gather_targets(inputs, work_dir=out_dir, split=split, scans=scans, unit=unit, pose=pose, neutral=neutral)
    if robust_distance is None:  # clutter and outliers come with raw input, not with processed scans
        raw = any(t.kind != "processed" for t in targets)
        robust_distance = DEFAULT_FIT_ROBUST_MM / MM_PER_UNIT if raw else 0.0
    settings = FitSettings(steps=steps, lr=lr, surface_points=points, space_points=space_points, landmarks=landmarks,
                           resolution=resolution, seed=seed, robust_distance=robust_distance, code_prior=code_prior,
                           scale_lr=scale_lr, code_basis=code_basis, scale_sweep=scale_sweep)
    run = _run_settings(settings, loaded.path, same_identity, {"neutral": neutral, "unit": unit, "pose": pose})
    identities = sorted({t.identity for t in targets})
    group_of = {t.name: (identities.index(t.identity) if same_identity else i) for i, t in enumerate(targets)}
    done = {t.name for t in targets if (fit_io.read_fit(out_dir / t.name) or {}).get("settings") == run
            and (out_dir / t.name / fit_io.CODES_NAME).is_file()
            and (not preview or (out_dir / t.name / PREVIEW_NAME).is_file())}
    # Scans sharing a z_id are fitted together, so a group with any scan left is refitted whole.
    pending_groups = {group_of[t.name] for t in targets if t.name not in done}
    pending = [t for t in targets if group_of[t.name] in pending_groups]

    @functools.cache
    def mean_face() -> np.ndarray:
        """The mean face's front surface (M, 3), model units: the search's template."""
        stats = loaded.code_stats
        mesh = fitted_mesh(model, stats["id_mean"], stats["exp_mean"], True, resolution=64, device=device)
        vertices = np.asarray(mesh.vertices)
        front = (np.asarray(mesh.vertex_normals)[:, 2] > 0.0) & (np.linalg.norm(vertices, axis=1) <= 1.0)
        return vertices[front] if front.sum() >= 100 else vertices

    prepare_poses(pending, mean_face)
    swept = [t for t in pending if t.fit_scale]
    if settings.scale_sweep and swept:
        from imface.fitting.scale_sweep import sweep_scales

        sweep_scales(model, swept, settings, loaded.code_stats, loaded.experiment.loss, mean_face(),
                     device=torch.device(device), batch_size=batch_size, optimise=optimise)
    chunks: list[list[FitTarget]] = []
    for group in sorted(pending_groups):  # scans of one group stay in one chunk
        members = [t for t in pending if group_of[t.name] == group]
        if chunks and len(chunks[-1]) + len(members) <= batch_size:
            chunks[-1] += members
        else:
            chunks.append(members)
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
            results[target.name] = fit_io.write_scan_outputs(
                model, target, state, row, history[:, row], settings, run, seconds, out_dir, device, metrics_points,
                preview)
            entries.append(fit_io.index_entry(target))
            if progress:
                found = target.alignment
                aligned = "" if found is None else (
                    f", {found['mm_per_input_unit']:.4g} mm per input unit ({found['unit']}), "
                    f"alignment residual {found['residual_mm']:.2f} mm, coverage {100 * found['coverage']:.0f}%"
                    + ("" if "scale_sweep" not in found else
                       f", scale {found['scale_sweep']['chosen']:.3f} x the search's, chosen by "
                       f"{len(found['scale_sweep']['factors'])} short fits"))
                print(f"fitted {target.name} ({seconds:.1f} s, sdf {history[-1, row, 1]:.4g}{aligned})")
        fit_io.write_fits_index(out_dir, str(loaded.path), same_identity, entries)
    for target in targets:
        if target.name not in results:
            results[target.name] = fit_io.read_scan_fit(out_dir, target)
    if not pending:
        fit_io.write_fits_index(out_dir, str(loaded.path), same_identity, [fit_io.index_entry(t) for t in targets])
    if preview:
        from imface.fitting.preview import stack_previews

        folders = [e["folder"] for e in (fit_io.read_fits_index(out_dir, missing_ok=True) or {}).get("scans", [])]
        stack_previews([out_dir / f / PREVIEW_NAME for f in folders], out_dir / PREVIEW_NAME)  # every scan of the folder
    return [results[t.name] for t in targets]
