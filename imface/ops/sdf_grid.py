"""Signed distance functions on grids: chunked evaluation without autograd, the dense grid
over [-bound, bound]^3 with a sphere mask, and the coarse-to-fine plan of which fine points
need evaluating near the surface.

Conventions: a grid has ``resolution`` points per axis spanning [-bound, bound]^3 (spacing
``2 * bound / (resolution - 1)``), axes in the order x, y, z; values are in the SDF's units
(model units: 1 = 100 mm). Points outside the sphere mask are never evaluated (see
:mod:`imface.ops.marching_cubes`).
"""
from __future__ import annotations

import itertools
import math
from typing import Callable

import numpy as np
import torch
from scipy import ndimage

#: (N, 3) float points -> (N,) signed distances, evaluated on the callable's device.
SDFFunction = Callable[[torch.Tensor], torch.Tensor]

#: Grid points generated at once by the dense evaluation (bounds temporary memory).
_SLAB_POINTS = 1 << 21


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


def grid_axis(resolution: int, bound: float) -> np.ndarray:
    """(R,) float64 grid coordinates; the one definition every level and mask uses."""
    return -bound + np.arange(resolution) * (2.0 * bound / (resolution - 1))


def _radius_slab(axis: np.ndarray, start: int, stop: int) -> np.ndarray:
    """(stop - start, R, R) float64 distance to the origin of grid points with x index in [start, stop)."""
    squared = axis**2
    return np.sqrt(squared[start:stop, None, None] + squared[None, :, None] + squared[None, None, :])


def _slabs(resolution: int) -> list[tuple[int, int]]:
    """[start, stop) x-index ranges of about _SLAB_POINTS grid points each."""
    step = max(1, _SLAB_POINTS // (resolution * resolution))
    return [(start, min(start + step, resolution)) for start in range(0, resolution, step)]


def check_grid_args(resolution: int, bound: float) -> None:
    """Refuse a grid with fewer than 2 points per axis or a non-positive bound (ValueError)."""
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
    check_grid_args(resolution, bound)
    device = infer_device(sdf) if device is None else torch.device(device)
    axis = grid_axis(resolution, bound)
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


def sphere_grid(resolution: int, bound: float, sphere_radius: float) -> tuple[np.ndarray, np.ndarray]:
    """(R, R, R) bool "evaluated" mask (same test as evaluate_grid) and (R, R, R) float32 |p| - sphere_radius."""
    axis = grid_axis(resolution, bound)
    inside = np.empty((resolution,) * 3, dtype=bool)
    excess = np.empty((resolution,) * 3, dtype=np.float32)
    for start, stop in _slabs(resolution):
        radius = _radius_slab(axis, start, stop)
        inside[start:stop] = radius <= sphere_radius
        excess[start:stop] = radius - sphere_radius
    return inside, excess


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


def refine_level(
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
