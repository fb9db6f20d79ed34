import math

import torch

from imface.components.encoding import PositionalEncoding, positional_encoding, shift_encoded_linear


def test_matches_naive_loop():
    x = torch.randn(4, 5, 3)
    frequencies = 4
    parts = [x]
    for k in range(frequencies):
        parts += [torch.sin(2.0**k * x), torch.cos(2.0**k * x)]
    expected = torch.cat(parts, dim=-1)
    assert torch.allclose(positional_encoding(x, frequencies), expected, atol=1e-6)


def test_module_dims_and_zero_frequencies():
    encoding = PositionalEncoding(3, 6)
    assert encoding.out_dim == 39
    assert encoding(torch.zeros(2, 3)).shape == (2, 39)
    x = torch.randn(2, 3)
    assert torch.equal(positional_encoding(x, 0), x)


def test_values_at_known_point():
    x = torch.tensor([[math.pi / 2, 0.0, 1.0]])
    out = positional_encoding(x, 1)
    assert torch.allclose(out, torch.tensor([[math.pi / 2, 0.0, 1.0, 1.0, 0.0, math.sin(1.0), 0.0, 1.0, math.cos(1.0)]]), atol=1e-6)


def test_shift_folded_into_linear_layer_matches_encoding_the_shifted_points():
    g = torch.Generator().manual_seed(0)
    for frequencies in (0, 1, 6):
        dim = 3 * (1 + 2 * frequencies)
        weight = torch.randn(2, 5, 8, dim, generator=g, dtype=torch.float64)
        bias = torch.randn(2, 5, 8, generator=g, dtype=torch.float64)
        shift = torch.randn(1, 5, 3, generator=g, dtype=torch.float64)  # broadcasts over the scans
        x = torch.randn(2, 5, 30, 3, generator=g, dtype=torch.float64)
        expected = positional_encoding(x - shift[:, :, None], frequencies) @ weight.transpose(-1, -2) + bias[..., None, :]
        new_weight, new_bias = shift_encoded_linear(weight, bias, shift, frequencies)
        assert new_weight.shape == weight.shape and new_bias.shape == bias.shape
        got = positional_encoding(x, frequencies) @ new_weight.transpose(-1, -2) + new_bias[..., None, :]
        assert torch.allclose(got, expected, atol=1e-9)
