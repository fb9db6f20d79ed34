"""Naive per-scan, per-region loop implementation of the Neural Blend-Field.

Slow on purpose: it is the reference that tests compare the batched field against
and the baseline that ``bench/train_step.py`` measures the batched model against.
It uses the parameters of an existing :class:`NeuralBlendField` unchanged.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from imface.components.encoding import positional_encoding
from imface.components.hyper import HyperNetwork
from imface.fields.blend import NeuralBlendField
from imface.fields.global_field import FieldOutput


def _generate_one(hyper: HyperNetwork, code: torch.Tensor, region: int) -> torch.Tensor:
    """Hypernetwork phi_region on one code (d,) -> flat field parameters (P,)."""
    h = code
    last = len(hyper.layers) - 1
    for index, layer in enumerate(hyper.layers):
        h = F.linear(h, layer.weight[region], layer.bias[region])
        if index < last:
            h = torch.relu(h)
    return h


def loop_blend_forward(
    field: NeuralBlendField, points: torch.Tensor, landmarks: torch.Tensor, code: torch.Tensor | None = None
) -> FieldOutput:
    """Eq. 6 with Python loops over scans and regions; same contract as ``field.forward``.

    points (B, N, 3), landmarks (B, K, 3) or (K, 3), code (B, d) or None ->
    FieldOutput(value (B, N, out), weights (B, N, K)).
    """
    batch = points.shape[0]
    if landmarks.dim() == 2:
        landmarks = landmarks[None].expand(batch, -1, -1)
    frequencies = field.encoding.num_frequencies
    last = len(field.layout.layer_shapes) - 1
    values, all_weights = [], []
    for b in range(batch):
        weights = torch.softmax(field.fusion.net(points[b]), dim=-1)  # (N, K)
        value = 0.0
        for region in range(field.num_regions):
            if field.hyper is not None:
                assert code is not None
                params = _generate_one(field.hyper, code[b], region)
            else:
                assert field.fields is not None
                params = field.fields.params[region]
            h = positional_encoding(points[b] - landmarks[b, region], frequencies)
            for index, (weight, bias) in enumerate(field.layout.unflatten(params)):
                h = F.linear(h, weight, bias)
                if index < last:
                    h = torch.sin(field.layout.omegas[index] * h)
            value = value + weights[:, region : region + 1] * h
        values.append(value)
        all_weights.append(weights)
    return FieldOutput(torch.stack(values), torch.stack(all_weights))


class LoopBlendField(nn.Module):
    """Wraps a :class:`NeuralBlendField` and evaluates it with :func:`loop_blend_forward`."""

    def __init__(self, field: NeuralBlendField) -> None:
        super().__init__()
        self.inner = field

    def forward(self, points: torch.Tensor, landmarks: torch.Tensor, code: torch.Tensor | None = None) -> FieldOutput:
        return loop_blend_forward(self.inner, points, landmarks, code)


def loop_reference_model(model: nn.Module) -> nn.Module:
    """A copy of an ImFace model (same weights) whose blend fields run as naive loops."""
    reference = copy.deepcopy(model)
    for name in ("expression_field", "identity_field", "template_field"):
        sub = getattr(reference, name, None)
        if sub is not None and isinstance(sub.field, NeuralBlendField):
            sub.field = LoopBlendField(sub.field)
    return reference
