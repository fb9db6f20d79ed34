import pytest
import torch

from imface.config import ModelConfig
from imface.fields.blend import NeuralBlendField, blend_field_size, build_field
from imface.fields.global_field import GlobalField
from imface.fields.reference import loop_blend_forward

# The tests' codes are N(0, 1), ~30x trained codes; with the default hyper_output_scale (0.5) they
# generate fields so high-frequency that float32 rounding in the two evaluation orders exceeds 1e-5.
SMALL = dict(local_hidden=16, hyper_hidden=16, fusion_hidden=16, positional_frequencies=3, hyper_output_scale=0.01)


def _perturb(module: torch.nn.Module, scale: float = 0.005) -> None:
    """Move weights away from their initialisation so generated fields differ per code."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


@pytest.mark.parametrize("code_dim", [8, None])
def test_batched_blend_field_matches_loop_reference(code_dim):
    torch.manual_seed(0)
    field = NeuralBlendField(6, code_dim, ModelConfig(**SMALL))
    _perturb(field)
    points = torch.rand(3, 50, 3) * 2 - 1
    landmarks = torch.rand(3, 5, 3) * 0.5
    code = torch.randn(3, code_dim) if code_dim else None
    value, weights = field(points, landmarks, code)
    expected_value, expected_weights = loop_blend_forward(field, points, landmarks, code)
    assert value.shape == (3, 50, 6) and weights.shape == (3, 50, 5)
    assert torch.allclose(weights, expected_weights, atol=1e-6)
    assert torch.allclose(value, expected_value, atol=1e-5)
    # and against an inline loop over regions for the first scan (independent of reference.py)
    b = 0
    params = field.local_params(code)[b if code_dim else 0]
    manual = torch.zeros(50, 6)
    for n in range(5):
        h = field.encoding(points[b] - landmarks[b, n])
        layers = field.layout.unflatten(params[n])
        for i, (w, bias) in enumerate(layers):
            h = h @ w.T + bias
            if i < len(layers) - 1:
                h = torch.sin(field.layout.omegas[i] * h)
        manual += weights[b, :, n : n + 1] * h
    assert torch.allclose(value[b], manual, atol=1e-5)


def test_weights_are_a_partition_of_unity_and_landmarks_matter():
    torch.manual_seed(1)
    field = NeuralBlendField(1, None, ModelConfig(**SMALL))
    _perturb(field, 0.05)
    points = torch.rand(2, 40, 3) * 2 - 1
    value, weights = field(points, torch.zeros(5, 3))
    assert (weights > 0).all() and torch.allclose(weights.sum(-1), torch.ones(2, 40), atol=1e-6)
    moved, _ = field(points, torch.full((5, 3), 0.3))
    assert not torch.allclose(value, moved)


def test_batched_blend_field_handles_per_scan_codes_independently():
    torch.manual_seed(2)
    field = NeuralBlendField(3, 4, ModelConfig(**SMALL))
    _perturb(field)
    points, landmarks, codes = torch.rand(2, 20, 3), torch.rand(2, 5, 3), torch.randn(2, 4)
    both = field(points, landmarks, codes).value
    second = field(points[1:], landmarks[1:], codes[1:]).value
    assert torch.allclose(both[1:], second, atol=1e-5)


def test_no_blend_builds_size_matched_global_field():
    config = ModelConfig(blend=False, **SMALL)
    field = build_field(7, 8, config)
    assert isinstance(field, GlobalField)
    size = sum(p.numel() for p in field.parameters())
    target = blend_field_size(7, 8, ModelConfig(**SMALL))
    assert abs(size - target) <= 0.1 * target
    value, weights = field(torch.rand(2, 10, 3), None, torch.randn(2, 8))
    assert value.shape == (2, 10, 7) and torch.equal(weights, torch.ones(2, 10, 1))


def test_blend_field_size_counts_parameters():
    for code_dim in (8, None):
        field = NeuralBlendField(4, code_dim, ModelConfig(**SMALL))
        assert blend_field_size(4, code_dim, ModelConfig(**SMALL)) == sum(p.numel() for p in field.parameters())


def test_tiling_points_gives_the_same_values_and_gradients():
    torch.manual_seed(3)
    field = NeuralBlendField(4, 8, ModelConfig(**SMALL))
    _perturb(field)
    points = (torch.rand(2, 700, 3) * 2 - 1).requires_grad_(True)
    landmarks, code = torch.rand(2, 5, 3), torch.randn(2, 8)
    field.chunk_bytes = 0
    whole = field(points, landmarks, code)
    (grad_whole,) = torch.autograd.grad(whole.value.sum(), points)
    field.chunk_bytes = 1  # smallest tiles: 256 points -> 3 tiles
    tiled = field(points, landmarks, code)
    (grad_tiled,) = torch.autograd.grad(tiled.value.sum(), points)
    assert torch.allclose(whole.value, tiled.value, atol=1e-6)
    assert torch.allclose(whole.weights, tiled.weights, atol=1e-7)
    assert torch.allclose(grad_whole, grad_tiled, atol=1e-5)
