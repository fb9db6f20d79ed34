"""imface: implicit-neural 3D morphable face models (ImFace, CVPR 2022).

The public API is small; heavy modules (torch) load on first use::

    import imface
    pretrained = imface.load_pretrained()  # the model shipped with imface; or a folder: load_pretrained("runs/exp")
    id_code = pretrained.identity_code("001")
    exp_code, neutral = pretrained.expression_code("001/2_smile")
    mesh = imface.extract_mesh(pretrained, id_code, exp_code, neutral, resolution=256)
"""
from __future__ import annotations

import importlib
from typing import Any

from imface.errors import ImfaceError

from imface.version import __version__

# public name -> (module, attribute)
_LAZY = {
    "ImFace": ("imface.model", "ImFace"),
    "load_pretrained": ("imface.pretrained", "load_pretrained"),
    "export_model": ("imface.pretrained", "export_model"),
    "extract_mesh": ("imface.generate", "extract_scan_mesh"),
    "preprocess_dataset": ("imface.preprocess.run", "preprocess_dataset"),
    "train": ("imface.training.trainer", "train"),
    "fit": ("imface.fitting.run", "fit"),
}

__all__ = ["ImfaceError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'imface' has no attribute {name!r}")
