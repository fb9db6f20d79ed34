"""Property-based fuzz of every reader of user files: any bytes at all give either a result that
keeps the reader's contract (shapes, dtypes, finite values, ids in range) or the one-line
ImfaceError naming the file, never another exception.

Seeds are valid files of every format; hypothesis flips, inserts, deletes and truncates bytes.
The default suite runs a short fuzz; the ``slow`` one runs about 60 s.
"""
from __future__ import annotations

import io
from pathlib import Path
import tempfile
import time
import xml.sax.saxutils

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import numpy as np
import pytest
import trimesh

from imface.errors import ImfaceError
from imface.fitting.inputs import read_input_geometry
from imface.frame import FIVE_LANDMARK_IDS
from imface.io.landmarks import Landmarks, read_landmark_indices, read_landmarks
from imface.io.mesh import MeshArrays, read_mesh


def _mesh() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=1)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _seed_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The landmarks (68, 3) and the points with normals (40, 6) the seed files hold."""
    rng = np.random.default_rng(0)
    landmarks = rng.normal(0, 30, (68, 3))
    return landmarks, np.c_[rng.normal(0, 30, (40, 3)), rng.normal(0, 1, (40, 3))]


def seed_files() -> dict[str, bytes]:
    """Valid files of every supported format, by name (the suffix picks the reader)."""
    mesh = _mesh()
    landmarks, points = _seed_arrays()
    pts = "version: 1\nn_points: 68\n{\n" + "\n".join(f"{x:.3f} {y:.3f} {z:.3f}" for x, y, z in landmarks) + "\n}\n"
    pp = "<!DOCTYPE PickedPoints>\n<PickedPoints>\n" + "".join(
        f'<point x="{x:.3f}" y="{y:.3f}" z="{z:.3f}" name={xml.sax.saxutils.quoteattr(str(i))} active="1"/>\n'
        for i, (x, y, z) in enumerate(landmarks)) + "</PickedPoints>\n"
    cloud = trimesh.PointCloud(points[:, :3])
    return {
        "mesh.ply": mesh.export(file_type="ply", encoding="binary"),
        "ascii.ply": mesh.export(file_type="ply", encoding="ascii"),
        "mesh.obj": mesh.export(file_type="obj").encode(),
        "mesh.off": mesh.export(file_type="off").encode(),
        "mesh.stl": mesh.export(file_type="stl"),
        "landmarks.npy": _npy(landmarks),
        "landmarks.txt": "\n".join(" ".join(f"{v:.3f}" for v in row) for row in landmarks).encode(),
        "landmarks.pts": pts.encode(),
        "landmarks.pp": pp.encode(),
        "indices.npy": _npy(np.arange(68)),
        "indices.txt": "\n".join(map(str, range(68))).encode(),
        "points.npy": _npy(points),
        "points.xyz": "\n".join(" ".join(f"{v:.4f}" for v in row) for row in points).encode(),
        "cloud.ply": cloud.export(file_type="ply", encoding="ascii").encode() if isinstance(
            cloud.export(file_type="ply", encoding="ascii"), str) else cloud.export(file_type="ply", encoding="ascii"),
    }


SEEDS = seed_files()


def readers(name: str):
    """Every reader that accepts this kind of file."""
    suffix = Path(name).suffix
    if name.startswith("indices"):
        return [read_landmark_indices]
    if name.startswith("landmarks"):
        return [read_landmarks]
    if suffix in (".obj", ".off", ".stl") or name in ("mesh.ply", "ascii.ply"):
        return [read_mesh, read_input_geometry]
    return [read_input_geometry]


def _check_mesh(vertices: np.ndarray, faces: np.ndarray) -> None:
    assert vertices.ndim == 2 and vertices.shape[1] == 3 and len(vertices) > 0
    assert np.isfinite(vertices).all()
    assert faces.ndim == 2 and faces.shape[1] == 3 and len(faces) > 0
    assert np.issubdtype(faces.dtype, np.integer) and faces.min() >= 0 and faces.max() < len(vertices)


def check_result(reader, result) -> None:
    """What a reader that returned must have returned, whatever bytes it read."""
    if reader is read_mesh:
        assert isinstance(result, MeshArrays)
        assert result.vertices.dtype == np.float64 and result.faces.dtype == np.int64
        _check_mesh(result.vertices, result.faces)
    elif reader is read_landmarks:
        assert isinstance(result, Landmarks)
        assert result.five.shape == (5, 3) and np.isfinite(result.five).all()
        if result.ibug68 is not None:
            assert result.ibug68.shape == (68, 3) and np.isfinite(result.ibug68).all()
            np.testing.assert_array_equal(result.five, result.ibug68[list(FIVE_LANDMARK_IDS)])
    elif reader is read_landmark_indices:
        assert result.dtype == np.int64 and result.shape in ((68,), (5,)) and (result >= 0).all()
    elif reader is read_input_geometry:
        points, normals, faces = result
        assert points.dtype == np.float64 and points.ndim == 2 and points.shape[1] == 3 and len(points) > 0
        assert np.isfinite(points).all()
        assert normals is None or normals.shape == points.shape
        assert faces is None or normals is None  # a mesh's normals are not read
        if faces is not None:
            _check_mesh(points, faces)
    else:
        raise AssertionError(f"no contract for {reader.__name__}")


def test_every_seed_file_is_read():
    """The fuzz starts from files the readers accept, so mutations probe the parsing paths; each
    seed reads back as what was written."""
    mesh = _mesh()
    landmarks, points = _seed_arrays()
    with tempfile.TemporaryDirectory() as folder:
        for name, data in SEEDS.items():
            path = Path(folder) / name
            path.write_bytes(data)
            for reader in readers(name):
                result = reader(path)
                check_result(reader, result)
                if reader is read_mesh:
                    assert result.faces.shape == mesh.faces.shape, name
                    np.testing.assert_allclose(result.vertices[result.faces], mesh.vertices[mesh.faces], atol=1e-5)
                elif reader is read_landmarks:
                    np.testing.assert_allclose(result.ibug68, landmarks, atol=1e-3)  # 3 decimals in text files
                elif reader is read_landmark_indices:
                    np.testing.assert_array_equal(result, np.arange(68))
                elif name.startswith("mesh") or name == "ascii.ply":
                    assert result[1] is None and result[2].shape == mesh.faces.shape, name
                    np.testing.assert_allclose(result[0][result[2]], mesh.vertices[mesh.faces], atol=1e-5)
                else:  # point sets: the 6-column files keep their normals, the .ply cloud has none
                    expected_normals = None if name == "cloud.ply" else points[:, 3:]
                    assert result[2] is None, name
                    np.testing.assert_allclose(result[0], points[:, :3], atol=1e-3)
                    if expected_normals is None:
                        assert result[1] is None, name
                    else:
                        np.testing.assert_allclose(result[1], expected_normals, atol=1e-3)


_mutation = st.tuples(st.sampled_from(["flip", "insert", "delete", "truncate", "zero"]),
                      st.floats(0, 1, exclude_max=True), st.integers(0, 255), st.integers(1, 64))


def mutate(data: bytes, mutations) -> bytes:
    out = bytearray(data)
    for kind, where, byte, length in mutations:
        at = int(where * max(len(out), 1))
        if kind == "flip" and out:
            out[min(at, len(out) - 1)] ^= byte or 1
        elif kind == "insert":
            out[at:at] = bytes([byte]) * length
        elif kind == "delete":
            del out[at:at + length]
        elif kind == "truncate":
            del out[at:]
        elif kind == "zero":
            out[at:at + length] = bytes(min(length, len(out) - at))
    return bytes(out)


def check(name: str, mutations) -> None:
    data = mutate(SEEDS[name], mutations)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        for reader in readers(name):
            try:
                result = reader(path)
            except ImfaceError as err:
                message = str(err)
                assert "\n" not in message and str(path) in message, message
            else:
                check_result(reader, result)
            assert path.read_bytes() == data  # never modified


@pytest.mark.parametrize("name", sorted(SEEDS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(mutations=st.lists(_mutation, min_size=1, max_size=4))
def test_mutated_files_raise_only_the_one_line_error(name, mutations):
    check(name, mutations)


@pytest.mark.parametrize("name", ["empty.npy", "header.npy", "ragged.obj"])
def test_the_three_reported_crashes(name, tmp_path):
    """An empty .npy, a .npy with a broken header, an OBJ whose vertex array is not N x 3."""
    data = {"empty.npy": b"",
            "header.npy": SEEDS["landmarks.npy"][:10] + b"{'descr': '<f8', 'fortran_order': Fal(" + b" " * 40 + b"\n",
            "ragged.obj": b"v 0 0\nv 1 0\nv 0 1\nv 1 1\nf 1 2 3\n"}[name]
    path = tmp_path / name
    path.write_bytes(data)
    reader = read_landmarks if name.endswith(".npy") else read_mesh
    with pytest.raises(ImfaceError, match=name):
        reader(path)


@pytest.mark.slow
def test_fuzz_every_reader_for_a_minute():
    """About 60 s of random mutations spread over every format (random, not derandomized)."""
    rng = np.random.default_rng(int(time.time()))
    names = sorted(SEEDS)
    stop = time.monotonic() + 60
    count = 0
    while time.monotonic() < stop:
        name = names[count % len(names)]
        mutations = [(str(rng.choice(["flip", "insert", "delete", "truncate", "zero"])), float(rng.random()),
                      int(rng.integers(256)), int(rng.integers(1, 65))) for _ in range(int(rng.integers(1, 5)))]
        check(name, mutations)
        count += 1
    assert count > 100
