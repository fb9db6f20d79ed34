"""Hyper Nets phi_n (paper Sec. 3.2): a latent code -> all parameters of a local field.

One ReLU MLP per local field, the K of them stored as grouped ("batched") linear
layers so that a single einsum evaluates all K hypernetworks for all B codes.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class GroupedLinear(nn.Module):
    """K independent linear layers applied to K groups of inputs.

    forward(x (B, K, in)) -> (B, K, out); weight (K, out, in), bias (K, out).
    Initialised like ``nn.Linear`` (uniform, bound 1/sqrt(in)) in each group.
    """

    def __init__(self, num_groups: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter((torch.rand(num_groups, out_dim, in_dim) * 2 - 1) * bound)
        self.bias = nn.Parameter((torch.rand(num_groups, out_dim) * 2 - 1) * bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One product per group as W @ x^T, so that the weight's gradient comes out in
        # the weight's own layout (an einsum copies the large output layer's weight,
        # x @ W^T its gradient, in every step). Returns a (B, K, out) view.
        out = torch.baddbmm(self.bias[:, :, None], self.weight, x.permute(1, 2, 0))  # (K, out, B)
        return out.permute(2, 0, 1)


class HyperNetwork(nn.Module):
    """K ReLU MLPs mapping a code (B, code_dim) to flat field parameters (B, K, P).

    ``num_layers`` linear layers (the first ``num_layers - 1`` followed by ReLU),
    hidden width ``hidden_dim``. Initialisation: the hidden biases are zero and the
    output layer's weights are scaled by ``output_scale`` with its bias set to
    ``base_params`` (K, P), the flattened SIREN initialisation of each field. A zero
    code therefore generates exactly ``base_params``, and a small code a field close
    to it, so every generated field starts as a properly initialised SIREN.
    """

    def __init__(
        self,
        code_dim: int,
        base_params: torch.Tensor,
        hidden_dim: int = 64,
        num_layers: int = 3,
        output_scale: float = 1e-2,
    ) -> None:
        super().__init__()
        if num_layers < 2:
            raise ValueError("a hypernetwork needs at least two layers")
        num_fields, num_params = base_params.shape
        dims = [code_dim] + [hidden_dim] * (num_layers - 1) + [num_params]
        self.layers = nn.ModuleList(GroupedLinear(num_fields, dims[i], dims[i + 1]) for i in range(num_layers))
        with torch.no_grad():
            for layer in self.layers[:-1]:
                layer.bias.zero_()
            self.layers[-1].weight.mul_(output_scale)
            self.layers[-1].bias.copy_(base_params)
        self.num_fields = num_fields
        self.num_params = num_params

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        """code: (B, code_dim) -> (B, K, P) flat parameters of the K local fields."""
        h = code[:, None, :].expand(code.shape[0], self.num_fields, code.shape[-1])
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            h = layer(h)
            if index < last:
                h = torch.relu(h)
        return h
