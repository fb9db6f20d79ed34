import pytest
import torch
from torch import nn

from imface.components.mlp import last_linear, mlp


def test_layer_count_and_shapes():
    net = mlp(5, 16, 2, 3, "leaky_relu")
    linears = [m for m in net if isinstance(m, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(5, 16), (16, 16), (16, 2)]
    assert last_linear(net) is linears[-1]
    assert net(torch.randn(7, 5)).shape == (7, 2)


def test_bad_arguments():
    with pytest.raises(ValueError):
        mlp(3, 4, 5, 0)
    with pytest.raises(ValueError):
        mlp(3, 4, 5, 2, "tanhh")
