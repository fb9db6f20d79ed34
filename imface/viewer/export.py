"""Files the viewer hands to the browser: the current face as PLY or OBJ, a screenshot as PNG.

Nothing is written where the user would find it: meshes go through a temporary folder (so they
are the bytes :func:`imface.io.mesh.write_mesh` writes for ``imface extract``) and the browser
saves the download.
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np

from imface.errors import ImfaceError
from imface.frame import MM_PER_UNIT
from imface.generate import UNITS, safe_name
from imface.io.mesh import WRITE_FORMATS, write_mesh


def mesh_bytes(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None = None, *, fmt: str = "ply",
               unit: str = "model") -> bytes:
    """The mesh (vertices (V, 3) model units, faces (F, 3), optional colours (V, 3) in [0, 1]) as
    the bytes of a ``fmt`` file (ply | obj) in ``unit`` (model | mm)."""
    if fmt not in WRITE_FORMATS or unit not in UNITS:
        raise ImfaceError(None, f"export format must be one of {', '.join(WRITE_FORMATS)} and unit one of "
                          f"{', '.join(UNITS)}, got {fmt!r} / {unit!r}")
    scale = MM_PER_UNIT if unit == "mm" else 1.0
    with tempfile.TemporaryDirectory(prefix="imface-view-") as folder:
        path = write_mesh(Path(folder) / f"face.{fmt}", np.asarray(vertices, dtype=np.float64) * scale, faces, colors)
        return path.read_bytes()


def png_bytes(image: np.ndarray) -> bytes:
    """An (H, W, 3) or (H, W, 4) uint8 image as PNG bytes."""
    from PIL import Image  # Pillow only when a screenshot is taken

    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImfaceError(None, f"a screenshot must be (H, W, 3 or 4) uint8, got {array.shape} {array.dtype}")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def file_name(label: str, suffix: str) -> str:
    """A download's file name from the face's label: ``<safe label>.<suffix>``."""
    return f"{safe_name(label)}.{suffix}"
