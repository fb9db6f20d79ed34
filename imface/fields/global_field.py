"""A global SIREN field for the no-blend ablation (Table 2, "w/o blend").

It replaces a Neural Blend-Field by one SIREN on the absolute (encoded) coordinate,
hypernetwork-generated or plain, with its width chosen so that the number of
parameters matches the blend field it replaces.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from imface.components.encoding import PositionalEncoding
from imface.components.hyper import HyperNetwork
from imface.components.siren import SirenFields, SirenLayout, siren_forward


class FieldOutput(NamedTuple):
    """value: (B, N, out) blended field value; weights: (B, N, K) blend weights (sum to 1)."""

    value: torch.Tensor
    weights: torch.Tensor


def hypernetwork_size(code_dim: int, hidden: int, layers: int, num_fields: int, num_params: int) -> int:
    """Parameters of a :class:`HyperNetwork` generating ``num_fields`` rows of ``num_params``."""
    per_field = code_dim * hidden + hidden + (layers - 2) * (hidden * hidden + hidden) + hidden * num_params + num_params
    return num_fields * per_field


class GlobalField(nn.Module):
    """One SIREN psi(gamma(x)) on the absolute coordinate, same interface as a blend field.

    forward(points (B, N, 3), landmarks (ignored), code (B, d) or None) ->
    FieldOutput(value (B, N, out), weights = ones (B, N, 1)).
    """

    def __init__(
        self,
        out_dim: int,
        code_dim: int | None,
        hidden_dim: int,
        num_hidden_layers: int,
        positional_frequencies: int,
        first_omega: float,
        hidden_omega: float,
        output_scale: float,
        hyper_hidden: int,
        hyper_layers: int,
        hyper_output_scale: float,
    ) -> None:
        super().__init__()
        self.encoding = PositionalEncoding(3, positional_frequencies)
        self.layout = SirenLayout(
            self.encoding.out_dim, hidden_dim, num_hidden_layers, out_dim, first_omega, hidden_omega, output_scale
        )
        self.hyper = (
            HyperNetwork(code_dim, self.layout.init_params(1), hyper_hidden, hyper_layers, hyper_output_scale)
            if code_dim is not None
            else None
        )
        self.fields = SirenFields(1, self.layout) if code_dim is None else None

    def forward(self, points: torch.Tensor, landmarks: torch.Tensor | None = None, code: torch.Tensor | None = None) -> FieldOutput:
        params = None
        if self.hyper is not None:
            if code is None:
                raise ValueError("this field is generated from a code: pass code (B, d)")
            params = self.hyper(code).to(points.dtype)  # mixed precision reaches the hypernetwork only
        with torch.autocast(points.device.type, enabled=False):
            encoded = self.encoding(points)[:, None]  # (B, 1, N, E)
            value = self.fields(encoded) if params is None else siren_forward(encoded, params, self.layout)
        weights = torch.ones_like(points[..., :1])
        return FieldOutput(value[:, 0], weights)
