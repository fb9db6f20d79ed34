"""Colour maps against matplotlib, error colours, and the colour checks of the renderer."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from imface.errors import ImfaceError
from imface.ops.colors import as_colors, colormap, error_colors


def test_colormap_matches_matplotlib() -> None:
    values = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, np.nan])
    colours = colormap(values, vmin=0.0, vmax=1.0, name="turbo")
    reference = matplotlib.colormaps["turbo"](np.clip(values[:5], 0, 1))[:, :3]
    assert np.allclose(colours[:5], reference)
    assert np.allclose(colours[5], [0.6, 0.6, 0.6])
    auto = colormap(np.array([2.0, 4.0]), name="viridis")  # range from the data
    assert np.allclose(auto, matplotlib.colormaps["viridis"]([0.0, 1.0])[:, :3])
    with pytest.raises(ImfaceError):
        colormap(values, name="no-such-map")


def test_error_colors_span_turbo_from_zero_to_the_limit() -> None:
    colours = error_colors(np.array([0.0, 5.0, 50.0]), vmax_mm=5.0)
    assert np.allclose(colours[1], colours[2])  # clipped at the limit
    assert np.allclose(colours[0], colormap(np.array([0.0]), 0.0, 1.0, "turbo")[0])


def test_as_colors_broadcasts_scales_uint8_and_refuses_bad_shapes() -> None:
    assert as_colors(None, 4, (0.5, 0.5, 0.5)).shape == (4, 3)
    assert np.allclose(as_colors(np.full((2, 3), 255, dtype=np.uint8), 2, None), 1.0)
    assert as_colors((2.0, -1.0, 0.5, 1.0), 1, None).tolist() == [[1.0, 0.0, 0.5]]  # RGBA -> clipped RGB
    with pytest.raises(ImfaceError, match="colours must be"):
        as_colors(np.zeros((3, 3)), 2, None)
    with pytest.raises(ImfaceError, match="NaN"):
        as_colors((np.nan, 0.0, 0.0), 1, None)
