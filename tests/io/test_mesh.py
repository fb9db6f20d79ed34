"""Mesh reading (vertex order kept, errors named) and cleanup against a naive reference."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

from imface.errors import ImfaceError
from imface.io.mesh import clean_mesh, read_mesh, write_mesh

VERTICES = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0.5]], dtype=float)
FACES = np.array([[0, 1, 2], [1, 3, 2]])


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".off"])
def test_read_mesh_round_trips_each_format(tmp_path, suffix):
    path = tmp_path / f"m{suffix}"
    trimesh.Trimesh(VERTICES, FACES, process=False).export(path)
    mesh = read_mesh(path)
    np.testing.assert_allclose(mesh.vertices, VERTICES)
    np.testing.assert_array_equal(mesh.faces, FACES)


def test_obj_keeps_file_vertex_order_despite_uv_seams(tmp_path):
    # Vertex 2 is used with two different texture coordinates: trimesh would split it by default.
    path = tmp_path / "seam.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nvt 1 1\n"
                    "f 1/1 2/2 3/3\nf 2/2 4/4 3/1\n")
    mesh = read_mesh(path)
    np.testing.assert_allclose(mesh.vertices, [[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2], [1, 3, 2]])


def test_missing_unreadable_empty_and_nan_meshes_are_named_errors(tmp_path):
    with pytest.raises(ImfaceError, match="not found") as err:
        read_mesh(tmp_path / "nope.obj")
    assert str(tmp_path / "nope.obj") in str(err.value)
    garbage = tmp_path / "garbage.ply"
    garbage.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 999\n\x00\x01")
    with pytest.raises(ImfaceError, match="cannot read|empty"):
        read_mesh(garbage)
    empty = tmp_path / "empty.obj"
    empty.write_text("v 0 0 0\nv 1 0 0\n")
    with pytest.raises(ImfaceError, match="empty"):
        read_mesh(empty)
    nan = tmp_path / "nan.obj"
    nan.write_text("v 0 0 0\nv nan 0 0\nv 0 1 0\nv 1 1 inf\nf 1 2 3\nf 1 3 4\n")
    with pytest.raises(ImfaceError, match="2 of 4 vertices have NaN/inf") as err:
        read_mesh(nan)
    assert "\n" not in str(err.value)


def _clean_naive(vertices, faces):
    """Loop reference: merge equal vertices in first-seen order, keep non-degenerate new faces."""
    keys, ids = {}, []
    for v in vertices:
        ids.append(keys.setdefault(tuple(v), len(keys)))
    merged = np.array(list(keys))
    kept, seen = [], set()
    for f in faces:
        g = [ids[i] for i in f]
        tri = merged[g]
        if len(set(g)) < 3 or np.linalg.norm(np.cross(tri[1] - tri[0], tri[2] - tri[0])) == 0:
            continue
        if frozenset(g) in seen:
            continue
        seen.add(frozenset(g))
        kept.append(tri)
    return np.array(kept)


def test_clean_mesh_matches_naive_reference():
    rng = np.random.default_rng(3)
    base = rng.integers(0, 4, (30, 3)).astype(float)  # small integer grid: many exact duplicates
    faces = rng.integers(0, 30, (80, 3))
    faces[:5, 1] = faces[:5, 0]  # repeated-index faces
    vertices, cleaned = clean_mesh(base, faces)
    got = vertices[cleaned]
    expected = _clean_naive(base, faces)
    assert len(got) == len(expected)
    # Same triangles (as vertex-position sets), in the same order.
    for a, b in zip(got, expected):
        assert {tuple(p) for p in a} == {tuple(p) for p in b}
    assert len(np.unique(vertices, axis=0)) == len(vertices)  # no duplicates left
    assert np.isin(np.arange(len(vertices)), cleaned).all()  # no unused vertices


def test_write_ply_is_readable_and_leaves_no_temp_files(tmp_path):
    write_mesh(tmp_path / "out.ply", VERTICES, FACES)
    mesh = read_mesh(tmp_path / "out.ply")
    np.testing.assert_allclose(mesh.vertices, VERTICES, atol=1e-7)
    np.testing.assert_array_equal(mesh.faces, FACES)
    assert [p.name for p in tmp_path.iterdir()] == ["out.ply"]
