"""Log files: JSON lines truncated on resume, SDF slice images, the loss-curve PNG."""
from __future__ import annotations

import json

import numpy as np
import torch

from imface.training.writer import plot_loss_curves, read_jsonl, sdf_slice_image, truncate_jsonl


class _Sphere(torch.nn.Module):
    """sdf = |p - c| - r with c = (0, 0.2, 0.1): a field whose slices are known circles."""

    def sdf(self, points, id_codes, exp_codes, neutral):
        assert points.shape[0] == id_codes.shape[0] == exp_codes.shape[0] == neutral.shape[0] == 1
        return (points - torch.tensor([0.0, 0.2, 0.1])).norm(dim=-1) - 0.5


def test_truncate_drops_later_steps_and_torn_lines(tmp_path):
    path = tmp_path / "losses.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss/sdf": float(s)}) + "\n" for s in range(1, 6)) + '{"step": 6, "lo')
    assert [r["step"] for r in read_jsonl(path)] == [1, 2, 3, 4, 5]
    truncate_jsonl(path, 3)
    assert [r["step"] for r in read_jsonl(path)] == [1, 2, 3]
    assert path.read_text().endswith("\n")


def test_sdf_slices_show_the_zero_level_set_where_it_is():
    res = 101
    image = sdf_slice_image(_Sphere(), torch.zeros(4), torch.zeros(4), True, resolution=res, z_plane=0.1, clip=0.2)
    assert image.shape == (3, res, 2 * res) and image.min() >= 0.0 and image.max() <= 1.0
    axis = np.linspace(-1.0, 1.0, res)
    black = image.sum(axis=0) == 0.0
    rows, cols = np.nonzero(black[:, :res])  # profile x=0: horizontal z, vertical y (top = +1)
    y, z = axis[::-1][rows], axis[cols]
    assert len(rows) > 0 and np.abs(np.hypot(y - 0.2, z - 0.1) - 0.5).max() < 0.02
    rows, cols = np.nonzero(black[:, res:])  # frontal z=0.1: horizontal x, the circle through the centre
    y, x = axis[::-1][rows], axis[cols]
    assert len(rows) > 0 and np.abs(np.hypot(y - 0.2, x) - 0.5).max() < 0.02
    # inside is blue-ish (blue > red), outside red-ish
    centre = image[:, np.argmin(np.abs(axis[::-1] - 0.2)), np.argmin(np.abs(axis - 0.1))]
    corner = image[:, 0, 0]
    assert centre[2] > centre[0] and corner[0] > corner[2]


def test_loss_curves_png(tmp_path):
    path = tmp_path / "losses.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss/sdf": 10.0 / s, "loss/total": 12.0 / s,
                                        "loss/residual": 0.0}) + "\n" for s in range(1, 20)))
    assert plot_loss_curves(path, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert not plot_loss_curves(tmp_path / "missing.jsonl", tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
