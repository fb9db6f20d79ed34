"""Figures are written as PNGs atomically, and closed."""
from __future__ import annotations

from PIL import Image

from imface.io.plots import pyplot, save_figure


def test_save_figure_writes_a_png_and_closes_it(tmp_path):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2, 1), dpi=50)
    ax.plot([0, 1], [1, 0])
    save_figure(fig, tmp_path / "f.png")
    assert Image.open(tmp_path / "f.png").size == (100, 50)
    assert not plt.fignum_exists(fig.number)
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]  # no temp file left
