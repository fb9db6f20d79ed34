"""Downloads: the face as PLY / OBJ (the extract command's writer), screenshots as PNG."""
from __future__ import annotations

import io

import numpy as np
import pytest
import trimesh
from PIL import Image

from imface.errors import ImfaceError
from imface.io.mesh import read_mesh
from imface.viewer.export import file_name, mesh_bytes, png_bytes

VERTICES = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
FACES = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]])


@pytest.mark.parametrize("fmt", ["ply", "obj"])
def test_mesh_bytes_read_back_in_either_unit(tmp_path, fmt):
    for unit, scale in (("model", 1.0), ("mm", 100.0)):
        path = tmp_path / f"face-{unit}.{fmt}"
        path.write_bytes(mesh_bytes(VERTICES * 0.5, FACES, fmt=fmt, unit=unit))
        mesh = read_mesh(path)
        assert np.allclose(mesh.vertices, VERTICES * 0.5 * scale, atol=1e-5)
        assert len(mesh.faces) == 4


def test_mesh_bytes_carry_the_colours():
    colors = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    mesh = trimesh.load(io.BytesIO(mesh_bytes(VERTICES, FACES, colors)), file_type="ply", process=False)
    assert np.array_equal(mesh.visual.vertex_colors[:, :3], (colors * 255).astype(np.uint8))


def test_bad_format_or_unit_is_one_line():
    with pytest.raises(ImfaceError, match="format"):
        mesh_bytes(VERTICES, FACES, fmt="stl")
    with pytest.raises(ImfaceError, match="unit"):
        mesh_bytes(VERTICES, FACES, unit="cm")


def test_png_bytes_round_trip():
    image = np.random.default_rng(0).integers(0, 255, (12, 20, 4), dtype=np.uint8)
    again = np.asarray(Image.open(io.BytesIO(png_bytes(image))))
    assert np.array_equal(again, image)
    with pytest.raises(ImfaceError, match="screenshot"):
        png_bytes(np.zeros((4, 4), np.float32))


def test_file_names_are_safe():
    assert file_name("001 + 001/2_smile (edited)", "ply") == "001-+-001-2_smile-edited.ply"
    assert file_name("../../etc/passwd", "png") == "etc-passwd.png"
