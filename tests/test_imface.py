"""The package's public API: ``import imface`` is light (torch loads on first use), and every public
name resolves to the function or class it stands for."""
from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import imface


def test_import_loads_no_torch():
    code = "import sys, imface; print('torch' in sys.modules, imface.__version__)"
    loaded, version = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                     check=True).stdout.split()
    assert loaded == "False" and version == imface.__version__


def test_every_public_name_resolves():
    assert set(imface.__all__) == {"ImfaceError", "__version__", *imface._LAZY}
    for name, (module, attribute) in imface._LAZY.items():
        assert getattr(imface, name) is getattr(importlib.import_module(module), attribute), name
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        imface.nothing  # noqa: B018
