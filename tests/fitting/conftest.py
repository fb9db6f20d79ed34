"""The fitting tests' model: the tiny trained ImFace, loaded once per test module."""
from __future__ import annotations

import pytest

from imface.fitting import outputs as fit_io


@pytest.fixture(scope="module")
def tiny(trained_tiny):
    """(data_dir, exp_dir, the loaded model) of tests/model_fixtures.py's tiny model."""
    data_dir, exp_dir = trained_tiny
    return data_dir, exp_dir, fit_io.load_model(exp_dir)
