"""Sinusoidal positional encoding gamma (paper Sec. 3.2, after NeRF)."""
from __future__ import annotations

import torch
from torch import nn


def positional_encoding(x: torch.Tensor, num_frequencies: int) -> torch.Tensor:
    """``[x, sin(2^0 x), cos(2^0 x), ..., sin(2^(F-1) x), cos(2^(F-1) x)]``.

    x: (..., D) coordinates (model units). Returns (..., D * (1 + 2F)); the raw input
    comes first, then for each frequency the sines and cosines of all D channels.
    ``num_frequencies = 0`` returns ``x`` itself.
    """
    if num_frequencies <= 0:
        return x
    scales = 2.0 ** torch.arange(num_frequencies, dtype=x.dtype, device=x.device)  # (F,)
    scaled = x[..., None, :] * scales[:, None]  # (..., F, D)
    waves = torch.stack((torch.sin(scaled), torch.cos(scaled)), dim=-2)  # (..., F, 2, D)
    return torch.cat((x, waves.flatten(-3)), dim=-1)


class PositionalEncoding(nn.Module):
    """Module form of :func:`positional_encoding` for ``in_dim`` input channels."""

    def __init__(self, in_dim: int, num_frequencies: int) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.num_frequencies = max(0, int(num_frequencies))

    @property
    def out_dim(self) -> int:
        return self.in_dim * (1 + 2 * self.num_frequencies)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return positional_encoding(x, self.num_frequencies)


def shift_encoded_linear(
    weight: torch.Tensor, bias: torch.Tensor, shift: torch.Tensor, num_frequencies: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold a coordinate shift into a linear layer that reads the positional encoding.

    Returns (weight', bias') with ``weight' @ gamma(x) + bias' == weight @ gamma(x - shift) + bias``
    for every x, by the angle-addition formulas
    ``sin(a - c) = sin a cos c - cos a sin c`` and ``cos(a - c) = cos a cos c + sin a sin c``.
    This lets K local fields centred on K landmarks share one encoding of x instead of
    encoding K offsets.

    weight: (..., H, 3 (1 + 2F)) in the layout of :func:`positional_encoding`;
    bias: (..., H); shift: (..., 3) model units, its leading dims broadcast with the
    weight's. Returns weight' (..., H, 3 (1 + 2F)) and bias' (..., H).
    """
    raw = weight[..., :3]
    new_bias = bias - (raw * shift[..., None, :]).sum(-1)
    if num_frequencies <= 0:
        return raw.expand(*new_bias.shape, 3), new_bias
    scales = 2.0 ** torch.arange(num_frequencies, dtype=weight.dtype, device=weight.device)
    angles = shift[..., None, :] * scales[:, None]  # (..., F, 3)
    cos_c, sin_c = torch.cos(angles)[..., None, :, :], torch.sin(angles)[..., None, :, :]  # (..., 1, F, 3)
    waves = weight[..., 3:].unflatten(-1, (num_frequencies, 2, 3))  # (..., H, F, 2, 3)
    w_sin, w_cos = waves[..., 0, :], waves[..., 1, :]
    new_sin = w_sin * cos_c + w_cos * sin_c
    new_cos = w_cos * cos_c - w_sin * sin_c
    new_waves = torch.stack((new_sin, new_cos), dim=-2).flatten(-3)
    raw = raw.expand(*new_waves.shape[:-1], 3)
    return torch.cat((raw, new_waves), dim=-1), new_bias
