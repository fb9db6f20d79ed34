"""Shared fixtures: ``bfm`` (the BFM statistics, downloaded once into the cache, $IMFACE_CACHE) and
``trained_tiny`` (tests/model_fixtures.py: a tiny ImFace trained once per session)."""
from __future__ import annotations

import pytest

from imface.builtin.bfm import load_bfm
from tests.model_fixtures import trained_tiny  # noqa: F401  (registered here for every test module)


@pytest.fixture(scope="session")
def bfm():
    """The BFM 2009 statistics (imface.builtin.bfm.BFMStatistics), loaded once per session."""
    return load_bfm()
