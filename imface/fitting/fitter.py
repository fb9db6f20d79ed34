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

import math
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from imface.config.fit import FitSettings
from imface.fitting import code_space
from imface.fitting.inputs import FitTarget
from imface.fitting.outputs import TERMS
from imface.ops.se3 import se3_exp


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


class FitParameters:
    """The variables of a batched fit and what they give: codes in units of the training codes'
    spread (z = mean + u @ basis.T, u from 0; :mod:`imface.fitting.code_space`), so one lr suits any
    model, and per scan a pose twist and log-scale applied after each target's initial pose."""

    def __init__(self, targets: list[FitTarget], settings: FitSettings, code_stats: dict[str, torch.Tensor],
                 groups: list[int], device: torch.device) -> None:
        count = len(targets)
        self.group_index = torch.tensor(groups, device=device)
        self.id_mean, self.id_basis = code_space.code_basis(code_stats["id_mean"], code_stats["id_cov"],
                                                            settings.code_basis, device)
        self.exp_mean, self.exp_basis = code_space.code_basis(code_stats["exp_mean"], code_stats["exp_cov"],
                                                              settings.code_basis, device)
        self.id_table_u = torch.zeros(max(groups) + 1, self.id_mean.shape[0], device=device, requires_grad=True)
        self.exp_codes_u = torch.zeros(count, self.exp_mean.shape[0], device=device, requires_grad=True)
        self.neutral = torch.tensor([t.neutral for t in targets], device=device)
        self.twist = torch.zeros(count, 6, device=device, requires_grad=True)
        self.log_scale = torch.zeros(count, device=device, requires_grad=True)
        self.scale_mask = torch.tensor([t.fit_scale for t in targets], device=device, dtype=torch.float32)
        self.pose_mask = torch.tensor([t.fit_pose for t in targets], device=device, dtype=torch.float32)[:, None]
        self.rotation0 = torch.tensor(np.stack([t.init_rotation for t in targets]), dtype=torch.float32, device=device)
        self.translation0 = torch.tensor(np.stack([t.init_translation for t in targets]), dtype=torch.float32,
                                         device=device)
        # The scale acts about each scan's centroid as first posed (a fixed model-space point), not
        # about the input's origin, which may lie far away and would tie the scale to the translation.
        centroids = torch.tensor(np.stack([t.surface_points.mean(axis=0) for t in targets]), dtype=torch.float32,
                                 device=device)
        self.pivot = (self.rotation0 @ centroids[..., None])[..., 0] + self.translation0

    def optimiser(self, settings: FitSettings) -> torch.optim.Adam:
        """Adam over the codes, plus the pose and the scale where some scan fits them."""
        param_groups = [{"params": [self.id_table_u, self.exp_codes_u], "lr": settings.lr}]
        if bool(self.pose_mask.any()):
            param_groups.append({"params": [self.twist], "lr": settings.pose_lr})
        if settings.scale_lr > 0 and bool(self.scale_mask.any()):
            param_groups.append({"params": [self.log_scale], "lr": settings.scale_lr})
        return torch.optim.Adam(param_groups)

    def codes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """z_id (B, d_id) and z_exp (B, d_exp)."""
        return (self.id_mean + self.id_table_u[self.group_index] @ self.id_basis.T,
                self.exp_mean + self.exp_codes_u @ self.exp_basis.T)

    def pose(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """rotation (B, 3, 3), translation (B, 3), scale (B,): input -> model is scale * R x + t."""
        motion = se3_exp(self.twist * self.pose_mask)
        rot, shift = motion[:, :3, :3], motion[:, :3, 3]
        scale = torch.exp(self.log_scale * self.scale_mask)
        shift = (rot @ self.translation0[..., None])[..., 0] + shift
        # pivot + scale * (R x + shift - pivot)
        return rot @ self.rotation0, scale[:, None] * shift + (1 - scale[:, None]) * self.pivot, scale

    def prior(self, id_weight: float, exp_weight: float) -> torch.Tensor:
        """(B,) weighted mean squared code in spread units (expression codes of non-neutral scans only)."""
        return (id_weight * self.id_table_u[self.group_index].square().mean(dim=1)
                + exp_weight * self.exp_codes_u.square().mean(dim=1) * (~self.neutral).float())

    def state(self) -> FitState:
        with torch.no_grad():
            rot, shift, scale = self.pose()
            ids, exps = self.codes()
            return FitState(ids.detach().clone(), exps.detach().clone(), self.neutral.clone(),
                            rot.detach().clone(), shift.detach().clone(), scale.detach().clone())


def cosine_factor(step: int, steps: int, final_fraction: float) -> float:
    """The lr factor of ``step``: cosine decay from 1 to ``final_fraction`` over ``steps``."""
    progress = step / max(1, steps - 1)
    return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))


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
    variables = FitParameters(targets, settings, code_stats, list(range(count)) if groups is None else list(groups),
                              device)
    optimiser = variables.optimiser(settings)
    base = [g["lr"] for g in optimiser.param_groups]
    exp_prior = settings.code_prior if settings.exp_code_prior is None else settings.exp_code_prior
    history = np.zeros((settings.steps, count, len(TERMS)), dtype=np.float32)
    if callback is not None:
        callback(0, variables.state())
    for step in range(settings.steps):
        factor = cosine_factor(step, settings.steps, settings.final_lr_fraction)
        for group, lr in zip(optimiser.param_groups, base):
            group["lr"] = lr * factor
        rot, shift, scale = variables.pose()
        ids, exps = variables.codes()
        robust = settings.robust_distance if step / max(1, settings.steps - 1) >= 0.5 else 0.0
        terms = per_scan_losses(model, batch, batch.sample(step), ids, exps, variables.neutral, rot, shift,
                                loss_weights, robust, scale)
        if settings.code_prior > 0 or exp_prior > 0:
            terms["prior"] = variables.prior(settings.code_prior, exp_prior)
            terms["total"] = terms["total"] + terms["prior"]
        optimiser.zero_grad(set_to_none=True)
        terms["total"].sum().backward()
        optimiser.step()
        history[step] = torch.stack([terms[k].detach() for k in TERMS], dim=1).cpu().numpy()
        done = step + 1
        if callback is not None and ((callback_every and done % callback_every == 0) or done == settings.steps):
            callback(done, variables.state())
    return variables.state(), history
