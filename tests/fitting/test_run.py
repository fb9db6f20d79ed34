"""The fit verb's own steps: option checks, batches that keep a shared identity together, the
one line per scan. (fit() end to end: tests/fitting/test_fitter.py.)"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imface.errors import ImfaceError
from imface.fitting.inputs import FitTarget
from imface.fitting.outputs import ScanFit
from imface.fitting.run import _batches, _check_options, _progress_line

GOOD = dict(steps=10, points=64, space_points=8, resolution=32, batch_size=4, lr=1.0, scale_lr=0.0, scale_sweep=0,
            robust_distance=None, code_basis="diagonal")


def _target(name: str, identity: str) -> FitTarget:
    return FitTarget(name, identity, "smile", False, Path(name), "points", np.zeros((4, 3)))


@pytest.mark.parametrize("change, message", [
    ({"steps": 0}, "--steps must be >= 1"), ({"points": 8}, "--points must be >= 16"), ({"lr": 0.0}, "--lr must be > 0"),
    ({"scale_sweep": 2}, "--scale-sweep must be 0"), ({"robust_distance": -1.0}, "--robust must be >= 0"),
    ({"code_basis": "other"}, "--code-basis must be one of"),
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
