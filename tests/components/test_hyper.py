import torch

from imface.components.hyper import GroupedLinear, HyperNetwork
from imface.components.siren import SirenLayout, siren_forward


def test_grouped_linear_matches_separate_layers():
    layer = GroupedLinear(3, 4, 5)
    x = torch.randn(2, 3, 4)
    out = layer(x)
    for k in range(3):
        assert torch.allclose(out[:, k], x[:, k] @ layer.weight[k].T + layer.bias[k], atol=1e-6)


def test_output_shapes():
    layout = SirenLayout(39, 32, 3, 6)
    hyper = HyperNetwork(16, layout.init_params(5), hidden_dim=64, num_layers=3)
    params = hyper(torch.randn(7, 16))
    assert params.shape == (7, 5, layout.num_params)
    weights = layout.unflatten(params)
    assert weights[0][0].shape == (7, 5, 32, 39) and weights[-1][1].shape == (7, 5, 6)


def test_zero_code_generates_exactly_the_siren_initialisation():
    layout = SirenLayout(39, 32, 3, 6)
    base = layout.init_params(5)
    hyper = HyperNetwork(16, base, hidden_dim=64, num_layers=3, output_scale=1e-2)
    generated = hyper(torch.zeros(2, 16))
    assert torch.equal(generated, base.expand(2, -1, -1))
    # the generated fields output near zero on the unit ball
    x = torch.rand(2, 5, 200, 39) * 2 - 1
    assert siren_forward(x, generated, layout).abs().max() < 0.1
    # a small code (as at the start of training) stays close to the initialisation
    nearby = hyper(torch.randn(2, 16) * 0.01)
    assert (nearby - base).abs().max() < 1e-3
    assert not torch.equal(nearby, generated)


def test_gradients_reach_every_hypernetwork_parameter():
    hyper = HyperNetwork(8, SirenLayout(3, 8, 2, 1).init_params(2), hidden_dim=16, num_layers=3)
    hyper(torch.randn(3, 8)).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in hyper.parameters())
