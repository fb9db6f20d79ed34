"""IDNet I (Eq. 3): canonical space -> the shared template space, plus the SDF residual delta.

Also used, conditioned on z_exp (+) z_id, as the single deformation field of the
no-dist ablation (observation space -> template space directly).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from imface.config import ModelConfig
from imface.fields.blend import build_field
from imface.ops.se3 import deformation_dim, warp_points


class IdentityOutput(NamedTuple):
    """points: (B, N, 3) template-space points p'' (model units); residual: (B, N) SDF
    correction delta (model units); deformation: (B, N, 6 or 3); weights: (B, N, K)."""

    points: torch.Tensor
    residual: torch.Tensor
    deformation: torch.Tensor
    weights: torch.Tensor


class IdentityField(nn.Module):
    """I(p', z_id, l') -> (p'', delta). The twists are blended, then exp-mapped.

    forward(points (B, N, 3), code (B, code_dim), landmarks (B, K, 3)) -> IdentityOutput.
    ``code_dim`` defaults to ``config.id_code_dim``.
    """

    def __init__(self, config: ModelConfig, code_dim: int | None = None) -> None:
        super().__init__()
        self.warp = config.warp
        self.dim = deformation_dim(config.warp)
        self.field = build_field(self.dim + 1, config.id_code_dim if code_dim is None else code_dim, config)

    def forward(self, points: torch.Tensor, code: torch.Tensor, landmarks: torch.Tensor) -> IdentityOutput:
        value, weights = self.field(points, landmarks, code)
        deformation, residual = value[..., : self.dim], value[..., self.dim]
        return IdentityOutput(warp_points(points, deformation, self.warp), residual, deformation, weights)
