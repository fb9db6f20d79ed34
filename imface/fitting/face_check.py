"""The check that refuses inputs which cannot be a face scan, before any fitting: too few points,
a flat plane, or points that fill a volume instead of lying on a surface (noise). Unit-free:
the measures are ratios of principal spreads.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from imface.errors import ImfaceError
from imface.ops.neighbourhoods import local_covariances

#: A face (even a one-view partial one) is at least this deep for its width (smallest / largest
#: principal spread); a flat plane is 0. Faces measure about 0.5.
MIN_RELATIVE_DEPTH = 0.05
#: Median share of the smallest local principal spread (16 nearest of 2,000 points, about 1 cm
#: on a face): a built-in face with 2 mm of noise stays near 0.06, uniform noise near 0.17
#: (``python experiments/face_check.py``).
MAX_LOCAL_THICKNESS = 0.1


def surface_shape(points: np.ndarray) -> tuple[float, float]:
    """(relative depth, local thickness) of a point set (N >= 32, any unit), on 2,000 of its points
    (fixed seed): the smallest over the largest principal spread, and the median share of the
    smallest local principal spread over each point's 16 nearest neighbours."""
    rng = np.random.default_rng(0)
    sample = np.asarray(points, dtype=np.float64)
    sample = sample[rng.choice(len(sample), min(2000, len(sample)), replace=False)]
    spread = np.linalg.svd(sample - sample.mean(axis=0), compute_uv=False)
    depth = float(spread[2] / spread[0]) if spread[0] > 0 else 0.0
    eigen = np.linalg.eigvalsh(local_covariances(sample, 16)[0])
    return depth, float(np.median(eigen[:, 0] / np.maximum(eigen.sum(axis=1), 1e-300)))


def check_face_like(points: np.ndarray, path: Path) -> None:
    """Refuse inputs that cannot be a face scan, with one line: too few points, a flat plane, or
    points that fill a volume instead of lying on a surface (noise). points: (N, 3) any unit."""
    if len(points) < 32:
        raise ImfaceError(path, f"only {len(points)} points: too few to be a face scan")
    depth, thickness = surface_shape(points)
    if depth < MIN_RELATIVE_DEPTH:
        raise ImfaceError(path, f"flat (depth {depth:.3f} of its width): a plane, not a face scan")
    if thickness > MAX_LOCAL_THICKNESS:
        raise ImfaceError(path, f"the points do not lie on a surface (local thickness {thickness:.2f}, a face "
                                f"scan is under {MAX_LOCAL_THICKNESS}): noise, not a face scan")
