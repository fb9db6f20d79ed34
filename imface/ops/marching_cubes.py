"""Mesh extraction from a signed distance function: chunked grid evaluation, marching
cubes (scikit-image), coarse-to-fine narrow-band refinement and clean-up.

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

import itertools
import math
from typing import Callable

import numpy as np
import torch
import trimesh
from scipy import ndimage, sparse
from skimage import measure

from imface.ops.crop import remove_unused_vertices

#: (N, 3) float points -> (N,) signed distances, evaluated on the callable's device.
SDFFunction = Callable[[torch.Tensor], torch.Tensor]

#: Grid points generated at once by the dense evaluation (bounds temporary memory).
_SLAB_POINTS = 1 << 21


class EmptySurfaceError(ValueError):
    """The SDF has no zero crossing (at the requested level) inside the grid."""


def infer_device(sdf: SDFFunction) -> torch.device:
    """The device the SDF wants its points on.

    An ``nn.Module`` (or a bound method of one) answers with its first parameter/buffer;
    anything else is probed with one CPU point, then one CUDA point if CPU fails.
    """
    module = sdf if isinstance(sdf, torch.nn.Module) else getattr(sdf, "__self__", None)
    if isinstance(module, torch.nn.Module):
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            return tensor.device
    probe = torch.zeros(1, 3)
    try:
        with torch.no_grad():
            sdf(probe)
        return torch.device("cpu")
    except RuntimeError:
        if not torch.cuda.is_available():
            raise
        return torch.device("cuda")


def evaluate_points(
    sdf: SDFFunction,
    points: np.ndarray,
    *,
    chunk_size: int = 2048,
    device: torch.device | str | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Evaluate ``sdf`` on (M, 3) points in chunks of ``chunk_size``, without autograd.

    Points are sent as float32 tensors on ``device`` (inferred when None). Returns (M,)
    float32 values on the CPU. ``progress(n)`` is called after each chunk of n points.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    device = infer_device(sdf) if device is None else torch.device(device)
    points = np.ascontiguousarray(points, dtype=np.float32).reshape(-1, 3)
    values = np.empty(len(points), dtype=np.float32)
    # SIREN activations far from the face underflow into denormal floats, which make the
    # CPU forward ~2.4x slower; flushing them to zero changes no value that matters.
    # (torch has no getter for this mode: it is switched back off afterwards.)
    flushing = torch.set_flush_denormal(True)  # False where the CPU cannot flush
    try:
        _evaluate_chunks(sdf, points, values, chunk_size, device, progress)
    finally:
        if flushing:
            torch.set_flush_denormal(False)
    if not np.all(np.isfinite(values)):
        raise ValueError("the SDF returned NaN or infinite values")
    return values


def _evaluate_chunks(sdf: SDFFunction, points: np.ndarray, values: np.ndarray, chunk_size: int,
                     device: torch.device, progress: Callable[[int], None] | None) -> None:
    with torch.no_grad():
        for start in range(0, len(points), chunk_size):
            chunk = torch.from_numpy(points[start : start + chunk_size]).to(device)
            out = sdf(chunk)
            if out.shape not in ((len(chunk),), (len(chunk), 1)):
                raise ValueError(f"the SDF must map (N, 3) points to (N,) values, got {tuple(out.shape)} for N={len(chunk)}")
            values[start : start + len(chunk)] = out.reshape(-1).float().cpu().numpy()
            if progress is not None:
                progress(len(chunk))


def _axis(resolution: int, bound: float) -> np.ndarray:
    """(R,) float64 grid coordinates; the one definition every level and mask uses."""
    return -bound + np.arange(resolution) * (2.0 * bound / (resolution - 1))


def _radius_slab(axis: np.ndarray, start: int, stop: int) -> np.ndarray:
    """(stop - start, R, R) float64 distance to the origin of grid points with x index in [start, stop)."""
    squared = axis**2
    return np.sqrt(squared[start:stop, None, None] + squared[None, :, None] + squared[None, None, :])


def _slabs(resolution: int) -> list[tuple[int, int]]:
    step = max(1, _SLAB_POINTS // (resolution * resolution))
    return [(start, min(start + step, resolution)) for start in range(0, resolution, step)]


def _check_grid_args(resolution: int, bound: float) -> None:
    if int(resolution) < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution}")
    if not bound > 0:
        raise ValueError(f"bound must be > 0, got {bound}")


def evaluate_grid(
    sdf: SDFFunction,
    resolution: int,
    *,
    bound: float = 1.0,
    chunk_size: int = 2048,
    device: torch.device | str | None = None,
    mask_outside_sphere: bool = True,
    sphere_radius: float = 1.0,
    level: float = 0.0,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Dense (R, R, R) float32 grid of SDF values over [-bound, bound]^3, index order x, y, z.

    With ``mask_outside_sphere``, points with |p| > sphere_radius are not evaluated and
    hold ``level + (|p| - sphere_radius)`` (> level: outside/empty). Memory stays bounded:
    the grid is built in slabs of about 2M points and evaluated in chunks of ``chunk_size``.
    """
    _check_grid_args(resolution, bound)
    device = infer_device(sdf) if device is None else torch.device(device)
    axis = _axis(resolution, bound)
    grid = np.empty((resolution,) * 3, dtype=np.float32)
    for start, stop in _slabs(resolution):
        slab_x, slab_y, slab_z = np.meshgrid(axis[start:stop], axis, axis, indexing="ij")
        points = np.stack((slab_x, slab_y, slab_z), axis=-1).reshape(-1, 3)
        slab = np.empty(len(points), dtype=np.float32)
        if mask_outside_sphere:
            radius = _radius_slab(axis, start, stop).reshape(-1)
            inside = radius <= sphere_radius
            slab[~inside] = level + (radius[~inside] - sphere_radius)
            slab[inside] = evaluate_points(sdf, points[inside], chunk_size=chunk_size, device=device, progress=progress)
        else:
            slab[:] = evaluate_points(sdf, points, chunk_size=chunk_size, device=device, progress=progress)
        grid[start:stop] = slab.reshape(stop - start, resolution, resolution)
    return grid


def _sphere_grid(resolution: int, bound: float, sphere_radius: float) -> tuple[np.ndarray, np.ndarray]:
    """(R, R, R) bool "evaluated" mask (same test as evaluate_grid) and (R, R, R) float32 |p| - sphere_radius."""
    axis = _axis(resolution, bound)
    inside = np.empty((resolution,) * 3, dtype=bool)
    excess = np.empty((resolution,) * 3, dtype=np.float32)
    for start, stop in _slabs(resolution):
        radius = _radius_slab(axis, start, stop)
        inside[start:stop] = radius <= sphere_radius
        excess[start:stop] = radius - sphere_radius
    return inside, excess


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


def level_resolutions(resolution: int, coarse_resolution: int) -> list[int]:
    """Grid resolutions of the coarse-to-fine levels, coarsest first, ending at ``resolution``.

    Each level has about twice the cells of the one before (R_prev = ceil((R - 1) / 2) + 1);
    the coarsest is the smallest that is still >= coarse_resolution.
    E.g. (256, 32) -> [33, 65, 129, 256].
    """
    levels = [int(resolution)]
    while True:
        coarser = -(-(levels[-1] - 1) // 2) + 1
        if coarser < coarse_resolution or coarser >= levels[-1]:
            return levels[::-1]
        levels.append(coarser)


def _dilate(mask: np.ndarray) -> np.ndarray:
    """Grow a 3-D bool mask by one voxel in all 26 directions (separable 3x3x3 box)."""
    for axis in range(mask.ndim):
        grown = mask.copy()
        lower = [slice(None)] * mask.ndim
        upper = [slice(None)] * mask.ndim
        lower[axis], upper[axis] = slice(None, -1), slice(1, None)
        grown[tuple(upper)] |= mask[tuple(lower)]
        grown[tuple(lower)] |= mask[tuple(upper)]
        mask = grown
    return mask


def _refine(
    coarse: np.ndarray,
    coarse_inside: np.ndarray,
    fine_resolution: int,
    *,
    bound: float,
    level: float,
    band_factor: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Plan one finer level from a coarse grid.

    The coarse values (masked points first take the value of the nearest evaluated
    point) are interpolated trilinearly onto the fine grid. Fine points whose estimate
    is within ``band_factor`` coarse cell diagonals of the level, grown by one fine cell,
    must be evaluated, except those that are coarse points (nested levels). Elsewhere the estimate is kept: for a 1-Lipschitz SDF it is off by
    at most about one coarse diagonal, so with band_factor > 1 it is on the right side of
    the level and a band away from it, which is all marching cubes needs there.

    coarse: (Rc, Rc, Rc) float32 values; coarse_inside: (Rc, Rc, Rc) bool, evaluated points.
    Returns (Rf, Rf, Rf) float32 estimates and an (Rf, Rf, Rf) bool "evaluate" mask.
    """
    cells = coarse.shape[0] - 1
    band = band_factor * math.sqrt(3.0) * (2.0 * bound / cells)
    shape = (fine_resolution,) * 3
    if not coarse_inside.any():
        return np.full(shape, level, dtype=np.float32), np.ones(shape, dtype=bool)
    offset = np.asarray(coarse, dtype=np.float32) - np.float32(level)
    if not coarse_inside.all():
        nearest = ndimage.distance_transform_edt(~coarse_inside, return_distances=False, return_indices=True)
        offset = offset[tuple(nearest)]
    # align_corners=True maps fine index j to coarse coordinate j * (Rc - 1) / (Rf - 1): the same grid.
    estimate = torch.nn.functional.interpolate(
        torch.from_numpy(np.ascontiguousarray(offset))[None, None], size=shape, mode="trilinear", align_corners=True
    )[0, 0].numpy()
    wanted = _dilate(np.abs(estimate) < band)
    estimate += np.float32(level)
    if fine_resolution - 1 == 2 * cells:
        # Nested grids: every other fine point is a coarse point whose value is known.
        estimate[::2, ::2, ::2][coarse_inside] = coarse[coarse_inside]
        wanted[::2, ::2, ::2] &= ~coarse_inside
    return estimate, wanted


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
    _check_grid_args(resolution, bound)
    if band_factor <= 0 or coarse_resolution < 2:
        raise ValueError("band_factor must be > 0 and coarse_resolution >= 2")
    device = infer_device(sdf) if device is None else torch.device(device)
    levels = level_resolutions(resolution, coarse_resolution) if coarse_to_fine else [int(resolution)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit="pt", unit_scale=True, desc="sdf")
    evaluated = 0

    def count(n: int) -> None:
        nonlocal evaluated
        evaluated += n
        if bar is not None:
            bar.update(n)

    def sphere(size: int) -> tuple[np.ndarray, np.ndarray | None]:
        if mask_outside_sphere:
            return _sphere_grid(size, bound, sphere_radius)
        return np.ones((size,) * 3, dtype=bool), None

    try:
        grid = evaluate_grid(sdf, levels[0], bound=bound, chunk_size=chunk_size, device=device,
                             mask_outside_sphere=mask_outside_sphere, sphere_radius=sphere_radius,
                             level=level, progress=count)
        inside, excess = sphere(levels[0])
        for size in levels[1:]:
            grid, wanted = _refine(grid, inside, size, bound=bound, level=level, band_factor=band_factor)
            inside, excess = sphere(size)
            if excess is not None:
                outside = ~inside
                grid[outside] = level + excess[outside]
                del outside
            wanted = np.flatnonzero(wanted & inside)
            coordinates = _axis(size, bound)[np.stack(np.unravel_index(wanted, grid.shape), axis=1)]
            grid.reshape(-1)[wanted] = evaluate_points(sdf, coordinates, chunk_size=chunk_size, device=device,
                                                       progress=count)
    finally:
        if bar is not None:
            bar.close()

    if excess is not None and not clip_to_sphere:
        # Cut by the ball: inside points keep their sign and the cap lies on the sphere.
        # (Not when clipping: it would bend the sheet's last row of cells toward the cap.)
        np.maximum(grid, level + excess, out=grid)
    index_vertices, faces = _marching_cubes_index_space(grid, level)
    if mask_outside_sphere and clip_to_sphere:
        faces = faces[~_faces_on_mask(index_vertices, faces, inside)]
        if len(faces) == 0:
            raise EmptySurfaceError("no surface inside the sphere: everything marching cubes found lies on the mask")
    vertices = index_vertices * (2.0 * bound / (resolution - 1)) - bound
    vertices, faces = remove_small_components(vertices, faces, min_component_fraction)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    mesh.metadata.update(points_evaluated=int(evaluated), level_resolutions=list(levels))
    return mesh
