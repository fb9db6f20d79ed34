"""The expression deformation field: neutral scans are exactly undeformed, and still in the graph."""
import torch

from imface.config import ModelConfig
from imface.fields.expression import ExpressionField
from tests.fields import SMALL


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
