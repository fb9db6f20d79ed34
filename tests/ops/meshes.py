"""Small analytic surfaces and rigid motions shared by the tests (and by bench/extract.py).

Model units throughout (1 = 100 mm), unless a name says otherwise.
"""
from __future__ import annotations

import igl
import numpy as np
import torch
from scipy.spatial.transform import Rotation

from imface.ops.sdf_sampling import sample_surface


def grid_mesh(half_size: float, steps: int, bump: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A (steps+1)^2 grid over [-half_size, half_size]^2, z = bump * smooth wave, faces facing +z."""
    axis = np.linspace(-half_size, half_size, steps + 1)
    x, y = np.meshgrid(axis, axis, indexing="ij")
    z = bump * np.sin(2.0 * x) * np.cos(3.0 * y)
    vertices = np.c_[x.ravel(), y.ravel(), z.ravel()]
    index = np.arange((steps + 1) ** 2).reshape(steps + 1, steps + 1)
    a, b = index[:-1, :-1].ravel(), index[1:, :-1].ravel()
    c, d = index[1:, 1:].ravel(), index[:-1, 1:].ravel()
    faces = np.concatenate([np.c_[a, b, c], np.c_[a, c, d]])
    return vertices, faces


def face_height(x, y):
    """A smooth face-like height field z = h(x, y): a rounded front (z = 0.3 at the origin) with a
    nose bump. x, y: numpy arrays or torch tensors of one shape; returns the same kind."""
    exp = torch.exp if isinstance(x, torch.Tensor) else np.exp
    return 0.3 - 0.35 * (x**2 + 0.6 * y**2) + 0.12 * exp(-(x**2 + (y + 0.05) ** 2) / 0.01)


def face_like_points(count: int, rng: np.random.Generator, half_width: float = 0.7) -> np.ndarray:
    """(count, 3) points of :func:`face_height` over a square of ``half_width``, uniform in x-y."""
    x, y = rng.uniform(-half_width, half_width, (2, count))
    return np.c_[x, y, face_height(x, y)]


def known_motion(degrees: float = 5.0, shift: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """A rotation (3, 3) by ``degrees`` about a fixed oblique axis and a translation (3,) of length ``shift``."""
    axis = np.array([0.3, 1.0, -0.2]) / np.linalg.norm([0.3, 1.0, -0.2])
    return Rotation.from_rotvec(np.deg2rad(degrees) * axis).as_matrix(), shift * np.array([0.6, -0.8, 0.0])


def rotation_angle_deg(rotation: np.ndarray) -> float:
    """The angle (degrees) of a rotation (3, 3): 0 for the identity."""
    return float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1))))


def hausdorff(a, b, samples: int = 100_000) -> float:
    """Symmetric Hausdorff distance between meshes ``a`` and ``b`` (anything with ``vertices``
    (V, 3) and ``faces`` (F, 3)): exact point-to-surface distances (libigl) from each mesh's
    vertices and ``samples`` area-uniform surface samples (seed 0) to the other mesh."""
    rng = np.random.default_rng(0)
    worst = 0.0
    for one, other in ((a, b), (b, a)):
        points = np.concatenate([one.vertices, sample_surface(one.vertices, one.faces, samples, rng)[0]])
        squared = igl.point_mesh_squared_distance(points, np.asarray(other.vertices, float),
                                                  np.asarray(other.faces, np.int64))[0]
        worst = max(worst, float(np.sqrt(squared.max())))
    return worst
