"""What a fit writes (the fits-folder contract: fits.json, codes, fit.json, history, mesh) and how a
rerun resumes: finished scans are skipped, changed settings refit, the index is merged."""
from __future__ import annotations

import json

import numpy as np
import torch
import trimesh

from imface.contracts.fits import read_codes, read_fits_index
from imface.fitting.run import fit
from tests.fitting import FAST


def test_outputs_follow_the_contract_and_rerun_resumes(tiny, tmp_path):
    data_dir, exp_dir, _ = tiny
    out = tmp_path / "fits"
    results = fit(exp_dir, data_dir, out, scans=["001/1_neutral", "002/2_smile"], same_identity=True, **FAST)
    index = read_fits_index(out)
    assert index["format_version"] == 1 and index["same_identity"] is True and index["model"] == str(exp_dir)
    assert [s["name"] for s in index["scans"]] == ["001/1_neutral", "002/2_smile"]
    entry = index["scans"][1]
    assert entry == {"name": "002/2_smile", "folder": "002/2_smile", "neutral": False, "identity": "002",
                     "expression": "smile", "processed": str((data_dir / "002/2_smile").resolve())}
    for result in results:
        folder = out / result.name
        codes = read_codes(folder)
        assert codes["id_code"].shape == (16,) and codes["exp_code"].shape == (16,)
        assert codes["neutral"].dtype == torch.uint8 and codes["neutral"].tolist() == [int(result.neutral)]
        torch.testing.assert_close(codes["pose_rotation"], torch.eye(3))
        assert codes["pose_translation"].abs().max() == 0
        info = json.loads((folder / "fit.json").read_text())
        assert info["steps"] == FAST["steps"] and info["metrics"]["chamfer_mm"] > 0
        assert info["settings"]["robust_distance"] == 0.0  # processed scans: no clutter to ignore
        assert {"fscore@1mm", "fscore@2.5mm", "fscore@5mm", "normal_consistency"} <= set(info["metrics"])
        assert len((folder / "loss_history.jsonl").read_text().splitlines()) == FAST["steps"]
        assert len(trimesh.load(folder / "mesh.ply", process=False).faces) > 0
    stamp = (out / "002/2_smile/fit.json").stat().st_mtime_ns
    again = fit(exp_dir, data_dir, out, scans=["001/1_neutral", "002/2_smile"], same_identity=True, **FAST)
    assert all(r.skipped for r in again) and (out / "002/2_smile/fit.json").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again[1].id_code, results[1].id_code)
    changed = fit(exp_dir, data_dir, out, scans=["002/2_smile"], same_identity=True, **{**FAST, "steps": 5})
    assert not changed[0].skipped and json.loads((out / "002/2_smile/fit.json").read_text())["steps"] == 5
    assert len(read_fits_index(out)["scans"]) == 2  # merged, not replaced
