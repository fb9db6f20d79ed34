"""Matplotlib figures written as PNGs: the headless backend, an atomic save, the figure closed."""
from __future__ import annotations

import os
from typing import Any

from imface.io.atomic import atomic_path


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the headless Agg backend (imported here: heavy, and only plots need it)."""
    # here, not at the top: matplotlib is heavy and only plots need it
    import matplotlib

    matplotlib.use("Agg")
    # here, not at the top: matplotlib is heavy and only plots need it
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, png_path: str | os.PathLike) -> None:
    """Write ``fig`` as a PNG atomically and close it."""
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    pyplot().close(fig)
