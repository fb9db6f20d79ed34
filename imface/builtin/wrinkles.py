"""Wrinkle and fold fields: scalar offsets along the surface normal, in millimetres.

Every field is a pure function of rest-pose vertex positions (V, 3) in mm (BFM frame:
x to the subject's left, y up, z toward the viewer) and a few shape parameters, and
returns (V,) offsets (negative = into the skin). Grooves are at least 3 mm wide
(full width at half depth) and their depth is given in mm.
"""
from __future__ import annotations

import numpy as np


def smoothstep(t: np.ndarray) -> np.ndarray:
    """C1 ramp: 0 for t <= 0, 1 for t >= 1, ``3t^2 - 2t^3`` between."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def window(t: np.ndarray, lo: float, hi: float, soft: float) -> np.ndarray:
    """Smooth box on ``t``: 1 inside ``[lo, hi]``, easing to 0 over ``soft`` outside."""
    return smoothstep((t - lo + soft) / soft) * smoothstep((hi + soft - t) / soft)


def crows_feet(points: np.ndarray, corner: np.ndarray, outward: float, count: int, fan_rad: float,
               rotation_rad: float, inner_mm: float, outer_mm: float, width_mm: float,
               depth_mm: float) -> np.ndarray:
    """Fan of ``count`` lines radiating from an outer eye ``corner``: (V,) mm.

    ``outward`` is +1 or -1 (the x direction away from the nose); the fan spans
    ``fan_rad`` around the outward horizontal, rotated by ``rotation_rad``; the lines
    run from ``inner_mm`` to ``outer_mm`` from the corner.
    """
    rel = points[:, :2] - corner[:2]
    radius = np.hypot(rel[:, 0], rel[:, 1])
    angle = np.arctan2(rel[:, 1], outward * rel[:, 0]) - rotation_rad
    step = fan_rad / max(count - 1, 1)
    arc = radius * (angle + 0.5 * fan_rad)  # arc length from the first line, mm
    arc_spacing = np.maximum(radius * step, 1e-3)
    frac = arc / arc_spacing
    nearest = np.clip(np.round(frac), 0, count - 1)
    offset_mm = (frac - nearest) * arc_spacing
    sigma = width_mm / 2.3548
    lines = np.exp(-0.5 * (offset_mm / sigma) ** 2)
    radial = window(radius, inner_mm, outer_mm, 4.0) * (1.0 - 0.5 * smoothstep((radius - inner_mm) / (outer_mm - inner_mm)))
    return -depth_mm * lines * radial


def fold_coordinates(points: np.ndarray, start: np.ndarray, end: np.ndarray, outward: float, bow_mm: float,
                     slide_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance (mm, + toward the cheek) from a bowed fold curve, and the position along it.

    The curve runs from ``start`` to ``end`` in the x-y plane, bows by ``bow_mm`` toward the
    cheek (the side of ``outward`` = +1 or -1 in x) and is shifted ``slide_mm`` toward it.
    Returns (dist (V,), t (V,)) with t = 0 at ``start`` and 1 at ``end``.
    """
    axis = (end - start)[:2]
    length = float(np.linalg.norm(axis))
    axis = axis / length
    normal_2d = np.array([axis[1], -axis[0]])
    if normal_2d[0] * outward < 0:  # make the normal point to the cheek
        normal_2d = -normal_2d
    rel = points[:, :2] - start[:2]
    t = rel @ axis / length
    return rel @ normal_2d - bow_mm * 4.0 * t * (1.0 - t) - slide_mm, t


def nasolabial_fold(points: np.ndarray, start: np.ndarray, end: np.ndarray, outward: float, bow_mm: float,
                    slide_mm: float, width_mm: float, depth_mm: float, bulge: float) -> np.ndarray:
    """A groove from ``start`` (beside the nose wing) to ``end`` (beside the mouth corner): (V,) mm.

    The curve bows by ``bow_mm`` away from the mouth and slides ``slide_mm`` outward; on
    its cheek side the skin bulges by ``bulge`` times the depth, as a fold does.
    """
    dist, t = fold_coordinates(points, start, end, outward, bow_mm, slide_mm)
    sigma = width_mm / 2.3548
    groove = np.exp(-0.5 * (dist / sigma) ** 2)
    cheek = np.exp(-0.5 * ((dist - 2.2 * sigma) / (1.6 * sigma)) ** 2)
    along = window(t, 0.0, 1.0, 0.25)
    return depth_mm * (bulge * cheek - groove) * along


def furrow_set(points: np.ndarray, centre: np.ndarray, angle_rad: float, curvature_per_mm: float,
               offsets_mm: np.ndarray, widths_mm: np.ndarray, depths_mm: np.ndarray, starts_mm: np.ndarray,
               ends_mm: np.ndarray, slide_mm: float) -> np.ndarray:
    """A set of J individual furrows, each with its own place, width, depth and extent: (V,) mm.

    Local frame: ``along`` runs at ``angle_rad`` from +x through ``centre``, ``across`` is
    perpendicular (toward +y at angle 0). Furrow j lies at ``across = offsets_mm[j] +
    slide_mm - curvature_per_mm * along^2`` between ``starts_mm[j]`` and ``ends_mm[j]``
    along it; its FWHM is ``widths_mm[j]`` and its depth ``depths_mm[j]``. All arrays (J,).
    """
    rel = points[:, :2] - centre[:2]
    cos_a, sin_a = np.cos(angle_rad), np.sin(angle_rad)
    along = cos_a * rel[:, 0] + sin_a * rel[:, 1]
    across = -sin_a * rel[:, 0] + cos_a * rel[:, 1] + curvature_per_mm * along**2 - slide_mm
    near = np.abs(across) < np.abs(offsets_mm).max() + 3.0 * widths_mm.max()
    near &= (along > starts_mm.min() - 8.0) & (along < ends_mm.max() + 8.0)
    out = np.zeros(points.shape[0])
    idx = np.nonzero(near)[0]
    if idx.size == 0:
        return out
    sigma = widths_mm / 2.3548
    dist = (across[idx, None] - offsets_mm[None]) / sigma[None]  # (n, J)
    a = along[idx, None]
    extent = smoothstep((a - starts_mm[None] + 6.0) / 6.0) * smoothstep((ends_mm[None] + 6.0 - a) / 6.0)
    out[idx] = -(np.exp(-0.5 * dist**2) * extent) @ depths_mm
    return out


#: Where furrows form: anchor landmarks (their mean), offset mm, base angle rad, furrow count range,
#: spacing, half length, depth, width (mm ranges), curvature bound (1/mm), slide bound (mm at full intensity).
FURROW_REGIONS: dict[str, tuple] = {
    "forehead": ((19, 24), (0.0, 25.0, 0.0), 0.0, (4, 7), (8.0, 13.0), (25.0, 45.0), (1.0, 3.0), (3.2, 5.0), 0.006, 4.0),
    "glabella": ((21, 22), (0.0, 8.0, 0.0), np.pi / 2, (2, 4), (5.0, 8.0), (5.0, 10.0), (1.0, 1.8), (3.2, 4.5), 0.01, 2.0),
    "nose": ((28,), (0.0, 0.0, 0.0), 0.0, (2, 4), (3.5, 5.0), (6.0, 11.0), (1.0, 1.5), (3.0, 3.6), 0.01, 2.0),
    "under_eye_l": ((46, 47), (0.0, -8.0, 0.0), -0.15, (2, 3), (4.0, 6.0), (8.0, 14.0), (1.0, 1.6), (3.0, 4.0), 0.01, 2.0),
    "under_eye_r": ((40, 41), (0.0, -8.0, 0.0), 0.15, (2, 3), (4.0, 6.0), (8.0, 14.0), (1.0, 1.6), (3.0, 4.0), 0.01, 2.0),
    "chin": ((8,), (0.0, 14.0, 0.0), 0.0, (2, 4), (5.0, 8.0), (8.0, 16.0), (1.0, 2.0), (3.0, 5.0), 0.012, 2.5),
    "upper_lip": ((51,), (0.0, 5.0, 0.0), np.pi / 2, (4, 8), (4.0, 7.0), (3.0, 6.0), (1.0, 1.6), (3.0, 4.0), 0.0, 2.0),
    "neck": ((8,), (0.0, -30.0, -15.0), 0.0, (2, 4), (9.0, 15.0), (25.0, 45.0), (1.0, 2.5), (3.5, 6.0), 0.01, 4.0),
    "cheek_l": ((54,), (16.0, 8.0, -4.0), 1.2, (2, 3), (4.0, 7.0), (8.0, 14.0), (1.0, 2.0), (3.0, 5.0), 0.02, 3.0),
    "cheek_r": ((48,), (-16.0, 8.0, -4.0), np.pi - 1.2, (2, 3), (4.0, 7.0), (8.0, 14.0), (1.0, 2.0), (3.0, 5.0), 0.02, 3.0),
}
BOTH_SIDES = {"under_eye": ("under_eye_l", "under_eye_r"), "cheek": ("cheek_l", "cheek_r")}


def furrow_traits(rng: np.random.Generator, region: tuple) -> dict:
    """One identity's furrows in one region: each furrow placed, sized and cut on its own."""
    _, _, angle, count, spacing, half_len, depth, width, curv, slide = region
    j = int(rng.integers(count[0], count[1] + 1))
    gap = rng.uniform(*spacing)
    offsets = (np.arange(j) - 0.5 * (j - 1)) * gap + rng.normal(0.0, 0.2 * gap, j)
    half = rng.uniform(*half_len)
    return dict(shift=rng.normal(0.0, 2.0, 3), angle=angle + rng.normal(0.0, 0.1), curvature=rng.uniform(-curv, curv),
                offsets=offsets, widths=rng.uniform(*width, j), depths=rng.uniform(*depth, j),
                starts=-half * rng.uniform(0.5, 1.2, j) + rng.normal(0.0, 0.15 * half, j),
                ends=half * rng.uniform(0.5, 1.2, j) + rng.normal(0.0, 0.15 * half, j),
                slide=rng.uniform(-slide, slide), crowd=rng.uniform(0.05, 0.25))
