"""Landmark formats parse to the same points; bad files give one-line named errors."""
from __future__ import annotations

import numpy as np
import pytest

from imface.frame import CANONICAL_LANDMARKS_MM, FIVE_LANDMARK_IDS
from imface.errors import ImfaceError
from imface.io.landmarks import (
    landmarks_from_indices, read_landmark_indices, read_landmark_points, read_landmarks, validate_landmarks,
)

POINTS = CANONICAL_LANDMARKS_MM + np.linspace(0, 0.5, 68)[:, None]  # not symmetric, distinct rows


def _write_pts(path, points):
    body = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in points)
    path.write_text(f"version: 1\nn_points: {len(points)}\n{{\n{body}\n}}\n")


def _write_pp(path, points, order):
    rows = "\n".join(
        f'  <point x="{points[i, 0]:.6f}" y="{points[i, 1]:.6f}" z="{points[i, 2]:.6f}" active="1" name="{i}"/>'
        for i in order
    )
    path.write_text(f'<!DOCTYPE PickedPoints>\n<PickedPoints>\n <DocumentData/>\n{rows}\n</PickedPoints>\n')


def test_every_coordinate_format_gives_the_same_points(tmp_path):
    np.save(tmp_path / "a.npy", POINTS)
    np.savetxt(tmp_path / "a.txt", POINTS)
    np.savetxt(tmp_path / "a.csv", POINTS, delimiter=",")
    _write_pts(tmp_path / "a.pts", POINTS)
    _write_pp(tmp_path / "a.pp", POINTS, np.random.default_rng(0).permutation(68))  # ordered by name
    for name in ("a.npy", "a.txt", "a.csv", "a.pts", "a.pp"):
        landmarks = read_landmarks(tmp_path / name)
        np.testing.assert_allclose(landmarks.ibug68, POINTS, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(landmarks.five, POINTS[list(FIVE_LANDMARK_IDS)], atol=1e-6, err_msg=name)


def test_vertex_index_files_pick_mesh_vertices(tmp_path):
    vertices = np.random.default_rng(1).normal(size=(500, 3))
    ids = np.random.default_rng(2).choice(500, 68, replace=False)
    np.save(tmp_path / "ids.npy", ids)
    np.savetxt(tmp_path / "ids.txt", ids, fmt="%d")
    for name in ("ids.npy", "ids.txt"):
        picked = landmarks_from_indices(read_landmark_indices(tmp_path / name), vertices, "mesh.obj")
        np.testing.assert_array_equal(picked, vertices[ids])
    with pytest.raises(ImfaceError, match="out of range"):
        landmarks_from_indices(read_landmark_indices(tmp_path / "ids.npy"), vertices[:100], "mesh.obj")
    np.savetxt(tmp_path / "frac.txt", ids + 0.5)
    with pytest.raises(ImfaceError, match="integers"):
        read_landmark_indices(tmp_path / "frac.txt")
    # A whole number past int64 (found by the reader fuzz) would wrap to a negative id in the cast.
    np.savetxt(tmp_path / "huge.txt", np.r_[ids[:-1], 1e30])
    with pytest.raises(ImfaceError, match="integers"):
        read_landmark_indices(tmp_path / "huge.txt")


def test_five_landmarks_are_accepted_without_ibug68(tmp_path):
    np.savetxt(tmp_path / "five.txt", POINTS[list(FIVE_LANDMARK_IDS)])
    landmarks = read_landmarks(tmp_path / "five.txt")
    assert landmarks.ibug68 is None
    np.testing.assert_allclose(landmarks.five, POINTS[list(FIVE_LANDMARK_IDS)])


@pytest.mark.parametrize("points, message", [
    (POINTS[:10], "expected 68 .*found 10"),
    (POINTS[:, :2], "N x 3"),
    (np.where(np.arange(68)[:, None] == 7, np.nan, POINTS), "NaN"),
])
def test_bad_landmark_tables_are_refused(tmp_path, points, message):
    path = tmp_path / "bad.txt"
    np.savetxt(path, points)
    with pytest.raises(ImfaceError, match=message) as err:
        read_landmarks(path)
    assert str(err.value).startswith(str(path))


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ImfaceError, match="not found"):
        read_landmarks(tmp_path / "none.txt")
    (tmp_path / "ragged.txt").write_text("1 2 3\n4 5\n")
    with pytest.raises(ImfaceError, match="same count"):
        read_landmark_points(tmp_path / "ragged.txt")
    (tmp_path / "bad.pts").write_text("version: 1\nn_points: 68\n{\n1 2 3\n}\n")
    with pytest.raises(ImfaceError, match="n_points is 68"):
        read_landmark_points(tmp_path / "bad.pts")
    (tmp_path / "bad.pp").write_text("<PickedPoints><point x='1'/>")
    with pytest.raises(ImfaceError, match=".pp"):
        read_landmark_points(tmp_path / "bad.pp")
    with pytest.raises(ImfaceError):
        validate_landmarks(np.zeros((68, 3, 1)), "x.npy")
