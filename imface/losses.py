"""The ImFace training losses (Eq. 10-16), one pure function per term.

Every term is a per-point (or per-entry) mean, so the weights in :class:`LossConfig`
(the authors' released ones) do not depend on the batch or sample sizes.

Choices the paper leaves open, documented here:
- normal term: on surface points against their unit normals and, with
  ``LossConfig.normal_on_space_points`` (default, as the authors do), on space points
  against the ground-truth SDF gradients; the mean runs over all those points.
- landmark terms: per scan, the mean absolute error per coordinate over the landmark
  rows that are given (``*_mask``), then the mean over scans; for neutral scans the
  ExpNet landmarks l are l' (Eq. 9).
- embedding term: per scan, the mean of z^2 over the code entries, then the mean over
  scans, per code table; on the disentangled model the expression codes of neutral
  scans count as 0 (they are never used, Eq. 9).
- masked terms average per scan first, so a batch split across DDP ranks gives the
  same loss as one process (every term is a mean of per-scan means).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from imface.config import LossConfig, ModelConfig

LOSS_KEYS = (
    "sdf",
    "normal",
    "eikonal",
    "eikonal_canonical",
    "embedding",
    "landmark_generation",
    "landmark_consistency",
    "residual",
)


def sdf_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean |f(p) - s_bar| (Eq. 10, first part). predicted, target: (B, N) model units -> scalar."""
    return (predicted - target).abs().mean()


def normal_loss(gradient: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean 1 - cos(grad f, n_bar) (Eq. 10, second part). gradient, target: (B, N, 3) -> scalar."""
    return (1.0 - F.cosine_similarity(gradient, target, dim=-1, eps=1e-8)).mean()


def eikonal_loss(gradient: torch.Tensor) -> torch.Tensor:
    """Mean | |grad| - 1 | (Eq. 11). gradient: (B, N, 3) -> scalar."""
    return (gradient.norm(dim=-1) - 1.0).abs().mean()


def embedding_loss(codes: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean z^2 per scan, averaged over the batch, counting unselected scans as 0 (Eq. 12).

    codes: (B, d); mask: (B,) bool or None (all scans). Averaging per scan and then
    over the batch (Eq. 16 sums over samples) keeps the loss of B scans equal to the
    mean of its parts' losses, so DDP ranks with uneven neutral scans agree with one
    process. No scan selected gives 0 (still connected to the codes).
    """
    per_scan = (codes * codes).mean(dim=-1)
    if mask is not None:
        per_scan = per_scan * mask.to(codes.dtype)
    return per_scan.mean()


def landmark_l1(predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean |predicted - target| over each scan's given landmark coordinates, averaged over scans.

    predicted, target: (B, M, 3) model units; mask: (B, M) bool, True where the
    target row exists (None: all). A scan with no row given counts as 0; per-scan
    means keep the batch loss equal to the mean of its parts' (see :func:`embedding_loss`).
    """
    errors = (predicted - target.to(predicted.dtype)).abs()
    if mask is None:
        return errors.mean()
    weights = mask.to(predicted.dtype)[..., None].expand_as(errors)
    per_scan = (errors * weights).sum(dim=(1, 2)) / weights.sum(dim=(1, 2)).clamp_min(1.0)
    return per_scan.mean()


def residual_loss(residual: torch.Tensor) -> torch.Tensor:
    """Mean |delta| (Eq. 15). residual: (B, N) model units -> scalar."""
    return residual.abs().mean()


def landmark_generation_loss(
    landmarks: torch.Tensor,
    scan_landmarks: torch.Tensor,
    canonical_landmarks: torch.Tensor | None = None,
    neutral_landmarks: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 13: L1(eta, the scan's k landmarks) + L1(eta', the person's neutral k landmarks).

    All (B, k, 3) model units; the second part is skipped when ``canonical_landmarks`` is None.
    """
    loss = landmark_l1(landmarks, scan_landmarks)
    if canonical_landmarks is not None and neutral_landmarks is not None:
        loss = loss + landmark_l1(canonical_landmarks, neutral_landmarks)
    return loss


def landmark_consistency_loss(
    template_warped: torch.Tensor,
    template_landmarks: torch.Tensor,
    scan_mask: torch.Tensor,
    warped: torch.Tensor | None = None,
    neutral_landmarks: torch.Tensor | None = None,
    neutral_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 14: L1(E(l_bar), neutral landmarks) + L1(I(E(l_bar)), template landmarks l'').

    template_warped: (B, M, 3) the scan's landmarks carried to template space;
    template_landmarks: (M, 3); scan_mask: (B, M) rows of the scan that exist;
    warped: (B, M, 3) the scan's landmarks carried to canonical space (None: no
    canonical space, that part is skipped); neutral_landmarks (B, M, 3) with
    neutral_mask (B, M). Model units.
    """
    target = template_landmarks.to(template_warped.dtype).expand_as(template_warped)
    loss = landmark_l1(template_warped, target, scan_mask)
    if warped is not None and neutral_landmarks is not None:
        both = scan_mask if neutral_mask is None else scan_mask & neutral_mask
        loss = loss + landmark_l1(warped, neutral_landmarks, both)
    return loss


def compute_losses(
    outputs: dict[str, torch.Tensor],
    batch: dict[str, torch.Tensor],
    config: LossConfig,
    model_config: ModelConfig,
) -> dict[str, torch.Tensor]:
    """Weighted loss terms of :meth:`ImFace.forward`'s outputs on a training batch.

    Returns one weighted scalar per term in :data:`LOSS_KEYS` plus "total" (their
    sum). With ``model_config.deformation == "joint"`` (no canonical space) the
    canonical Eikonal term is absent and the consistency term keeps only its
    template part.
    """
    disentangled = model_config.deformation == "disentangled"
    ids = torch.tensor(model_config.landmark_ids, device=batch["landmarks"].device)
    surface_gradient, space_gradient = outputs["surface_gradient"], outputs["space_gradient"]
    all_gradients = torch.cat((surface_gradient, space_gradient), dim=1)

    predicted_sdf = torch.cat((outputs["surface_sdf"], outputs["space_sdf"]), dim=1)
    target_sdf = torch.cat((torch.zeros_like(outputs["surface_sdf"]), batch["space_sdf"].to(predicted_sdf.dtype)), dim=1)
    if config.normal_on_space_points:
        normals = torch.cat((batch["surface_normals"], batch["space_grad"]), dim=1).to(all_gradients.dtype)
        normal = normal_loss(all_gradients, normals)
    else:
        normal = normal_loss(surface_gradient, batch["surface_normals"].to(surface_gradient.dtype))

    neutral = batch["neutral"].to(torch.bool)
    embedding = embedding_loss(outputs["id_codes"]) + embedding_loss(
        outputs["exp_codes"], ~neutral if disentangled else None
    )
    generation = landmark_generation_loss(
        outputs["landmarks"],
        batch["landmarks"][:, ids],
        outputs.get("canonical_landmarks") if disentangled else None,
        batch["neutral_landmarks"][:, ids],
    )
    consistency = landmark_consistency_loss(
        outputs["template_warped_landmarks"],
        outputs["template_landmarks"],
        batch["landmarks_mask"].to(torch.bool),
        outputs.get("warped_landmarks") if disentangled else None,
        batch["neutral_landmarks"],
        batch["neutral_landmarks_mask"].to(torch.bool),
    )
    residual = residual_loss(torch.cat((outputs["surface_residual"], outputs["space_residual"]), dim=1))

    terms = {
        "sdf": config.sdf * sdf_loss(predicted_sdf, target_sdf),
        "normal": config.normal * normal,
        "eikonal": config.eikonal * eikonal_loss(all_gradients),
        "embedding": config.embedding * embedding,
        "landmark_generation": config.landmark_generation * generation,
        "landmark_consistency": config.landmark_consistency * consistency,
        "residual": config.residual * residual,
    }
    if disentangled:
        canonical = torch.cat((outputs["surface_canonical_gradient"], outputs["space_canonical_gradient"]), dim=1)
        terms["eikonal_canonical"] = config.eikonal_canonical * eikonal_loss(canonical)
    terms = {key: terms[key] for key in LOSS_KEYS if key in terms}
    terms["total"] = torch.stack(list(terms.values())).sum()
    return terms
