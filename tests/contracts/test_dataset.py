"""manifest.json: round trip, split rules, and refusal of unsafe or inconsistent manifests."""
from __future__ import annotations

import json

import pytest

from imface.errors import ImfaceError
from imface.contracts.dataset import ManifestScan, make_split, read_manifest, write_manifest


def _scans():
    return [
        ManifestScan(f"{i}/{k}_{e}", i, e, e == "neutral", f"{i}/{k}_{e}")
        for i in ("001", "002", "003") for k, e in ((1, "neutral"), (2, "smile"), (5, "jaw_left"))
    ]


def test_round_trip_and_split(tmp_path):
    scans = _scans()
    path = write_manifest(tmp_path, scans, ["003"], ["jaw_left"], extra={"note": 1})
    manifest = read_manifest(path)
    assert manifest.root == tmp_path.resolve()
    assert [s.name for s in manifest.scans] == sorted(s.name for s in scans)
    assert manifest.identities == ["001", "002", "003"]
    assert manifest.test == ("003/1_neutral", "003/2_smile", "003/5_jaw_left")
    assert manifest.held_out_expression == ("001/5_jaw_left", "002/5_jaw_left")
    assert set(manifest.train) == {"001/1_neutral", "001/2_smile", "002/1_neutral", "002/2_smile"}
    assert manifest.split_of("001/5_jaw_left") == "held_out_expression"
    assert manifest.folder("001/2_smile") == tmp_path.resolve() / "001/2_smile"
    assert manifest.extra == {"note": 1}
    assert read_manifest(tmp_path).scans == manifest.scans  # folder or file


def test_every_scan_lands_in_exactly_one_split_list():
    split = make_split(_scans(), ["002"], ["smile", "jaw_left"])
    names = [n for members in split.values() for n in members]
    assert sorted(names) == sorted(s.name for s in _scans())


def _edit(tmp_path, change):
    path = write_manifest(tmp_path, _scans(), ["003"], [])
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize("change, message", [
    (lambda d: d["scans"][0].update(path="../outside"), "leaves the dataset folder"),
    (lambda d: d["scans"][0].update(path="/etc"), "leaves the dataset folder"),
    (lambda d: d["scans"].append(dict(d["scans"][0])), "appears twice"),
    (lambda d: d["split"]["train"].append("999/1_neutral"), "not in 'scans'"),
    (lambda d: d["split"]["test"].append(d["split"]["train"][0]), "both"),
    (lambda d: d.update(format_version=99), "format_version"),
    (lambda d: d["scans"][0].pop("identity"), "lacks"),
])
def test_unsafe_or_inconsistent_manifests_are_refused(tmp_path, change, message):
    path = _edit(tmp_path, change)
    with pytest.raises(ImfaceError, match=message):
        read_manifest(path)


def test_symlinked_scan_folder_leaving_the_root_is_refused(tmp_path):
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (root / "001").mkdir()
    (root / "001" / "1_neutral").symlink_to(outside)
    write_manifest(root, [ManifestScan("001/1_neutral", "001", "neutral", True, "001/1_neutral")], [], [])
    with pytest.raises(ImfaceError, match="leaves the dataset folder"):
        read_manifest(root)


def test_missing_manifest(tmp_path):
    with pytest.raises(ImfaceError, match="manifest not found"):
        read_manifest(tmp_path)
