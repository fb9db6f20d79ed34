"""Plain fully connected networks (Landmark-Nets, Fusion Network)."""
from __future__ import annotations

from torch import nn

_ACTIVATIONS = {"leaky_relu": lambda: nn.LeakyReLU(0.01), "relu": nn.ReLU, "softplus": lambda: nn.Softplus(beta=100)}


def activation(name: str) -> nn.Module:
    """An activation module by name: 'leaky_relu', 'relu' or 'softplus'."""
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}: expected one of {sorted(_ACTIVATIONS)}") from None


def mlp(in_dim: int, hidden_dim: int, out_dim: int, num_layers: int, activation_name: str = "leaky_relu") -> nn.Sequential:
    """``num_layers`` linear layers (>= 1) with an activation between them, none after the last.

    Maps (..., in_dim) -> (..., out_dim); the ``num_layers - 1`` hidden layers are ``hidden_dim`` wide.
    """
    if num_layers < 1:
        raise ValueError("an MLP needs at least one layer")
    dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
    layers: list[nn.Module] = []
    for i in range(num_layers):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < num_layers - 1:
            layers.append(activation(activation_name))
    return nn.Sequential(*layers)


def last_linear(net: nn.Sequential) -> nn.Linear:
    """The output layer of an :func:`mlp` (to re-initialise it)."""
    layer = net[-1]
    assert isinstance(layer, nn.Linear)
    return layer
