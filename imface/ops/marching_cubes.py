"""Mesh extraction from a signed distance function: marching cubes (scikit-image) on a grid
evaluated coarse to fine in a narrow band (:mod:`imface.ops.sdf_grid`), then clean-up.

Conventions: the grid has ``resolution`` points per axis spanning [-bound, bound]^3
(spacing ``2 * bound / (resolution - 1)``), axes in the order x, y, z; vertices come back
in the SDF's units (model units: 1 = 100 mm). The SDF is negative behind/inside the
surface and positive in front/outside; faces are wound so their normals point toward
increasing SDF.

Sphere mask: points farther than ``sphere_radius`` from the origin are never evaluated.
They get the value ``level + (|p| - sphere_radius)``, which is above the level, i.e. they
count as outside/empty. For an open face sheet (negative behind the face) marching
cubes then gives the sheet *plus a cap* where the region behind the face meets the mask.
``clip_to_sphere`` (the default) removes the cap: every triangle with a vertex on a grid
edge that touches a masked point, which trims the sheet's rim by at most one cell and
leaves the rest of the sheet exactly as the SDF has it. Without clipping, marching cubes
runs on ``max(sdf, level + |p| - radius)``, the SDF's solid cut by the ball, so the cap
lies on the sphere and the mesh is closed.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import trimesh
from scipy import sparse
from skimage import measure
from tqdm import tqdm

from imface.ops.crop import remove_unused_vertices
from imface.ops.sdf_grid import (
    SDFFunction, check_grid_args, evaluate_grid, evaluate_points, grid_axis, infer_device, level_resolutions,
    refine_level, sphere_grid,
)


class EmptySurfaceError(ValueError):
    """The SDF has no zero crossing (at the requested level) inside the grid."""


def _marching_cubes_index_space(grid: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """skimage marching cubes: vertices (V, 3) float64 in grid-index units, faces (F, 3) int64."""
    grid = np.asarray(grid, dtype=np.float32)
    if grid.ndim != 3 or min(grid.shape) < 2:
        raise ValueError(f"grid must be a 3-D array with at least 2 points per axis, got {grid.shape}")
    if not (grid.min() < level < grid.max()):
        raise EmptySurfaceError(f"no surface at level {level}: the grid values lie in [{grid.min():.4g}, {grid.max():.4g}]")
    # skimage winds faces so their normals point toward increasing values: outward for an SDF.
    vertices, faces, _, _ = measure.marching_cubes(grid, level=level, allow_degenerate=False)
    return vertices.astype(np.float64), faces.astype(np.int64)


def dense_to_mesh(grid: np.ndarray, bound: float = 1.0, level: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes of an (R, R, R) grid sampled over [-bound, bound]^3 (index order x, y, z).

    Returns vertices (V, 3) float64 in the grid's units and faces (F, 3) int64 whose
    normals point toward increasing values (out of the negative region).
    Raises EmptySurfaceError when no value crosses ``level``.
    """
    vertices, faces = _marching_cubes_index_space(grid, level)
    spacing = np.array([2.0 * bound / (n - 1) for n in np.shape(grid)])
    return vertices * spacing - bound, faces


def _faces_on_mask(index_vertices: np.ndarray, faces: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """(F,) bool: faces with a vertex on a grid edge that has a masked (not inside) end point."""
    rounded = np.rint(index_vertices)
    on_grid_line = np.abs(index_vertices - rounded) < 1e-4
    # A marching-cubes vertex sits on one grid edge: integral in two coordinates, between
    # floor and ceil in the third.
    low = np.where(on_grid_line, rounded, np.floor(index_vertices)).astype(np.int64)
    high = np.where(on_grid_line, rounded, np.ceil(index_vertices)).astype(np.int64)
    limit = np.array(inside.shape) - 1
    low, high = np.clip(low, 0, limit), np.clip(high, 0, limit)
    masked = ~inside[tuple(low.T)] | ~inside[tuple(high.T)]
    return masked[faces].any(axis=1)


def remove_small_components(
    vertices: np.ndarray, faces: np.ndarray, min_fraction: float = 0.01, *, min_faces: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Drop connected pieces (sharing vertices) smaller than ``min_fraction`` of all faces
    or than ``min_faces`` faces; unused vertices are removed too.

    vertices (V, 3), faces (F, 3) int -> (V', 3), (F', 3) with the kept order.
    """
    vertices = np.asarray(vertices)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(faces) == 0:
        return vertices[:0], faces
    edges = np.concatenate((faces[:, [0, 1]], faces[:, [1, 2]]))
    graph = sparse.coo_matrix((np.ones(len(edges), dtype=np.int8), (edges[:, 0], edges[:, 1])),
                              shape=(len(vertices), len(vertices)))
    _, labels = sparse.csgraph.connected_components(graph, directed=False)
    face_labels = labels[faces[:, 0]]
    sizes = np.bincount(face_labels)
    threshold = max(min_fraction * len(faces), min_faces)
    keep = sizes[face_labels] >= threshold
    return remove_unused_vertices(vertices, faces[keep])


def extract_mesh(
    sdf: SDFFunction,
    resolution: int = 256,
    *,
    bound: float = 1.0,
    level: float = 0.0,
    coarse_to_fine: bool = True,
    coarse_resolution: int = 32,
    band_factor: float = 1.25,
    chunk_size: int = 2048,
    device: torch.device | str | None = None,
    mask_outside_sphere: bool = True,
    sphere_radius: float = 1.0,
    clip_to_sphere: bool = True,
    min_component_fraction: float = 0.01,
    progress: bool = False,
) -> trimesh.Trimesh:
    """Triangle mesh of the level set ``sdf(p) = level`` inside [-bound, bound]^3.

    Args:
        sdf: (N, 3) float32 points -> (N,) values (model units), on its device.
        resolution: grid points per axis of the final grid (any value >= 2).
        coarse_to_fine: evaluate a ``coarse_resolution`` grid, then at each finer level
            (cells doubled, the last level at exactly ``resolution``) only the points
            near the surface (see ``band_factor``); gives the dense result for an SDF
            that is about 1-Lipschitz (a trained SDF), at a fraction of the cost.
        band_factor: refinement band half-width in coarse cell diagonals (> 1 for
            the 1-Lipschitz guarantee: a trilinear estimate is off by at most one
            diagonal; the default 1.25 leaves 25% for learned SDFs whose gradient norm
            exceeds 1, and measured 7.5x faster than dense at 256^3 on a trained model
            with the identical mesh, against 5.6x at 2.0).
        chunk_size: points per SDF call (on CPU small chunks are faster).
        device: where points are sent; inferred from the SDF when None.
        mask_outside_sphere / sphere_radius: never evaluate outside the sphere (see the
            module docstring); clip_to_sphere: remove the cap the mask creates.
        min_component_fraction: drop connected pieces with fewer faces than this
            fraction of the mesh.
        progress: show a progress bar of evaluated points.

    Returns:
        trimesh.Trimesh (not processed: vertices as marching cubes made them) in the
        SDF's units; ``metadata`` holds ``points_evaluated`` and ``level_resolutions``.

    Raises:
        EmptySurfaceError: no surface inside the grid (or nothing left after clipping).
    """
    check_grid_args(resolution, bound)
    if band_factor <= 0 or coarse_resolution < 2:
        raise ValueError("band_factor must be > 0 and coarse_resolution >= 2")
    device = infer_device(sdf) if device is None else torch.device(device)
    levels = level_resolutions(resolution, coarse_resolution) if coarse_to_fine else [int(resolution)]
    count = _PointCounter(tqdm(unit="pt", unit_scale=True, desc="sdf") if progress else None)
    try:
        grid, inside, excess = _evaluate_levels(
            sdf, levels, bound=bound, level=level, band_factor=band_factor, chunk_size=chunk_size, device=device,
            sphere_radius=sphere_radius if mask_outside_sphere else None, count=count)
    finally:
        count.close()
    vertices, faces = _grid_to_mesh(grid, inside, excess, bound=bound, level=level,
                                    clip_to_sphere=mask_outside_sphere and clip_to_sphere,
                                    min_component_fraction=min_component_fraction)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    mesh.metadata.update(points_evaluated=int(count.total), level_resolutions=list(levels))
    return mesh


class _PointCounter:
    """Counts evaluated points (``progress`` callback of the evaluators) and feeds an optional bar."""

    def __init__(self, bar: tqdm | None) -> None:
        self.total = 0
        self.bar = bar

    def __call__(self, n: int) -> None:
        self.total += n
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _evaluate_levels(
    sdf: SDFFunction, levels: list[int], *, bound: float, level: float, band_factor: float, chunk_size: int,
    device: torch.device, sphere_radius: float | None, count: Callable[[int], None],
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The finest level's (R, R, R) float32 grid, evaluated densely at ``levels[0]`` and then only
    near the surface at each finer level; with its (R, R, R) bool "evaluated" mask and, with a
    sphere mask (``sphere_radius`` not None), the (R, R, R) float32 ``|p| - sphere_radius``."""

    def sphere(size: int) -> tuple[np.ndarray, np.ndarray | None]:
        if sphere_radius is not None:
            return sphere_grid(size, bound, sphere_radius)
        return np.ones((size,) * 3, dtype=bool), None

    grid = evaluate_grid(sdf, levels[0], bound=bound, chunk_size=chunk_size, device=device,
                         mask_outside_sphere=sphere_radius is not None,
                         sphere_radius=1.0 if sphere_radius is None else sphere_radius, level=level, progress=count)
    inside, excess = sphere(levels[0])
    for size in levels[1:]:
        grid, wanted = refine_level(grid, inside, size, bound=bound, level=level, band_factor=band_factor)
        inside, excess = sphere(size)
        if excess is not None:
            outside = ~inside
            grid[outside] = level + excess[outside]
            del outside
        wanted = np.flatnonzero(wanted & inside)
        coordinates = grid_axis(size, bound)[np.stack(np.unravel_index(wanted, grid.shape), axis=1)]
        grid.reshape(-1)[wanted] = evaluate_points(sdf, coordinates, chunk_size=chunk_size, device=device,
                                                   progress=count)
    return grid, inside, excess


def _grid_to_mesh(
    grid: np.ndarray, inside: np.ndarray, excess: np.ndarray | None, *, bound: float, level: float,
    clip_to_sphere: bool, min_component_fraction: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes of the final (R, R, R) grid, clipped or cut by the sphere mask (see the
    module docstring), small pieces dropped: vertices (V, 3) float64 in the grid's units, faces (F, 3)."""
    if excess is not None and not clip_to_sphere:
        # Cut by the ball: inside points keep their sign and the cap lies on the sphere.
        # (Not when clipping: it would bend the sheet's last row of cells toward the cap.)
        np.maximum(grid, level + excess, out=grid)
    index_vertices, faces = _marching_cubes_index_space(grid, level)
    if clip_to_sphere:
        faces = faces[~_faces_on_mask(index_vertices, faces, inside)]
        if len(faces) == 0:
            raise EmptySurfaceError("no surface inside the sphere: everything marching cubes found lies on the mask")
    vertices = index_vertices * (2.0 * bound / (grid.shape[0] - 1)) - bound
    return remove_small_components(vertices, faces, min_component_fraction)
