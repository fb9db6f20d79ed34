"""TempNet T (Eq. 4): the signed distance s0 of the shared template face.

A Neural Blend-Field without a hypernetwork: K plain SIRENs with their own weights,
centred on the template's k landmarks l''.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from imface.config import ModelConfig
from imface.fields.blend import build_field


class TemplateOutput(NamedTuple):
    """sdf: (B, N) template signed distance s0 (model units); weights: (B, N, K)."""

    sdf: torch.Tensor
    weights: torch.Tensor


class TemplateField(nn.Module):
    """T(p'', l'') -> s0. forward(points (B, N, 3), landmarks (K, 3) or (B, K, 3)) -> TemplateOutput."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.field = build_field(1, None, config)

    def forward(self, points: torch.Tensor, landmarks: torch.Tensor) -> TemplateOutput:
        value, weights = self.field(points, landmarks, None)
        return TemplateOutput(value[..., 0], weights)
