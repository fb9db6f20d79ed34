import torch

from imface.config import ModelConfig
from imface.fields.expression import ExpressionField
from imface.fields.identity import IdentityField
from imface.fields.template import TemplateField

SMALL = dict(local_hidden=16, hyper_hidden=16, fusion_hidden=16, positional_frequencies=2, exp_code_dim=8, id_code_dim=8)


def test_neutral_suppression_is_exact_identity_and_keeps_parameters_in_graph():
    torch.manual_seed(0)
    field = ExpressionField(ModelConfig(**SMALL))
    points = torch.rand(3, 30, 3) * 2 - 1
    codes = torch.randn(3, 8)
    landmarks = torch.rand(3, 5, 3)
    neutral = torch.tensor([True, False, True])
    out = field(points, codes, landmarks, neutral)
    assert torch.equal(out.points[0], points[0]) and torch.equal(out.points[2], points[2])
    assert not torch.equal(out.points[1], points[1])
    assert torch.equal(out.deformation[0], torch.zeros_like(out.deformation[0]))
    # all neutral: every parameter is in the graph with an exactly zero gradient
    all_neutral = field(points, codes, landmarks, torch.ones(3, dtype=torch.bool))
    assert torch.equal(all_neutral.points, points)
    points_grad = torch.rand_like(points)
    (all_neutral.points * points_grad).sum().backward()
    for p in field.parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) == 0


def test_initial_deformations_are_near_identity():
    torch.manual_seed(1)
    config = ModelConfig(**SMALL)
    points = torch.rand(2, 100, 3) * 2 - 1
    codes = torch.randn(2, 8) * 0.01
    landmarks = torch.rand(2, 5, 3) * 0.5
    expressed = ExpressionField(config)(points, codes, landmarks, torch.zeros(2, dtype=torch.bool))
    assert (expressed.points - points).abs().max() < 0.05
    identity = IdentityField(config)(points, codes, landmarks)
    assert identity.points.shape == (2, 100, 3) and identity.residual.shape == (2, 100)
    assert (identity.points - points).abs().max() < 0.05 and identity.residual.abs().max() < 0.05


def test_translation_warp_adds_the_blended_offsets():
    torch.manual_seed(2)
    field = IdentityField(ModelConfig(warp="translation", **SMALL))
    points, codes, landmarks = torch.rand(2, 10, 3), torch.randn(2, 8), torch.rand(2, 5, 3)
    out = field(points, codes, landmarks)
    assert out.deformation.shape == (2, 10, 3)
    assert torch.allclose(out.points, points + out.deformation)


def test_template_field_shapes_and_shared_landmarks():
    torch.manual_seed(3)
    field = TemplateField(ModelConfig(**SMALL))
    points, landmarks = torch.rand(2, 10, 3), torch.rand(5, 3)
    out = field(points, landmarks)
    assert out.sdf.shape == (2, 10) and out.weights.shape == (2, 10, 5)
    assert torch.allclose(out.sdf, field(points, landmarks.expand(2, 5, 3)).sdf)
