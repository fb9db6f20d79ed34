"""The fit verb's own steps: option checks, batches that keep a shared identity together, the
one line per scan, and batches that survive a failing scan or a kill. (fit() end to end:
tests/fitting/test_fitter.py; refusals and shards on the command line: tests/cli/test_fit_batches.py.)"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imface.contracts.fits import FITS_NAME, read_fits_index
from imface.errors import ImfaceError
from imface.fitting import run
from imface.fitting.gather import InputReport
from imface.fitting.inputs import FitTarget
from imface.fitting.outputs import ScanFit
from imface.fitting.run import _batches, _check_options, _progress_line, fit, metrics_text

GOOD = dict(steps=10, points=64, space_points=8, resolution=32, batch_size=4, lr=1.0, scale_lr=0.0, scale_sweep=0,
            robust_distance=None, code_basis="diagonal")


def _target(name: str, identity: str) -> FitTarget:
    return FitTarget(name, identity, "smile", False, Path(name), "points", np.zeros((4, 3)))


@pytest.mark.parametrize("change, message", [
    ({"steps": 0}, "--steps must be >= 1"), ({"points": 8}, "--points must be >= 16"), ({"lr": 0.0}, "--lr must be > 0"),
    ({"scale_sweep": 2}, "--scale-sweep must be 0"), ({"robust_distance": -1.0}, "--robust must be >= 0"),
    ({"code_basis": "other"}, "--code-basis must be one of"), ({"shard": (2, 2)}, "--shard 2/2: expected i/n"),
    ({"unit": "inch"}, "--unit must be one of auto | model | mm | cm | m, got 'inch'"),
    ({"pose": "guess"}, "--pose must be one of"), ({"neutral": "maybe"}, "--neutral must be one of"),
    ({"pose": "none"}, "--pose none needs a given --unit"),
])
def test_options_out_of_range_are_refused(change, message):
    _check_options(**GOOD)
    with pytest.raises(ImfaceError, match=message):
        _check_options(**{**GOOD, **change})


def test_batches_keep_a_group_together():
    targets = [_target(f"s{i}", f"p{i // 3}") for i in range(7)]  # groups of 3, 3, 1
    group_of = {t.name: i // 3 for i, t in enumerate(targets)}
    batches = _batches(targets, group_of, batch_size=4)
    assert [[t.name for t in batch] for batch in batches] == [["s0", "s1", "s2"], ["s3", "s4", "s5", "s6"]]
    assert [len(b) for b in _batches(targets, {t.name: i for i, t in enumerate(targets)}, 4)] == [4, 3]


def test_one_line_per_scan_names_the_unit_found():
    target = _target("a", "p")
    target.alignment = {"mm_per_input_unit": 10.0, "unit": "cm", "residual_mm": 0.5, "coverage": 0.9}
    fit = ScanFit("a", Path("a"), np.zeros(2), np.zeros(2), False, np.eye(3), np.zeros(3), {"total": 0.25},
                  {"chamfer_mm": 0.61}, 1.5, 10)
    line = _progress_line(target, fit, 1.5)
    assert "\n" not in line and line.startswith("a: 1.5 s  loss 0.25")
    assert "chamfer to the input 0.610 mm" in line and "10 mm per input unit (cm)" in line


def test_the_line_gives_both_one_way_distances_where_the_fit_has_them():
    assert metrics_text({"chamfer_mm": 0.61, "input_to_fit_mm": 0.2, "fit_to_input_mm": 0.25}) == (
        "  input→fit 0.200, fit→input 0.250 mm")
    assert metrics_text({"chamfer_mm": 1.0, "input_to_fit_mm": 0.0021, "fit_to_input_mm": 0.003,
                         "distance_unit": "input units"}) == "  input→fit 0.0021, fit→input 0.003 input units"
    assert metrics_text({"chamfer_mm": 0.61}) == "  chamfer to the input 0.610 mm" and metrics_text(None) == ""


QUICK = dict(steps=4, points=64, space_points=32, resolution=20, metrics_points=0, device="cpu")
SCANS = ["001/2_smile", "002/2_smile", "004/2_smile"]


def test_a_scan_failing_in_its_batch_fails_alone(tiny, tmp_path, monkeypatch):
    data_dir, _, loaded = tiny
    real = run.optimise

    def failing(model, targets, *args, **kwargs):
        if any(t.name == "002/2_smile" for t in targets):
            raise RuntimeError("out of memory")
        return real(model, targets, *args, **kwargs)

    monkeypatch.setattr(run, "optimise", failing)
    report = InputReport()
    results = fit(loaded, data_dir, tmp_path / "fits", scans=SCANS, report=report, **QUICK)
    assert [r.name for r in results] == ["001/2_smile", "004/2_smile"]  # fitted apart when the batch failed
    (problem,) = report.problems
    assert problem.status == "failed" and problem.name == "002/2_smile"
    assert problem.line == f"failed: {data_dir / '002/2_smile'}: internal error (RuntimeError: out of memory)"
    assert [e["name"] for e in read_fits_index(tmp_path / "fits")["scans"]] == ["001/2_smile", "004/2_smile"]
    # without a report: the others are written, then the one problem's own error
    with pytest.raises(RuntimeError, match="out of memory"):
        fit(loaded, data_dir, tmp_path / "strict", scans=SCANS, **QUICK)
    assert (tmp_path / "strict/004/2_smile/fit.json").is_file()


def test_a_failed_write_and_a_kill_leave_the_others_and_a_rerun_resumes(tiny, tmp_path, monkeypatch):
    data_dir, _, loaded = tiny
    out = tmp_path / "fits"
    real = run.write_scan_outputs

    def write(model, target, *args, **kwargs):
        if target.name == "001/2_smile":
            raise OSError("disk full")
        if target.name == "004/2_smile":
            raise KeyboardInterrupt  # killed here: never caught as one scan's failure
        return real(model, target, *args, **kwargs)

    monkeypatch.setattr(run, "write_scan_outputs", write)
    with pytest.raises(KeyboardInterrupt):
        fit(loaded, data_dir, out, scans=SCANS, batch_size=1, **QUICK)
    assert [e["name"] for e in read_fits_index(out)["scans"]] == ["002/2_smile"]  # indexed batch by batch
    monkeypatch.setattr(run, "write_scan_outputs", real)
    # a kill between a scan's files and the index: the re-run indexes it without refitting it
    index = json.loads((out / FITS_NAME).read_text())
    (out / FITS_NAME).write_text(json.dumps({**index, "scans": []}))
    again = fit(loaded, data_dir, out, scans=SCANS, batch_size=1, **QUICK)
    assert [(r.name, r.skipped) for r in again] == [("001/2_smile", False), ("002/2_smile", True),
                                                      ("004/2_smile", False)]
    assert [e["name"] for e in read_fits_index(out)["scans"]] == SCANS
