"""Fitting settings: the defaults the docs state and a plain-dict round trip."""
from __future__ import annotations

from imface.config.fit import DEFAULT_FIT_LR, DEFAULT_FIT_SPACE_POINTS, DEFAULT_SCALE_SWEEP, FitSettings
from imface.config.parse import from_dict


def test_defaults_and_round_trip():
    settings = FitSettings()
    assert settings.lr == DEFAULT_FIT_LR and settings.scale_sweep == DEFAULT_SCALE_SWEEP == 0
    assert DEFAULT_FIT_SPACE_POINTS == 256 and settings.code_basis == "diagonal"
    changed = FitSettings(steps=50, robust_distance=0.05, code_basis="principal")
    assert from_dict(FitSettings, changed.to_dict()) == changed
