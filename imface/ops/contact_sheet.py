"""Grids of pictures with labels (contact sheets), and atomic PNG writing."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from imface.errors import ImfaceError
from imface.io.atomic import atomic_path


def contact_sheet(
    images: Sequence[Sequence[np.ndarray | None]],
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str | None = None,
    pad: int = 4,
    background: tuple[int, int, int] = (255, 255, 255),
    font_size: float | None = None,
) -> np.ndarray:
    """Lay out pictures in a labelled grid; returns (H, W, 3) uint8.

    images: rows of pictures, each (h, w, 3) or (h, w, 4) or (h, w) uint8, or None for a blank
        cell; rows may be of different lengths (missing cells are blank). Pictures are centred
        in their cell; a column is as wide as its widest picture, a row as tall as its tallest.
    row_labels: one per row, written left of the row; col_labels: one per column, above it;
        title: above everything. Labels may hold newlines.
    pad: pixels around and between cells. font_size: pixels (default from the cell size).
    Layout without labels: W = sum(column widths) + pad * (columns + 1), likewise H.
    """
    grid = [[_as_rgb(cell, r, c) for c, cell in enumerate(row)] for r, row in enumerate(images)]
    n_rows = len(grid)
    n_cols = max((len(row) for row in grid), default=0)
    present = [cell for row in grid for cell in row if cell is not None]
    if not present:
        raise ImfaceError(None, "contact sheet has no pictures (every cell is empty)")
    if pad < 0:
        raise ImfaceError(None, f"pad must be >= 0 pixels, got {pad}")
    if row_labels is not None and len(row_labels) != n_rows:
        raise ImfaceError(None, f"{len(row_labels)} row labels for {n_rows} rows")
    if col_labels is not None and len(col_labels) != n_cols:
        raise ImfaceError(None, f"{len(col_labels)} column labels for {n_cols} columns")
    grid = [row + [None] * (n_cols - len(row)) for row in grid]

    # Empty rows/columns keep the size of the largest picture so the grid stays regular.
    default_h = max(cell.shape[0] for cell in present)
    default_w = max(cell.shape[1] for cell in present)
    col_w = [
        max((row[c].shape[1] for row in grid if row[c] is not None), default=default_w) for c in range(n_cols)
    ]
    row_h = [max((cell.shape[0] for cell in row if cell is not None), default=default_h) for row in grid]

    size = font_size if font_size is not None else max(12.0, float(np.median(row_h)) / 20.0)
    font = ImageFont.load_default(size=size)
    title_font = ImageFont.load_default(size=size * 1.3)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_size(text: str, which: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> tuple[int, int]:
        left, top, right, bottom = measure.multiline_textbbox((0, 0), text, font=which)
        return int(np.ceil(right - min(left, 0))), int(np.ceil(bottom - min(top, 0)))

    gap = max(pad, int(size / 2))
    label_w = max((text_size(t, font)[0] for t in row_labels), default=0) + 2 * gap if row_labels else 0
    col_label_h = max((text_size(t, font)[1] for t in col_labels), default=0) + gap if col_labels else 0
    title_h = text_size(title, title_font)[1] + 2 * gap if title else 0

    x0, y0 = label_w + pad, title_h + col_label_h + pad
    col_x = x0 + np.concatenate([[0], np.cumsum(np.asarray(col_w) + pad)])
    row_y = y0 + np.concatenate([[0], np.cumsum(np.asarray(row_h) + pad)])
    width, height = int(col_x[-1]), int(row_y[-1])
    sheet = Image.new("RGB", (width, height), tuple(int(c) for c in background))
    draw = ImageDraw.Draw(sheet)
    ink = (20, 20, 20)

    for r, row in enumerate(grid):
        for c, cell in enumerate(row):
            if cell is None:
                continue
            left = int(col_x[c] + (col_w[c] - cell.shape[1]) // 2)
            top = int(row_y[r] + (row_h[r] - cell.shape[0]) // 2)
            sheet.paste(Image.fromarray(_over(cell, background)), (left, top))
    if title:
        draw.multiline_text((width / 2, gap), title, font=title_font, fill=ink, anchor="ma", align="center")
    for c, text in enumerate(col_labels or []):
        centre = col_x[c] + col_w[c] / 2
        bottom = y0 - pad - gap / 2
        draw.multiline_text((centre, bottom), text, font=font, fill=ink, anchor="md", align="center")
    for r, text in enumerate(row_labels or []):
        middle = row_y[r] + row_h[r] / 2
        draw.multiline_text((gap, middle), text, font=font, fill=ink, anchor="lm", align="left")
    return np.asarray(sheet, dtype=np.uint8).copy()


def save_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write (H, W, 3), (H, W, 4) or (H, W) uint8 as a PNG, atomically."""
    array = np.asarray(image)
    channels_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))
    if array.dtype != np.uint8 or not channels_ok:
        raise ImfaceError(path, f"a PNG needs an (H, W[, 3|4]) uint8 array, got {array.dtype} {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImfaceError(path, f"cannot write an empty picture of shape {array.shape}")
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")


def _as_rgb(cell: np.ndarray | None, row: int, col: int) -> np.ndarray | None:
    """A cell as (h, w, 3|4) uint8, or None."""
    if cell is None:
        return None
    array = np.asarray(cell)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (3, 4) or 0 in array.shape:
        raise ImfaceError(
            None,
            f"contact sheet cell ({row}, {col}) must be (h, w[, 3|4]) uint8, got {array.dtype} {array.shape}",
        )
    return array


def _over(cell: np.ndarray, background: Sequence[int]) -> np.ndarray:
    """(h, w, 3|4) uint8 -> (h, w, 3) uint8, RGBA composited over the background colour."""
    if cell.shape[2] == 3:
        return cell
    alpha = cell[:, :, 3:4].astype(np.float32) / 255.0
    blended = cell[:, :, :3] * alpha + np.asarray(background, dtype=np.float32) * (1.0 - alpha)
    return np.round(blended).astype(np.uint8)
