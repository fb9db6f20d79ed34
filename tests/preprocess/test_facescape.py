"""FaceScape facts shipped with the package: the TU topologies and their landmark ids, the
ImFace authors' split, and that pyproject ships the data files."""
from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import numpy as np
import pytest

from imface.errors import ImfaceError
from imface.io.landmarks import read_landmark_indices
from imface.preprocess import facescape
from imface.preprocess.scan import DEFAULT_TEST_EXPRESSIONS
from tests.synthetic_raw import write_obj

ROOT = Path(__file__).resolve().parents[2]


def test_tu_topologies_and_their_landmark_ids():
    assert {t.name: count for count, t in facescape.TU_TOPOLOGIES.items()} == {"v10": 26_317, "v16": 26_278}
    ids = {t.name: read_landmark_indices(t.landmark_ids_path) for t in facescape.TU_TOPOLOGIES.values()}
    for topology in facescape.TU_TOPOLOGIES.values():
        table = ids[topology.name]
        assert table.shape == (68,) and len(set(table.tolist())) == 68 and table.max() < topology.vertex_count
    # the first ids and the nose tip (iBUG 30) of FaceScape's toolkit/predef/landmark_indices.npz
    assert ids["v10"][:3].tolist() == [23404, 4607, 4615] and ids["v16"][:3].tolist() == [23370, 4602, 4610]
    assert ids["v10"][30] == ids["v16"][30] == 1855
    assert (ids["v10"] != ids["v16"]).sum() == 43  # the ids that differ: the two topologies number vertices apart


def test_tu_topology_is_told_from_the_vertex_count(tmp_path):
    assert facescape.tu_topology(26_278, "a.obj").name == "v16"
    assert facescape.tu_topology(26_317, "a.obj").name == "v10"
    with pytest.raises(ImfaceError, match=r"^a\.obj: 1,000 vertices: not a FaceScape TU topology .*--landmark-indices"):
        facescape.tu_topology(1000, "a.obj")
    mesh = tmp_path / "1_neutral.obj"
    write_obj(mesh, np.eye(3), np.array([[0, 1, 2]]))
    with pytest.raises(ImfaceError, match="3 vertices") as err:
        facescape.detect_tu_topology(mesh)
    assert str(err.value).startswith(str(mesh)) and "\n" not in str(err.value)


def test_the_papers_split():
    split = facescape.paper_split()
    assert split.name == "paper"
    assert len(split.train_identities) == len(set(split.train_identities)) == 355
    assert split.test_identities == ("122", "212", "340", "344", "393", "395", "421", "527", "594", "610")
    assert not set(split.train_identities) & set(split.test_identities)
    # identities 1-359 but the four test ones among them
    assert set(split.train_identities) == {str(i) for i in range(1, 360)} - {"122", "212", "340", "344"}
    assert split.train_expressions == (1, 2, 3, 4, 7, 10, 11, 12, 13, 14, 15, 16, 17, 19, 20)
    # the five the authors do not train on are this package's default held-out expressions
    assert set(split.test_expressions) == set(DEFAULT_TEST_EXPRESSIONS)
    assert len(facescape.FACESCAPE_EXPRESSIONS) == 20 and facescape.FACESCAPE_EXPRESSIONS[18] == "eye_closed"


def test_pyproject_ships_the_data_files():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package = ROOT / "imface" / "preprocess"
    files = sorted(p.relative_to(package).as_posix() for p in facescape.DATA_DIR.iterdir())
    assert files and all(any(fnmatch.fnmatch(f, g) for g in declared["imface.preprocess"]) for f in files)
    assert all(t.landmark_ids_path.parent == facescape.DATA_DIR for t in facescape.TU_TOPOLOGIES.values())
