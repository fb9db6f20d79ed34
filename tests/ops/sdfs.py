"""Analytic SDFs (torch, model units) for the grid-evaluation and mesh-extraction tests, and a
wrapper that counts the points an SDF is asked for."""
from __future__ import annotations

import torch

from tests.ops.meshes import face_height


def sphere_sdf(points: torch.Tensor) -> torch.Tensor:
    return points.norm(dim=1) - 0.5


def torus_sdf(points: torch.Tensor) -> torch.Tensor:
    ring = points[:, :2].norm(dim=1) - 0.5
    return torch.sqrt(ring**2 + points[:, 2] ** 2) - 0.2


def plane_sdf(points: torch.Tensor) -> torch.Tensor:
    return points[:, 2] - 0.1


def face_sdf(points: torch.Tensor) -> torch.Tensor:
    """Height-field SDF: + in front of the face sheet, - behind it (zero set exact, not a distance)."""
    return points[:, 2] - face_height(points[:, 0], points[:, 1])


class CountingSDF:
    """Wraps an SDF and counts the points it is asked for."""

    def __init__(self, sdf) -> None:
        self.sdf, self.points, self.calls = sdf, 0, 0

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        assert not torch.is_grad_enabled()
        self.points += len(points)
        self.calls += 1
        return self.sdf(points)
