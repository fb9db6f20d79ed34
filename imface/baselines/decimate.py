"""Coarser topologies for the baselines: a subset of a registered topology's vertices with new triangles.

The paper compares ImFace with FLAME (5,023 vertices) and FaceScape's bilinear model, built
at their own, coarser resolutions. :func:`decimate_topology` makes such a topology from ours
by edge collapse (libigl's ``decimate``) on the training meshes' mean; every kept vertex is
an original vertex, so any registered mesh maps onto it exactly by indexing
(``meshes[:, vertex_ids]``) and a model built there is fitted to full-resolution scans.
"""
from __future__ import annotations

import igl
import numpy as np

#: FLAME's vertex count, the resolution the paper's linear baseline works at.
FLAME_VERTICES = 5023


def decimate_topology(vertices: np.ndarray, faces: np.ndarray, target_vertices: int = FLAME_VERTICES,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """A coarser triangulation over a subset of a mesh's vertices.

    Args:
        vertices: (V, 3) float, a representative mesh of the topology (e.g. the training mean).
        faces: (F, 3) int, its triangles.
        target_vertices: about how many vertices to keep (the result lands within a few
            per cent).

    Returns:
        vertex_ids (V',) int64 indices of the kept vertices into ``vertices``, and faces
        (F', 3) int64 indexing ``vertex_ids`` (every kept vertex is used by a face).
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if not 4 <= target_vertices < len(vertices):
        raise ValueError(f"target_vertices must lie between 4 and the mesh's {len(vertices)} vertices, got {target_vertices}")
    # An open surface has about twice as many faces as vertices; edge collapse stops at a face count.
    result = igl.decimate(vertices, faces, int(2 * target_vertices))
    new_vertices, new_faces, _, birth = result[-4:]
    if len(new_faces) == 0 or len(birth) != len(new_vertices):
        raise ValueError("decimation failed: no triangles left")
    birth = np.asarray(birth, dtype=np.int64)
    new_faces = np.asarray(new_faces, dtype=np.int64)
    used = np.unique(new_faces)
    remap = np.full(len(birth), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return birth[used], remap[new_faces]
