"""The fits folder: codes round trip, a lenient hand-made codes file, the index merge (and its parts,
written by jobs fitting one folder at once) and its checks."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from imface.contracts.fits import (FITS_NAME, fits_entry, fits_part_name, fitted_codes, read_codes, read_fit,
                                   read_fits_index, read_fitted_scans, write_codes, write_fit, write_fits_index)
from imface.errors import ImfaceError


def _rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def test_codes_round_trip_and_fitted_scans(tmp_path):
    rotation, translation = _rotation(0.3), np.array([0.1, -0.2, 0.05])
    write_codes(tmp_path / "a", np.arange(4.0), np.ones(3), False, rotation, translation)
    write_codes(tmp_path / "b", np.zeros(4), np.zeros(3), True, np.eye(3), np.zeros(3))
    tensors = read_codes(tmp_path / "a")
    assert torch.equal(tensors["id_code"], torch.arange(4.0)) and tensors["neutral"].tolist() == [0]
    write_fits_index(tmp_path, "model", False, [fits_entry("a", "a", False, "001", "smile", None)])
    write_fits_index(tmp_path, "model", False, [fits_entry("b", "b", True, "001", "neutral", "processed/b")])
    index = read_fits_index(tmp_path)
    assert [e["name"] for e in index["scans"]] == ["a", "b"]  # merged by name, not replaced
    assert index["method"] == "imface"
    (tmp_path / "processed" / "b").mkdir(parents=True)
    a, b = read_fitted_scans(tmp_path, ["a", "b"])
    assert np.allclose(a.pose_rotation, rotation, atol=1e-6) and np.allclose(a.pose_translation, translation)
    assert not a.neutral and b.neutral
    assert b.processed == tmp_path / "processed" / "b"  # a relative path is read from the fits folder
    with pytest.raises(ImfaceError, match="no fitted scan 'c'; nearest"):
        read_fitted_scans(tmp_path, ["c"])


def test_a_hand_made_codes_file_reads_with_the_identity_pose(tmp_path):
    path = tmp_path / "mine.safetensors"
    save_file({"id_code": torch.ones(4), "exp_code": torch.zeros(3), "neutral": torch.tensor([1], dtype=torch.uint8)},
              str(path))
    given = fitted_codes(path, "mine")
    assert given.name == "mine" and given.neutral and np.array_equal(given.pose_rotation, np.eye(3))
    with pytest.raises(ImfaceError, match="missing tensors: pose_rotation, pose_translation"):
        read_codes(path)  # a scan folder's codes must carry the pose
    path.write_bytes(b"not safetensors")
    with pytest.raises(ImfaceError, match="not a readable safetensors file"):
        fitted_codes(path)


def test_the_index_is_checked_and_fit_json_marks_a_done_scan(tmp_path):
    with pytest.raises(ImfaceError, match="not a fits folder"):
        read_fits_index(tmp_path)
    assert read_fits_index(tmp_path, missing_ok=True) is None
    (tmp_path / FITS_NAME).write_text(json.dumps({"format_version": 1, "scans": [{"name": "a"}]}))
    with pytest.raises(ImfaceError, match="every scan entry needs"):
        read_fits_index(tmp_path)
    (tmp_path / FITS_NAME).write_text(json.dumps({"format_version": 2, "scans": []}))
    with pytest.raises(ImfaceError, match="format_version 1"):
        read_fits_index(tmp_path)
    assert read_fit(tmp_path / "a") is None
    write_fit(tmp_path / "a", {"name": "a", "steps": 3})
    assert read_fit(tmp_path / "a") == {"name": "a", "steps": 3}


def _entry(name: str) -> dict:
    return fits_entry(name, name, False, "001", "smile", None)


def test_jobs_writing_index_parts_at_once_lose_no_scan(tmp_path):
    write_fits_index(tmp_path, "old-model", False, [_entry("a")])  # an earlier, whole run
    # Two jobs at once: each rewrites only its own part, so neither can drop the other's scans
    # (one shared file, read-merged-written by both, could).
    write_fits_index(tmp_path, "model", False, [_entry("b")], part="shard-0-of-2")
    write_fits_index(tmp_path, "model", False, [_entry("c")], part="shard-1-of-2")
    write_fits_index(tmp_path, "model", False, [_entry("d")], part="shard-0-of-2")  # its next batch
    part = json.loads((tmp_path / fits_part_name("shard-0-of-2")).read_text())
    assert [e["name"] for e in part["scans"]] == ["b", "d"]  # its own scans only
    assert [e["name"] for e in json.loads((tmp_path / FITS_NAME).read_text())["scans"]] == ["a"]
    index = read_fits_index(tmp_path)
    assert [e["name"] for e in index["scans"]] == ["a", "b", "c", "d"] and index["model"] == "model"
    write_fits_index(tmp_path, "model", False, [])  # a run without a part: fits.json becomes the merge
    assert [e["name"] for e in json.loads((tmp_path / FITS_NAME).read_text())["scans"]] == ["a", "b", "c", "d"]
    only_parts = tmp_path / "only-parts"
    write_fits_index(only_parts, "model", True, [_entry("x")], part="shard-1-of-3")
    assert read_fits_index(only_parts)["same_identity"] is True  # a folder of parts alone is a fits folder
    (tmp_path / fits_part_name("shard-1-of-2")).write_text("{")
    with pytest.raises(ImfaceError, match="fits-part-shard-1-of-2.json: unreadable"):
        read_fits_index(tmp_path)
    with pytest.raises(ImfaceError, match="one plain word"):
        fits_part_name("a/b")
