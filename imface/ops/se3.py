"""The exponential map of se(3) (paper Eq. 7-8) and the point warps built on it.

A twist is ``(omega, v)`` in R^6: ``omega`` (rotation vector, radians) first, then ``v``
(model units, 1 = 100 mm). Its exponential is the rigid motion ``x -> R x + t`` with

    R = I + A(theta) W + B(theta) W^2,          t = (I + B(theta) W + C(theta) W^2) v,
    A = sin(theta) / theta,  B = (1 - cos(theta)) / theta^2,  C = (theta - sin(theta)) / theta^3,

where ``W`` is the skew matrix of ``omega`` and ``theta = |omega|``. ``A``, ``B`` and ``C``
are evaluated by their Taylor series for small ``theta`` (where the closed forms lose
precision and their derivatives divide by zero), so values, gradients and second
derivatives stay finite at ``omega = 0``.
"""
from __future__ import annotations

import torch

#: Below this squared angle (rad^2) the Taylor series are used. At theta = 0.2 the
#: truncation error of the series is < 1e-11, while the closed forms have lost only
#: ~1e-5 relative precision in float32.
_TAYLOR_THETA_SQ = 0.04


def _rodrigues_coefficients(omega: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The scalar factors A, B, C of Rodrigues' formula.

    omega: (..., 3) rotation vectors, radians. Returns three (..., 1) tensors.
    """
    theta_sq = (omega * omega).sum(dim=-1, keepdim=True)
    small = theta_sq < _TAYLOR_THETA_SQ
    # The closed forms see a safe angle on the small branch, so their (discarded)
    # derivatives there are finite and torch.where does not leak NaN into gradients.
    safe_theta_sq = torch.where(small, torch.ones_like(theta_sq), theta_sq)
    theta = safe_theta_sq.sqrt()
    sin, cos = torch.sin(theta), torch.cos(theta)
    a_exact = sin / theta
    b_exact = (1.0 - cos) / safe_theta_sq
    c_exact = (theta - sin) / (safe_theta_sq * theta)
    t2 = theta_sq
    t4 = t2 * t2
    t6 = t4 * t2
    a_series = 1.0 - t2 / 6.0 + t4 / 120.0 - t6 / 5040.0
    b_series = 0.5 - t2 / 24.0 + t4 / 720.0 - t6 / 40320.0
    c_series = 1.0 / 6.0 - t2 / 120.0 + t4 / 5040.0 - t6 / 362880.0
    return (
        torch.where(small, a_series, a_exact),
        torch.where(small, b_series, b_exact),
        torch.where(small, c_series, c_exact),
    )


def hat(omega: torch.Tensor) -> torch.Tensor:
    """Skew-symmetric matrix of a vector: ``hat(w) @ x == cross(w, x)``.

    omega: (..., 3). Returns (..., 3, 3).
    """
    zero = torch.zeros_like(omega[..., 0])
    wx, wy, wz = omega.unbind(-1)
    rows = (
        torch.stack((zero, -wz, wy), dim=-1),
        torch.stack((wz, zero, -wx), dim=-1),
        torch.stack((-wy, wx, zero), dim=-1),
    )
    return torch.stack(rows, dim=-2)


def so3_exp(omega: torch.Tensor) -> torch.Tensor:
    """Rotation matrix of a rotation vector (Eq. 7).

    omega: (..., 3) radians. Returns (..., 3, 3) rotation matrices.
    """
    a, b, _ = _rodrigues_coefficients(omega)
    w = hat(omega)
    eye = torch.eye(3, dtype=omega.dtype, device=omega.device).expand_as(w)
    return eye + a[..., None] * w + b[..., None] * (w @ w)


def se3_exp(twist: torch.Tensor) -> torch.Tensor:
    """Homogeneous 4x4 matrix of a twist: equals ``matrix_exp`` of its 4x4 twist matrix.

    twist: (..., 6) = (omega radians, v model units). Returns (..., 4, 4).
    """
    omega, v = twist[..., :3], twist[..., 3:]
    a, b, c = _rodrigues_coefficients(omega)
    w = hat(omega)
    w2 = w @ w
    eye = torch.eye(3, dtype=twist.dtype, device=twist.device).expand_as(w)
    rotation = eye + a[..., None] * w + b[..., None] * w2
    translation = ((eye + b[..., None] * w + c[..., None] * w2) @ v[..., None])[..., 0]
    top = torch.cat((rotation, translation[..., None]), dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1.0
    return torch.cat((top, bottom), dim=-2)


def se3_apply(twist: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Move points by the exponential of their twists: ``x' = R x + t`` (Eq. 7-8).

    Written with cross products instead of 3x3 matrices, so it is cheap per point, and
    with the rotation and translation parts sharing them (the cross product is linear):
    ``R x + t = x + v + w x (A x + B v) + w x (w x (B x + C v))``.

    twist: (..., 6) = (omega radians, v model units); points: (..., 3) model units,
    broadcastable against ``twist[..., :3]``. Returns (..., 3) model units.
    """
    omega, v = twist[..., :3], twist[..., 3:]
    a, b, c = _rodrigues_coefficients(omega)
    omega = omega.expand_as(points)
    once = torch.cross(omega, a * points + b * v, dim=-1)
    twice = torch.cross(omega, torch.cross(omega, b * points + c * v, dim=-1), dim=-1)
    return points + v + once + twice


def warp_points(points: torch.Tensor, deformation: torch.Tensor, warp: str) -> torch.Tensor:
    """Apply a per-point deformation field.

    points: (..., 3) model units. deformation: (..., 6) twists for ``warp="se3"`` or
    (..., 3) offsets (model units) for ``warp="translation"``. Returns (..., 3).
    """
    if warp == "se3":
        return se3_apply(deformation, points)
    if warp == "translation":
        return points + deformation
    raise ValueError(f"unknown warp {warp!r}: expected 'se3' or 'translation'")


def deformation_dim(warp: str) -> int:
    """Channels of a deformation field for a warp type: 6 for se3, 3 for translation."""
    if warp == "se3":
        return 6
    if warp == "translation":
        return 3
    raise ValueError(f"unknown warp {warp!r}: expected 'se3' or 'translation'")
