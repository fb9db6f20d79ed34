"""Reconstruction metrics with the ImFace authors' protocol: symmetric Chamfer distance,
F-score at 1 mm (the paper's "F-score@0.001", in metres) and more, normal consistency.

Protocol of :func:`evaluate_reconstruction`: sample ``num_points`` area-uniform points
(with normals) on the reconstruction and on the ground truth, align the reconstruction
samples rigidly onto the ground-truth samples with point-to-point ICP, then measure
nearest-neighbour distances both ways. Distances are plain Euclidean (not squared).
Meshes are in model units by default (``mm_per_unit = 100``); results are in mm.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import igl
import numpy as np
from scipy.spatial import cKDTree

from imface.ops.footprint import inside_footprint
from imface.ops.icp import icp
from imface.ops.rigid import apply_rigid
from imface.ops.sdf_sampling import sample_surface


def _points(name: str, points: np.ndarray) -> np.ndarray:
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 3 or len(array) == 0:
        raise ValueError(f"{name} must have shape (N, 3) with N >= 1, got {array.shape}")
    return array


def nearest_neighbours(points: np.ndarray, reference: np.ndarray | cKDTree) -> tuple[np.ndarray, np.ndarray]:
    """Distance (N,) and index (N,) of the nearest ``reference`` point for each of (N, 3) points."""
    tree = reference if isinstance(reference, cKDTree) else cKDTree(_points("reference", reference))
    distances, indices = tree.query(_points("points", points), workers=-1)
    return distances, indices


def chamfer_distance(points_a: np.ndarray, points_b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Symmetric Chamfer distance 0.5 * (mean NN dist a->b + mean NN dist b->a).

    points_a: (N, 3), points_b: (M, 3), same unit. Returns the Chamfer distance (that
    unit), the per-point distances a->b (N,) and b->a (M,).
    """
    a_to_b, _ = nearest_neighbours(points_a, points_b)
    b_to_a, _ = nearest_neighbours(points_b, points_a)
    return 0.5 * (float(a_to_b.mean()) + float(b_to_a.mean())), a_to_b, b_to_a


def surface_distance_mm(vertices: np.ndarray, target_vertices: np.ndarray, target_faces: np.ndarray,
                        mm_per_unit: float = 100.0) -> np.ndarray:
    """Unsigned distance (N,) in mm from points (N, 3) to a triangle mesh (V, 3) / (F, 3), all in
    the same unit (model units by default: ``mm_per_unit`` 100)."""

    squared, _, _ = igl.point_mesh_squared_distance(
        np.asarray(vertices, dtype=np.float64), np.asarray(target_vertices, dtype=np.float64),
        np.asarray(target_faces, dtype=np.int64))
    return np.sqrt(np.maximum(squared, 0.0)) * mm_per_unit


def precision_recall(dist_gt_to_rec: np.ndarray, dist_rec_to_gt: np.ndarray, tau: float) -> tuple[float, float]:
    """(precision, recall) in percent: shares of reconstruction points within ``tau`` of the
    ground truth, and of ground-truth points within ``tau`` of the reconstruction (strictly less)."""
    precision = 100.0 * float(np.mean(np.asarray(dist_rec_to_gt) < tau))
    recall = 100.0 * float(np.mean(np.asarray(dist_gt_to_rec) < tau))
    return precision, recall


def fscore(dist_gt_to_rec: np.ndarray, dist_rec_to_gt: np.ndarray, tau: float) -> float:
    """F-score in percent: 2 P R / (P + R) of :func:`precision_recall` (0 when both are 0)."""
    precision, recall = precision_recall(dist_gt_to_rec, dist_rec_to_gt, tau)
    return 0.0 if precision + recall == 0.0 else 2.0 * precision * recall / (precision + recall)


def _mean_abs_cosine(normals: np.ndarray, matched_normals: np.ndarray) -> float:
    lengths = np.linalg.norm(normals, axis=1) * np.linalg.norm(matched_normals, axis=1)
    cosine = np.einsum("ij,ij->i", normals, matched_normals) / np.maximum(lengths, 1e-300)
    return float(np.mean(np.abs(cosine)))


def normal_consistency(points_a: np.ndarray, normals_a: np.ndarray, points_b: np.ndarray, normals_b: np.ndarray) -> float:
    """Mean |cos| between each point's normal and its nearest neighbour's, averaged both ways.

    points/normals_a: (N, 3), points/normals_b: (M, 3); normals need not be unit length
    and their orientation is ignored. 1 = identical normals; about 0.5 for random ones.
    """
    normals_a, normals_b = _points("normals_a", normals_a), _points("normals_b", normals_b)
    if normals_a.shape != np.shape(points_a) or normals_b.shape != np.shape(points_b):
        raise ValueError("each normals array must have the shape of its points")
    _, a_to_b = nearest_neighbours(points_a, points_b)
    _, b_to_a = nearest_neighbours(points_b, points_a)
    return 0.5 * (_mean_abs_cosine(normals_a, normals_b[a_to_b]) + _mean_abs_cosine(normals_b, normals_a[b_to_a]))


@dataclass(frozen=True)
class ReconstructionMetrics:
    """Metrics of one reconstruction against its ground truth (distances in mm).

    chamfer_mm: 0.5 * (accuracy_mm + completeness_mm); accuracy_mm: mean distance of
    reconstruction samples to the ground truth; completeness_mm: mean distance of
    ground-truth samples to the reconstruction; taus_mm and, per tau, precision,
    recall, fscore in percent; normal_consistency in [0, 1]; num_points: samples per
    mesh; align: "icp" or "none"; icp_iterations, icp_converged; rotation (3x3) and
    translation_mm (3,) of the rigid transform applied to the reconstruction.

    Footprint-restricted variants (None when not computed): the same with only the
    reconstruction samples whose projection along the viewing axis (+z) falls on the
    ground truth (:func:`imface.ops.footprint.inside_footprint`) counting toward accuracy
    and precision; footprint_fraction: the share of reconstruction samples inside.
    icp_on_footprint: the ICP was fitted with the reconstruction samples over the ground
    truth only (see :func:`evaluate_reconstruction`).
    """

    chamfer_mm: float
    accuracy_mm: float
    completeness_mm: float
    normal_consistency: float | None
    taus_mm: tuple[float, ...]
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    fscore: tuple[float, ...]
    num_points: int
    mm_per_unit: float
    align: str
    icp_iterations: int
    icp_converged: bool
    rotation: tuple[tuple[float, ...], ...]
    translation_mm: tuple[float, ...]
    footprint_chamfer_mm: float | None = None
    footprint_accuracy_mm: float | None = None
    footprint_fraction: float | None = None
    footprint_fscore: tuple[float, ...] | None = None
    icp_on_footprint: bool = False

    @property
    def chamfer_units(self) -> float:
        return self.chamfer_mm / self.mm_per_unit

    def fscore_at(self, tau_mm: float) -> float:
        """F-score (percent) at a threshold in ``taus_mm``."""
        for tau, value in zip(self.taus_mm, self.fscore):
            if abs(tau - tau_mm) < 1e-9:
                return value
        raise KeyError(f"no F-score at {tau_mm} mm (computed at {self.taus_mm})")

    @property
    def fscore_1mm(self) -> float:
        return self.fscore_at(1.0)

    @property
    def fscore_2_5mm(self) -> float:
        return self.fscore_at(2.5)

    @property
    def fscore_5mm(self) -> float:
        return self.fscore_at(5.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values, with per-tau entries such as ``fscore@1mm``."""
        values = asdict(self)
        values["chamfer_units"] = self.chamfer_units
        for key in ("precision", "recall", "fscore", "footprint_fscore"):
            for tau, value in zip(self.taus_mm, values.pop(key) or ()):
                values[f"{key}@{tau:g}mm"] = value
        values["taus_mm"] = list(self.taus_mm)
        values["rotation"] = [list(row) for row in self.rotation]
        values["translation_mm"] = list(self.translation_mm)
        return values


#: The ICP is fitted on the reconstruction's part over the ground truth when at least this share of
#: it is there (a reconstruction mostly beside its ground truth is aligned as a whole).
ICP_MIN_FOOTPRINT_SHARE = 0.5


def evaluate_reconstruction(
    rec_vertices: np.ndarray,
    rec_faces: np.ndarray,
    gt_vertices: np.ndarray,
    gt_faces: np.ndarray,
    *,
    num_points: int = 250_000,
    seed: int = 0,
    align: str = "icp",
    icp_iterations: int = 20,
    icp_points: int | None = 50_000,
    mm_per_unit: float = 100.0,
    taus_mm: tuple[float, ...] = (1.0, 2.5, 5.0),
    footprint: bool = True,
    footprint_direction: Sequence[float] | np.ndarray = (0.0, 0.0, 1.0),
) -> ReconstructionMetrics:
    """Compare a reconstructed mesh with a ground-truth mesh (the authors' protocol).

    Args:
        rec_vertices (V, 3), rec_faces (F, 3): the reconstruction; gt_vertices (V', 3),
            gt_faces (F', 3): the ground truth, or gt_faces None for a point set whose points
            are used as its samples (normal consistency and footprint values are then None);
            both in the same unit, ``mm_per_unit`` mm each (model units by default; pass 1.0
            for meshes in mm).
        num_points: surface samples per mesh. Both meshes are sampled with generators
            seeded by ``seed``, so identical meshes give identical samples.
        align: "icp" moves the reconstruction samples onto the ground truth samples
            (up to ``icp_iterations`` Kabsch updates); "none" compares them as they are.
            With a ground-truth mesh, the ICP is fitted with the reconstruction samples over
            it (its footprint along ``footprint_direction``) when at least half of them are:
            surface past the scan's border or over its holes has nothing to match, and would
            drag the whole face toward the border (a reconstruction 1 cm wider than its scan
            was moved 2.5 mm and its completeness doubled).
        icp_points: the transform is fitted with this many (seeded, random) of the
            reconstruction samples against all ground-truth samples, which is several
            times faster and about as accurate; None uses them all.
        taus_mm: F-score thresholds in mm.
        footprint: also compute the footprint-restricted Chamfer and F-scores (the ground
            truth seen along ``footprint_direction``, toward the viewer: +z, a processed scan's
            viewing direction in model space; a one-view scan's camera direction for its part).

    Returns:
        ReconstructionMetrics.
    """
    if align not in ("icp", "none"):
        raise ValueError(f"align must be 'icp' or 'none', got {align!r}")
    if num_points < 1 or mm_per_unit <= 0:
        raise ValueError("num_points must be >= 1 and mm_per_unit > 0")
    rec_points, rec_normals = sample_surface(rec_vertices, rec_faces, num_points, np.random.default_rng(seed))
    if gt_faces is None:  # a point set (e.g. a depth camera's cloud): its points are the samples
        gt_points, gt_normals = _points("gt_vertices", gt_vertices), None
        if len(gt_points) > num_points:
            gt_points = gt_points[np.random.default_rng(seed).choice(len(gt_points), num_points, replace=False)]
        footprint = False
    else:
        gt_points, gt_normals = sample_surface(gt_vertices, gt_faces, num_points, np.random.default_rng(seed))
    gt_tree = cKDTree(gt_points)
    rotation, translation, iterations, converged = np.eye(3), np.zeros(3), 0, False
    on_footprint = False
    if align == "icp":
        fit_points = rec_points
        if icp_points is not None and icp_points < num_points:
            fit_points = rec_points[np.random.default_rng(seed).choice(num_points, icp_points, replace=False)]
        if gt_faces is not None:
            over = inside_footprint(fit_points, gt_vertices, gt_faces, footprint_direction)
            if over.mean() >= ICP_MIN_FOOTPRINT_SHARE:  # less: too far off to tell, align all of it
                fit_points, on_footprint = fit_points[over], True
        rotation, translation, info = icp(fit_points, gt_points, iterations=icp_iterations, target_tree=gt_tree)
        rec_points = apply_rigid(rec_points, rotation, translation)
        rec_normals = rec_normals @ rotation.T
        iterations, converged = info.iterations, info.converged
    rec_to_gt, rec_match = nearest_neighbours(rec_points, gt_tree)
    gt_to_rec, gt_match = nearest_neighbours(gt_points, rec_points)
    rec_to_gt, gt_to_rec = rec_to_gt * mm_per_unit, gt_to_rec * mm_per_unit
    scores = [precision_recall(gt_to_rec, rec_to_gt, tau) for tau in taus_mm]
    accuracy, completeness = float(rec_to_gt.mean()), float(gt_to_rec.mean())
    consistency = None if gt_normals is None else 0.5 * (_mean_abs_cosine(rec_normals, gt_normals[rec_match])
                                                         + _mean_abs_cosine(gt_normals, rec_normals[gt_match]))
    restricted: dict[str, Any] = {}
    if footprint:
        inside = inside_footprint(rec_points, gt_vertices, gt_faces, footprint_direction)
        restricted = {"footprint_fraction": float(inside.mean())}
        if inside.any():  # otherwise the restricted values stay None
            kept = rec_to_gt[inside]
            restricted.update(footprint_accuracy_mm=float(kept.mean()),
                              footprint_chamfer_mm=0.5 * (float(kept.mean()) + completeness),
                              footprint_fscore=tuple(fscore(gt_to_rec, kept, tau) for tau in taus_mm))
    return ReconstructionMetrics(
        chamfer_mm=0.5 * (accuracy + completeness),
        accuracy_mm=accuracy,
        completeness_mm=completeness,
        normal_consistency=consistency,
        taus_mm=tuple(float(t) for t in taus_mm),
        precision=tuple(p for p, _ in scores),
        recall=tuple(r for _, r in scores),
        fscore=tuple(0.0 if p + r == 0.0 else 2.0 * p * r / (p + r) for p, r in scores),
        num_points=int(num_points),
        mm_per_unit=float(mm_per_unit),
        align=align,
        icp_iterations=iterations,
        icp_converged=converged,
        rotation=tuple(tuple(float(v) for v in row) for row in rotation),
        translation_mm=tuple(float(v) * mm_per_unit for v in translation),
        icp_on_footprint=on_footprint,
        **restricted,
    )
