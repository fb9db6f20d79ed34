"""Bad input: each scan-level problem is one line naming the file and the problem, the
batch goes on, failures are listed in the summary, and no input file is modified."""
from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

from imface.cli.preprocess_cmd import parse_shard, parse_test_identities
from imface.errors import ImfaceError
from imface.preprocess.run import preprocess_dataset
from imface.preprocess.scan import PreprocessConfig
from tests.synthetic_raw import hash_tree, make_raw_scan, write_obj

SMALL = dict(surface_samples=2000, space_samples=1000)


def _scan_files(root, name, vertices, faces, landmarks, landmark_writer=np.savetxt):
    mesh, lmk = root / f"{name}.obj", root / f"{name}.txt"
    write_obj(mesh, vertices, faces)
    if landmarks is not None:
        landmark_writer(lmk, landmarks)
    return mesh, lmk


def _edit_in_face_frame(scan, edit):
    """Landmarks changed by ``edit`` in the face's own (canonical, mm) frame, then posed again."""
    canonical = (scan["landmarks"] / scan["scale"] - scan["offset"]) @ scan["rotation"]
    edit(canonical)
    return scan["scale"] * (canonical @ scan["rotation"].T + scan["offset"])


def _mirror(points):
    """Reflected left-right: still on the (symmetric) surface, but a mirrored configuration."""
    points[:, 0] *= -1


def _lift_mouth_corner(points):
    points[48, 2] += 20.0  # 20 mm in front of the face


@pytest.fixture(scope="module")
def bad_batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(5)
    rows, expected = [], {}

    def add(name, vertices, faces, landmarks, problem, culprit="mesh", **kwargs):
        mesh, lmk = _scan_files(root, name, vertices, faces, landmarks, **kwargs)
        rows.append({"mesh": mesh.name, "landmarks": lmk.name, "identity": "p1", "expression": name})
        if problem:
            expected[f"p1/{name}"] = (mesh if culprit == "mesh" else lmk, problem)
        return mesh, lmk

    good = make_raw_scan(rng)
    v, f, lmk = good["vertices"], good["faces"], good["landmarks"]
    add("good", v, f, lmk, None)
    rows.append({"mesh": "absent.obj", "landmarks": "good.txt", "identity": "p1", "expression": "missing_mesh"})
    expected["p1/absent"] = (root / "absent.obj", "mesh file not found")
    (root / "garbage.ply").write_bytes(b"\x00\xffnot a mesh at all")
    rows.append({"mesh": "garbage.ply", "landmarks": "good.txt", "identity": "p1", "expression": "unreadable"})
    expected["p1/garbage"] = (root / "garbage.ply", "cannot read mesh|empty mesh")
    (root / "empty.obj").write_text("v 0 0 0\nv 1 0 0\n")
    rows.append({"mesh": "empty.obj", "landmarks": "good.txt", "identity": "p1", "expression": "empty"})
    expected["p1/empty"] = (root / "empty.obj", "empty mesh")
    nan_vertices = v.copy()
    nan_vertices[[10, 20, 30]] = np.nan
    add("nan", nan_vertices, f, lmk, "3 of .* vertices have NaN/inf")
    add("nolmk", v, f, None, "landmark file not found", culprit="lmk")
    add("count", v, f, lmk[:10], "expected 68 .*found 10", culprit="lmk")
    add("shape", v, f, lmk[:, :2], "N x 3 table", culprit="lmk")
    add("offsurface", v, f, _edit_in_face_frame(good, _lift_mouth_corner),
        r"off the surface \(1 of 68\): iBUG 48 is", culprit="lmk")
    add("mirrored", v, f, _edit_in_face_frame(good, _mirror), "mirrored", culprit="lmk")
    line = lmk[36] + np.linspace(-0.5, 1.5, 68)[:, None] * (lmk[45] - lmk[36])
    line[36], line[45] = lmk[36], lmk[45]
    add("degenerate", v, f, line, "degenerate landmark configuration", culprit="lmk")
    # Landmarks in the wrong order (eye corners kept, so units pass; a shuffle Kabsch fits with a rotation).
    order, others = np.arange(68), np.setdiff1d(np.arange(68), [36, 45])
    order[others] = others[np.random.default_rng(5).permutation(66)]
    shuffled = lmk[order]
    add("shuffled", v, f, shuffled, "RMS error .*wrong order", culprit="lmk")
    add("units", v * 0.01, f, lmk * 0.01, "outer-eye-corner distance is 0\\.\\d+ units: not a face in mm, cm or m")
    # A sparse mesh: one tiny triangle at each landmark, so landmarks are on it but no face is in the sphere.
    tiny = np.concatenate([lmk + d for d in ([0, 0, 0], [0.5, 0, 0], [0, 0.5, 0])])
    tiny_faces = np.stack([np.arange(68), np.arange(68) + 68, np.arange(68) + 136], axis=1)
    add("noface", tiny, tiny_faces, lmk, "no face region inside the 100 mm crop sphere")
    for row in rows:
        row["name"] = row["expression"] if row["mesh"].startswith(row["expression"]) else row["mesh"].split(".")[0]
    with open(root / "scans.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["mesh", "landmarks", "identity", "expression", "name"])
        writer.writeheader()
        writer.writerows(rows)
    before = hash_tree(root)
    summary = preprocess_dataset(root / "scans.csv", tmp_path_factory.mktemp("out"), PreprocessConfig(**SMALL),
                                 progress=False)
    return root, summary, expected, before


def test_batch_goes_on_and_good_scan_is_done(bad_batch):
    _, summary, expected, _ = bad_batch
    assert [r.name for r in summary.done] == ["p1/good"]
    assert sorted(r.name for r in summary.failed) == sorted(expected)
    assert not summary.ok
    text = summary.format()
    assert f"{len(expected)} failed" in text and text.count("\n  /") >= len(expected)


def test_each_failure_is_one_line_naming_file_and_problem(bad_batch):
    _, summary, expected, _ = bad_batch

    for result in summary.failed:
        path, problem = expected[result.name]
        assert "\n" not in result.error
        assert result.error.startswith(f"{path}: "), result.error
        assert re.search(problem, result.error), result.error
        assert "internal error" not in result.error


def test_inputs_are_never_modified(bad_batch):
    root, _, _, before = bad_batch
    assert hash_tree(root) == before


def test_dataset_level_errors(tmp_path):
    rows = [{"mesh": "a.obj", "landmarks": "a.txt", "identity": "p", "expression": "neutral"}] * 2
    (tmp_path / "dup.json").write_text(json.dumps(rows))
    with pytest.raises(ImfaceError, match="duplicate scan name"):
        preprocess_dataset(tmp_path / "dup.json", tmp_path / "out", PreprocessConfig(**SMALL), progress=False)
    (tmp_path / "esc.json").write_text(json.dumps([dict(rows[0], landmarks="../../x.txt")]))
    with pytest.raises(ImfaceError, match="escapes the dataset root") as err:
        preprocess_dataset(tmp_path / "esc.json", tmp_path / "out", PreprocessConfig(**SMALL), progress=False)
    assert str(err.value).startswith(str(tmp_path / "esc.json"))
    assert not (tmp_path / "out").exists()


def test_bad_options_are_user_errors():
    with pytest.raises(ImfaceError, match="unit"):
        PreprocessConfig(unit="inch")
    with pytest.raises(ImfaceError, match="align"):
        PreprocessConfig(align="icp")
    with pytest.raises(ImfaceError, match="shard"):
        PreprocessConfig(shard=(3, 2))

    assert parse_shard("1/4") == (1, 4) and parse_shard(None) is None
    with pytest.raises(ImfaceError, match="--shard"):
        parse_shard("4/4")
    assert parse_test_identities("3") == 3 and parse_test_identities("a, b") == ["a", "b"]
