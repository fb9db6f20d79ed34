"""The viewer's colour modes: plain shading, template-space coordinates (correspondence), the blend
weights of a Neural Blend-Field, and the distance to a target surface.

The colours are :mod:`imface.generate`'s (the same as ``imface extract --color``); the model's
intermediates at the mesh's vertices are computed once per mesh and kept on it
(:class:`imface.viewer.cache.FaceMesh`), as are the errors against each target.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imface.frame import MM_PER_UNIT
from imface.generate import Face, blend_colors, evaluate_at, template_colors
from imface.ops.colors import error_colors
from imface.ops.metrics import nearest_neighbours, surface_distance_mm
from imface.pretrained import Pretrained
from imface.viewer.cache import FaceMesh

COLOR_MODES = ("plain", "template", "blend", "error")
#: Blend field name -> the key of its weights in :func:`imface.generate.evaluate_at`'s result.
BLEND_WEIGHTS = {"template": "template_weights", "identity": "identity_weights",
                 "expression": "expression_weights"}
#: Plain shading's colour and a target's, RGB in [0, 1].
PLAIN_COLOR = (0.74, 0.72, 0.70)
TARGET_COLOR = (0.55, 0.70, 0.95)
ERROR_MAX_MM = 5.0
#: Default power on the blend weights (:func:`sharpen`); 1 shows them as ``imface extract --color blend`` does.
BLEND_CONTRAST = 8.0


@dataclass(frozen=True)
class Target:
    """A surface to compare the face with: ``key`` (unique per target), a label, vertices (N, 3)
    model units and faces (F, 3), or None for a point set."""

    key: str
    label: str
    vertices: np.ndarray
    faces: np.ndarray | None


@dataclass(frozen=True)
class Painted:
    """Vertex colours (V, 3) in [0, 1] and, in error mode, the errors (V,) mm; ``note``: one line
    saying what the colours mean (or why the mode could not be shown)."""

    colors: np.ndarray
    errors: np.ndarray | None
    note: str


def model_values(pretrained: Pretrained, mesh: FaceMesh, face: Face) -> dict[str, np.ndarray]:
    """:func:`imface.generate.evaluate_at` at the mesh's vertices, computed once per mesh."""
    return mesh.field("model", lambda: evaluate_at(pretrained, mesh.vertices, face))


def blend_fields(pretrained: Pretrained, mesh: FaceMesh, face: Face) -> list[str]:
    """The Neural Blend-Fields whose weights this model reports, in :data:`BLEND_WEIGHTS` order."""
    values = model_values(pretrained, mesh, face)
    return [name for name, key in BLEND_WEIGHTS.items() if values.get(key) is not None]


def target_errors(mesh: FaceMesh, target: Target) -> np.ndarray:
    """Distance (V,) mm from each vertex to the target's surface (to its nearest point for a point set)."""
    def compute() -> np.ndarray:
        if target.faces is None or len(target.faces) == 0:
            return nearest_neighbours(mesh.vertices, target.vertices)[0] * MM_PER_UNIT
        return surface_distance_mm(mesh.vertices, target.vertices, target.faces)

    return mesh.field(f"error:{target.key}", compute)


def sharpen(weights: np.ndarray, contrast: float) -> np.ndarray:
    """Blend weights (N, k) raised to the power ``contrast`` and renormalised: 1 keeps them; larger
    values give each vertex more of its dominant field's colour (a trained model's weights are often
    soft, and mixed as they are the regions blur into one colour)."""
    weights = np.asarray(weights, dtype=np.float64)
    relative = weights / np.maximum(weights.max(axis=1, keepdims=True), 1e-12)
    powered = relative ** float(contrast)
    return powered / powered.sum(axis=1, keepdims=True)


def paint(pretrained: Pretrained, mesh: FaceMesh, face: Face, mode: str, *, blend_field: str = "template",
          blend_contrast: float = BLEND_CONTRAST, target: Target | None = None,
          error_max_mm: float = ERROR_MAX_MM) -> Painted:
    """The vertex colours of ``mesh`` (the face ``face``) in colour ``mode`` (one of :data:`COLOR_MODES`)."""
    plain = np.broadcast_to(np.asarray(PLAIN_COLOR), (len(mesh.vertices), 3))
    if mode == "plain":
        return Painted(plain, None, "plain shading")
    if mode == "template":
        values = model_values(pretrained, mesh, face)
        return Painted(template_colors(values["template_points"]), None,
                       "template-space coordinates p'' as RGB: one colour, one point of the face on every face")
    if mode == "blend":
        available = blend_fields(pretrained, mesh, face)
        if blend_field not in available:
            return Painted(plain, None, f"this model reports no {blend_field} blend weights (it has: "
                           f"{', '.join(available) or 'none'})")
        weights = model_values(pretrained, mesh, face)[BLEND_WEIGHTS[blend_field]]
        return Painted(blend_colors(sharpen(weights, blend_contrast)), None,
                       f"{blend_field} field: each colour is one local field ({weights.shape[1]} regions), mixed by "
                       f"its blend weight{'' if blend_contrast == 1 else f' to the power {blend_contrast:g}'}")
    if mode == "error":
        if target is None:
            return Painted(plain, None, "no target to compare with: choose a fit, or a training scan with --data")
        errors = target_errors(mesh, target)
        return Painted(error_colors(errors, error_max_mm), errors,
                       f"distance to {target.label}: mean {errors.mean():.3f} mm, median {np.median(errors):.3f} mm, "
                       f"max {errors.max():.3f} mm (blue 0 .. red {error_max_mm:g} mm)")
    raise ValueError(f"colour mode must be one of {', '.join(COLOR_MODES)}, got {mode!r}")
