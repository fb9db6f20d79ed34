import math

import torch

from imface.components.siren import SirenFields, SirenLayout, sine, siren_forward


def test_layout_counts_and_unflatten_order():
    layout = SirenLayout(4, 8, 3, 2)
    assert layout.layer_shapes == [(8, 4), (8, 8), (8, 8), (2, 8)]
    assert layout.num_params == 8 * 4 + 8 + 2 * (64 + 8) + 2 * 8 + 2
    flat = torch.arange(layout.num_params, dtype=torch.float32)
    layers = layout.unflatten(flat)
    assert torch.equal(layers[0][0].flatten(), flat[:32]) and torch.equal(layers[0][1], flat[32:40])
    assert torch.equal(layers[-1][1], flat[-2:])


def test_initialisation_bounds():
    layout = SirenLayout(6, 32, 3, 1, first_omega=30.0, hidden_omega=30.0, output_scale=0.1)
    layers = layout.unflatten(layout.init_params(5))
    first_w, first_b = layers[0]
    assert first_w.abs().max() <= 1 / 6 and first_w.abs().max() > 0.8 / 6
    hidden_bound = math.sqrt(6 / 32) / 30
    assert layers[1][0].abs().max() <= hidden_bound and layers[1][0].abs().max() > 0.8 * hidden_bound
    assert layers[-1][0].abs().max() <= 0.1 * hidden_bound
    assert torch.equal(layers[-1][1], torch.zeros(5, 1))
    assert first_b.abs().max() <= 1 / math.sqrt(6)


def test_batched_forward_matches_per_field_loop():
    layout = SirenLayout(3, 16, 2, 4, first_omega=30.0, hidden_omega=20.0)
    params = layout.init_params(3 * 2).reshape(2, 3, -1) * 1.5
    x = torch.randn(2, 3, 10, 3)
    out = siren_forward(x, params, layout)
    assert out.shape == (2, 3, 10, 4)
    for b in range(2):
        for k in range(3):
            h = x[b, k]
            layers = layout.unflatten(params[b, k])
            for i, (w, bias) in enumerate(layers):
                h = h @ w.T + bias
                if i < len(layers) - 1:
                    h = torch.sin(layout.omegas[i] * h)
            assert torch.allclose(out[b, k], h, atol=1e-5)


def test_shared_fields_broadcast_over_scans_and_start_near_zero():
    fields = SirenFields(5, SirenLayout(3, 32, 3, 1))
    x = torch.rand(4, 5, 100, 3) * 2 - 1
    out = fields(x)
    assert out.shape == (4, 5, 100, 1)
    assert out.abs().max() < 0.05
    assert torch.allclose(out[0, 2], siren_forward(x[:1, 2:3], fields.params[None, 2:3], fields.layout)[0, 0])


def test_sine_matches_torch_sin_up_to_second_derivatives():
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.equal(sine(x), torch.sin(x))
    assert torch.autograd.gradcheck(sine, (x,))
    assert torch.autograd.gradgradcheck(sine, (x,))
    # the Eikonal pattern: a loss on d sine / dx, differentiated again
    (grad,) = torch.autograd.grad(sine(x).sum(), x, create_graph=True)
    (second,) = torch.autograd.grad(grad.square().sum(), x)
    (grad_ref,) = torch.autograd.grad(torch.sin(x).sum(), x, create_graph=True)
    (second_ref,) = torch.autograd.grad(grad_ref.square().sum(), x)
    assert torch.allclose(grad, grad_ref) and torch.allclose(second, second_ref)
