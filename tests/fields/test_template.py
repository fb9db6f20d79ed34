"""The template field: output shapes, and one landmark set shared by the batch."""
import torch

from imface.config import ModelConfig
from imface.fields.template import TemplateField
from tests.fields import SMALL


def test_template_field_shapes_and_shared_landmarks():
    torch.manual_seed(3)
    field = TemplateField(ModelConfig(**SMALL))
    points, landmarks = torch.rand(2, 10, 3), torch.rand(5, 3)
    out = field(points, landmarks)
    assert out.sdf.shape == (2, 10) and out.weights.shape == (2, 10, 5)
    assert torch.allclose(out.sdf, field(points, landmarks.expand(2, 5, 3)).sdf)
