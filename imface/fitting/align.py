"""Where a landmark-free input sits: its scale (unit) and pose found by a similarity search onto
the model's mean face, refusals of what is no face after it, the crop to the model's unit
sphere, and the rescaling when a fit refines the scale.

Frames: see :mod:`imface.fitting.inputs`; the pose maps a target's input frame into model space.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from imface.errors import ImfaceError
from imface.fitting.inputs import FitTarget, subsample
from imface.frame import MM_PER_INPUT_UNIT, MM_PER_UNIT
from imface.ops.similarity_search import search_similarity

#: Most input points beyond this radius (model units) after centring means a wrong unit or pose.
FAR_RADIUS = 1.5
#: Refusals after the search (``python bench/fit_any.py`` prints the figures behind them; on its
#: built-in test set, good scans with clutter, holes, noise or one view: nose coverage >= 0.79,
#: coverage >= 0.70, residual <= 3.7 mm; the back of a head: nose 0.52, coverage 0.51, 4.5 mm).
MIN_NOSE_COVERAGE = 0.65  # share of the mean face's nose region (3 cm around its tip) matched within 5 mm
MIN_FACE_COVERAGE = 0.5  # share of the whole mean face matched within 5 mm
MAX_FACE_RESIDUAL = 0.045  # model units (4.5 mm): mean of both directions' distances capped at 10 mm
#: A found scale this close to a named unit's (2%) is reported as that unit.
UNIT_TOLERANCE = 0.02


def unit_of_scale(scale: float) -> str:
    """The named unit whose scale (model units per input unit) is within 2% of ``scale``, else ``arbitrary``."""
    for name, factor in MM_PER_INPUT_UNIT.items():
        if abs(np.log(scale * MM_PER_UNIT / factor)) <= np.log1p(UNIT_TOLERANCE):
            return name
    return "arbitrary"


def align_to_mean_face(target: FitTarget, template: np.ndarray) -> None:
    """Find the target's scale (``unit == "auto"``) and pose by similarity search onto the mean
    face's front points (M, 3), model units; rescale its arrays; refuse what is no face."""
    scale_given = target.unit != "auto"  # given: the points are in model units already
    rng = np.random.default_rng(0)
    sample = target.surface_points[subsample(rng, len(target.surface_points), 20_000)]
    found = search_similarity(sample, template, scale=1.0 if scale_given else None)
    if (found.nose_coverage < MIN_NOSE_COVERAGE or found.coverage < MIN_FACE_COVERAGE
            or found.residual > MAX_FACE_RESIDUAL):
        raise ImfaceError(target.source, f"no face found: the best alignment matches {100 * found.nose_coverage:.0f}% of "
                          f"the mean face's nose region and {100 * found.coverage:.0f}% of the face within 5 mm (a face: "
                          f">= {100 * MIN_NOSE_COVERAGE:.0f}% and {100 * MIN_FACE_COVERAGE:.0f}%), residual "
                          f"{100 * found.residual:.1f} mm (<= {100 * MAX_FACE_RESIDUAL:.1f}); the back of a head, "
                          "a face seen from more than about 40 degrees, or not a face")
    if not scale_given:
        target.fit_scale = True
        target.unit = unit_of_scale(found.scale)
        target.raw_to_input = np.diag([found.scale, found.scale, found.scale, 1.0])
        target.surface_points = (target.surface_points * found.scale).astype(np.float32)
        if target.reference is not None:
            target.reference = (target.reference[0] * found.scale, target.reference[1])
    target.init_rotation, target.init_translation = found.rotation, found.translation
    scale = float(target.raw_to_input[0, 0])
    target.alignment = {"scale": scale, "mm_per_input_unit": scale * MM_PER_UNIT, "unit": target.unit,
                        "scale_given": scale_given, "residual_mm": 100 * found.residual, "coverage": found.coverage,
                        "nose_coverage": found.nose_coverage, "ambiguity": found.ambiguity, "starts": found.starts}


def rescale_target(target: FitTarget, factor: float) -> None:
    """Scale the target's input frame by ``factor`` (a scale the fit refined: the input maps to
    model space as ``factor * R x + t``, which is ``R (factor x) + t``), so the rigid pose stays
    valid; the alignment keeps the search's scale beside the refined one."""
    target.surface_points = (target.surface_points * factor).astype(np.float32)
    if target.space_points is not None:
        target.space_points = (target.space_points * factor).astype(np.float32)
        target.space_sdf = (target.space_sdf * factor).astype(np.float32)
    if target.landmarks is not None:
        target.landmarks = (target.landmarks * factor).astype(np.float32)
    if target.reference is not None:
        target.reference = (target.reference[0] * factor, target.reference[1])
    target.raw_to_input = np.diag([factor, factor, factor, 1.0]) @ target.raw_to_input
    scale = float(target.raw_to_input[0, 0])
    target.unit = unit_of_scale(scale)
    if target.alignment is not None:
        target.alignment = {**target.alignment, "search_scale": target.alignment.get("search_scale", target.alignment["scale"]),
                            "scale": scale,
                            "mm_per_input_unit": scale * MM_PER_UNIT, "unit": target.unit,
                            "scale_refined": target.alignment.get("scale_refined", 1.0) * factor}


def crop_to_model_sphere(target: FitTarget, rotation: np.ndarray, translation: np.ndarray) -> None:
    """Keep the input points that land inside the unit sphere under the pose (the crop of
    preprocessing: hair, neck and shoulders beyond it go); refuse inputs that lie mostly far
    outside it (wrong unit or frame)."""
    moved = target.surface_points @ rotation.T + translation
    radius = np.linalg.norm(moved, axis=1)
    if np.median(radius) > FAR_RADIUS and target.alignment is None:
        raise ImfaceError(target.source, f"most points lie far outside the unit sphere after centring (median radius "
                          f"{np.median(radius):.3g} model units = {100 * np.median(radius):.0f} mm): wrong unit or frame?")
    keep = radius <= 1.0
    if keep.sum() < 10:
        raise ImfaceError(target.source, "fewer than 10 points inside the unit sphere after centring")
    target.surface_points = target.surface_points[keep]
    if target.surface_normals is not None:
        target.surface_normals = target.surface_normals[keep]


def prepare_poses(targets: list[FitTarget], mean_face: Callable[[], np.ndarray]) -> None:
    """Scale and pose for the targets that fit one (similarity search onto ``mean_face()``,
    the mean face's front points (M, 3), model units), and the crop for all."""
    face = None
    for target in targets:
        if target.fit_pose:
            face = mean_face() if face is None else face
            align_to_mean_face(target, face)
        crop_to_model_sphere(target, target.init_rotation, target.init_translation)
