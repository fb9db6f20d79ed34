"""The coordinates a fit moves its codes in: ``z = mean + u @ basis.T``, with u starting at 0.

The training codes' statistics set the basis, so one lr (in these units) suits models whose
codes have very different scales, and a prior on ``u`` is a Mahalanobis prior on ``z``:

- ``diagonal``: ``basis = diag(std)``, the per-entry spread of the training codes.
- ``principal``: ``basis = V diag(sqrt(lambda))``, the principal axes of the training codes.
  With 48 training identities in a 128-wide code, 80 directions carry no training variation;
  the diagonal basis moves along them as freely as along the others, the principal one hardly.

Both floor the spread at ``floor`` times its RMS so that no direction is frozen.
"""
from __future__ import annotations

import torch

CODE_BASES = ("diagonal", "principal")
SPREAD_FLOOR = 0.1  # fraction of the RMS spread below which no direction's spread falls
FALLBACK_SPREAD = 0.01  # the codes' init std: used when the training codes have no spread


def code_basis(mean: torch.Tensor, cov: torch.Tensor, kind: str = "diagonal", device: str | torch.device = "cpu",
               floor: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Code mean (d,) and basis (d, d) float32 on ``device`` for ``z = mean + u @ basis.T``.

    mean (d,), cov (d, d): the training codes' mean and covariance (any float dtype).
    kind: one of :data:`CODE_BASES`. floor: the smallest spread, as a fraction of the RMS spread
    (None: :data:`SPREAD_FLOOR`).
    """
    floor = SPREAD_FLOOR if floor is None else floor
    if kind not in CODE_BASES:
        raise ValueError(f"code basis must be one of {', '.join(CODE_BASES)}, got {kind!r}")
    cov = torch.as_tensor(cov, dtype=torch.float64)
    mean = torch.as_tensor(mean, dtype=torch.float32).to(device)
    size = cov.shape[0]
    rms = float(cov.diagonal().clamp_min(0).mean().sqrt())
    if not rms > 0:
        return mean, torch.eye(size, device=device) * FALLBACK_SPREAD
    if kind == "diagonal":
        spread = cov.diagonal().clamp_min(0).sqrt().clamp_min(floor * rms)
        basis = torch.diag(spread)
    else:
        variances, axes = torch.linalg.eigh((cov + cov.T) / 2)
        spread = variances.clamp_min(0).sqrt().clamp_min(floor * rms)
        basis = axes * spread[None, :]
    return mean, basis.to(device=device, dtype=torch.float32)
