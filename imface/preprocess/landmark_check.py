"""Are these landmarks where a face's landmarks are? A check that needs no frame and no unit.

Vertex ids always give points on the surface, and a wrong id table (FaceScape's ``v10`` ids on
a ``v16`` mesh, say) gives a set that passes every distance check while scattered over the
forehead, cheeks and ears. So the landmarks are fitted by a similarity transform (scale,
rotation, shift) onto the canonical ones (:data:`imface.frame.CANONICAL_LANDMARKS_MM`), and then:

- the fit's residual is bounded: the RMS and the largest distance of the inner landmarks
  (brows, nose, eyes, mouth: iBUG 17-67), and a looser bound on the jaw line (iBUG 0-16; its
  definition differs between datasets: a contour behind the cheeks in the canonical frame,
  the visible face border in FaceScape's TU models);
- named relations hold in the fitted frame: eyes above the nose tip, the nose tip above the mouth,
  the upper lip above the lower one, the nose tip frontmost, left and right in order, and both
  eyes about as wide and as far from the nose tip.

The limits are millimetres in the canonical frame after the fit (the scan's own unit does not
matter); they leave room for every expression of the built-in data and FaceScape's TU models.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from imface.errors import ImfaceError
from imface.frame import CANONICAL_LANDMARKS_MM, FIVE_LANDMARK_IDS, NOSE_TIP_ID
from imface.ops.rigid import DegenerateConfigurationError, ReflectionError, kabsch
from imface.preprocess.layouts import ScanSource

#: iBUG ids of the jaw line; the others are the inner landmarks.
JAW_IDS = tuple(range(17))
INNER_IDS = tuple(range(17, 68))
#: Residual limits after the similarity fit, canonical mm.
MAX_INNER_RMS_MM = 20.0
MAX_INNER_MM = 45.0
MAX_JAW_MM = 100.0
MAX_FIVE_MM = 30.0  # five landmarks: the fit has fewer points to spread an error over
#: A landmark may stand this far in front of the nose tip (pursed lips), canonical mm.
FRONT_TOLERANCE_MM = 8.0
#: The smaller of two mirrored measures (eye width, nose tip to eye corner) over the larger.
MIN_SYMMETRY = 0.7
#: iBUG ids used by the relations: eye corners (right outer, right inner, left inner, left outer),
#: mouth corners, outer upper and lower lip middles, nostril wings.
EYE_CORNERS = (36, 39, 42, 45)
MOUTH_CORNERS = (48, 54)
UPPER_LIP, LOWER_LIP = 51, 57
NOSTRILS = (31, 35)


@dataclass(frozen=True)
class LandmarkFit:
    """The similarity fit of one landmark set onto the canonical landmarks.

    points: (N, 3) the landmarks in the canonical frame, mm (N = 68 or 5); ids: their iBUG ids;
    residual: (N,) distance of each to its canonical position, mm; scale: canonical mm per input
    unit.
    """

    points: np.ndarray
    ids: tuple[int, ...]
    residual: np.ndarray
    scale: float

    def at(self, ibug_id: int) -> np.ndarray:
        """(3,) the fitted position of one iBUG landmark."""
        return self.points[self.ids.index(ibug_id)]


def fit_to_canonical(points: np.ndarray, path: str | os.PathLike | None = None) -> LandmarkFit:
    """Similarity fit of (68, 3) or (5, 3) landmarks (any unit) onto the canonical frame.

    The rotation comes from the inner landmarks (68) or all five; the scale is the least-squares
    one for that rotation. Refuses mirrored and degenerate sets.
    """
    points = np.asarray(points, dtype=np.float64)
    ids = tuple(range(68)) if len(points) == 68 else tuple(FIVE_LANDMARK_IDS)
    target = CANONICAL_LANDMARKS_MM[list(ids)]
    used = [ids.index(i) for i in INNER_IDS] if len(points) == 68 else list(range(len(ids)))
    source_used, target_used = points[used], target[used]
    try:
        rotation, _ = kabsch(source_used, target_used)
    except ReflectionError:
        raise ImfaceError(path, "landmarks are mirrored: left and right swapped, or not in iBUG order") from None
    except DegenerateConfigurationError as err:
        raise ImfaceError(path, f"degenerate landmark configuration ({err})") from None
    source_centred = source_used - source_used.mean(axis=0)
    target_centred = target_used - target_used.mean(axis=0)
    scale = float(np.sum((source_centred @ rotation.T) * target_centred) / np.sum(source_centred**2))
    if not scale > 0:
        raise ImfaceError(path, "degenerate landmark configuration (no scale maps it onto a face)")
    shift = target_used.mean(axis=0) - scale * source_used.mean(axis=0) @ rotation.T
    fitted = scale * points @ rotation.T + shift
    return LandmarkFit(fitted, ids, np.linalg.norm(fitted - target, axis=1), scale)


def _residual_problems(fit: LandmarkFit) -> list[str]:
    """The residual limits that ``fit`` breaks, worst landmark named."""
    problems = []
    if len(fit.ids) == 5:
        worst = int(np.argmax(fit.residual))
        if fit.residual[worst] > MAX_FIVE_MM:
            problems.append(f"iBUG {fit.ids[worst]} is {fit.residual[worst]:.0f} mm from its place on a face "
                            f"(limit {MAX_FIVE_MM:g})")
        return problems
    inner = fit.residual[list(INNER_IDS)]
    rms = float(np.sqrt(np.mean(inner**2)))
    if rms > MAX_INNER_RMS_MM:
        problems.append(f"inner landmarks are {rms:.0f} mm RMS from a face's layout (limit {MAX_INNER_RMS_MM:g})")
    for group, limit in ((INNER_IDS, MAX_INNER_MM), (JAW_IDS, MAX_JAW_MM)):
        worst = max(group, key=lambda i: fit.residual[i])
        if fit.residual[worst] > limit:
            problems.append(f"iBUG {worst} is {fit.residual[worst]:.0f} mm from its place on a face (limit {limit:g})")
    return problems


def _relation_problems(fit: LandmarkFit) -> list[str]:
    """The named relations (module docstring) that ``fit`` breaks."""
    have = set(fit.ids)
    y = lambda i: fit.at(i)[1]  # up, canonical mm
    x = lambda i: fit.at(i)[0]  # to the subject's left
    eyes = [i for i in EYE_CORNERS if i in have]
    problems = []
    if min(y(i) for i in eyes) <= y(NOSE_TIP_ID):
        problems.append("an eye corner is not above the nose tip")
    if max(y(i) for i in MOUTH_CORNERS) >= y(NOSE_TIP_ID):
        problems.append("a mouth corner is not below the nose tip")
    if UPPER_LIP in have and y(UPPER_LIP) <= y(LOWER_LIP):
        problems.append("the upper lip is not above the lower lip")
    others = [fit.at(i)[2] for i in fit.ids if i != NOSE_TIP_ID and i not in JAW_IDS]
    if max(others) > fit.at(NOSE_TIP_ID)[2] + FRONT_TOLERANCE_MM:
        problems.append(f"the nose tip is not frontmost ({max(others) - fit.at(NOSE_TIP_ID)[2]:.0f} mm behind "
                        "another landmark)")
    order = [(eyes, "eye corners"), (list(MOUTH_CORNERS), "mouth corners")]
    if len(fit.ids) == 68:
        order.append((list(NOSTRILS), "nostrils"))
    for group, label in order:
        if any(x(a) >= x(b) for a, b in pairwise(group)):
            problems.append(f"{label} are not in right-to-left order")
    nose = fit.at(NOSE_TIP_ID)
    pairs = [("eye-corner distances from the nose tip", np.linalg.norm(fit.at(36) - nose),
              np.linalg.norm(fit.at(45) - nose))]
    if len(fit.ids) == 68:
        pairs.append(("eye widths", np.linalg.norm(fit.at(36) - fit.at(39)), np.linalg.norm(fit.at(42) - fit.at(45))))
    for label, right, left in pairs:
        if min(right, left) < MIN_SYMMETRY * max(right, left):
            problems.append(f"asymmetric {label} ({right:.0f} vs {left:.0f} mm)")
    return problems


def landmark_problems(points: np.ndarray, path: str | os.PathLike | None = None) -> list[str]:
    """Every way (68, 3) or (5, 3) landmarks (any unit) fall out of a face's layout; [] when plausible."""
    try:
        fit = fit_to_canonical(points, path)
    except ImfaceError as err:  # mirrored or degenerate: no fit to check further
        return [err.problem]
    return _residual_problems(fit) + _relation_problems(fit)


def check_scan_landmarks(scan: ScanSource, points: np.ndarray) -> None:
    """:func:`check_landmark_plausibility` for one raw scan's landmarks (68, 3) or (5, 3), any unit.

    The error names the landmark file, or for vertex ids the mesh (the ids file is shared by
    every mesh of a dataset; the mesh is the one that does not fit it).
    """
    if scan.landmarks_path is not None:
        check_landmark_plausibility(points, scan.landmarks_path)
    else:
        check_landmark_plausibility(points, scan.mesh_path, f"vertex ids from {scan.landmark_indices_path}")


def check_landmark_plausibility(points: np.ndarray, path: str | os.PathLike | None, source: str = "") -> None:
    """Refuse landmarks (68, 3) or (5, 3), any unit, that are not laid out like a face's.

    One :class:`ImfaceError` line naming ``path`` and the first problems; ``source`` says where
    the landmarks came from (e.g. the id table of a fixed-topology mesh).
    """
    problems = landmark_problems(points, path)
    if problems:
        where = f" ({source})" if source else ""
        raise ImfaceError(path, f"implausible landmarks{where}: {'; '.join(problems[:3])}"
                          + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")
                          + "; check the landmark order or the vertex ids")
