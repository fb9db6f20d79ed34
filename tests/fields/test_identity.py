"""The identity deformation field: near the identity map at initialisation (with the expression
field, as the model composes them), and the translation warp."""
import torch

from imface.config import ModelConfig
from imface.fields.expression import ExpressionField
from imface.fields.identity import IdentityField
from tests.fields import SMALL


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
