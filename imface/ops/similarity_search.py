"""Landmark-free pose, scale and unit: the similarity transform taking a scan onto a template face.

A multi-start, trimmed, two-way ICP with scale (Gauss-Newton, point-to-plane on the template's
normals: point-to-point ICP slides along a smooth face and needs many times the iterations):

1. starts: rotations of 0 and +-``start_angle_deg`` about each axis and their combinations, times several
   scales around the ratio of the two point sets' spreads (clutter such as shoulders makes the
   input look larger than its face, a one-view scan smaller), times anchors: the centroids
   matched, or one of the input's depth peaks put on the template's frontmost point (a peak is
   the frontmost point within ``peak_radius`` of itself: the nose tip of a roughly frontal head
   is one, but a shoulder or the hair of a turned head can be the frontmost point of all, so the
   ``peaks`` frontmost peaks are each tried);
2. each start runs a few coarse iterations: pairs in both directions (every template point to
   its nearest input point; input points inside the crop sphere to their nearest template
   point), pairs farther than a shrinking trim distance dropped, so hair, neck and shoulders
   outside the face are never paired;
3. the best starts are refined with more points, the trim distance shrinking to
   ``inlier_distance``, until converged (clutter near the face slows the last degrees), and
   scored by the mean truncated distance in both directions; the best one wins.

Conventions: points are rows; the transform is ``template ~= scale * x @ R.T + t``; distances
are in template units (model units for imface, 1 = 100 mm).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation


#: scale starts, as multiples of the spread ratio
SCALE_FACTORS = (0.6, 1.0, 1.6, 2.6)


def neighbour_pairs(points: np.ndarray, radius: float) -> np.ndarray:
    """(P, 2) index pairs of points (N, 3) closer than ``radius``, in both orders (for :func:`depth_peaks`)."""
    pairs = cKDTree(points).query_pairs(radius, output_type="ndarray")
    return np.concatenate([pairs, pairs[:, ::-1]])


def depth_peaks(depth: np.ndarray, pairs: np.ndarray, count: int) -> np.ndarray:
    """Indices of up to ``count`` points that are the frontmost of their neighbourhood, frontmost first.

    depth: (N,) each point's depth toward the viewer; pairs: (P, 2) index pairs of neighbouring points
    (both orders); a point is a peak when no neighbour is deeper.
    """
    highest = depth.copy()
    np.maximum.at(highest, pairs[:, 0], depth[pairs[:, 1]])
    peaks = np.flatnonzero(depth >= highest)
    return peaks[np.argsort(-depth[peaks], kind="stable")][:count]


@dataclass(frozen=True)
class SimilarityFit:
    """The best similarity found. scale: template units per input unit; rotation (3, 3) and
    translation (3,) with ``template ~= scale * x @ R.T + t``; residual: the score, the mean of
    the two directions' mean truncated distance (template units); coverage: share of template
    points with an input point within ``inlier_distance``; nose_coverage: the same for the template
    points within 3 cm (0.3 template units) of its frontmost point, the nose, which the back of a
    head or a cheek cannot match; ambiguity: best score over the score
    of the best *different* solution (another scale by > 5%, pose by > 5 degrees or 1 cm); near 1
    means two readings of the input fit about equally well; starts: starts tried."""

    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    residual: float
    coverage: float
    nose_coverage: float
    ambiguity: float
    starts: int


def rotation_starts(angle_deg: float) -> list[np.ndarray]:
    """Every combination of -angle, 0, +angle about x, y and z (intrinsic x-y-z Euler angles):
    27 (3, 3) rotations, the identity first (1 when angle is 0). With 30 degrees every rotation
    of up to about 45 degrees lies within about 20 degrees of a start, inside ICP's basin."""
    if angle_deg == 0:
        return [np.eye(3)]
    steps = (0.0, angle_deg, -angle_deg)
    angles = [(a, b, c) for a in steps for b in steps for c in steps]
    return [Rotation.from_euler("xyz", a, degrees=True).as_matrix() for a in angles]


def _sample(points: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    return points if len(points) <= count else points[rng.choice(len(points), count, replace=False)]


def _template_normals(template: np.ndarray) -> np.ndarray:
    """(M, 3) unit normals of a front-facing template point set: the smallest principal axis of
    each point's 16 nearest neighbours, turned toward +z (the template looks along +z)."""
    _, neighbours = cKDTree(template).query(template, k=min(16, len(template)))
    local = template[neighbours] - template[neighbours].mean(axis=1, keepdims=True)
    _, vectors = np.linalg.eigh(np.einsum("nki,nkj->nij", local, local))
    normals = vectors[:, :, 0]
    return normals * np.where(normals[:, 2:3] < 0, -1.0, 1.0)


#: share of the point-to-point distance in the pair metric (point-to-plane alone lets a pair
#: slide along flat parts; a little of it keeps the step well posed)
POINT_WEIGHT = 0.1
#: a Gauss-Newton step this small (radians, template units, log-scale) ends the refinement
STEP_TOLERANCE = 1e-5


class _Problem:
    """One input and template (with normals), with the template's kd-tree built once."""

    def __init__(self, points: np.ndarray, template: np.ndarray, normals: np.ndarray, crop_radius: float,
                 fixed_scale: bool) -> None:
        self.points, self.template, self.normals = points, template, normals
        self.template_tree = cKDTree(template)
        self.crop_radius, self.fixed_scale = crop_radius, fixed_scale

    def distances(self, scale: float, rotation: np.ndarray, translation: np.ndarray, points: np.ndarray):
        """(moved input, template->input distances and nearest input ids, inside mask,
        input->template distances and nearest template ids)."""
        moved = scale * points @ rotation.T + translation
        to_input, nearest_input = cKDTree(moved).query(self.template)
        inside = np.einsum("ij,ij->i", moved, moved) <= self.crop_radius**2
        to_template, nearest_template = self.template_tree.query(moved[inside])
        return moved, to_input, nearest_input, inside, to_template, nearest_template

    def score(self, pose: tuple[float, np.ndarray, np.ndarray], points: np.ndarray, cap: float) -> float:
        _, to_input, _, inside, to_template, _ = self.distances(*pose, points)
        back = float(np.minimum(to_template, cap).mean()) if inside.sum() >= 10 else cap
        return 0.5 * (float(np.minimum(to_input, cap).mean()) + back)

    def refine(self, pose: tuple[float, np.ndarray, np.ndarray], points: np.ndarray, trims: np.ndarray):
        """Gauss-Newton on the trimmed pairs, one step per trim distance: a small rotation w,
        shift u and log-scale g about the model origin (``m -> e^g R_w m + u``), point-to-plane
        with the template's normals plus ``POINT_WEIGHT`` of point-to-point."""
        scale, rotation, translation = pose
        width = 6 if self.fixed_scale else 7
        for trim in trims:
            moved, to_input, nearest_input, inside, to_template, nearest_template = self.distances(
                scale, rotation, translation, points)
            keep_to, keep_back = to_input <= trim, to_template <= trim
            count_to, count_back = int(keep_to.sum()), int(keep_back.sum())
            if count_to + count_back < 10:
                break
            source = np.concatenate([moved[nearest_input[keep_to]], moved[inside][keep_back]])
            ids = np.concatenate([np.flatnonzero(keep_to), nearest_template[keep_back]])
            target, normal = self.template[ids], self.normals[ids]
            weights = np.concatenate([np.full(count_to, 0.5 / max(count_to, 1)),
                                      np.full(count_back, 0.5 / max(count_back, 1))])
            # rows: point-to-plane (1 per pair) and point-to-point (3 per pair), columns w, u, g
            plane = np.concatenate([np.cross(source, normal), normal, np.einsum("ij,ij->i", source, normal)[:, None]],
                                   axis=1)[:, :width]
            skew = np.zeros((len(source), 3, 3))
            skew[:, 0, 1], skew[:, 0, 2], skew[:, 1, 2] = source[:, 2], -source[:, 1], source[:, 0]
            skew -= skew.transpose(0, 2, 1)  # d(w x m)/dw = -[m]_x
            point = np.concatenate([skew, np.broadcast_to(np.eye(3), skew.shape), source[:, :, None]], axis=2)[..., :width]
            residual_plane = np.einsum("ij,ij->i", source - target, normal)
            lhs = (plane * weights[:, None]).T @ plane + POINT_WEIGHT * np.einsum(
                "p,pik,pil->kl", weights, point, point)
            rhs = (plane * weights[:, None]).T @ residual_plane + POINT_WEIGHT * np.einsum(
                "p,pik,pi->k", weights, point, source - target)
            step = -np.linalg.solve(lhs + 1e-9 * np.eye(width), rhs)
            turn = Rotation.from_rotvec(step[:3]).as_matrix()
            grow = float(np.exp(step[6])) if width == 7 else 1.0
            scale, rotation, translation = grow * scale, turn @ rotation, grow * turn @ translation + step[3:6]
            if trim == trims[-1] and np.abs(step).max() < STEP_TOLERANCE:
                break  # converged at the last trim distance
        return scale, rotation, translation


def _different(a: tuple[float, np.ndarray, np.ndarray], b: tuple[float, np.ndarray, np.ndarray],
               centre: np.ndarray) -> bool:
    """Two similarities differ: scale by > 5%, rotation by > 5 degrees, or where they put the
    template's centre (in input units of ``a``) by > 0.1 template units (1 cm for imface)."""
    if abs(np.log(a[0] / b[0])) > np.log(1.05):
        return True
    angle = np.degrees(np.arccos(np.clip((np.trace(a[1].T @ b[1]) - 1) / 2, -1, 1)))
    centre_a = ((centre - a[2]) @ a[1]) / a[0]
    centre_b = ((centre - b[2]) @ b[1]) / b[0]
    return angle > 5.0 or a[0] * np.linalg.norm(centre_a - centre_b) > 0.1


def search_similarity(
    points: np.ndarray,
    template: np.ndarray,
    *,
    scale: float | None = None,
    crop_radius: float = 1.0,
    start_angle_deg: float = 30.0,
    scale_factors: tuple[float, ...] = SCALE_FACTORS,
    coarse_points: int = 1500,
    fine_points: int = 6000,
    coarse_iterations: int = 8,
    fine_iterations: int = 100,
    keep: int = 8,
    inlier_distance: float = 0.05,
    peaks: int = 3,
    peak_radius: float = 0.5,
    seed: int = 0,
) -> SimilarityFit:
    """Best similarity taking input points onto a template (see the module docstring).

    Args:
        points: (N, 3) input surface points, any unit and frame (roughly frontal: view along +z
            within about ``start_angle_deg`` plus the basin of ICP).
        template: (M, 3) the template's front surface points (e.g. the model's mean face), with
            the crop sphere ``|x| <= crop_radius`` centred at its origin.
        scale: known template units per input unit (only the pose is searched), or None.
        inlier_distance: template units; the distance behind ``coverage`` and the last trim.
        peaks: depth peaks tried as the nose tip per rotation start; peak_radius: template units
            (at the spread ratio's scale), the neighbourhood a peak is the frontmost point of.

    Returns:
        :class:`SimilarityFit`.

    Raises:
        ValueError: fewer than 10 points in either set, or non-finite points.
    """
    rng = np.random.default_rng(seed)
    points, template = np.asarray(points, dtype=np.float64), np.asarray(template, dtype=np.float64)
    if len(points) < 10 or len(template) < 10 or not (np.isfinite(points).all() and np.isfinite(template).all()):
        raise ValueError("a similarity search needs at least 10 finite points in the input and the template")
    template = _sample(template, fine_points // 2, rng)
    normals = _template_normals(template)
    coarse, fine = _sample(points, coarse_points, rng), _sample(points, fine_points, rng)
    pick = rng.choice(len(template), min(coarse_points, len(template)), replace=False)
    problem = _Problem(coarse, template[pick], normals[pick], crop_radius, scale is not None)
    template_centre = template.mean(axis=0)
    template_front = template[np.argmax(template[:, 2])]
    spread = np.sqrt(np.mean(np.sum((template - template_centre) ** 2, axis=1)))
    input_centre = coarse.mean(axis=0)
    base = spread / max(np.sqrt(np.mean(np.sum((coarse - input_centre) ** 2, axis=1))), 1e-300)
    scales = [scale] if scale is not None else [base * f for f in scale_factors]
    coarse_trims = np.geomspace(0.3, 0.12, coarse_iterations)
    pairs = neighbour_pairs(coarse, peak_radius / (scale if scale is not None else base))
    candidates = []
    for turn in rotation_starts(start_angle_deg):
        fronts = coarse[depth_peaks((coarse @ turn.T)[:, 2], pairs, peaks)]
        anchors = [(input_centre, template_centre)] + [(front, template_front) for front in fronts]
        for start_scale in scales:
            for anchor, target_anchor in anchors:
                pose = (start_scale, turn, target_anchor - start_scale * anchor @ turn.T)
                pose = problem.refine(pose, coarse, coarse_trims)
                candidates.append((problem.score(pose, coarse, 0.1), pose))
    candidates.sort(key=lambda c: c[0])
    problem = _Problem(fine, template, normals, crop_radius, scale is not None)
    fine_trims = np.concatenate([np.geomspace(0.2, inlier_distance, fine_iterations // 2),
                                 np.full(fine_iterations - fine_iterations // 2, inlier_distance)])
    refined = []
    for _, pose in candidates[:keep]:
        pose = problem.refine(pose, fine, fine_trims)
        refined.append((problem.score(pose, fine, 0.1), pose))
    refined.sort(key=lambda c: c[0])
    best_score, best = refined[0]
    others = [s for s, p in refined[1:] if _different(best, p, template_centre)]
    to_input = problem.distances(*best, fine)[1]
    nose = np.linalg.norm(template - template_front, axis=1) <= 0.3
    return SimilarityFit(
        scale=float(best[0]), rotation=best[1], translation=best[2], residual=best_score,
        coverage=float(np.mean(to_input <= inlier_distance)),
        nose_coverage=float(np.mean(to_input[nose] <= inlier_distance)),
        ambiguity=float(best_score / min(others)) if others else 0.0, starts=len(candidates),
    )


def refine_pose(
    points: np.ndarray,
    template: np.ndarray,
    rotation: np.ndarray,
    translation: np.ndarray,
    *,
    crop_radius: float = 1.0,
    iterations: int = 30,
    inlier_distance: float = 0.05,
    sample_points: int = 6000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Rigid refinement, at the input's present scale, of a pose taking input points (N, 3)
    onto a template's front points (M, 3): the search's final trimmed Gauss-Newton steps
    (``inlier_distance``, template units) from ``x -> rotation x + translation``.

    Returns the refined rotation (3, 3) and translation (3,).
    """
    rng = np.random.default_rng(seed)
    points, template = np.asarray(points, dtype=np.float64), np.asarray(template, dtype=np.float64)
    template = _sample(template, sample_points // 2, rng)
    points = _sample(points, sample_points, rng)
    problem = _Problem(points, template, _template_normals(template), crop_radius, True)
    pose = (1.0, np.asarray(rotation, dtype=np.float64), np.asarray(translation, dtype=np.float64))
    _, rotation, translation = problem.refine(pose, points, np.full(iterations, inlier_distance))
    return rotation, translation
