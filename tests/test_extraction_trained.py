"""Coarse-to-fine marching cubes on a trained model gives the dense mesh (issue 4)."""
from __future__ import annotations

import pytest
import torch
from scipy.spatial import cKDTree

from imface.ops.marching_cubes import extract_mesh
from imface.pretrained import load_pretrained


def _symmetric_hausdorff(a, b) -> float:
    return max(cKDTree(b).query(a)[0].max(), cKDTree(a).query(b)[0].max())


@pytest.mark.parametrize("expression", [None, "smile"])
def test_coarse_to_fine_matches_dense_on_a_trained_model(trained_tiny, expression):
    pretrained = load_pretrained(trained_tiny[1])
    identity = sorted(pretrained.codes.identities)[0]
    id_code = pretrained.identity_code(identity)
    key = next((k for k in sorted(pretrained.codes.expressions) if expression and expression in k), "neutral")
    exp_code, neutral = pretrained.expression_code(key)

    neutral_flag = torch.tensor([neutral])

    def sdf(points):
        return pretrained.model.sdf(points[None], id_code[None], exp_code[None], neutral_flag)[0]

    resolution = 64
    dense = extract_mesh(sdf, resolution, coarse_to_fine=False)
    fast = extract_mesh(sdf, resolution, coarse_to_fine=True, coarse_resolution=16)
    voxel = 2.0 / (resolution - 1)
    assert len(dense.faces) > 100
    assert _symmetric_hausdorff(dense.vertices, fast.vertices) <= 0.5 * voxel
    assert fast.metadata["points_evaluated"] < dense.metadata["points_evaluated"]
