"""ExpNet E (Eq. 2): observation space -> the person's neutral (canonical) space.

The K local fields predict SE(3) twists (or translations); the twists are blended
with the fusion weights first (Eq. 6 applied to the field's output) and the blended
twist is then mapped by the exponential map (Eq. 7-8). Blending twists keeps one
rigid motion per point; blending warped points instead would average K motions.
On neutral scans E is exactly the identity (Eq. 9, neutral suppression).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from imface.config import ModelConfig
from imface.fields.blend import build_field
from imface.ops.se3 import deformation_dim, warp_points


class ExpressionOutput(NamedTuple):
    """points: (B, N, 3) warped points p' (model units); deformation: (B, N, 6 or 3)
    blended twists (zero where suppressed); weights: (B, N, K) blend weights."""

    points: torch.Tensor
    deformation: torch.Tensor
    weights: torch.Tensor


class ExpressionField(nn.Module):
    """E(p, z_exp, l) -> p' with neutral suppression.

    forward(points (B, N, 3), exp_code (B, d_exp), landmarks (B, K, 3) observed-face
    landmarks l, neutral (B,) bool) -> ExpressionOutput.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.warp = config.warp
        self.field = build_field(deformation_dim(config.warp), config.exp_code_dim, config)

    def forward(
        self, points: torch.Tensor, exp_code: torch.Tensor, landmarks: torch.Tensor, neutral: torch.Tensor
    ) -> ExpressionOutput:
        deformation, weights = self.field(points, landmarks, exp_code)
        warped = warp_points(points, deformation, self.warp)
        # torch.where keeps p bit-exact on neutral scans while ExpNet's parameters stay
        # in the graph (with zero gradient), as DDP requires.
        keep = neutral.reshape(-1, 1, 1)
        warped = torch.where(keep, points, warped)
        deformation = torch.where(keep, torch.zeros_like(deformation), deformation)
        return ExpressionOutput(warped, deformation, weights)
