import math

import pytest
import torch

from imface.components.siren import SirenFields, SirenLayout
from imface.config import LossConfig, ModelConfig
from imface.losses import (
    LOSS_KEYS,
    compute_losses,
    eikonal_loss,
    embedding_loss,
    landmark_consistency_loss,
    landmark_generation_loss,
    landmark_l1,
    normal_loss,
    residual_loss,
    sdf_loss,
)


def test_sdf_loss_known_value():
    assert sdf_loss(torch.tensor([[0.1, -0.2], [0.3, 0.0]]), torch.tensor([[0.0, 0.0], [0.1, 0.5]])).item() == pytest.approx(
        (0.1 + 0.2 + 0.2 + 0.5) / 4
    )


def test_normal_loss_is_a_cosine():
    gradient = torch.tensor([[[2.0, 0.0, 0.0], [1.0, 0.0, 0.0], [-3.0, 0.0, 0.0], [1.0, 1.0, 0.0]]])
    target = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    expected = (0.0 + 1.0 + 2.0 + (1 - 1 / math.sqrt(2))) / 4
    assert normal_loss(gradient, target).item() == pytest.approx(expected, abs=1e-6)


def test_eikonal_loss_known_value():
    gradient = torch.tensor([[[0.0, 2.0, 0.0], [0.3, 0.4, 0.0], [0.6, 0.0, 0.8]]])
    assert eikonal_loss(gradient).item() == pytest.approx((1.0 + 0.5 + 0.0) / 3, abs=1e-6)


def test_embedding_loss_mean_and_mask():
    codes = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert embedding_loss(codes).item() == pytest.approx(30 / 4)
    # per-scan means, averaged over all scans; the unselected scan counts as 0
    assert embedding_loss(codes, torch.tensor([True, False])).item() == pytest.approx((5 / 2) / 2)
    codes.requires_grad_(True)
    none = embedding_loss(codes, torch.tensor([False, False]))
    assert none.item() == 0.0
    none.backward()
    assert codes.grad is not None


def test_landmark_l1_with_mask():
    predicted = torch.zeros(1, 3, 3)
    target = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 3.0, 3.0], [9.0, 9.0, 9.0]]])
    assert landmark_l1(predicted, target).item() == pytest.approx(34 / 9)
    mask = torch.tensor([[True, True, False]])
    assert landmark_l1(predicted, target, mask).item() == pytest.approx(7 / 6)
    # two scans: per-scan means (7/6 and 9 over its single given row), then their mean;
    # a scan with no given row counts as 0
    two = torch.cat((target, torch.full((1, 3, 3), 9.0)))
    masks = torch.tensor([[True, True, False], [False, False, True]])
    assert landmark_l1(torch.zeros(2, 3, 3), two, masks).item() == pytest.approx((7 / 6 + 9.0) / 2)
    none = torch.tensor([[True, True, False], [False, False, False]])
    assert landmark_l1(torch.zeros(2, 3, 3), two, none).item() == pytest.approx((7 / 6) / 2)


def test_landmark_generation_and_consistency_known_values():
    l = torch.zeros(1, 5, 3)
    scan = torch.full((1, 5, 3), 0.1)
    lp = torch.full((1, 5, 3), 0.2)
    neutral = torch.zeros(1, 5, 3)
    assert landmark_generation_loss(l, scan).item() == pytest.approx(0.1)
    assert landmark_generation_loss(l, scan, lp, neutral).item() == pytest.approx(0.3)

    template = torch.zeros(68, 3)
    template_warped = torch.full((1, 68, 3), 0.5)
    scan_mask = torch.zeros(1, 68, dtype=torch.bool)
    scan_mask[0, :10] = True
    warped = torch.full((1, 68, 3), 1.0)
    neutral68 = torch.zeros(1, 68, 3)
    neutral_mask = torch.zeros(1, 68, dtype=torch.bool)
    neutral_mask[0, 5:] = True
    warped[0, 5:10] = 2.0  # only rows 5..9 are given in both
    assert landmark_consistency_loss(template_warped, template, scan_mask).item() == pytest.approx(0.5)
    both = landmark_consistency_loss(template_warped, template, scan_mask, warped, neutral68, neutral_mask)
    assert both.item() == pytest.approx(0.5 + 2.0)


def test_residual_loss_known_value():
    assert residual_loss(torch.tensor([[-0.5, 0.25], [0.0, 0.25]])).item() == pytest.approx(0.25)


def _fake_outputs_and_batch(disentangled: bool):
    B, Ns, Nq = 2, 3, 4
    outputs = {
        "surface_sdf": torch.full((B, Ns), 0.1),
        "space_sdf": torch.full((B, Nq), 0.2),
        "surface_gradient": torch.tensor([2.0, 0.0, 0.0]).expand(B, Ns, 3),
        "space_gradient": torch.tensor([0.0, 0.5, 0.0]).expand(B, Nq, 3),
        "surface_residual": torch.full((B, Ns), -0.01),
        "space_residual": torch.full((B, Nq), 0.03),
        "landmarks": torch.zeros(B, 5, 3),
        "template_warped_landmarks": torch.full((B, 68, 3), 0.1),
        "template_landmarks": torch.zeros(68, 3),
        "id_codes": torch.full((B, 4), 0.01),
        "exp_codes": torch.tensor([[0.02] * 4, [100.0] * 4]),
    }
    if disentangled:
        outputs.update(
            surface_canonical_gradient=torch.tensor([0.0, 0.0, 3.0]).expand(B, Ns, 3),
            space_canonical_gradient=torch.tensor([0.0, 0.0, 1.0]).expand(B, Nq, 3),
            canonical_landmarks=torch.full((B, 5, 3), 0.05),
            warped_landmarks=torch.full((B, 68, 3), 0.3),
        )
    batch = {
        "surface_normals": torch.tensor([1.0, 0.0, 0.0]).expand(B, Ns, 3),
        "space_grad": torch.tensor([1.0, 0.0, 0.0]).expand(B, Nq, 3),
        "space_sdf": torch.full((B, Nq), 0.5),
        "landmarks": torch.full((B, 68, 3), 0.2),
        "landmarks_mask": torch.ones(B, 68, dtype=torch.bool),
        "neutral_landmarks": torch.zeros(B, 68, 3),
        "neutral_landmarks_mask": torch.ones(B, 68, dtype=torch.bool),
        "neutral": torch.tensor([False, True]),
    }
    return outputs, batch


def test_compute_losses_hand_computed_disentangled():
    outputs, batch = _fake_outputs_and_batch(True)
    config = LossConfig()
    losses = compute_losses(outputs, batch, config, ModelConfig(id_code_dim=4, exp_code_dim=4))
    assert set(losses) == set(LOSS_KEYS) | {"total"}
    expected = {
        "sdf": 3000 * (3 * 0.1 + 4 * 0.3) / 7,
        "normal": 100 * (3 * 0.0 + 4 * 1.0) / 7,
        "eikonal": 50 * (3 * 1.0 + 4 * 0.5) / 7,
        "eikonal_canonical": 50 * (3 * 2.0 + 4 * 0.0) / 7,
        # the neutral scan's expression code (100s) counts as 0 in the mean over the 2 scans
        "embedding": 1e6 * (0.01**2 + 0.02**2 / 2),
        "landmark_generation": 1000 * (0.2 + 0.05),
        "landmark_consistency": 100 * (0.1 + 0.3),
        "residual": 100 * (3 * 0.01 + 4 * 0.03) / 7,
    }
    for key, value in expected.items():
        assert losses[key].item() == pytest.approx(value, rel=1e-5), key
    assert losses["total"].item() == pytest.approx(sum(expected.values()), rel=1e-5)


def test_compute_losses_surface_only_normals_and_joint_ablation():
    outputs, batch = _fake_outputs_and_batch(False)
    config = LossConfig(normal_on_space_points=False, sdf=0.0)
    losses = compute_losses(outputs, batch, config, ModelConfig(deformation="joint", id_code_dim=4, exp_code_dim=4))
    assert "eikonal_canonical" not in losses
    assert losses["sdf"].item() == 0.0
    assert losses["normal"].item() == pytest.approx(0.0, abs=1e-6)
    # joint: no neutral suppression, every expression code counts; no eta' and no canonical term
    assert losses["embedding"].item() == pytest.approx(1e6 * (0.01**2 + (0.02**2 + 100.0**2) / 2), rel=1e-5)
    assert losses["landmark_generation"].item() == pytest.approx(1000 * 0.2, rel=1e-5)
    assert losses["landmark_consistency"].item() == pytest.approx(100 * 0.1, rel=1e-5)


def test_eikonal_fit_of_a_sphere_has_unit_gradient_and_right_zero_level():
    """A small SIREN trained with the SDF + Eikonal terms learns a sphere's distance field."""
    torch.manual_seed(0)
    radius = 0.5
    field = SirenFields(1, SirenLayout(3, 64, 2, 1, first_omega=3.0, hidden_omega=30.0, output_scale=1.0))
    optimizer = torch.optim.Adam(field.parameters(), lr=1e-3)

    def evaluate(points: torch.Tensor, create_graph: bool):
        points = points.requires_grad_(True)
        values = field(points[None, None])[0, 0, :, 0]
        (grad,) = torch.autograd.grad(values.sum(), points, create_graph=create_graph)
        return values, grad

    for _ in range(400):
        surface = torch.nn.functional.normalize(torch.randn(256, 3), dim=-1) * radius
        space = torch.rand(256, 3) * 2 - 1
        values, grad = evaluate(torch.cat((surface, space)), True)
        target = torch.cat((torch.zeros(256), space.norm(dim=-1) - radius))
        loss = 3 * sdf_loss(values[None], target[None]) + 0.5 * eikonal_loss(grad[None])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    directions = torch.nn.functional.normalize(torch.randn(500, 3), dim=-1)
    for r in (0.45, 0.5, 0.55):
        values, grad = evaluate(directions * r, False)
        assert abs(grad.norm(dim=-1).mean().item() - 1.0) < 0.1
        assert abs(values.mean().item() - (r - radius)) < 0.02
