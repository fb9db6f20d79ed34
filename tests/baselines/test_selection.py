"""Which scans a fit takes: a split, all, or named scans, each checked against the manifest."""
from __future__ import annotations

import pytest

from imface.baselines.selection import select_scans
from imface.contracts.dataset import ManifestScan, read_manifest, write_manifest
from imface.errors import ImfaceError


def _manifest(tmp_path):
    scans = [ManifestScan(f"{i}/{k}_{e}", i, e, e == "neutral", f"{i}/{k}_{e}")
             for i in ("001", "002") for k, e in ((1, "neutral"), (2, "smile"))]
    return read_manifest(write_manifest(tmp_path, scans, ["002"], []))


def test_splits_names_and_refusals(tmp_path):
    manifest = _manifest(tmp_path)
    assert select_scans(manifest, "test") == ["002/1_neutral", "002/2_smile"]
    assert select_scans(manifest, "all") == sorted(manifest.by_name)
    assert select_scans(manifest, "test", ["001/2_smile"]) == ["001/2_smile"]
    with pytest.raises(ImfaceError, match="no scan\\(s\\) named 009/1_neutral"):
        select_scans(manifest, "test", ["009/1_neutral"])
    with pytest.raises(ImfaceError, match="--split must be one of"):
        select_scans(manifest, "validation")
    with pytest.raises(ImfaceError, match="split is empty"):
        select_scans(manifest, "held_out_expression")
