"""How non-linear is the generator? Held-out PCA residual of expression displacements.

A displacement is a non-neutral registered mesh minus its own identity's neutral mesh
(same vertex correspondence, no pose, no noise, no skin detail). A PCA fitted to the
training identities' displacements is used to project the held-out identities'
displacements at k components; what the projection misses is the part of the
expression behaviour that a linear model with k components cannot express for a new
person.

RMS residual (mm) = sqrt(mean over held-out displacements and vertices of |r_v|^2),
|r_v| the 3D length of vertex v's residual. It is reported over the face region that
preprocessing keeps (vertices of the identity's neutral within 100 mm of the point
40 mm behind its nose tip) and over all vertices.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from imface.frame import CROP_RADIUS_MM, NOSE_TIP_POSITION_MM
from imface.builtin.generator import EXPRESSIONS, FaceGenerator, GeneratorSettings
from imface.builtin.source import FaceSource

DEFAULT_COMPONENTS = (32, 64, 128, 256)


@dataclass(frozen=True)
class NonlinearityReport:
    components: tuple[int, ...]
    rms_face_mm: tuple[float, ...]  #: residual per k, face region
    rms_all_mm: tuple[float, ...]  #: residual per k, all vertices
    displacement_rms_face_mm: float  #: RMS of the held-out displacements themselves (k = 0)
    displacement_rms_all_mm: float
    train_identities: int
    heldout_identities: int
    scans_per_expression: int
    train_samples: int
    seconds: float

    def lines(self) -> list[str]:
        head = (f"expression-displacement PCA, {self.train_identities} training / {self.heldout_identities} held-out "
                f"identities, {self.scans_per_expression} scan(s) per expression, {self.train_samples} training "
                f"displacements ({self.seconds:.1f} s)")
        rows = [head, f"  {'k':>5} {'RMS face (mm)':>14} {'RMS all (mm)':>13}",
                f"  {0:>5} {self.displacement_rms_face_mm:>14.3f} {self.displacement_rms_all_mm:>13.3f}"]
        rows += [f"  {k:>5} {f:>14.3f} {a:>13.3f}" for k, f, a in
                 zip(self.components, self.rms_face_mm, self.rms_all_mm)]
        return rows


def face_region_mask(neutral: np.ndarray, nose_tip_id: int) -> np.ndarray:
    """Vertices within the preprocessing crop: (V,) bool for a neutral mesh (V, 3) mm.

    The crop centre is 40 mm behind the nose tip along -z (BFM and canonical frames share
    their axes), radius ``CROP_RADIUS_MM``.
    """
    centre = neutral[nose_tip_id] - np.array([0.0, 0.0, NOSE_TIP_POSITION_MM[2]])
    return np.linalg.norm(neutral - centre, axis=1) <= CROP_RADIUS_MM


def expression_displacements(generator: FaceGenerator, identities: range | list[int], scans: int = 1
                             ) -> tuple[np.ndarray, np.ndarray]:
    """Displacements (N, V*3) float32 mm and the face-region mask per row (N, V) bool.

    N = len(identities) * 19 * scans, rows ordered by identity, expression, scan.
    """
    expressions = EXPRESSIONS[1:]
    num_vertices = generator.source.num_vertices
    rows = len(identities) * len(expressions) * scans
    out = np.empty((rows, num_vertices * 3), dtype=np.float32)
    masks = np.empty((rows, num_vertices), dtype=bool)
    row = 0
    for identity in identities:  # one neutral per identity, then its expressions
        neutral = generator.neutral(identity)
        mask = face_region_mask(neutral, generator.source.nose_tip_id)
        for name in expressions:
            for scan in range(scans):
                out[row] = (generator.registered(identity, name, scan) - neutral).ravel()
                masks[row] = mask
                row += 1
        generator.identity.cache_clear()
    return out, masks


def _masked_rms(residual: np.ndarray, masks: np.ndarray) -> tuple[float, float]:
    per_vertex = (residual.reshape(len(residual), -1, 3) ** 2).sum(-1, dtype=np.float64)
    return float(np.sqrt(per_vertex[masks].mean())), float(np.sqrt(per_vertex.mean()))


def pca_residuals(train: np.ndarray, heldout: np.ndarray, heldout_masks: np.ndarray,
                  components: tuple[int, ...] = DEFAULT_COMPONENTS) -> tuple[list[float], list[float]]:
    """RMS residual (face, all) in mm of projecting ``heldout`` (M, D) on the top-k PCA of ``train`` (N, D).

    The PCA is centred on the training mean. It goes through the N x N Gram matrix, which
    is exact and much cheaper than an SVD of the D-wide matrix when N << D.
    """
    mean = train.mean(0, dtype=np.float64).astype(np.float32)
    centred = train - mean
    gram = centred @ centred.T
    eigvals, eigvecs = np.linalg.eigh(gram.astype(np.float64))
    order = np.argsort(eigvals)[::-1]
    eigvals, eigvecs = eigvals[order], eigvecs[:, order]
    rank = int((eigvals > eigvals[0] * 1e-10).sum())
    k_max = min(max(components), rank)
    basis = ((eigvecs[:, :k_max] / np.sqrt(eigvals[:k_max])).T.astype(np.float32)) @ centred  # (k, D) orthonormal
    y = heldout - mean
    coefs = y @ basis.T  # (M, k)
    face, every = [], []
    for k in components:  # four values of k
        kk = min(k, k_max)
        residual = y - coefs[:, :kk] @ basis[:kk]
        f, a = _masked_rms(residual, heldout_masks)
        face.append(f)
        every.append(a)
    return face, every


def nonlinearity_report(source: FaceSource, train_identities: int = 100, heldout_identities: int = 20,
                        scans: int = 1, seed: int = 0, settings: GeneratorSettings | None = None,
                        components: tuple[int, ...] = DEFAULT_COMPONENTS) -> NonlinearityReport:
    """Fit the displacement PCA on ``train_identities`` and measure it on the next ``heldout_identities``.

    Skin detail is switched off: it cancels out of a displacement anyway, and leaving it
    out makes sure that it cannot count.
    """
    start = time.perf_counter()
    settings = replace(settings or GeneratorSettings(), seed=seed, skin_detail=False)
    generator = FaceGenerator(source, settings, cache_size=1)
    train, _ = expression_displacements(generator, range(train_identities), scans)
    heldout, masks = expression_displacements(
        generator, range(train_identities, train_identities + heldout_identities), scans)
    face, every = pca_residuals(train, heldout, masks, components)
    base_face, base_all = _masked_rms(heldout, masks)
    return NonlinearityReport(tuple(components), tuple(face), tuple(every), base_face, base_all, train_identities,
                              heldout_identities, scans, len(train), time.perf_counter() - start)
