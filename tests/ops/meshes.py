"""Small analytic meshes shared by the ops tests."""
from __future__ import annotations

import numpy as np


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
