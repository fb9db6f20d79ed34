"""Reading and writing triangle meshes (OBJ / PLY / OFF) through trimesh.

Meshes are loaded with ``process=False`` so the vertex order of the file is kept
(fixed-topology models are addressed by vertex index), then cleaned explicitly by
:func:`clean_mesh`. Every write is atomic.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from imface.errors import ImfaceError
from imface.io.atomic import atomic_path

MESH_SUFFIXES = (".obj", ".ply", ".off", ".stl")
WRITE_FORMATS = ("ply", "obj")


@dataclass(frozen=True)
class MeshArrays:
    """A triangle mesh as plain arrays.

    vertices: (V, 3) float64, in the file's units; faces: (F, 3) int64 vertex ids.
    """

    vertices: np.ndarray
    faces: np.ndarray


def read_mesh(path: str | os.PathLike) -> MeshArrays:
    """Read a triangle mesh, keeping the file's vertex order.

    Raises :class:`ImfaceError` (naming the file) for a missing, unreadable or empty
    mesh, and for NaN/inf vertex coordinates: such scans are refused rather than
    silently patched, because a NaN vertex usually means a broken export.
    """

    mesh_path = Path(path)
    if not mesh_path.is_file():
        raise ImfaceError(mesh_path, "mesh file not found")
    suffix = mesh_path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise ImfaceError(mesh_path, f"unsupported mesh format {suffix!r} (expected .obj, .ply, .off or .stl)")
    # OBJ: maintain_order keeps vertex ids as in the file instead of splitting seams by UV.
    options = {"maintain_order": True, "skip_materials": True} if suffix == ".obj" else {}
    try:
        loaded = trimesh.load(mesh_path, file_type=suffix[1:], process=False, force="mesh", **options)
        if suffix == ".stl":  # a triangle soup: shared corners become one vertex (there is no order to keep)
            loaded.merge_vertices()
        # A mutated file can parse into arrays of any shape; anything not N x 3 is refused below.
        vertices = np.asarray(getattr(loaded, "vertices", np.zeros((0, 3))), dtype=np.float64)
        faces = np.asarray(getattr(loaded, "faces", np.zeros((0, 3))), dtype=np.int64)
    except Exception as err:  # noqa: BLE001 - trimesh raises many types for a corrupt file
        raise ImfaceError(mesh_path, f"cannot read mesh ({type(err).__name__}: {err})") from None
    if faces.size == 0 or vertices.size == 0:
        raise ImfaceError(mesh_path, "empty mesh (no triangles)")
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise ImfaceError(mesh_path, f"not a triangle mesh (vertices {vertices.shape}, faces {faces.shape})")
    bad = ~np.isfinite(vertices).all(axis=1)
    if bad.any():
        raise ImfaceError(mesh_path, f"{int(bad.sum())} of {len(vertices)} vertices have NaN/inf coordinates")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ImfaceError(mesh_path, "faces refer to vertices that do not exist")
    return MeshArrays(vertices=vertices, faces=faces)


def clean_mesh(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge duplicate vertices, drop degenerate and repeated faces and unused vertices.

    vertices: (V, 3) float; faces: (F, 3) int. Returns (vertices' (V', 3) float64,
    faces' (F', 3) int64). Duplicates are vertices with bitwise-equal coordinates
    (scanners and OBJ exporters repeat vertices along texture seams).
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    unique, inverse = np.unique(vertices, axis=0, return_inverse=True)
    faces = inverse.reshape(-1)[faces]
    # Drop faces with a repeated vertex, zero area, or a repeated vertex set.
    distinct = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    faces = faces[distinct]
    tri = unique[faces]
    doubled_area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    faces = faces[doubled_area > 0]
    _, first = np.unique(np.sort(faces, axis=1), axis=0, return_index=True)
    faces = faces[np.sort(first)]
    used = np.zeros(len(unique), dtype=bool)
    used[faces.reshape(-1)] = True
    remap = np.cumsum(used) - 1
    return unique[used], remap[faces]


def write_mesh(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray | None = None,
               colors: np.ndarray | None = None) -> Path:
    """Write a mesh, or a point cloud when ``faces`` is None, atomically; returns the path.

    The suffix chooses the format: ``.ply`` (binary, vertices stored float32) or ``.obj`` (text;
    meshes only). vertices: (V, 3) float; faces: (F, 3) int; colors: optional (V, 3) in [0, 1].
    """

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in WRITE_FORMATS or (faces is None and fmt != "ply"):
        raise ImfaceError(path, f"unsupported mesh format {fmt!r}; use .ply or .obj (point clouds: .ply)")
    kwargs = {}
    if colors is not None:
        kwargs["vertex_colors"] = np.round(np.clip(colors, 0.0, 1.0) * 255).astype(np.uint8)
    vertices = np.asarray(vertices, dtype=np.float32 if fmt == "ply" else np.float64)
    if faces is None:
        geometry = trimesh.PointCloud(vertices, colors=kwargs.get("vertex_colors"))
    else:
        geometry = trimesh.Trimesh(vertices=vertices, faces=np.asarray(faces, dtype=np.int64), process=False, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if fmt == "ply":
            geometry.export(tmp, file_type="ply", encoding="binary")
        else:
            geometry.export(tmp, file_type="obj", include_normals=False, include_texture=False)
    return path
