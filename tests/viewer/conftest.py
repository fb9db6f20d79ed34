"""The tiny trained model (tests/model_fixtures.py), loaded once for the viewer's tests."""
from __future__ import annotations

import pytest

from imface.pretrained import load_pretrained


@pytest.fixture(scope="session")
def tiny(trained_tiny):
    """The tiny trained model on the CPU (a Pretrained)."""
    return load_pretrained(trained_tiny[1], device="cpu")
