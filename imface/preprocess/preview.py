"""A picture per preprocessed scan, to check preprocessing at a glance (raw vs processed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from imface.ops.contact_sheet import contact_sheet, save_png
from imface.ops.render import render_mesh

#: Pixels per panel side of the 2 x 2 preview.
PREVIEW_PANEL_SIZE = 384


def write_preview(
    out_png: Path,
    raw_vertices: np.ndarray,
    raw_faces: np.ndarray | None,
    raw_landmarks: np.ndarray | None,
    processed_vertices: np.ndarray,
    processed_faces: np.ndarray | None,
    processed_landmarks: np.ndarray | None,
    title: str = "",
) -> None:
    """Write one PNG: raw scan (front, side) over processed scan (front, side), landmarks in red.

    raw_vertices: (V, 3) float, the scan as read, in its scanner frame and unit (often mm),
        so its "front" is whatever the scanner frame's -z view shows.
    raw_faces: (F, 3) int, or None / empty for a point cloud (drawn as dots).
    raw_landmarks: (L, 3) float in the raw frame, or None.
    processed_vertices, processed_faces, processed_landmarks: the same for the processed
        (aligned, cropped, pseudo-watertight) mesh in model units (1 = 100 mm).
    title: written above the grid, e.g. the scan's id.
    The file is written atomically; each panel is framed on its own mesh and landmarks.
    Landmarks with NaN coordinates (missing in the source file) are left out.
    """
    size = (PREVIEW_PANEL_SIZE, PREVIEW_PANEL_SIZE)
    rows = []
    for vertices, faces, landmarks in (
        (raw_vertices, raw_faces, raw_landmarks),
        (processed_vertices, processed_faces, processed_landmarks),
    ):
        marks = _known(landmarks)
        rows.append([render_mesh(vertices, faces, points=marks, view=v, size=size) for v in ("front", "side")])
    sheet = contact_sheet(
        rows,
        row_labels=["raw\n(scanner frame)", "processed\n(model units)"],
        col_labels=["front", "side"],
        title=title or None,
    )
    save_png(out_png, sheet)


def _known(landmarks: np.ndarray | None) -> np.ndarray | None:
    """(L, 3) landmarks without the rows that have NaN/inf (missing ones), or None."""
    if landmarks is None:
        return None
    marks = np.asarray(landmarks, dtype=np.float64).reshape(-1, 3)
    return marks[np.isfinite(marks).all(axis=1)]
