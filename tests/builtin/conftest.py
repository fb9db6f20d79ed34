"""Fixtures of tests/builtin: the ICT-FaceKit stand-in (tests/builtin/ict_standin.py), written once per session."""
from __future__ import annotations

from pathlib import Path

import pytest

from imface.builtin.ict import ICTModel, read_facekit
from tests.builtin.ict_standin import standin_archive, standin_clone


@pytest.fixture(scope="session")
def ict_clone(tmp_path_factory) -> Path:
    """A folder laid out like a clone of ICT-FaceKit (``<clone>/FaceXModel/...``), synthetic."""
    return standin_clone(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def ict_archives(tmp_path_factory, ict_clone) -> dict[str, Path]:
    """The stand-in clone as ``.tar.gz`` and ``.zip`` archives, by kind."""
    return {kind: standin_archive(tmp_path_factory.getbasetemp(), kind) for kind in ("tar.gz", "zip")}


@pytest.fixture(scope="session")
def ict_model(ict_clone) -> ICTModel:
    """The ICT reader's model of the stand-in clone."""
    return read_facekit(ict_clone)
