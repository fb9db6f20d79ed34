"""Shared fixtures. The BFM statistics are downloaded once into the cache ($IMFACE_CACHE)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def bfm():
    """The BFM 2009 statistics (imface.builtin.bfm.BFMStatistics), loaded once per session."""
    from imface.builtin.bfm import load_bfm

    return load_bfm()
