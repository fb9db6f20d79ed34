"""The orthographic camera of the headless renderer: named views, framing and projection.

Frames. Our meshes use x right, y up, z toward the viewer. A view is an orbit of the camera
around the y axis (azimuth, towards +x) and then up (elevation). The projection is orthographic,
and the camera frames the given points automatically, so it is unit-agnostic.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from imface.errors import ImfaceError

#: Named views as (azimuth, elevation) in degrees. "side" puts the camera on the +x side
#: (image right in the front view) looking along -x, so a face looks to the image's left.
VIEWS: dict[str, tuple[float, float]] = {
    "front": (0.0, 0.0),
    "side": (90.0, 0.0),
    "three_quarter": (40.0, 10.0),
}


@dataclass(frozen=True, eq=False)
class Camera:
    """An orthographic camera that maps world points to pixels.

    rotation: (3, 3) float, rows are the camera's right, up and toward-viewer axes in world coords.
    center: (3,) float, the world point shown at the image centre (world units).
    pixels_per_unit: float, image pixels per world unit.
    size: (width, height) in pixels.
    """

    rotation: np.ndarray
    center: np.ndarray
    pixels_per_unit: float
    size: tuple[int, int]

    @classmethod
    def framing(
        cls,
        points: np.ndarray,
        view: str | tuple[float, float] = "front",
        size: tuple[int, int] = (512, 512),
        margin: float = 0.06,
    ) -> "Camera":
        """The camera for ``view`` whose image holds ``points`` (N, 3) with ``margin`` per side.

        margin: fraction of the image width/height left empty on each side of the points' box.
        """
        rotation = view_rotation(view)
        width, height = check_size(size)
        if not 0.0 <= margin < 0.5:
            raise ImfaceError(None, f"margin must be in [0, 0.5) of the image, got {margin}")
        pts = as_points(points, "points to frame")
        if len(pts) == 0:
            raise ImfaceError(None, "nothing to frame: no vertices, points or fit_to were given")
        cam = pts @ rotation.T
        lo, hi = cam.min(axis=0), cam.max(axis=0)
        half = np.maximum((hi - lo)[:2] / 2.0, 1e-12)
        usable = 1.0 - 2.0 * margin
        pixels_per_unit = float(min(usable * width / (2 * half[0]), usable * height / (2 * half[1])))
        if not np.isfinite(pixels_per_unit) or np.all(hi[:2] - lo[:2] == 0):
            pixels_per_unit = usable * min(width, height) / 2.0  # a single point: 1 unit half-width
        center_cam = (lo + hi) / 2.0  # centring depth too keeps float32 precision on the GPU
        return cls(rotation, center_cam @ rotation, pixels_per_unit, (width, height))

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> (N, 3) camera coords (right, up, toward viewer), world units."""
        return (np.asarray(points, dtype=np.float64) - self.center) @ self.rotation.T

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> (N, 3): pixel column, pixel row (down), depth toward the viewer.

        Pixel centres are at integer + 0.5, so ``int(col), int(row)`` indexes the image array.
        """
        cam = self.to_camera(points)
        width, height = self.size
        col = width / 2.0 + cam[:, 0] * self.pixels_per_unit
        row = height / 2.0 - cam[:, 1] * self.pixels_per_unit
        return np.stack([col, row, cam[:, 2]], axis=1)


def view_rotation(view: str | tuple[float, float]) -> np.ndarray:
    """(3, 3) world->camera rotation for a named view or an (azimuth, elevation) pair in degrees."""
    if isinstance(view, str):
        if view not in VIEWS:
            raise ImfaceError(None, f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")
        azimuth, elevation = VIEWS[view]
    else:
        azimuth, elevation = (float(a) for a in view)
    az, el = np.radians(azimuth), np.radians(elevation)
    toward_viewer = np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])
    right = np.array([np.cos(az), 0.0, -np.sin(az)])  # horizontal, so the image stays upright
    up = np.cross(toward_viewer, right)
    return np.stack([right, up, toward_viewer])


def check_size(size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) as ints, refused outside 1..16384 pixels per side."""
    width, height = (int(s) for s in size)
    if width < 1 or height < 1 or width > 16384 or height > 16384:
        raise ImfaceError(None, f"image size must be 1..16384 pixels per side, got {size}")
    return width, height


def as_points(array: Any, what: str) -> np.ndarray:
    """(N, 3) float64 finite points, or an ImfaceError naming ``what``."""
    pts = np.asarray(array, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ImfaceError(None, f"{what} must be an (N, 3) array, got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise ImfaceError(None, f"{what} contain NaN or infinite coordinates")
    return pts
