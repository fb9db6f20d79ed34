"""Where a landmark-free input sits: its scale (unit) and pose found by a similarity search onto
the model's mean face, refusals of what is no face after it, the crop to the model's unit
sphere, and the rescaling when a fit refines the scale.

Frames: see :mod:`imface.fitting.inputs`; the pose maps a target's input frame into model space.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from imface.errors import ImfaceError
from imface.fitting.inputs import FitTarget, subsample
from imface.frame import MM_PER_INPUT_UNIT, MM_PER_UNIT
from imface.ops.similarity_search import SimilarityFit, refine_pose, search_similarity

#: Most input points beyond this radius (model units) after centring means a wrong unit or pose.
FAR_RADIUS = 1.5
#: The face check after the search: each measure's limit (``python experiments/face_set.py`` prints
#: every input's measures and margins on a cross-source set; docs/fitting.md has the figures).
#: nose_coverage: share of the mean face's nose region (3 cm around its tip) with an input point
#: within 10 mm (a real nose can sit 5-8 mm from the mean nose after a whole-face alignment);
#: coverage: share of the whole mean face matched within 5 mm; residual: model units, the mean of
#: both directions' distances capped at 10 mm; protrusion: model units, how far the input's nose
#: stands in front of its cheeks (3.5-5 cm to the side), which a ball or the back of a head cannot.
FACE_LIMITS = {"nose_coverage": 0.65, "coverage": 0.5, "residual": 0.045, "protrusion": 0.12}
#: Measures whose limit is an upper bound (the others are lower bounds).
UPPER_BOUNDS = ("residual",)
#: A found scale within this factor of a named unit's is that unit: adult faces differ in size by
#: about 5% (one standard deviation) and the search's own scale error is a few %, so 1.25 holds
#: any adult and most children, while named units are 10x apart (inches, 2.54x a cm, stay arbitrary).
UNIT_BAND = 1.25
#: Export frames tried when the upright search finds no face, as the turns that bring such a file
#: upright: z-up (either way), turned 90 degrees left or right, facing -z, upside down, and both
#: (a camera frame: y down, looking along +z).
EXPORT_FRAMES = Rotation.from_euler("xyz", [(90, 0, 0), (-90, 0, 0), (0, 90, 0), (0, -90, 0), (0, 180, 0),
                                            (0, 0, 180), (180, 0, 0)], degrees=True).as_matrix()
#: The search in each export frame: every rotation start as upright, with fewer points and
#: refinements (the coarse starts' cost grows with their points; a third of the upright search's time).
FRAME_SEARCH = {"keep": 2, "coarse_points": 800, "fine_iterations": 30}


def unit_of_scale(scale: float) -> str:
    """The named unit whose scale (model units per input unit) is within :data:`UNIT_BAND` of
    ``scale``, else ``arbitrary``."""
    for name, factor in MM_PER_INPUT_UNIT.items():
        if abs(np.log(scale * MM_PER_UNIT / factor)) <= np.log(UNIT_BAND):
            return name
    return "arbitrary"


def face_measures(points: np.ndarray, template: np.ndarray, found: SimilarityFit) -> dict[str, float]:
    """The face check's measures (see :data:`FACE_LIMITS`) of input points (N, 3) under the
    search's similarity onto the template's front points (M, 3), model units."""
    moved = found.scale * np.asarray(points, dtype=np.float64) @ found.rotation.T + found.translation
    tip = template[np.argmax(template[:, 2])]
    nose = np.linalg.norm(template - tip, axis=1) <= 0.3
    to_input, _ = cKDTree(moved).query(template[nose], distance_upper_bound=0.2)
    offset = moved[:, :2] - tip[:2]
    lateral = np.linalg.norm(offset, axis=1)
    centre = moved[lateral <= 0.15, 2]
    ring = (lateral >= 0.35) & (lateral <= 0.5)
    # The frontmost point in each of 12 directions around the nose: the face's surface there, not
    # hair or shoulders behind it; their median is where the cheeks (and brows, lips) stand.
    sector = ((np.arctan2(offset[ring, 1], offset[ring, 0]) + np.pi) / (2 * np.pi) * 12).astype(int) % 12
    fronts = np.full(12, -np.inf)
    np.maximum.at(fronts, sector, moved[ring, 2])
    fronts = fronts[np.isfinite(fronts)]
    protrusion = float(centre.max() - np.median(fronts)) if len(centre) and len(fronts) >= 6 else 0.0
    return {"nose_coverage": float(np.mean(to_input <= 0.1)), "coverage": found.coverage,
            "residual": found.residual, "protrusion": protrusion}


def face_margins(measures: dict[str, float]) -> dict[str, float]:
    """Each measure's margin to its limit, as a share of the limit: > 0 passes, < 0 fails."""
    return {name: (limit - measures[name] if name in UPPER_BOUNDS else measures[name] - limit) / limit
            for name, limit in FACE_LIMITS.items()}


#: The frame name of an upright input (:func:`_frame_name`).
UPRIGHT = "looks along +z, up +y"


def _frame_name(rotation: np.ndarray) -> str:
    """Which way an input looks, from the rotation taking it onto the upright mean face (3, 3)."""
    view = rotation.T @ np.array([0.0, 0.0, 1.0])  # the face's view direction in the input's frame
    up = rotation.T @ np.array([0.0, 1.0, 0.0])
    names = ["+x", "+y", "+z", "-x", "-y", "-z"]
    axis = lambda v: names[int(np.argmax(np.abs(v))) + 3 * int(v[np.argmax(np.abs(v))] < 0)]  # noqa: E731
    return f"looks along {axis(view)}, up {axis(up)}"


def _search(points: np.ndarray, template: np.ndarray, scale: float | None) -> tuple[SimilarityFit, dict]:
    """The upright search, then (when it finds no face) a lighter search in each export frame in
    turn, until one finds a face. Returns the fit that found a face, else the closest to one, and
    its measures."""
    found = search_similarity(points, template, scale=scale)
    best = found, face_measures(points, template, found)
    if min(face_margins(best[1]).values()) >= 0:
        return best
    for frame in EXPORT_FRAMES:
        turned = search_similarity(points @ frame.T, template, scale=scale, **FRAME_SEARCH)
        turned = SimilarityFit(**{**turned.__dict__, "rotation": turned.rotation @ frame})
        measures = face_measures(points, template, turned)
        if min(face_margins(measures).values()) >= 0:
            return turned, measures
        if min(face_margins(measures).values()) > min(face_margins(best[1]).values()):
            best = turned, measures
    return best


def align_to_mean_face(target: FitTarget, template: np.ndarray) -> None:
    """Find the target's scale (``unit == "auto"``) and pose by similarity search onto the mean
    face's front points (M, 3), model units, upright or in a common export frame; name the unit when
    the scale lies in a named unit's band and fit at that unit; rescale its arrays; refuse what is
    no face, with the measures and their limits."""
    scale_given = target.unit != "auto"  # given: the points are in model units already
    rng = np.random.default_rng(0)
    sample = target.surface_points[subsample(rng, len(target.surface_points), 20_000)]
    found, measures = _search(sample, template, 1.0 if scale_given else None)
    margins = face_margins(measures)
    if min(margins.values()) < 0:
        failed = [name for name, margin in margins.items() if margin < 0]
        error = ImfaceError(target.source, "no face found: " + ", ".join(_measure_text(name, measures[name])
                                                                          for name in failed)
                            + f"; best alignment {_frame_name(found.rotation)} (the back of a head, a face seen "
                            "from more than about 40 degrees off an axis, or not a face)")
        error.measures = {"measures": measures, "margins": margins, "frame": _frame_name(found.rotation)}
        raise error
    size = None
    if not scale_given:
        unit = unit_of_scale(found.scale)
        scale = found.scale
        if unit != "arbitrary":  # fit at the named unit: the person's size is the model's to fit
            size = MM_PER_INPUT_UNIT[unit] / MM_PER_UNIT / found.scale  # > 1: larger than the mean face
            scale = MM_PER_INPUT_UNIT[unit] / MM_PER_UNIT
            moved = found.scale * sample @ found.rotation.T + found.translation
            centre = sample[np.linalg.norm(moved, axis=1) <= 1.0].mean(axis=0)  # the face's, kept in place
            shift = found.translation + (found.scale - scale) * centre @ found.rotation.T
            rotation, translation = refine_pose(sample * scale, template, found.rotation, shift)
            found = SimilarityFit(**{**found.__dict__, "scale": scale, "rotation": rotation, "translation": translation})
        target.unit = unit
        target.fit_scale = unit == "arbitrary"  # a named unit's scale is known; an arbitrary one may be refined
        target.raw_to_input = np.diag([scale, scale, scale, 1.0])
        target.surface_points = (target.surface_points * scale).astype(np.float32)
        if target.reference is not None:
            target.reference = (target.reference[0] * scale, target.reference[1])
    target.init_rotation, target.init_translation = found.rotation, found.translation
    scale = float(target.raw_to_input[0, 0])
    target.alignment = {"scale": scale, "mm_per_input_unit": scale * MM_PER_UNIT, "unit": target.unit,
                        "scale_given": scale_given, "size_vs_mean_face": size,
                        "frame": _frame_name(found.rotation), "residual_mm": 100 * found.residual,
                        "coverage": found.coverage, "nose_coverage": measures["nose_coverage"],
                        "protrusion_mm": 100 * measures["protrusion"], "margins": margins,
                        "ambiguity": found.ambiguity, "starts": found.starts}


def _measure_text(name: str, value: float) -> str:
    """One failed measure against its limit, for the refusal line."""
    limit = FACE_LIMITS[name]
    if name == "nose_coverage":
        return f"{100 * value:.0f}% of the mean face's nose region matched within 10 mm (a face: >= {100 * limit:.0f}%)"
    if name == "coverage":
        return f"{100 * value:.0f}% of the mean face matched within 5 mm (a face: >= {100 * limit:.0f}%)"
    if name == "residual":
        return f"alignment residual {100 * value:.1f} mm (a face: <= {100 * limit:.1f})"
    return f"nose {100 * value:.0f} mm in front of the cheeks (a face: >= {100 * limit:.0f})"


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
