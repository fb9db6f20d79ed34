"""Benchmark presets: each validates, and bad values are refused with one line."""
from __future__ import annotations

import pytest

from imface.config.benchmark import benchmark_preset
from imface.errors import ImfaceError


def test_presets_validate_and_bad_values_are_refused():
    for name in ("tiny", "cpu", "long", "paper"):
        assert benchmark_preset(name).preset == name
    assert len(benchmark_preset("long").seeds) == 3
    with pytest.raises(ImfaceError, match="unknown benchmark preset"):
        benchmark_preset("huge")
    config = benchmark_preset("tiny")
    config.variants = ["full", "no-such"]
    with pytest.raises(ImfaceError, match="unknown variant"):
        config.validate()
    config = benchmark_preset("tiny")
    config.fit_lr = 0.0
    with pytest.raises(ImfaceError, match="fit_lr must be > 0"):
        config.validate()
