"""Linear PCA 3DMM (Blanz & Vetter): mean mesh plus k principal components of registered meshes.

``v(c) = mean + sum_j c_j component_j``, with components orthonormal (as (3V,) vectors)
and ``std_j`` the standard deviation of the training scans' coefficients along component
j, so ``c_j / std_j`` is the usual whitened coefficient. All coordinates are model units.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PCAModel:
    """Linear 3DMM. mean: (V, 3); components: (k, V, 3) orthonormal; std: (k,); faces: (F, 3).

    ``explained_variance_ratio`` (k,) is each component's share of the training variance.
    """

    mean: np.ndarray
    components: np.ndarray
    std: np.ndarray
    faces: np.ndarray
    explained_variance_ratio: np.ndarray
    name: str = "pca"
    info: dict = field(default_factory=dict)

    kind = "pca"
    solve_groups = (("shape",),)

    @property
    def latent_size(self) -> int:
        return int(len(self.std))

    @property
    def vertex_count(self) -> int:
        return int(self.mean.shape[0])

    def initial_coefficients(self) -> dict[str, np.ndarray]:
        return {"shape": np.zeros(self.latent_size)}

    def prior(self, block: str) -> tuple[np.ndarray, np.ndarray]:
        # Floor: components of (near-)zero training variance would make the prior singular.
        return np.zeros(self.latent_size), np.maximum(self.std.astype(np.float64), 1e-6 * float(self.std.max()))

    def reconstruct(self, coefficients: dict[str, np.ndarray], vertex_ids: np.ndarray | None = None) -> np.ndarray:
        """(V, 3) (or (len(vertex_ids), 3)) float64 vertices, model units, of ``coefficients["shape"]`` (k,)."""
        c = np.asarray(coefficients["shape"], dtype=np.float64)
        if vertex_ids is None:
            flat = c.astype(self.components.dtype) @ self.components.reshape(self.latent_size, -1)
            return self.mean.astype(np.float64) + flat.reshape(-1, 3)
        basis = self.components[:, vertex_ids].astype(np.float64)  # (k, n, 3)
        return self.mean[vertex_ids].astype(np.float64) + np.einsum("k,knd->nd", c, basis)

    def jacobian(self, coefficients: dict[str, np.ndarray], block: str, vertex_ids: np.ndarray) -> np.ndarray:
        """(n, 3, k) float64: the components at the chosen vertices (the model is linear)."""
        return np.moveaxis(self.components[:, vertex_ids].astype(np.float64), 0, 2)

    def project(self, vertices: np.ndarray) -> np.ndarray:
        """(k,) least-squares coefficients of a mesh (V, 3) in the model's topology and frame."""
        offset = (np.asarray(vertices, dtype=np.float64) - self.mean).reshape(-1)
        return self.components.reshape(self.latent_size, -1).astype(np.float64) @ offset

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "components": self.components, "std": self.std, "faces": self.faces,
                "explained_variance_ratio": self.explained_variance_ratio}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], name: str, info: dict) -> "PCAModel":
        return cls(arrays["mean"], arrays["components"], arrays["std"], arrays["faces"],
                   arrays["explained_variance_ratio"], name, info)


def principal_components(data: np.ndarray, k: int, *, centre: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """PCA of rows by thin SVD.

    data: (S, D) float. Returns mean (D,) (zeros when ``centre`` is False), components
    (k, D) orthonormal rows, std (k,) = singular value / sqrt(S - 1) (sqrt(S) uncentred),
    and the explained variance ratio (k,) of those components.
    """
    data = np.asarray(data, dtype=np.float64)
    mean = data.mean(axis=0) if centre else np.zeros(data.shape[1])
    centred = data - mean
    _, singular_all, right_vectors = np.linalg.svd(centred, full_matrices=False)  # thin: (S, D) rows
    variance = singular_all**2
    # Centring removes one dimension; directions with (near-)zero variance are still valid
    # orthonormal components, their tiny std simply pins their coefficients in a fit.
    limit = min(len(data) - 1 if centre else len(data), data.shape[1])
    if not 1 <= k <= limit:
        raise ValueError(f"asked for {k} components; {len(data)} samples{' (centred)' if centre else ''} "
                         f"give at most {limit}")
    singular, components = singular_all[:k], right_vectors[:k]
    ratio = variance[:k] / variance.sum()
    dof = max(len(data) - 1, 1) if centre else len(data)
    return mean, components, singular / np.sqrt(dof), ratio


def build_pca(meshes: np.ndarray, k: int, faces: np.ndarray, *, name: str | None = None,
              dtype: type = np.float32) -> PCAModel:
    """Linear 3DMM of registered meshes.

    Args:
        meshes: (S, V, 3) training meshes in one fixed topology, model units.
        k: number of components, 1 <= k <= S - 1 (the rank of S centred meshes).
        faces: (F, 3) the topology's triangles.
        name: model name (default ``pca<k>``).
        dtype: storage type of mean and components (float32 halves the memory; computations
            on them are float64).

    Returns:
        :class:`PCAModel`.
    """
    meshes = np.asarray(meshes, dtype=np.float64)
    if meshes.ndim != 3 or meshes.shape[2] != 3:
        raise ValueError(f"meshes must have shape (S, V, 3), got {meshes.shape}")
    if not 1 <= k <= len(meshes) - 1:
        raise ValueError(f"k must be between 1 and S - 1 = {len(meshes) - 1}, got {k}")
    count, vertex_count, _ = meshes.shape
    mean, components, std, ratio = principal_components(meshes.reshape(count, -1), k)
    return PCAModel(
        mean=mean.reshape(vertex_count, 3).astype(dtype), components=components.reshape(k, vertex_count, 3).astype(dtype),
        std=std, faces=np.asarray(faces, dtype=np.int64), explained_variance_ratio=ratio,
        name=name or f"pca{k}", info={"training_scans": count},
    )
