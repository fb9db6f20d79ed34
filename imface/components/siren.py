"""Batched SIRENs (Sitzmann et al. 2020): K small sine MLPs evaluated together.

Each local field psi_n is an MLP with ``num_hidden_layers`` sine layers of width
``hidden_dim`` and a linear output layer: ``in -> h -> ... -> h -> out`` (so
``num_hidden_layers + 1`` linear layers). Its parameters are kept *flattened*, one
row of P numbers per field, because a hypernetwork generates exactly such rows; the
same evaluator serves generated fields (ExpNet, IDNet) and plain ones (TempNet).

Flat layout of one row: for each layer in order, the weight (out, in) row-major,
then the bias (out,).
"""
from __future__ import annotations

import math

import torch
from torch import nn


class _SinCos(torch.autograd.Function):
    """(sin x, cos x) with cos x as a second differentiable output.

    Spatial gradients of a SIREN need cos(pre-activation) and the losses on them need
    its derivative -sin; computing both once in the forward pass and reusing them in
    every backward (``backward`` is itself differentiable, through the saved outputs)
    halves the transcendental passes of autograd's double backward through ``sin``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        sin, cos = torch.sin(x), torch.cos(x)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(sin, cos)
        return sin, cos

    @staticmethod
    def backward(ctx, grad_sin: torch.Tensor | None, grad_cos: torch.Tensor | None) -> torch.Tensor | None:  # type: ignore[override]
        sin, cos = ctx.saved_tensors
        grad = None
        if grad_sin is not None:
            grad = grad_sin * cos
        if grad_cos is not None:  # one fused multiply-subtract where both are given
            grad = -grad_cos * sin if grad is None else torch.addcmul(grad, grad_cos, sin, value=-1.0)
        return grad


def sine(x: torch.Tensor) -> torch.Tensor:
    """sin(x), with cheaper first and second derivatives than ``torch.sin`` (see ``_SinCos``)."""
    if not torch.is_grad_enabled() or not x.requires_grad:
        return torch.sin(x)
    return _SinCos.apply(x)[0]


class SirenLayout:
    """Shapes, initialisation and (un)flattening of a SIREN's parameters.

    first_omega / hidden_omega: the frequency factor omega_0 of the first / other
    sine layers. output_scale: the output layer's SIREN weights are multiplied by it
    and its bias is zero, so a freshly initialised field outputs values near 0.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        num_hidden_layers: int,
        out_dim: int,
        first_omega: float = 30.0,
        hidden_omega: float = 30.0,
        output_scale: float = 0.1,
    ) -> None:
        if num_hidden_layers < 1:
            raise ValueError("a SIREN needs at least one hidden layer")
        dims = [in_dim] + [hidden_dim] * num_hidden_layers + [out_dim]
        self.in_dim, self.hidden_dim, self.out_dim = in_dim, hidden_dim, out_dim
        self.layer_shapes: list[tuple[int, int]] = [(dims[i + 1], dims[i]) for i in range(len(dims) - 1)]
        self.omegas = [first_omega] + [hidden_omega] * (num_hidden_layers - 1)
        self.output_scale = output_scale
        self.num_params = sum(o * i + o for o, i in self.layer_shapes)

    def init_params(self, num_fields: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """SIREN initialisation of ``num_fields`` independent fields: (num_fields, P) float32."""
        chunks = []
        last = len(self.layer_shapes) - 1
        for index, (out_dim, in_dim) in enumerate(self.layer_shapes):
            if index == 0:
                bound = 1.0 / in_dim
            else:
                bound = math.sqrt(6.0 / in_dim) / self.omegas[min(index, len(self.omegas) - 1)]
            weight = (torch.rand(num_fields, out_dim * in_dim, generator=generator) * 2 - 1) * bound
            if index == last:
                weight = weight * self.output_scale
                bias = torch.zeros(num_fields, out_dim)
            else:
                bias_bound = 1.0 / math.sqrt(in_dim)  # PyTorch's default, as in the SIREN reference code
                bias = (torch.rand(num_fields, out_dim, generator=generator) * 2 - 1) * bias_bound
            chunks += [weight, bias]
        return torch.cat(chunks, dim=-1)

    def unflatten(self, params: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Split (..., P) flat rows into per-layer (weight (..., out, in), bias (..., out)) views."""
        layers = []
        offset = 0
        lead = params.shape[:-1]
        for out_dim, in_dim in self.layer_shapes:
            weight = params[..., offset : offset + out_dim * in_dim].reshape(*lead, out_dim, in_dim)
            offset += out_dim * in_dim
            bias = params[..., offset : offset + out_dim]
            offset += out_dim
            layers.append((weight, bias))
        return layers


def siren_forward(x: torch.Tensor, params: torch.Tensor, layout: SirenLayout) -> torch.Tensor:
    """Evaluate K SIRENs per scan in one batched matrix product per layer.

    x: (B, K, N, in) inputs of field k of scan b. params: (B, K, P) flat parameters
    (B may be 1 to share fields across scans). Returns (B, K, N, out).
    """
    batch = max(x.shape[0], params.shape[0])
    num_fields, num_points = x.shape[1], x.shape[2]
    h = x.expand(batch, *x.shape[1:]).reshape(batch * num_fields, num_points, x.shape[-1])
    out = siren_layers(h.transpose(1, 2), layout.unflatten(params), layout.omegas, batch)
    return out.transpose(1, 2).reshape(batch, num_fields, num_points, -1)


def siren_layers(
    h: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]], omegas: list[float], batch: int
) -> torch.Tensor:
    """Run SIREN layers on already batched, feature-major inputs.

    h: (B * K, in, N), features before points: each layer is then ``W @ h`` on
    contiguous memory and K fields of a scan stacked along the features are already
    in this layout, with no transposed copies. layers: (weight (B or 1, K, out, in),
    bias (B or 1, K, out)) per layer; all but the last are followed by
    sin(omega * .), with omegas[i] for layer i. Returns (B * K, out, N).
    """
    return run_layers(h, batch_layers(layers, omegas, batch))


def batch_layers(
    layers: list[tuple[torch.Tensor, torch.Tensor]], omegas: list[float], batch: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The layers of :func:`siren_layers` as :func:`run_layers` takes them.

    Returns (weight (B * K, out, in), bias (B * K, out, 1)) per layer, with omega folded
    into all but the last (sin(omega (W h + b)) = sin(W' h + b')). Done once per batch
    of fields, so that evaluating them on several tiles of points shares it.
    """
    last = len(layers) - 1
    batched = []
    for index, (weight, bias) in enumerate(layers):
        num_fields, out_dim, in_dim = weight.shape[-3:]
        if index < last:
            weight, bias = weight * omegas[index], bias * omegas[index]
        weight = weight.expand(batch, num_fields, out_dim, in_dim).reshape(batch * num_fields, out_dim, in_dim)
        bias = bias.expand(batch, num_fields, out_dim).reshape(batch * num_fields, out_dim, 1)
        batched.append((weight, bias))
    return batched


def run_layers(h: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """h (B * K, in, N) through layers from :func:`batch_layers`, sine after all but the last."""
    last = len(layers) - 1
    for index, (weight, bias) in enumerate(layers):
        h = torch.baddbmm(bias, weight, h)
        if index < last:
            h = sine(h)
    return h


class SirenFields(nn.Module):
    """K plain SIRENs with their own weights (TempNet's local fields), batched.

    forward(x (B, K, N, in)) -> (B, K, N, out).
    """

    def __init__(self, num_fields: int, layout: SirenLayout) -> None:
        super().__init__()
        self.layout = layout
        self.params = nn.Parameter(layout.init_params(num_fields))  # (K, P)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return siren_forward(x, self.params[None], self.layout)
