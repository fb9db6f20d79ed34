"""Draw docs/pipeline.png: imface's pipeline as boxes and arrows (no face pictures).

Run from the repository root: ``python docs/figures/draw_pipeline.py``. Only matplotlib is
needed; the figure is text and shapes, so it carries no data of the Basel Face Model.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display needed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "pipeline.png"
DATA_COLOUR, STEP_COLOUR, USE_COLOUR = "#e8eef7", "#fdf1dc", "#e6f4ea"


def box(ax, x: float, y: float, w: float, h: float, title: str, body: str, colour: str) -> None:
    """A rounded box centred at (x, y), in axes units, with a bold title and a smaller body."""
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.012,rounding_size=0.02",
                                facecolor=colour, edgecolor="#555555", linewidth=1.0))
    ax.text(x, y + h * 0.18, title, ha="center", va="center", fontsize=10.5, fontweight="bold")
    ax.text(x, y - h * 0.2, body, ha="center", va="center", fontsize=7.8, color="#333333", linespacing=1.25)


def arrow(ax, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, linewidth=1.1, color="#444444",
                                 shrinkA=0, shrinkB=0))


def main() -> None:
    fig = plt.figure(figsize=(11.0, 3.9), dpi=110)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")

    row, w, h = 0.6, 0.135, 0.3
    stages = [
        (0.085, "raw scans", "meshes + landmarks\nFaceScape, built-in,\nor a CSV/JSON list", DATA_COLOUR),
        (0.265, "preprocess", "align, crop 100 mm,\nremove hidden surface,\nsample SDF", STEP_COLOUR),
        (0.445, "train", "auto-decoder:\nnetworks + codes\n(CPU, CUDA, DDP)", STEP_COLOUR),
        (0.625, "model", "experiment folder\nor exported,\nchecksummed model", DATA_COLOUR),
    ]
    for x, title, body, colour in stages:
        box(ax, x, row, w, h, title, body, colour)
    for (x0, *_), (x1, *_) in zip(stages, stages[1:]):
        arrow(ax, (x0 + w / 2 + 0.012, row), (x1 - w / 2 - 0.012, row))

    uses = [
        ("fit", "new scans -> codes\n(any unit, pose)"),
        ("extract", "codes -> meshes"),
        ("correspond", "dense matches via\ntemplate space"),
        ("sample / transfer", "random faces,\ninterpolate, swap"),
        ("eval", "Chamfer, F-score,\nnormal consistency"),
    ]
    uw, uh, ux = 0.15, 0.15, 0.87
    ys = [0.89 - i * 0.195 for i in range(len(uses))]
    for y, (title, body) in zip(ys, uses):
        box(ax, ux, y, uw, uh, title, body, USE_COLOUR)
        arrow(ax, (0.625 + w / 2 + 0.012, row), (ux - uw / 2 - 0.012, y))
    ax.text(0.36, 0.2, "imface preprocess  ->  imface train  ->  imface fit / extract / correspond / sample / "
            "transfer / eval", ha="center", va="center", fontsize=9, family="monospace", color="#333333")
    ax.text(0.36, 0.1, "imface demo runs it end to end on built-in data", ha="center", va="center",
            fontsize=9, style="italic", color="#555555")
    fig.savefig(OUT, facecolor="white")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
