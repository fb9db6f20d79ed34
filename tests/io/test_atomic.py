"""Atomic writes: the destination is either the old file or the whole new one, never a part,
and no temporary file is left behind."""
from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from imface.io.atomic import atomic_path, save_npy, write_bytes, write_json, write_text


def _listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_writers_round_trip_and_leave_only_the_file(tmp_path):
    write_bytes(tmp_path / "a.bin", b"\x00\x01\xff")
    write_text(tmp_path / "b.txt", "grüße\n")
    write_json(tmp_path / "c.json", {"x": [1, 2.5], "y": None})
    array = np.arange(12, dtype=np.float32).reshape(4, 3)
    save_npy(tmp_path / "d.npy", array[:, ::2])  # a non-contiguous view is saved as its values
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01\xff"
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "grüße\n"
    assert json.loads((tmp_path / "c.json").read_text()) == {"x": [1, 2.5], "y": None}
    loaded = np.load(tmp_path / "d.npy", mmap_mode="r")
    np.testing.assert_array_equal(loaded, array[:, ::2])
    assert loaded.dtype == np.float32
    assert _listing(tmp_path) == ["a.bin", "b.txt", "c.json", "d.npy"]


def test_parent_folders_are_made_and_a_file_is_replaced(tmp_path):
    path = tmp_path / "deep" / "er" / "out.txt"
    write_text(path, "first")
    write_text(path, "second")
    assert path.read_text() == "second"
    assert _listing(path.parent) == ["out.txt"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failed_write_keeps_the_old_file_and_no_temp_file(tmp_path, error):
    path = tmp_path / "mesh.ply"
    path.write_text("old, complete")
    with pytest.raises(error):
        with atomic_path(path) as tmp:
            tmp.write_text("new, half written")
            assert tmp.parent == path.parent and tmp != path
            raise error("interrupted")
    assert path.read_text() == "old, complete"
    assert _listing(tmp_path) == ["mesh.ply"]


def test_a_failed_first_write_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        with atomic_path(tmp_path / "new.json") as tmp:
            tmp.write_text("{")
            raise ValueError("not JSON-serialisable")
    assert _listing(tmp_path) == []


def test_a_failed_serialisation_keeps_the_old_file(tmp_path):
    path = tmp_path / "fit.json"
    write_json(path, {"ok": True})
    with pytest.raises(TypeError):
        write_json(path, {"bad": object()})  # json.dumps fails before any byte is written
    with pytest.raises(ValueError):
        save_npy(tmp_path / "x.npy", np.array([object()]))  # pickles are refused mid-write
    assert json.loads(path.read_text()) == {"ok": True}
    assert _listing(tmp_path) == ["fit.json"]


def test_the_temp_file_keeps_the_suffix_and_is_hidden(tmp_path):
    with atomic_path(tmp_path / "mesh.ply") as tmp:
        assert tmp.suffix == ".ply" and tmp.name.startswith(".mesh.ply.")
        tmp.write_bytes(b"ply")
    with atomic_path(tmp_path / "mesh.ply", suffix=".tmp") as tmp:
        assert tmp.suffix == ".tmp"
        tmp.write_bytes(b"ply2")
    assert (tmp_path / "mesh.ply").read_bytes() == b"ply2"


def test_outputs_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    write_text(tmp_path / "out.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o666 & ~umask
