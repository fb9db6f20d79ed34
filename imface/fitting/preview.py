"""Pictures of fits: target | fit | error heatmap, seen from the front and the side.

One row per scan, written as ``FITS/<scan>/preview.png`` by ``imface fit --preview``, and a
contact sheet of all rows, ``FITS/preview.png``. The demo's fit figure uses the same rows.
The fit is shown cropped like its target (the pipeline's crop, as ``imface eval`` scores it),
so parts an implicit model adds beyond the scan (ears, neck) do not read as errors; the error
is each fitted vertex's distance to the target surface (for point sets, the surface their points
sample: :func:`imface.ops.neighbourhoods.distance_to_sampled_surface`), 0 to ``ERROR_RANGE_MM`` mm.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from imface.contracts.fits import PREVIEW_NAME
from imface.frame import MM_PER_UNIT
from imface.ops.colors import error_colors
from imface.ops.contact_sheet import contact_sheet, save_png
from imface.ops.ground_truth_crop import crop_like_ground_truth
from imface.ops.metrics import surface_distance_mm
from imface.ops.neighbourhoods import distance_to_sampled_surface
from imface.ops.render import render_mesh

ERROR_RANGE_MM = 5.0
CELL = (256, 256)
COLUMNS = ("target", "fit (cropped like the target)", f"error 0-{ERROR_RANGE_MM:g} mm")


def preview_row(target_vertices: np.ndarray, target_faces: np.ndarray | None, fit_vertices: np.ndarray,
                fit_faces: np.ndarray, views: tuple[str, ...] = ("front", "side")) -> tuple[list[np.ndarray], float]:
    """Rendered cells (target, fit, error per view) and the median error in mm.

    target: (V, 3) model units, model space, with faces (F, 3) or None (a point set);
    fit: the fitted mesh (V', 3) / (F', 3) in the same frame.
    """

    try:
        vertices, faces = crop_like_ground_truth(fit_vertices, fit_faces)
    except ValueError:  # nothing of the fit inside the target's crop: show it whole
        vertices, faces = np.asarray(fit_vertices, dtype=np.float64), np.asarray(fit_faces, dtype=np.int64)
    if target_faces is not None and len(target_faces):
        errors = surface_distance_mm(vertices, target_vertices, target_faces)
    else:  # a point set: its surface, not its nearest point (a sparse cloud's gaps are no error)
        errors = distance_to_sampled_surface(vertices, target_vertices) * MM_PER_UNIT
    frame = np.asarray(target_vertices, dtype=np.float64)
    faces_or_none = None if target_faces is None or not len(target_faces) else target_faces
    cells = []
    for view in views:
        cells += [
            render_mesh(target_vertices, faces_or_none, view=view, size=CELL, fit_to=frame),
            render_mesh(vertices, faces, view=view, size=CELL, fit_to=frame),
            render_mesh(vertices, faces, vertex_colors=error_colors(errors, ERROR_RANGE_MM), light="unlit",
                        view=view, size=CELL, fit_to=frame),
        ]
    return cells, float(np.median(errors)) if len(errors) else float("nan")


def column_labels(views: tuple[str, ...] = ("front", "side")) -> list[str]:
    return [f"{name}, {view}" if len(views) > 1 else name for view in views for name in COLUMNS]


def write_preview(folder: Path, name: str, target_vertices: np.ndarray, target_faces: np.ndarray | None,
                  fit_vertices: np.ndarray, fit_faces: np.ndarray,
                  metrics: dict | None = None) -> tuple[list[np.ndarray], str]:
    """Write ``folder/preview.png`` (one row, front and side); returns the row and its label.

    The label gives the fit's median distance to the input: the one of ``metrics`` (the fit's
    footprint figure, ``fit_to_input_median_mm``, as the fit's printed line) when it has it, else
    that of the fit's surface inside the input's crop, as drawn."""
    cells, median = preview_row(target_vertices, target_faces, fit_vertices, fit_faces)
    footprint = (metrics or {}).get("fit_to_input_median_mm")
    if footprint is not None:
        unit = (metrics or {}).get("distance_unit") or "mm"
        label = f"{name}\nmedian fit-to-input {footprint:.3g} {unit} (over the input)"
    else:
        label = f"{name}\nmedian fit-to-input {median:.2f} mm"
    save_png(folder / PREVIEW_NAME, contact_sheet([cells], row_labels=[label], col_labels=column_labels()))
    return cells, label


def write_preview_sheet(png: Path, rows: list[list[np.ndarray]], labels: list[str], title: str,
                views: tuple[str, ...] = ("front", "side")) -> Path:
    """A contact sheet of preview rows (one per scan)."""
    save_png(png, contact_sheet(rows, row_labels=labels, col_labels=column_labels(views), title=title))
    return png


#: Scan rows per contact sheet: a larger folder gets several sheets (preview.png, preview-2.png, ...),
#: so a batch of thousands of scans never builds one picture of gigabytes.
SHEET_ROWS = 100


def stack_previews(pngs: list[Path], png: Path) -> Path | None:
    """The contact sheets of a fits folder: the scans' preview rows stacked (those that exist),
    ``SHEET_ROWS`` to a sheet: ``png``, then ``<stem>-2.png``, ... Returns ``png``; None when
    there are no rows."""
    existing = [p for p in pngs if p.is_file()]
    if not existing:
        return None
    pages = [existing[start:start + SHEET_ROWS] for start in range(0, len(existing), SHEET_ROWS)]
    for number, page in enumerate(pages, 1):
        rows = [np.asarray(Image.open(p).convert("RGB")) for p in page]
        width = max(r.shape[1] for r in rows)
        rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
        save_png(sheet_page(png, number), np.concatenate(rows, axis=0))
    remove_pages_after(png, len(pages))
    return png


def sheet_page(png: Path, number: int) -> Path:
    """Page ``number`` (1-based) of the contact sheet ``png``: ``png`` itself, then ``<stem>-2.png``, ..."""
    return png if number == 1 else png.with_name(f"{png.stem}-{number}{png.suffix}")


def remove_pages_after(png: Path, count: int) -> None:
    """Remove the pages past ``count`` of the sheet ``png``: those of an earlier, larger run."""
    number = count + 1
    while sheet_page(png, number).is_file():
        sheet_page(png, number).unlink()
        number += 1
