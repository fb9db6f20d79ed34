"""Learning-curve helpers: the probe's scans and the trend verdict."""
from __future__ import annotations

from pathlib import Path

import math

from imface.dataset import ScanRecord
from imface.training.curves import choose_probe_scans, curve_trend


def _scans(kinds: str) -> list[ScanRecord]:
    return [ScanRecord(f"s{i}", "a", "neutral" if k == "n" else "smile", k == "n", Path(".")) for i, k in enumerate(kinds)]


def test_probe_takes_a_neutral_scan_and_spreads_over_the_others():
    chosen = choose_probe_scans(_scans("nxxxxnxxxx"), 3)
    assert len(chosen) == 3 and 0 in chosen and all(i != 5 for i in chosen)
    assert choose_probe_scans(_scans("xxxx"), 2) == [0, 2]
    assert choose_probe_scans(_scans("nnn"), 2) == [0, 1]  # no expression scans: neutral ones
    assert choose_probe_scans(_scans("nx"), 0) == [] and choose_probe_scans([], 3) == []


def test_trend_says_falling_flattened_or_rising():
    steps = list(range(0, 1000, 100))
    assert curve_trend(steps, [2.0 - 0.1 * i for i in range(10)]) == "falling"
    assert curve_trend(steps, [1.0 + 0.0001 * (i % 2) for i in range(10)]) == "flattened"
    assert curve_trend(steps, [1.0 + 0.1 * i for i in range(10)]) == "rising"
    # early NaNs (no surface yet) are skipped; too few points is not a verdict
    assert curve_trend(steps, [math.nan] * 3 + [2.0 - 0.1 * i for i in range(7)]) == "falling"
    assert curve_trend([0, 1], [1.0, 0.5]) == "too short"
