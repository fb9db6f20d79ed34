import math

import pytest
import torch

from imface.ops.se3 import deformation_dim, hat, se3_apply, se3_exp, so3_exp, warp_points


def _twist_matrix(twist: torch.Tensor) -> torch.Tensor:
    """The 4x4 se(3) matrix [[hat(omega), v], [0, 0]], built entry by entry."""
    out = torch.zeros(*twist.shape[:-1], 4, 4, dtype=twist.dtype)
    wx, wy, wz = twist[..., 0], twist[..., 1], twist[..., 2]
    out[..., 0, 1], out[..., 0, 2] = -wz, wy
    out[..., 1, 0], out[..., 1, 2] = wz, -wx
    out[..., 2, 0], out[..., 2, 1] = -wy, wx
    out[..., :3, 3] = twist[..., 3:]
    return out


def _random_twists(n: int, generator: torch.Generator) -> torch.Tensor:
    directions = torch.nn.functional.normalize(torch.randn(n, 3, generator=generator, dtype=torch.float64), dim=-1)
    # angles from tiny (Taylor branch) through the switch-over to large rotations
    angles = torch.cat((
        torch.tensor([0.0, 1e-9, 1e-6, 1e-3, 0.05, 0.1999, 0.2001, 0.5, 1.0, 2.5, 3.1, math.pi - 1e-3], dtype=torch.float64),
        torch.rand(n - 12, generator=generator, dtype=torch.float64) * 3.0,
    ))
    v = torch.randn(n, 3, generator=generator, dtype=torch.float64)
    return torch.cat((directions * angles[:, None], v), dim=-1)


def test_hat_is_cross_product():
    g = torch.Generator().manual_seed(0)
    w, x = torch.randn(10, 3, generator=g), torch.randn(10, 3, generator=g)
    assert torch.allclose((hat(w) @ x[..., None])[..., 0], torch.cross(w, x, dim=-1), atol=1e-6)


def test_se3_exp_matches_matrix_exp():
    g = torch.Generator().manual_seed(1)
    twists = _random_twists(64, g)
    expected = torch.linalg.matrix_exp(_twist_matrix(twists))
    assert torch.allclose(se3_exp(twists), expected, atol=1e-10)
    assert torch.allclose(so3_exp(twists[:, :3]), expected[:, :3, :3], atol=1e-10)


def test_se3_exp_float32_close_to_float64_reference():
    g = torch.Generator().manual_seed(2)
    twists = _random_twists(64, g)
    expected = torch.linalg.matrix_exp(_twist_matrix(twists)).float()
    assert torch.allclose(se3_exp(twists.float()), expected, atol=2e-6)


def test_se3_apply_matches_homogeneous_matrix():
    g = torch.Generator().manual_seed(3)
    twists = _random_twists(40, g)
    points = torch.randn(40, 3, generator=g, dtype=torch.float64)
    matrix = torch.linalg.matrix_exp(_twist_matrix(twists))
    expected = (matrix[:, :3, :3] @ points[..., None])[..., 0] + matrix[:, :3, 3]
    assert torch.allclose(se3_apply(twists, points), expected, atol=1e-10)
    assert torch.allclose(warp_points(points, twists, "se3"), expected, atol=1e-10)


def test_rotation_is_orthonormal_for_large_angles():
    g = torch.Generator().manual_seed(4)
    rotation = so3_exp(torch.randn(100, 3, generator=g, dtype=torch.float64) * 3)
    eye = torch.eye(3, dtype=torch.float64).expand_as(rotation)
    assert torch.allclose(rotation @ rotation.transpose(-1, -2), eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(rotation), torch.ones(100, dtype=torch.float64), atol=1e-12)


def test_zero_twist_is_identity_with_finite_gradients():
    twist = torch.zeros(5, 6, requires_grad=True)
    points = torch.randn(5, 3)
    moved = se3_apply(twist, points)
    assert torch.equal(moved, points)
    (grad,) = torch.autograd.grad(moved.sum(), twist, create_graph=True)
    assert torch.isfinite(grad).all()
    (second,) = torch.autograd.grad(grad.square().sum(), twist)
    assert torch.isfinite(second).all()


@pytest.mark.parametrize("scale", [0.0, 1e-8, 1e-3, 0.15])
def test_gradcheck_and_gradgradcheck_near_zero(scale):
    g = torch.Generator().manual_seed(5)
    twist = (torch.randn(4, 6, generator=g, dtype=torch.float64) * scale).requires_grad_(True)
    twist.data[:, 3:] = torch.randn(4, 3, generator=g, dtype=torch.float64)
    points = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(se3_apply, (twist, points))
    assert torch.autograd.gradgradcheck(se3_apply, (twist, points))
    assert torch.autograd.gradgradcheck(lambda t: se3_exp(t), (twist,))


def test_translation_warp_and_dims():
    points, offsets = torch.randn(7, 3), torch.randn(7, 3)
    assert torch.equal(warp_points(points, offsets, "translation"), points + offsets)
    assert deformation_dim("se3") == 6 and deformation_dim("translation") == 3
    with pytest.raises(ValueError):
        warp_points(points, offsets, "affine")
