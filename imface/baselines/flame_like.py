"""FLAME-like 3DMM: identity PCA, expression blend shapes and a jaw joint with linear-blend skinning.

``rest = mean + B_id c_id + B_exp c_exp`` and ``v = rest + w(v) (R(theta) - I)(rest - pivot)``:
two bones (the head, fixed, and the jaw, rotated by the axis-angle ``theta`` (3,) about
``pivot``) blended per vertex with the jaw weight ``w`` in [0, 1].

Learning, from registered training meshes with identity labels and a neutral flag:
- identity: PCA of the identities' neutral meshes (identities without a neutral scan do
  not contribute to any part of the model);
- jaw (chosen approach): alternating least squares on the expression scans' displacements
  from their own neutral, ``d = w (R_s - I)(n - p)``:
  (a) per-scan rotations R_s about the pivot: the exact least-squares rotation of the
      skinning model for fixed weights and pivot (a weighted Kabsch without translation);
  (b) weights: least squares over all vertices of the skinning residual (each vertex's
      evidence is how much rotation it sees) plus a graph-Laplacian smoothness term over
      the mesh, so vertices with little evidence take their neighbours' weight; clipped
      to [0, 1] (a smooth function on the template surface rather than of raw position,
      which could not follow the sharp lip line);
  (c) the pivot by linear least squares (damped, since the pivot's position along the
      hinge axis is not determined by rotations about that axis).
  It starts from a pivot at the top of the canonical jaw contour (iBUG 0 and 16, 10 mm
  lower) and weight 1 below the mouth line;
- expression: uncentred PCA of the expression scans' un-skinned rest shape minus their
  identity's neutral (so zero expression coefficients are the neutral face); jaw and
  expression basis are then learned once more in turn (``expression_rounds``).
The jaw prior std is the RMS of the training scans' jaw rotations per axis.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import spsolve
from scipy.spatial.transform import Rotation

from imface.baselines.pca import principal_components
from imface.frame import CANONICAL_LANDMARKS_MM, MM_PER_UNIT

#: Start of the pivot search, model units: the top of the jaw contour, 10 mm lower.
INITIAL_PIVOT = (CANONICAL_LANDMARKS_MM[[0, 16]].mean(axis=0) - np.array([0.0, 10.0, 0.0])) / MM_PER_UNIT
#: Start of the jaw region: below the mouth line (inner lip landmarks 60-67), model units.
INITIAL_JAW_LINE_Y = float(CANONICAL_LANDMARKS_MM[60:68, 1].mean() / MM_PER_UNIT)
_FD_STEP = 1e-4  # radians, finite-difference step of the jaw Jacobian


@dataclass
class FlameLikeModel:
    """mean (V, 3); identity_components (k_id, V, 3); expression_components (k_exp, V, 3); stds (k,);
    pivot (3,); skinning_weights (V,); jaw_std (3,); faces (F, 3). ``has_jaw`` False: no jaw joint."""

    mean: np.ndarray
    identity_components: np.ndarray
    identity_std: np.ndarray
    expression_components: np.ndarray
    expression_std: np.ndarray
    pivot: np.ndarray
    skinning_weights: np.ndarray
    jaw_std: np.ndarray
    faces: np.ndarray
    has_jaw: bool = True
    name: str = "flame_like"
    info: dict = field(default_factory=dict)

    kind = "flame_like"

    @property
    def solve_groups(self) -> tuple[tuple[str, ...], ...]:
        return (("identity", "expression"), ("jaw",)) if self.has_jaw else (("identity", "expression"),)

    @property
    def latent_size(self) -> int:
        return int(len(self.identity_std) + len(self.expression_std) + (3 if self.has_jaw else 0))

    @property
    def vertex_count(self) -> int:
        return int(self.mean.shape[0])

    def initial_coefficients(self) -> dict[str, np.ndarray]:
        coefficients = {"identity": np.zeros(len(self.identity_std)), "expression": np.zeros(len(self.expression_std))}
        if self.has_jaw:
            coefficients["jaw"] = np.zeros(3)
        return coefficients

    def prior(self, block: str) -> tuple[np.ndarray, np.ndarray]:
        std = np.asarray({"identity": self.identity_std, "expression": self.expression_std, "jaw": self.jaw_std}[block],
                         dtype=np.float64)
        return np.zeros(len(std)), np.maximum(std, 1e-6 * float(std.max()))

    def rest_shape(self, coefficients: dict[str, np.ndarray], vertex_ids: np.ndarray | None = None) -> np.ndarray:
        """(n, 3) float64 un-skinned shape ``mean + B_id c_id + B_exp c_exp``."""
        ids = slice(None) if vertex_ids is None else vertex_ids
        rest = self.mean[ids].astype(np.float64)
        rest = rest + np.einsum("k,knd->nd", np.asarray(coefficients["identity"], dtype=np.float64),
                                self.identity_components[:, ids].astype(np.float64))
        return rest + np.einsum("k,knd->nd", np.asarray(coefficients["expression"], dtype=np.float64),
                                self.expression_components[:, ids].astype(np.float64))

    def skin(self, rest: np.ndarray, jaw: np.ndarray, vertex_ids: np.ndarray | None = None) -> np.ndarray:
        """LBS of rest vertices (n, 3) with the jaw rotation ``jaw`` (3,) axis-angle, radians."""
        weights = self.skinning_weights if vertex_ids is None else self.skinning_weights[vertex_ids]
        rotation = Rotation.from_rotvec(np.asarray(jaw, dtype=np.float64)).as_matrix()
        offset = rest - self.pivot
        return rest + weights[:, None] * (offset @ rotation.T - offset)

    def reconstruct(self, coefficients: dict[str, np.ndarray], vertex_ids: np.ndarray | None = None) -> np.ndarray:
        """(V, 3) (or (len(vertex_ids), 3)) float64 vertices, model units."""
        rest = self.rest_shape(coefficients, vertex_ids)
        return self.skin(rest, coefficients["jaw"], vertex_ids) if self.has_jaw else rest

    def jacobian(self, coefficients: dict[str, np.ndarray], block: str, vertex_ids: np.ndarray) -> np.ndarray:
        """(n, 3, k): exact for identity/expression (skinning is linear in the rest shape), central differences for the jaw."""
        if block == "jaw":
            rest = self.rest_shape(coefficients, vertex_ids)
            jaw = np.asarray(coefficients["jaw"], dtype=np.float64)
            columns = [(self.skin(rest, jaw + step, vertex_ids) - self.skin(rest, jaw - step, vertex_ids)) / (2 * _FD_STEP)
                       for step in _FD_STEP * np.eye(3)]
            return np.stack(columns, axis=2)
        components = self.identity_components if block == "identity" else self.expression_components
        basis = np.moveaxis(components[:, vertex_ids].astype(np.float64), 0, 2)  # (n, 3, k)
        if not self.has_jaw:
            return basis
        rotation = Rotation.from_rotvec(np.asarray(coefficients["jaw"], dtype=np.float64)).as_matrix()
        blend = np.eye(3) + self.skinning_weights[vertex_ids, None, None] * (rotation - np.eye(3))  # (n, 3, 3)
        return np.einsum("nij,njk->nik", blend, basis)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "identity_components": self.identity_components, "identity_std": self.identity_std,
                "expression_components": self.expression_components, "expression_std": self.expression_std,
                "pivot": self.pivot, "skinning_weights": self.skinning_weights, "jaw_std": self.jaw_std,
                "faces": self.faces}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], name: str, info: dict) -> "FlameLikeModel":
        keys = ("mean", "identity_components", "identity_std", "expression_components", "expression_std", "pivot",
                "skinning_weights", "jaw_std", "faces")
        return cls(*(arrays[k] for k in keys), has_jaw=bool(info.get("has_jaw", True)), name=name, info=info)


def _pivot_rotations(rest: np.ndarray, posed: np.ndarray, pivot: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(S, 3, 3) least-squares rotations R_s of ``posed ~= rest + w (R_s - I)(rest - pivot)``.

    rest, posed: (S, V, 3); weights w: (V,). With u = rest - p and d = posed - rest,
    |d + w u - w R u|^2 is minimised by the Kabsch rotation of M = sum_v w (d + w u) u^T
    (batched SVD, reflections excluded).
    """
    offset = rest - pivot
    partner = weights[None, :, None] * (posed - rest) + (weights**2)[None, :, None] * offset
    covariance = np.einsum("svi,svj->sij", partner, offset, optimize=True)
    u, _, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(u @ vt))
    u[:, :, 2] *= sign[:, None]
    return u @ vt


def graph_laplacian(faces: np.ndarray, vertex_count: int) -> sparse.csr_matrix:
    """(V, V) uniform graph Laplacian D - A of a triangle mesh's edges."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    adjacency = sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(vertex_count, vertex_count))
    adjacency = (adjacency + adjacency.T).tocsr()
    return (sparse.diags(np.asarray(adjacency.sum(axis=1)).ravel()) - adjacency).tocsr()


def _rotation_evidence(neutral: np.ndarray, posed: np.ndarray, rotations: np.ndarray, pivot: np.ndarray,
                       chunk: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Per vertex sum_s |a|^2 and sum_s a . d, with a = (R_s - I)(n - p) and d = posed - n (chunks of scans)."""
    power = np.zeros(neutral.shape[1])
    dot = np.zeros(neutral.shape[1])
    for start in range(0, len(neutral), chunk):  # chunks bound the (chunk, V, 3) temporaries
        part = slice(start, start + chunk)
        offset = neutral[part] - pivot
        moved = np.einsum("sij,svj->svi", rotations[part], offset) - offset
        power += np.einsum("svd,svd->v", moved, moved)
        dot += np.einsum("svd,svd->v", moved, posed[part] - neutral[part])
    return power, dot


def learn_jaw(
    neutral: np.ndarray, posed: np.ndarray, faces: np.ndarray, *, rounds: int = 10, smoothness: float = 0.1,
    sample_vertices: int = 8000, seed: int = 0, pivot: np.ndarray | None = None, weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """Jaw pivot (3,), skinning weights (V,), per-scan rotations (S, 3, 3) and the RMS residual per round.

    neutral: (S, V, 3) each expression scan's identity neutral; posed: (S, V, 3) the
    expression scans; faces: (F, 3) their topology. Model units throughout. See the module
    docstring for the method. Rotations and pivot are solved on a random subset of
    ``sample_vertices`` vertices (the residuals are reported there); the weights on every
    vertex, with a graph-Laplacian smoothness term of weight ``smoothness`` times the mean
    evidence. ``pivot`` and ``weights`` start the search (default: the canonical start
    described in the module docstring).
    """
    vertex_count = neutral.shape[1]
    rng = np.random.default_rng(seed)
    subset = np.sort(rng.choice(vertex_count, min(sample_vertices, vertex_count), replace=False))
    sub_neutral, sub_posed = neutral[:, subset], posed[:, subset]
    sub_displacement = sub_posed - sub_neutral
    laplacian = graph_laplacian(np.asarray(faces, dtype=np.int64), vertex_count)
    pivot = INITIAL_PIVOT.astype(np.float64).copy() if pivot is None else np.asarray(pivot, dtype=np.float64).copy()
    if weights is None:
        weights = (neutral.mean(axis=0)[:, 1] < INITIAL_JAW_LINE_Y).astype(np.float64)
    residuals = []
    for _ in range(rounds):
        rotations = _pivot_rotations(sub_neutral, sub_posed, pivot, weights[subset])
        # Weights: per-vertex least squares (evidence = power), smoothed over the mesh.
        power, dot = _rotation_evidence(neutral, posed, rotations, pivot)
        scale = max(float(power.mean()), 1e-30)
        system = sparse.diags(power + 1e-9 * scale) + smoothness * scale * laplacian
        weights = np.clip(spsolve(system.tocsc(), dot), 0.0, 1.0)
        # Pivot: d = w (R - I) n - w (R - I) p, linear in p.
        sub_weights = weights[subset]
        minus_identity = rotations - np.eye(3)
        normal = np.sum(sub_weights**2) * np.einsum("sji,sjk->ik", minus_identity, minus_identity)
        target = sub_weights[None, :, None] * np.einsum("sij,svj->svi", minus_identity, sub_neutral) - sub_displacement
        right = np.einsum("sji,svj,v->i", minus_identity, target, sub_weights, optimize=True)
        damping = 1e-3 * np.trace(normal) / 3 + 1e-12
        pivot = np.linalg.solve(normal + damping * np.eye(3), right + damping * pivot)
        offset = sub_neutral - pivot
        skinned = sub_neutral + sub_weights[None, :, None] * (np.einsum("sij,svj->svi", rotations, offset) - offset)
        residuals.append(float(np.sqrt(np.mean(np.sum((sub_posed - skinned) ** 2, axis=2)))))
    rotations = _pivot_rotations(sub_neutral, sub_posed, pivot, weights[subset])
    return pivot, weights, rotations, residuals


def unskin(posed: np.ndarray, rotations: np.ndarray, pivot: np.ndarray, weights: np.ndarray, chunk: int = 16) -> np.ndarray:
    """Rest shapes (S, V, 3) whose skinning with per-scan rotations (S, 3, 3) gives ``posed`` (S, V, 3).

    Per vertex: posed = A rest - w (R - I) p with A = I + w (R - I); solved in chunks of scans for memory.
    """
    rest = np.empty_like(posed)
    for start in range(0, len(posed), chunk):  # chunks bound the (chunk, V, 3, 3) temporaries
        part = slice(start, start + chunk)
        delta = rotations[part, None] - np.eye(3)  # (s, 1, 3, 3)
        blend = np.eye(3) + weights[None, :, None, None] * delta
        right = posed[part] + weights[None, :, None] * np.einsum("suij,j->sui", delta, pivot)
        rest[part] = np.linalg.solve(blend, right[..., None])[..., 0]
    return rest


def build_flame_like(
    meshes: np.ndarray, identities: list[str], neutral: list[bool], faces: np.ndarray, k_id: int, k_exp: int,
    *, learn_jaw_joint: bool = True, expression_rounds: int = 2, name: str = "flame_like", dtype: type = np.float32,
) -> FlameLikeModel:
    """FLAME-like model of registered meshes (S, V, 3), model units, with identity labels and neutral flags (S,).

    k_id <= (identities with a neutral) - 1; k_exp <= the rank of the expression offsets.
    ``learn_jaw_joint`` False builds the same model without the jaw (plain identity +
    expression PCA, the comparison the jaw is judged against). ``expression_rounds``:
    how many times jaw and expression basis are learned in turn (1: jaw first, once).
    """
    meshes = np.asarray(meshes, dtype=np.float64)
    labels = np.asarray(identities, dtype=str)
    neutral = np.asarray(neutral, dtype=bool)
    if meshes.ndim != 3 or len(labels) != len(meshes) or len(neutral) != len(meshes):
        raise ValueError("meshes must be (S, V, 3) with one identity label and neutral flag per mesh")
    names, index = np.unique(labels, return_inverse=True)
    neutral_sum = np.zeros((len(names),) + meshes.shape[1:])
    neutral_count = np.zeros(len(names))
    np.add.at(neutral_sum, index[neutral], meshes[neutral])
    np.add.at(neutral_count, index[neutral], 1.0)
    has_neutral = neutral_count > 0
    if has_neutral.sum() < 2:
        raise ValueError("a FLAME-like model needs neutral scans of at least 2 identities")
    neutral_of_identity = neutral_sum / np.maximum(neutral_count, 1.0)[:, None, None]
    vertex_count = meshes.shape[1]
    mean, id_components, id_std, _ = principal_components(neutral_of_identity[has_neutral].reshape(int(has_neutral.sum()), -1), k_id)
    mean = mean.reshape(vertex_count, 3)
    expressive = ~neutral & has_neutral[index]
    if expressive.sum() < 1:
        raise ValueError("a FLAME-like model needs expression scans of identities that have a neutral scan")
    posed = meshes[expressive]
    rest_neutral = neutral_of_identity[index[expressive]]
    info: dict = {"training_scans": int(len(meshes)), "identities_with_neutral": int(has_neutral.sum()),
                  "expression_scans": int(expressive.sum()), "has_jaw": learn_jaw_joint}
    if learn_jaw_joint:
        # Jaw and expression basis in turn: the second jaw search starts from each scan's
        # neutral plus the part of its expression offset the basis explains, so smiles and
        # pouts no longer pass for jaw rotations.
        rest_guess, pivot, weights = rest_neutral, None, None
        info["jaw_fit_rms"] = []
        for _ in range(expression_rounds):
            pivot, weights, rotations, residuals = learn_jaw(rest_guess, posed, faces, pivot=pivot, weights=weights)
            rest = unskin(posed, rotations, pivot, weights)
            offsets = (rest - rest_neutral).reshape(len(posed), -1)
            _, exp_components, exp_std, _ = principal_components(offsets, k_exp, centre=False)
            rest_guess = rest_neutral + ((offsets @ exp_components.T) @ exp_components).reshape(posed.shape)
            info["jaw_fit_rms"].append(residuals)
        rotvecs = Rotation.from_matrix(rotations).as_rotvec()
        jaw_std = np.maximum(np.sqrt(np.mean(rotvecs**2, axis=0)), 1e-2)
    else:
        pivot, weights, jaw_std = np.zeros(3), np.zeros(vertex_count), np.ones(3)
        offsets = (posed - rest_neutral).reshape(len(posed), -1)
        _, exp_components, exp_std, _ = principal_components(offsets, k_exp, centre=False)
    return FlameLikeModel(
        mean=mean.astype(dtype), identity_components=id_components.reshape(k_id, vertex_count, 3).astype(dtype),
        identity_std=id_std, expression_components=exp_components.reshape(k_exp, vertex_count, 3).astype(dtype),
        expression_std=exp_std, pivot=pivot, skinning_weights=weights, jaw_std=jaw_std,
        faces=np.asarray(faces, dtype=np.int64), has_jaw=learn_jaw_joint, name=name, info=info,
    )
