"""The ground truth's crop, applied to any reconstruction before it is scored (paper Sec. 3.5, 4).

The preprocessing pipeline turns a scan into its ground truth by (in the model frame)
cropping to the unit sphere, removing the surface hidden along +z and re-triangulating
the visible vertices as a Delaunay height field over x-y. A reconstruction (a full 3DMM
mesh with ears and scalp, a marching-cubes surface, ...) gets exactly the same three
steps here, so that it is compared with its ground truth over the same region.
"""
from __future__ import annotations

import numpy as np

from imface.frame import CROP_RADIUS_MM, MM_PER_UNIT
from imface.ops.crop import crop_to_sphere, remove_unused_vertices
from imface.ops.heightfield import delaunay_heightfield
from imface.ops.visibility import remove_hidden_surface

#: The crop radius in model units (the pipeline crops at 100 mm = 1 unit).
CROP_RADIUS_UNITS = CROP_RADIUS_MM / MM_PER_UNIT
#: Ray start offset of the hidden-surface test in model units (the pipeline's 0.01 mm).
HIDDEN_SURFACE_EPS_UNITS = 0.01 / MM_PER_UNIT


def crop_like_ground_truth(
    vertices: np.ndarray,
    faces: np.ndarray,
    *,
    radius: float = CROP_RADIUS_UNITS,
    eps: float = HIDDEN_SURFACE_EPS_UNITS,
    center: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop a mesh the way the pipeline crops a scan into its ground truth.

    Steps (the pipeline's own ops, in its order): :func:`imface.ops.crop.crop_to_sphere`
    (boundary triangles split on the sphere), :func:`imface.ops.visibility.remove_hidden_surface`
    along +z, :func:`imface.ops.heightfield.delaunay_heightfield` on x-y; vertices that end
    up unreferenced (x-y duplicates) are dropped.

    Args:
        vertices: (V, 3) float, model units (1 = 100 mm), model frame (x right, y up,
            z toward the viewer, nose tip at (0, 0, 0.4)).
        faces: (F, 3) int vertex ids.
        radius: crop radius, model units (default 1.0, the pipeline's 100 mm).
        eps: ray start offset of the hidden-surface test, model units (default 1e-4,
            the pipeline's 0.01 mm).
        center: (3,) crop centre, model units (default the origin, as in the pipeline).

    Returns:
        vertices (V', 3) float64 and faces (F', 3) int64: a height-field mesh whose
        normals point to +z.

    Raises:
        ValueError: no surface inside the sphere, or none of it visible from +z.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    center = np.zeros(3) if center is None else np.asarray(center, dtype=np.float64).reshape(3)
    cropped_vertices, cropped_faces = crop_to_sphere(vertices, faces, center, radius)
    if len(cropped_faces) == 0:
        raise ValueError(f"no surface inside the crop sphere (radius {radius:g} around {center.tolist()})")
    visible_vertices, visible_faces, _ = remove_hidden_surface(cropped_vertices, cropped_faces, eps=eps)
    if len(visible_faces) == 0:
        raise ValueError("no surface inside the crop sphere is visible from +z")
    height_field_faces = delaunay_heightfield(visible_vertices)
    return remove_unused_vertices(visible_vertices, height_field_faces)
