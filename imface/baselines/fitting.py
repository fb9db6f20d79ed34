"""Regularised closest-point fitting of a morphable model: non-rigid ICP over its coefficients plus a rigid pose.

Each iteration
1. reconstructs the model, poses it (``x = R v + t``) and restricts it to the region
   inside the crop sphere whose normals face +z (the part a ground truth keeps);
2. pairs model and target in both directions, dropping pairs farther than
   ``max_distance`` or with normals more than ``max_normal_angle_deg`` apart: a fixed
   random subset of model vertices with their nearest target points (scipy cKDTree;
   point-to-plane distance ``n n^T (+ point_weight I)`` when the target has normals,
   point-to-point otherwise), and every target point with its exact closest point on the
   model's region surface (libigl AABB; a barycentric combination of three vertices, so
   the model's vertex spacing does not bias the fit);
3. solves, group by group, the regularised least squares for the coefficients (a
   Gauss-Newton step, exact for the groups a model is linear in); the two directions
   weigh 1/2 each, and the prior adds ``lambda * sum(((c - mean) / std)^2)``;
4. updates the rigid pose: by default in the same Gauss-Newton step as each coefficient
   group (linearised rotation + shift, point-to-plane), or, with ``pose_solver="kabsch"``,
   by weighted Kabsch (:func:`imface.ops.rigid.kabsch`) on the pairs after the
   coefficients. Kabsch minimises point-to-point distances, which slide along a smooth
   face: on the synthetic tests it needs several times more iterations for the same
   pose error, hence the joint default.

The prior weight starts 100x higher and falls geometrically to ``regularisation`` over the
first half of the iterations (coarse to fine), so early, poorly paired iterations cannot
push coefficients far.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Protocol

import igl
import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from imface.ops.normals import vertex_normals
from imface.ops.rigid import apply_rigid, kabsch


class MorphableModel(Protocol):
    """A mesh model with fixed topology and named coefficient blocks.

    ``solve_groups`` lists the blocks solved together, in order (one Gauss-Newton step
    per group per iteration); a model affine in a group gets an exact linear solve.
    """

    name: str
    latent_size: int
    faces: np.ndarray  # (F, 3) int64
    vertex_count: int
    solve_groups: tuple[tuple[str, ...], ...]

    def initial_coefficients(self) -> dict[str, np.ndarray]: ...

    def prior(self, block: str) -> tuple[np.ndarray, np.ndarray]:
        """Prior mean (k,) and std (k,) of one block."""
        ...

    def reconstruct(self, coefficients: dict[str, np.ndarray], vertex_ids: np.ndarray | None = None) -> np.ndarray:
        """(V, 3) (or (len(vertex_ids), 3)) vertices, model units, fixed topology."""
        ...

    def jacobian(self, coefficients: dict[str, np.ndarray], block: str, vertex_ids: np.ndarray) -> np.ndarray:
        """(n, 3, k) derivative of the chosen vertices with respect to one block."""
        ...


@dataclass
class FitResult:
    """Fitted coefficients, pose (``x = R v + t``), posed vertices (V, 3) model units, and per-iteration history."""

    coefficients: dict[str, np.ndarray]
    rotation: np.ndarray
    translation: np.ndarray
    vertices: np.ndarray
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class BaselineFitSettings:
    """Options of :func:`fit_to_points` (distances in model units, 1 = 100 mm)."""

    iterations: int = 30
    regularisation: float = 1e-7  # units^2 per (coefficient / std)^2; imface benchmark chooses its own on validation identities
    max_distance: float = 0.1  # pairs farther apart are dropped (10 mm)
    max_normal_angle_deg: float = 60.0
    point_weight: float = 0.0  # point-to-point share of the model-to-target metric (with target normals)
    model_points: int = 6000  # vertices of the model used for pairing
    target_points: int = 6000
    region_radius: float | None = 1.0  # only model vertices inside this sphere (None: all)
    front_only: bool = True  # only model vertices whose normals face +z
    fit_pose: bool = True
    pose_solver: str = "joint"  # joint: Gauss-Newton with the coefficients | kabsch: Kabsch after them
    seed: int = 0

    def __post_init__(self) -> None:
        if self.pose_solver not in ("joint", "kabsch"):
            raise ValueError(f"pose_solver must be 'joint' or 'kabsch', got {self.pose_solver!r}")
        if self.iterations < 1 or self.model_points < 3 or self.target_points < 3:
            raise ValueError("iterations must be >= 1 and model_points, target_points >= 3")
        if not (self.regularisation >= 0 and self.max_distance > 0):
            raise ValueError("regularisation must be >= 0 and max_distance > 0")


def _pair_metric(normals: np.ndarray | None, count: int, point_weight: float) -> np.ndarray:
    """(P, 3, 3) residual metric: n n^T + point_weight I (the identity without normals)."""
    if normals is None:
        return np.broadcast_to(np.eye(3), (count, 3, 3)).copy()
    return np.einsum("pi,pj->pij", normals, normals) + point_weight * np.eye(3)


def barycentric(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """(P, 3) barycentric coordinates of points (P, 3) lying on triangles (P, 3, 3) (degenerate ones: (1, 0, 0))."""
    edge_1, edge_2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    offset = points - corners[:, 0]
    d11, d12, d22 = (np.einsum("ij,ij->i", a, b) for a, b in ((edge_1, edge_1), (edge_1, edge_2), (edge_2, edge_2)))
    o1, o2 = np.einsum("ij,ij->i", offset, edge_1), np.einsum("ij,ij->i", offset, edge_2)
    det = d11 * d22 - d12 * d12
    safe = np.where(det > 0, det, 1.0)
    v = np.where(det > 0, (d22 * o1 - d12 * o2) / safe, 0.0)
    w = np.where(det > 0, (d11 * o2 - d12 * o1) / safe, 0.0)
    return np.stack([1.0 - v - w, v, w], axis=1)


@dataclass
class _Pairs:
    """Model points (barycentric combinations of 3 vertices) paired with target points.

    vertex_ids (P, 3) int, bary (P, 3), targets (P, 3), metric (P, 3, 3) or None for the
    identity, weights (P,).
    """

    vertex_ids: np.ndarray
    bary: np.ndarray
    targets: np.ndarray
    metric: np.ndarray | None
    weights: np.ndarray

    def gather(self) -> tuple[np.ndarray, "sparse.csr_matrix"]:
        """The distinct vertices (U,) and the (P, U) sparse map from their values to the model points."""
        unique, inverse = np.unique(self.vertex_ids, return_inverse=True)
        rows = np.repeat(np.arange(len(self.vertex_ids)), 3)
        mapping = sparse.csr_matrix((self.bary.reshape(-1), (rows, inverse.reshape(-1))),
                                    shape=(len(self.vertex_ids), len(unique)))
        return unique, mapping


def _model_points(model: MorphableModel, coefficients: dict[str, np.ndarray], pairs: _Pairs) -> np.ndarray:
    unique, mapping = pairs.gather()
    return mapping @ model.reconstruct(coefficients, unique)


def _solve_group(
    model: MorphableModel, coefficients: dict[str, np.ndarray], group: tuple[str, ...], pairs: _Pairs,
    regularisation: float, rotation: np.ndarray, translation: np.ndarray, with_pose: bool,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """One Gauss-Newton step on the blocks of ``group`` (and on the pose when ``with_pose``).

    Pairs are in the target frame, the model points are ``R v + t``. The pose step is a
    small rotation ``w`` (axis-angle) about the origin and a shift ``s``: ``x -> x + w x x + s``
    (no prior). Exact for the coefficients of an affine model when the pose is fixed.
    """
    unique, mapping = pairs.gather()
    rest = mapping @ model.reconstruct(coefficients, unique)
    predicted = rest @ rotation.T + translation
    vertex_jacobian = np.concatenate([model.jacobian(coefficients, block, unique) for block in group], axis=2)
    size = vertex_jacobian.shape[2]
    jacobian = np.einsum("ij,pjk->pik", rotation, (mapping @ vertex_jacobian.reshape(len(unique), 3 * size)).reshape(-1, 3, size))
    priors = [model.prior(block) for block in group]
    prior_mean = np.concatenate([p[0] for p in priors])
    prior_precision = 1.0 / np.maximum(np.concatenate([p[1] for p in priors]), 1e-12) ** 2
    current = np.concatenate([np.asarray(coefficients[block], dtype=np.float64) for block in group])
    damping = np.zeros(size)
    if with_pose:
        skew = np.zeros((len(predicted), 3, 3))  # d(w x x)/dw = -[x]_x
        skew[:, 0, 1], skew[:, 0, 2], skew[:, 1, 2] = predicted[:, 2], -predicted[:, 1], predicted[:, 0]
        skew[:, 1, 0], skew[:, 2, 0], skew[:, 2, 1] = -predicted[:, 2], predicted[:, 1], -predicted[:, 0]
        jacobian = np.concatenate([jacobian, skew, np.broadcast_to(np.eye(3), (len(predicted), 3, 3))], axis=2)
        damping = np.concatenate([damping, np.full(6, 1e-12)])
    width = jacobian.shape[2]
    if pairs.metric is None:  # plain squared distance: skip the (P, 3, 3) products
        metric_jacobian = jacobian * pairs.weights[:, None, None]
    else:
        metric_jacobian = np.einsum("pij,pjk->pik", pairs.metric * pairs.weights[:, None, None], jacobian)
    normal_matrix = jacobian.reshape(-1, width).T @ metric_jacobian.reshape(-1, width)
    right = metric_jacobian.reshape(-1, width).T @ (pairs.targets - predicted).reshape(-1)
    normal_matrix[:size, :size] += regularisation * np.diag(prior_precision)
    right[:size] -= regularisation * prior_precision * (current - prior_mean)
    normal_matrix += np.diag(damping)
    step = np.linalg.solve(normal_matrix, right)
    updated = dict(coefficients)
    offset = 0
    for block in group:
        length = len(coefficients[block])
        updated[block] = current[offset:offset + length] + step[offset:offset + length]
        offset += length
    if with_pose:
        turn = Rotation.from_rotvec(step[size:size + 3]).as_matrix()
        rotation, translation = turn @ rotation, turn @ translation + step[size + 3:]
    return updated, rotation, translation


def _prior_energy(model: MorphableModel, coefficients: dict[str, np.ndarray]) -> float:
    total = 0.0
    for block, values in coefficients.items():
        mean, std = model.prior(block)
        total += float(np.sum(((values - mean) / np.maximum(std, 1e-12)) ** 2))
    return total


def _find_pairs(
    posed: np.ndarray, faces: np.ndarray, model_ids: np.ndarray, target_points: np.ndarray,
    target_normals: np.ndarray | None, target_tree: cKDTree, settings: BaselineFitSettings,
) -> _Pairs:
    """Pairs in both directions between the posed model (V, 3) and the target (see the module docstring)."""
    normals = vertex_normals(posed, faces, weighting="area")
    region = np.ones(len(posed), dtype=bool)
    if settings.region_radius is not None:
        region &= np.einsum("ij,ij->i", posed, posed) <= settings.region_radius**2
    if settings.front_only:
        region &= normals[:, 2] > 0.0
    # Triangles with any vertex in the region: the model surface then reaches past the
    # region's jagged edge, so target points near the crop sphere find their true partner
    # instead of the edge.
    region_faces = faces[region[faces].any(axis=1)]
    if len(region_faces) == 0:
        raise ValueError("no model triangle lies in the fitting region: check the pose and the region")
    cos_limit = np.cos(np.deg2rad(settings.max_normal_angle_deg))
    # Model vertices -> nearest target points (point-to-plane when the target has normals).
    sources = model_ids[region[model_ids]]
    distance, nearest = target_tree.query(posed[sources])
    keep = distance <= settings.max_distance
    if target_normals is not None:
        keep &= np.einsum("ij,ij->i", normals[sources], target_normals[nearest]) >= cos_limit
    sources, nearest = sources[keep], nearest[keep]
    # Target points -> closest points on the model's region surface (exact, barycentric).
    squared, face_index, closest = igl.point_mesh_squared_distance(
        target_points, np.ascontiguousarray(posed), np.ascontiguousarray(region_faces))
    corners = posed[region_faces[face_index]]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    face_normals /= np.maximum(np.linalg.norm(face_normals, axis=1, keepdims=True), 1e-300)
    keep_back = np.sqrt(squared) <= settings.max_distance
    if target_normals is not None:
        keep_back &= np.einsum("ij,ij->i", face_normals, target_normals) >= cos_limit
    count_to, count_back = len(sources), int(keep_back.sum())
    if count_to + count_back < 3:
        raise ValueError(f"only {count_to + count_back} model-target pairs within {settings.max_distance:g}: "
                         "the target is too far from the model (check frames and units)")
    vertex_ids = np.concatenate([np.repeat(sources[:, None], 3, axis=1), region_faces[face_index[keep_back]]])
    bary = np.concatenate([np.tile([1.0, 0.0, 0.0], (count_to, 1)), barycentric(closest[keep_back], corners[keep_back])])
    targets = np.concatenate([target_points[nearest], target_points[keep_back]])
    # Each direction weighs 1/2, spread over its pairs.
    weights = np.concatenate([np.full(count_to, 0.5 / max(count_to, 1)), np.full(count_back, 0.5 / max(count_back, 1))])
    metric_to = _pair_metric(None if target_normals is None else target_normals[nearest], count_to, settings.point_weight)
    metric_back = _pair_metric(face_normals[keep_back], count_back, settings.point_weight)
    metric = np.concatenate([metric_to, metric_back])
    return _Pairs(vertex_ids, bary, targets, metric, weights)


def fit_to_points(
    model: MorphableModel,
    target_points: np.ndarray,
    target_normals: np.ndarray | None = None,
    *,
    settings: BaselineFitSettings | None = None,
    init_pose: tuple[np.ndarray, np.ndarray] | None = None,
    init_coefficients: dict[str, np.ndarray] | None = None,
    **overrides,
) -> FitResult:
    """Fit a morphable model and a rigid pose to a point cloud by regularised non-rigid ICP.

    Args:
        model: a :class:`MorphableModel`.
        target_points: (N, 3) surface points, model units, in the target's frame
            (e.g. samples of a test scan's ``mesh.ply``).
        target_normals: optional (N, 3) unit normals of those points (model-to-target pairs
            then use point-to-plane distances, and pairs must have compatible normals).
        settings: :class:`BaselineFitSettings`; keyword ``overrides`` replace single fields
            (e.g. ``iterations=20, fit_pose=False``).
        init_pose: (R (3, 3), t (3,)) start pose, default identity.
        init_coefficients: start coefficients, default ``model.initial_coefficients()``.

    Returns:
        :class:`FitResult` with ``vertices = R @ model.reconstruct(coefficients) + t`` (V, 3)
        and per-iteration ``history`` entries ``{"iteration", "energy", "data", "rms",
        "pairs", "regularisation"}``: energy = data (mean pair distance^2 in the pair
        metric, the two directions weighing 1/2 each) + prior term, and the RMS point
        distance (model units) of the pairs found at the start of that iteration.
    """
    settings = settings or BaselineFitSettings()
    if overrides:
        settings = replace(settings, **overrides)
    start = time.perf_counter()
    rng = np.random.default_rng(settings.seed)
    target_points, target_normals = _fit_target(target_points, target_normals, settings, rng)
    target_tree = cKDTree(target_points)
    model_ids = np.sort(rng.choice(model.vertex_count, min(settings.model_points, model.vertex_count), replace=False))
    faces = np.asarray(model.faces, dtype=np.int64)

    rotation, translation = (np.eye(3), np.zeros(3)) if init_pose is None else (
        np.asarray(init_pose[0], dtype=np.float64), np.asarray(init_pose[1], dtype=np.float64))
    coefficients = {k: np.asarray(v, dtype=np.float64).copy()
                    for k, v in (init_coefficients or model.initial_coefficients()).items()}
    warmup = max(1, settings.iterations // 2)
    history: list[dict] = []
    for iteration in range(settings.iterations):
        regularisation = settings.regularisation * 100.0 ** max(0.0, 1.0 - iteration / warmup)
        posed = apply_rigid(model.reconstruct(coefficients), rotation, translation)
        pairs = _find_pairs(posed, faces, model_ids, target_points, target_normals, target_tree, settings)
        residual = pairs.targets - np.einsum("pk,pkd->pd", pairs.bary, posed[pairs.vertex_ids])
        data = float(np.sum(pairs.weights * np.einsum("pi,pij,pj->p", residual, pairs.metric, residual)))
        history.append({
            "iteration": iteration, "energy": data + regularisation * _prior_energy(model, coefficients),
            "data": data, "rms": float(np.sqrt(np.sum(pairs.weights * np.sum(residual**2, axis=1)))),
            "pairs": len(pairs.weights), "regularisation": regularisation,
        })
        joint = settings.fit_pose and settings.pose_solver == "joint"
        for group in model.solve_groups:
            coefficients, rotation, translation = _solve_group(
                model, coefficients, group, pairs, regularisation, rotation, translation, joint)
        if settings.fit_pose and settings.pose_solver == "kabsch":
            rotation, translation = kabsch(_model_points(model, coefficients, pairs), pairs.targets, pairs.weights)
    vertices = apply_rigid(model.reconstruct(coefficients), rotation, translation)
    return FitResult(coefficients, rotation, translation, vertices, history, time.perf_counter() - start)


def _fit_target(
    target_points: np.ndarray, target_normals: np.ndarray | None, settings: BaselineFitSettings,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The checked target: at most ``settings.target_points`` of the (N, 3) points (and normals),
    drawn with ``rng``, and only those inside the fitting region; float64, C-contiguous points."""
    target_points = np.asarray(target_points, dtype=np.float64)
    if target_points.ndim != 2 or target_points.shape[1] != 3 or len(target_points) < 3:
        raise ValueError(f"target_points must have shape (N >= 3, 3), got {target_points.shape}")
    if target_normals is not None:
        target_normals = np.asarray(target_normals, dtype=np.float64)
        if target_normals.shape != target_points.shape:
            raise ValueError("target_normals must have the shape of target_points")
    if len(target_points) > settings.target_points:
        keep = rng.choice(len(target_points), settings.target_points, replace=False)
        target_points = target_points[keep]
        target_normals = None if target_normals is None else target_normals[keep]
    if settings.region_radius is not None:  # the fit covers the model inside the sphere only
        inside = np.einsum("ij,ij->i", target_points, target_points) <= settings.region_radius**2
        target_points = target_points[inside]
        target_normals = None if target_normals is None else target_normals[inside]
        if len(target_points) < 3:
            raise ValueError(f"fewer than 3 target points inside the fitting region (radius {settings.region_radius:g})")
    return np.ascontiguousarray(target_points), target_normals


def fit_to_vertices(
    model: MorphableModel, target_vertices: np.ndarray, *, iterations: int = 5, regularisation: float = 0.0,
) -> FitResult:
    """Fit coefficients to a mesh in the model's own topology and frame (known correspondence, no pose).

    target_vertices: (V, 3) model units. Minimises the mean squared vertex distance plus
    ``regularisation * sum((c / std)^2)`` by Gauss-Newton over ``model.solve_groups``.
    History entries hold the RMS vertex distance before each iteration.
    """
    start = time.perf_counter()
    target_vertices = np.asarray(target_vertices, dtype=np.float64)
    if target_vertices.shape != (model.vertex_count, 3):
        raise ValueError(f"target_vertices must have shape ({model.vertex_count}, 3), got {target_vertices.shape}")
    ids = np.arange(model.vertex_count)
    pairs = _Pairs(np.repeat(ids[:, None], 3, axis=1), np.tile([1.0, 0.0, 0.0], (len(ids), 1)), target_vertices,
                   None, np.full(len(ids), 1.0 / len(ids)))
    coefficients = {k: np.asarray(v, dtype=np.float64).copy() for k, v in model.initial_coefficients().items()}
    history = []
    for iteration in range(iterations):
        error = model.reconstruct(coefficients) - target_vertices
        history.append({"iteration": iteration, "rms": float(np.sqrt(np.mean(np.sum(error**2, axis=1))))})
        for group in model.solve_groups:
            coefficients, _, _ = _solve_group(model, coefficients, group, pairs, max(regularisation, 1e-12),
                                              np.eye(3), np.zeros(3), False)
    vertices = model.reconstruct(coefficients)
    return FitResult(coefficients, np.eye(3), np.zeros(3), vertices, history, time.perf_counter() - start)
