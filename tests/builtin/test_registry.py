"""The built-in face sources by name."""
from __future__ import annotations

import numpy as np
import pytest

from imface.builtin.bfm import BFMSource, load_bfm_source
from imface.builtin.ict import ICTSource, load_ict_source
from imface.builtin.registry import SOURCES, load_source
from imface.errors import ImfaceError


def test_unknown_source_is_one_line_naming_it():
    with pytest.raises(ImfaceError) as err:
        load_source("nope")
    assert str(err.value) == "nope: unknown face source; expected one of bfm, ict"


def test_the_registry_maps_bfm_and_ict_to_their_loaders():
    assert list(SOURCES) == ["bfm", "ict"]
    assert SOURCES["bfm"].loader is load_bfm_source and SOURCES["ict"].loader is load_ict_source
    assert SOURCES["bfm"].local_copy is None and SOURCES["ict"].local_copy  # only ICT has --source


def test_load_source_ict_from_a_local_copy(ict_clone, tmp_path):
    source = load_source("ict", tmp_path, ict_clone)
    assert isinstance(source, ICTSource) and source.name == "ict"
    assert source.num_vertices == 6_706 and list(tmp_path.glob("ict-facekit-*.npz"))


def test_load_source_bfm(bfm):
    source = load_source("bfm")
    assert isinstance(source, BFMSource) and source.name == "bfm"
    np.testing.assert_array_equal(source.mean_mm, bfm.mean_mm)
