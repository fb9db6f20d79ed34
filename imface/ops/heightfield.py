"""Pseudo-watertight height-field mesh: Delaunay triangulation of the x-y coordinates (paper Sec. 3.5)."""
from __future__ import annotations

import numpy as np
from scipy.spatial import Delaunay, QhullError


def delaunay_heightfield(vertices: np.ndarray, *, degenerate_tol: float = 1e-12) -> np.ndarray:
    """Faces of the Delaunay triangulation of the vertices' x-y coordinates.

    The result is a single-valued surface z(x, y) over the convex hull of the points
    (the "pseudo-watertight" face of the paper), every face oriented so that its normal
    has z > 0 (toward the viewer).

    Duplicate x-y points: only the first vertex of each group of identical (x, y) pairs
    is triangulated; the others are left unreferenced (a height field holds one z per
    x-y), so callers that want a clean mesh drop unreferenced vertices afterwards.
    Near-duplicates that Qhull merges are likewise left out. Triangles whose x-y area
    is below ``degenerate_tol`` times the squared x-y bounding-box diagonal (slivers on
    collinear hull points) are removed.

    Args:
        vertices: (V, 3) float (only x and y are used), any length unit.

    Returns:
        faces (F, 3) int64 indices into ``vertices``.

    Raises:
        ValueError: fewer than 3 distinct x-y points, or all of them collinear.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[1] < 2:
        raise ValueError(f"vertices must have shape (V, 3), got {vertices.shape}")
    xy = vertices[:, :2]
    if not np.all(np.isfinite(xy)):
        raise ValueError("vertices contain NaN or infinite coordinates")
    unique_xy, first_index = np.unique(xy, axis=0, return_index=True)
    if len(unique_xy) < 3:
        raise ValueError(f"a height field needs at least 3 distinct x-y points, got {len(unique_xy)}")
    try:
        triangulation = Delaunay(unique_xy)
    except QhullError as error:
        raise ValueError(f"cannot triangulate the x-y points (collinear?): {error}") from None
    faces = first_index[triangulation.simplices].astype(np.int64)

    corners = xy[faces]  # (F, 3, 2)
    edge_1 = corners[:, 1] - corners[:, 0]
    edge_2 = corners[:, 2] - corners[:, 0]
    # Twice the signed x-y area = z component of the 3-D face normal (b - a) x (c - a).
    twice_area = edge_1[:, 0] * edge_2[:, 1] - edge_1[:, 1] * edge_2[:, 0]
    faces[twice_area < 0] = faces[twice_area < 0][:, [0, 2, 1]]
    diagonal_sq = float(np.sum((xy.max(axis=0) - xy.min(axis=0)) ** 2))
    keep = np.abs(twice_area) > 2.0 * degenerate_tol * diagonal_sq
    return faces[keep]
