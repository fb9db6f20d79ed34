"""Training faces by name, random faces, dataset scans as targets, and the folders the viewer may read."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from imface.errors import ImfaceError
from imface.io.mesh import read_mesh
from imface.viewer.library import Library, Roots


def test_roots_allow_only_paths_inside_the_given_folders(tmp_path):
    inside, outside = tmp_path / "model", tmp_path / "other"
    (inside / "sub").mkdir(parents=True)
    outside.mkdir()
    roots = Roots([inside, None])
    assert roots.allows(inside / "sub" / "x.ply") and roots.allows(inside)
    assert not roots.allows(outside / "x.ply")
    assert not roots.allows(inside / ".." / "other" / "x.ply")
    os.symlink(outside, inside / "link")
    assert not roots.allows(inside / "link" / "x.ply")  # a link out of a folder is outside it
    with pytest.raises(ImfaceError, match="outside the folders given"):
        roots.check(outside / "x.ply")
    assert roots.check(inside / "sub") == (inside / "sub").resolve()


def test_names_of_training_identities_and_expressions(tiny):
    library = Library(tiny)
    assert library.identities == sorted(tiny.codes.identities) and len(library.identities) == 3
    assert library.expressions[0] == "neutral"
    assert set(library.expressions[1:]) == set(tiny.codes.expressions)


def test_random_faces_are_drawn_by_seed(tiny):
    library = Library(tiny)
    a, again, b = library.random(1), library.random(1), library.random(2)
    assert torch.equal(a.id_code, again.id_code) and not torch.equal(a.id_code, b.id_code)
    assert a.name == "random (seed 1)"


def test_training_scans_of_the_dataset_are_targets(tiny, trained_tiny):
    data = trained_tiny[0]
    library = Library(tiny, data)
    scan = library.training_scan("001", "neutral")
    assert scan is not None and scan.identity == "001" and scan.neutral
    key = next(k for k in tiny.codes.expressions if k.startswith("002/"))
    smile = library.training_scan("002", key)
    assert smile is not None and smile.name == key
    assert library.training_scan("001", key) is None  # another identity's expression: no such scan
    target = library.scan_target(smile)
    mesh = read_mesh(data / key / "mesh.ply")
    assert np.array_equal(target.vertices, mesh.vertices) and np.array_equal(target.faces, mesh.faces)
    assert library.scan_target(smile) is target  # read once
    assert np.abs(target.vertices).max() < 1.5  # model units
    assert library.data_scan_folder(key) == data / key
    assert library.data_scan_folder("../../etc") is None
    assert Library(tiny).training_scan("001", "neutral") is None


def test_data_must_be_a_processed_dataset(tiny, tmp_path):
    with pytest.raises(ImfaceError, match="processed dataset"):
        Library(tiny, tmp_path)
