"""Colours for pictures: matplotlib colormaps over scalars, per-vertex error colours, and the
checks that turn user colours into the renderer's (N, 3) float32 RGB in [0, 1]."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from imface.errors import ImfaceError


def colormap(
    values: np.ndarray,
    vmin: float | None = None,
    vmax: float | None = None,
    name: str = "viridis",
    nan_color: tuple[float, float, float] = (0.6, 0.6, 0.6),
) -> np.ndarray:
    """Map (V,) scalars to (V, 3) float RGB in [0, 1] with a matplotlib colormap.

    vmin/vmax default to the finite values' min/max; values outside are clipped; NaN -> nan_color.
    name: any matplotlib colormap, e.g. "viridis", "turbo" (errors), "coolwarm" (signed).
    """
    import matplotlib  # here, not at the top: a heavy import that only colour maps need

    try:
        cmap = matplotlib.colormaps[name]
    except KeyError:
        raise ImfaceError(None, f"unknown colormap {name!r}; try viridis, turbo or coolwarm") from None
    vals = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = np.isfinite(vals)
    data_lo, data_hi = (float(vals[finite].min()), float(vals[finite].max())) if finite.any() else (0.0, 1.0)
    lo = data_lo if vmin is None else float(vmin)
    hi = data_hi if vmax is None else float(vmax)
    span = hi - lo if hi > lo else 1.0
    unit = np.clip((np.where(finite, vals, lo) - lo) / span, 0.0, 1.0)
    colors = cmap(unit)[:, :3]
    colors[~finite] = nan_color
    return colors


def error_colors(errors_mm: np.ndarray, vmax_mm: float = 5.0) -> np.ndarray:
    """Per-vertex errors (N,) mm -> (N, 3) RGB in [0, 1] (turbo, 0 .. vmax_mm)."""
    return colormap(errors_mm, 0.0, vmax_mm, "turbo")


def as_colors(colors: Any, count: int, default: Sequence[float] | None) -> np.ndarray:
    """(count, 3) float32 in [0, 1] from per-item colours, one colour, or the default."""
    if colors is None:
        colors = default
    arr = np.asarray(colors)
    if arr.dtype == np.uint8:
        arr = arr / 255.0
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 1 and arr.shape[0] in (3, 4):
        arr = np.broadcast_to(arr, (count, arr.shape[0]))
    if arr.ndim != 2 or arr.shape[0] != count or arr.shape[1] not in (3, 4):
        raise ImfaceError(None, f"colours must be (3,) or ({count}, 3), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ImfaceError(None, "colours contain NaN or infinite values")
    return np.clip(arr[:, :3], 0.0, 1.0).astype(np.float32)
