"""Reading one input into a fitting target: meshes, point files, units, poses, bad files, non-faces.
(Datasets, folders, shards and the refusals of a batch: tests/fitting/test_gather.py.)"""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

from imface.errors import ImfaceError
from imface.fitting.inputs import detect_unit, file_target


@pytest.mark.parametrize("unit,factor", [("model", 1.0), ("mm", 100.0), ("cm", 10.0), ("m", 0.1)])
def test_a_given_unit_is_checked_against_the_size(unit, factor):
    face = np.random.default_rng(0).uniform(-0.8, 0.8, size=(200, 3)) * [1.0, 1.2, 0.5]  # model units
    assert detect_unit(face * factor, unit, "x") == unit
    assert detect_unit(face * factor * 1000, "auto", "x") == "auto"  # the search finds any scale
    with pytest.raises(ImfaceError, match="check --unit"):
        detect_unit(face * factor * 1000, unit, "x")


def test_point_files_with_and_without_normals(tmp_path):
    rng = np.random.default_rng(1)
    points = rng.normal(size=(400, 3))
    points = 0.9 * points / np.linalg.norm(points, axis=1, keepdims=True)
    points = points[points[:, 2] > 0.2][:50]  # on a surface (a sphere's front), model units
    normals = rng.normal(size=(50, 3))
    np.savetxt(tmp_path / "a.xyz", np.hstack((points * 100, normals * 3)))  # mm, unnormalised normals
    np.save(tmp_path / "b.npy", points)
    cloud = trimesh.PointCloud(points)
    cloud.export(tmp_path / "c.ply")
    a = file_target(tmp_path / "a.xyz", "a", "mm", "auto", "auto")
    assert a.unit == "mm" and a.fit_pose and a.kind == "points"
    np.testing.assert_allclose(a.surface_points, points, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.surface_normals, normals / np.linalg.norm(normals, axis=1, keepdims=True), atol=1e-6)
    b = file_target(tmp_path / "b.npy", "b", "model", "auto", "yes")
    assert b.unit == "model" and not b.fit_pose and b.surface_normals is None and b.neutral
    auto = file_target(tmp_path / "b.npy", "b", "auto", "auto", "yes")  # the search sets unit and scale later
    assert auto.unit == "auto" and auto.fit_pose and auto.raw_to_input[0, 0] == 1.0
    with pytest.raises(ImfaceError, match="--pose none needs a given --unit"):
        file_target(tmp_path / "b.npy", "b", "auto", "none", "yes")
    c = file_target(tmp_path / "c.ply", "c", "model", "none", "auto")
    assert c.kind == "points" and not c.neutral and c.reference is None
    np.testing.assert_allclose(c.surface_points, points, atol=1e-6)


def test_bad_files(tmp_path):
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    np.save(tmp_path / "cols.npy", np.zeros((10, 4)))
    (tmp_path / "bad.xyz").write_text("1 2 3\n4 5 nan\n7 8 9\n")
    (tmp_path / "scan.stl").write_text("solid")
    (tmp_path / "scan.vtk").write_text("# vtk")
    cases = {"empty.npy": "empty", "cols.npy": "columns", "bad.xyz": "NaN", "scan.stl": "empty mesh",
             "scan.vtk": "unsupported"}
    for name, problem in cases.items():
        with pytest.raises(ImfaceError, match=problem) as err:
            file_target(tmp_path / name, "x", "auto", "auto", "auto")
        assert str(tmp_path / name) in str(err.value)


def test_inputs_that_are_not_faces_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    plane = np.c_[rng.uniform(-100, 100, (5000, 2)), np.zeros(5000)]  # mm, face-sized
    noise = rng.uniform(-100, 100, (5000, 3))
    np.save(tmp_path / "plane.npy", plane)
    np.save(tmp_path / "noise.npy", noise)
    for name, problem in (("plane.npy", "a plane, not a face"), ("noise.npy", "noise, not a face")):
        before = (tmp_path / name).read_bytes()
        with pytest.raises(ImfaceError, match=problem) as err:
            file_target(tmp_path / name, "x", "auto", "auto", "auto")
        assert "\n" not in str(err.value) and str(tmp_path / name) in str(err.value)
        assert (tmp_path / name).read_bytes() == before
    # a face-like cap (a sphere's front) with 1 mm noise, and one seen from one side only, pass
    cap = rng.normal(size=(5000, 3))
    cap = 90 * cap / np.linalg.norm(cap, axis=1, keepdims=True)
    cap = cap[cap[:, 2] > 30] + rng.normal(0, 1.0, (int((cap[:, 2] > 30).sum()), 3))
    np.save(tmp_path / "cap.npy", cap)
    assert file_target(tmp_path / "cap.npy", "x", "auto", "auto", "auto").kind == "points"
    np.save(tmp_path / "half.npy", cap[cap[:, 0] > 0])
    assert file_target(tmp_path / "half.npy", "x", "auto", "auto", "auto").kind == "points"
