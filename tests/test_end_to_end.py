"""A small end-to-end run of the command line on the built-in data:
``imface data bfm`` -> ``imface preprocess`` -> ``imface check-data``."""
from __future__ import annotations

import json

import numpy as np

from tests.run_cli import run_cli


def test_builtin_data_preprocess_and_check(tmp_path, bfm, capsys):  # bfm: downloads/verifies the sources once
    raw, data = tmp_path / "raw", tmp_path / "processed"
    assert run_cli("data", "bfm", "--out", str(raw), "--identities", "2",
                "--expressions", "neutral,smile,jaw_left") == 0
    assert run_cli("preprocess", "--in", str(raw), "--out", str(data), "--surface-samples", "20000",
                "--space-samples", "4000", "--test-identities", "1", "--no-progress") == 0
    assert run_cli("check-data", str(data)) == 0
    out = capsys.readouterr().out
    assert "OK: no problems found" in out

    manifest = json.loads((data / "manifest.json").read_text())
    assert len(manifest["scans"]) == 6
    assert set(manifest["split"]["test_expressions"]) == {"jaw_left", "jaw_right", "mouth_left", "mouth_right", "eye_closed"}
    scan = data / manifest["scans"][0]["path"]
    sdf, points = np.load(scan / "space_sdf.npy"), np.load(scan / "space_points.npy")
    assert points.shape == (4000, 3) and np.isfinite(sdf).all()
    # the registered BFM mesh is carried into model units: the nose tip sits at (0, 0, 0.4)
    landmarks = json.loads((scan / "landmarks.json").read_text())
    assert np.allclose(landmarks["ibug68"][30], [0.0, 0.0, 0.4], atol=1e-4)

    # a re-run skips every complete scan and changes nothing
    before = {p: p.stat().st_mtime_ns for p in data.rglob("*.npy")}
    assert run_cli("preprocess", "--in", str(raw), "--out", str(data), "--surface-samples", "20000",
                "--space-samples", "4000", "--test-identities", "1", "--no-progress") == 0
    assert "6 skipped" in capsys.readouterr().out
    assert before == {p: p.stat().st_mtime_ns for p in data.rglob("*.npy")}
