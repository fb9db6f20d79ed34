"""Layout detection and scan discovery for the built-in, FaceScape and list layouts."""
from __future__ import annotations

import json

import pytest

from imface.preprocess import facescape
from imface.preprocess.layouts import detect_layout, discover_scans
from imface.errors import ImfaceError


def _touch(path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_builtin_layout(tmp_path):
    _touch(tmp_path / "dataset.json", json.dumps({"layout": "imface-builtin", "format_version": 1, "units": "mm"}))
    for ident in ("001", "002"):
        for stem in ("1_neutral", "2_smile"):
            _touch(tmp_path / ident / f"{stem}.obj")
            _touch(tmp_path / ident / f"{stem}.lmk.txt")
        _touch(tmp_path / ident / "1_neutral.registered.ply")
    assert detect_layout(tmp_path) == "builtin"
    scans = discover_scans(tmp_path)
    assert [s.name for s in scans] == ["001/1_neutral", "001/2_smile", "002/1_neutral", "002/2_smile"]
    first, second = scans[0], scans[1]
    assert first.neutral and not second.neutral and second.expression == "smile"
    assert first.landmarks_path == tmp_path / "001" / "1_neutral.lmk.txt"
    assert first.registered_path == tmp_path / "001" / "1_neutral.registered.ply"
    assert second.registered_path is None
    assert first.stem == "1_neutral"


TRIANGLE_OBJ = "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"


def test_facescape_layout_both_folder_styles_and_expression_names(tmp_path):
    _touch(tmp_path / "1" / "models_reg" / "1_neutral.obj", TRIANGLE_OBJ)
    _touch(tmp_path / "1" / "models_reg" / "18_eye_closed.obj", TRIANGLE_OBJ)
    _touch(tmp_path / "2" / "5_jaw_left.obj", TRIANGLE_OBJ)
    _touch(tmp_path / "2" / "notes.obj")  # not <k>_<expr>: ignored
    ids = _touch(tmp_path.parent / f"{tmp_path.name}_ids.txt", "0\n")
    assert detect_layout(tmp_path) == "facescape"
    with pytest.raises(ImfaceError, match="--landmark-indices") as err:  # 3 vertices: no TU topology
        discover_scans(tmp_path)
    assert str(err.value).startswith(f"{tmp_path / '1' / 'models_reg' / '18_eye_closed.obj'}: 3 vertices: not a "
                                     "FaceScape TU topology (v10 has 26,317, v16 has 26,278)")
    scans = discover_scans(tmp_path, landmark_indices=ids)
    assert [(s.name, s.identity, s.expression) for s in scans] == [
        ("1/18_eye_closed", "1", "eye_closed"), ("1/1_neutral", "1", "neutral"), ("2/5_jaw_left", "2", "jaw_left"),
    ]
    assert all(s.landmarks_path is None and s.landmark_indices_path == ids for s in scans)
    assert all(s.registered_path == s.mesh_path for s in scans)  # a TU model is its own registered mesh


def test_facescape_layout_takes_the_ids_of_the_detected_tu_topology(tmp_path, monkeypatch):
    ids = _touch(tmp_path / "ids" / "triangle.txt", "0\n1\n2\n0\n1\n")
    monkeypatch.setitem(facescape.TU_TOPOLOGIES, 3, facescape.TuTopology("test-triangle", 3, ids))
    raw = tmp_path / "raw"
    for stem in ("1/models_reg/1_neutral", "1/models_reg/2_smile", "2/models_reg/1_neutral"):
        _touch(raw / f"{stem}.obj", TRIANGLE_OBJ)
    scans = discover_scans(raw)
    assert [s.name for s in scans] == ["1/1_neutral", "1/2_smile", "2/1_neutral"]
    assert all(s.landmark_indices_path == ids and s.registered_path == s.mesh_path for s in scans)
    other = _touch(tmp_path / "given.txt", "2\n")
    assert {s.landmark_indices_path for s in discover_scans(raw, landmark_indices=other)} == {other}


def test_csv_and_json_lists_resolve_relative_paths(tmp_path):
    _touch(tmp_path / "scans" / "a.obj")
    rows = [
        {"mesh": "scans/a.obj", "landmarks": "scans/a.txt", "identity": "p1", "expression": "neutral"},
        {"mesh": str(tmp_path / "scans" / "a.obj"), "landmarks": "scans/b.txt", "identity": "p1",
         "expression": "smile", "name": "second", "registered": "scans/r.ply"},
    ]
    (tmp_path / "list.json").write_text(json.dumps({"scans": rows}))
    header = "mesh,landmarks,identity,expression,name,registered\n"
    body = "".join(f"{r['mesh']},{r['landmarks']},{r['identity']},{r['expression']},{r.get('name', '')},"
                   f"{r.get('registered', '')}\n" for r in rows)
    (tmp_path / "list.csv").write_text(header + body)
    for name in ("list.json", "list.csv"):
        assert detect_layout(tmp_path / name) == "list"
        scans = discover_scans(tmp_path / name)
        assert [s.name for s in scans] == ["p1/a", "p1/second"]
        assert scans[0].mesh_path == (tmp_path / "scans" / "a.obj").resolve()
        assert scans[0].landmarks_path == (tmp_path / "scans" / "a.txt").resolve()
        assert scans[0].registered_path is None
        assert scans[1].registered_path == (tmp_path / "scans" / "r.ply").resolve()


def _list(tmp_path, rows):
    path = tmp_path / "data" / "list.json"
    _touch(path, json.dumps(rows))
    return path


def test_duplicate_names_escaping_paths_and_missing_columns_are_refused(tmp_path):
    row = {"mesh": "a.obj", "landmarks": "a.txt", "identity": "p1", "expression": "neutral"}
    with pytest.raises(ImfaceError, match="duplicate scan name 'p1/a'"):
        discover_scans(_list(tmp_path, [row, dict(row, expression="smile")]))
    with pytest.raises(ImfaceError, match="escapes the dataset root"):
        discover_scans(_list(tmp_path, [dict(row, mesh="../secret.obj")]))
    with pytest.raises(ImfaceError, match="escapes the dataset root"):
        discover_scans(_list(tmp_path, [dict(row, landmarks="/etc/passwd")]))
    (tmp_path / "outside.obj").write_text("x")
    (tmp_path / "data" / "link.obj").symlink_to(tmp_path / "outside.obj")
    with pytest.raises(ImfaceError, match="escapes the dataset root"):
        discover_scans(_list(tmp_path, [dict(row, mesh="link.obj")]))
    with pytest.raises(ImfaceError, match="missing landmarks"):
        discover_scans(_list(tmp_path, [{k: v for k, v in row.items() if k != "landmarks"}]))
    with pytest.raises(ImfaceError, match="identity"):
        discover_scans(_list(tmp_path, [dict(row, identity="../x")]))


def test_undetectable_folder_and_unknown_layout(tmp_path):
    with pytest.raises(ImfaceError, match="cannot tell the dataset layout"):
        detect_layout(tmp_path)
    with pytest.raises(ImfaceError, match="unknown layout"):
        discover_scans(tmp_path, layout="weird")
    with pytest.raises(ImfaceError, match="input not found"):
        detect_layout(tmp_path / "missing")
