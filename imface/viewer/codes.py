"""The viewer's latent space: principal directions of the training codes, and the face on screen.

The sliders move a code along the leading principal directions of the model's code statistics
(:class:`imface.pretrained.CodeStats`), in units of one standard deviation. A code the sliders
cannot reach exactly (a training identity, a fit, a random draw) is kept as its slider
coordinates plus the *residual* outside the leading directions, so choosing a named face and
then dragging a slider changes only that direction.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np
import torch

from imface.generate import Face
from imface.pretrained import CodeStats

#: Leading principal directions shown as sliders, per code (identity, expression).
COMPONENTS = 8
#: Directions whose variance is below this fraction of the largest are dropped (rank-deficient statistics).
RELATIVE_VARIANCE_FLOOR = 1e-9


@dataclass(frozen=True)
class CodeAxes:
    """Leading principal directions of one kind of code: ``mean`` (d,), ``directions`` (k, d)
    orthonormal rows, ``sigmas`` (k,) their standard deviations (descending), float64."""

    mean: np.ndarray
    directions: np.ndarray
    sigmas: np.ndarray

    @classmethod
    def from_statistics(cls, mean: np.ndarray, cov: np.ndarray, components: int = COMPONENTS) -> "CodeAxes":
        """The ``components`` leading eigenvectors of ``cov`` (d, d) with non-zero variance."""
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        cov = np.asarray(cov, dtype=np.float64)
        values, vectors = np.linalg.eigh((cov + cov.T) / 2.0)
        order = np.argsort(values)[::-1]
        values, vectors = values[order], vectors[:, order]
        top = float(values[0]) if len(values) else 0.0
        keep = [i for i in range(min(components, len(values))) if top > 0 and values[i] > top * RELATIVE_VARIANCE_FLOOR]
        return cls(mean, vectors[:, keep].T.copy(), np.sqrt(values[keep]))

    @property
    def count(self) -> int:
        return len(self.sigmas)

    def split(self, code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """code (d,) -> (slider coordinates (k,) in standard deviations, residual (d,) outside them)."""
        offset = np.asarray(code, dtype=np.float64).reshape(-1) - self.mean
        projected = self.directions @ offset
        residual = offset - self.directions.T @ projected
        return projected / np.where(self.sigmas > 0, self.sigmas, 1.0), residual

    def join(self, coordinates: np.ndarray, residual: np.ndarray) -> np.ndarray:
        """The code (d,) at slider ``coordinates`` (k,) with ``residual`` (d,): the inverse of :meth:`split`."""
        return self.mean + self.directions.T @ (np.asarray(coordinates, dtype=np.float64) * self.sigmas) + residual


@dataclass(frozen=True)
class LatentSpace:
    """The identity and expression axes of one model."""

    identity: CodeAxes
    expression: CodeAxes

    @classmethod
    def from_stats(cls, stats: CodeStats, components: int = COMPONENTS) -> "LatentSpace":
        return cls(CodeAxes.from_statistics(stats.id_mean, stats.id_cov, components),
                   CodeAxes.from_statistics(stats.exp_mean, stats.exp_cov, components))

    def state_of(self, face: Face, label: str | None = None) -> "FaceState":
        """The slider state that draws ``face`` exactly (its codes split into coordinates and residuals)."""
        id_coords, id_residual = self.identity.split(face.id_code.detach().cpu().numpy())
        exp_coords, exp_residual = self.expression.split(face.exp_code.detach().cpu().numpy())
        return FaceState(label or face.name, id_coords, id_residual, exp_coords, exp_residual, bool(face.neutral))

    def mean_state(self) -> "FaceState":
        """The mean identity, neutral (the expression sliders start from the mean expression code)."""
        return FaceState("mean face", np.zeros(self.identity.count), np.zeros_like(self.identity.mean),
                         np.zeros(self.expression.count), np.zeros_like(self.expression.mean), True)


@dataclass(frozen=True)
class FaceState:
    """What the viewer shows: a label, slider coordinates and residuals of both codes, the neutral flag."""

    label: str
    id_coords: np.ndarray
    id_residual: np.ndarray
    exp_coords: np.ndarray
    exp_residual: np.ndarray
    neutral: bool

    def with_coordinate(self, kind: str, index: int, value: float) -> "FaceState":
        """This state with slider ``index`` of ``kind`` (identity | expression) at ``value``; moving
        an expression slider turns neutral suppression off (the expression code is then used)."""
        if kind not in ("identity", "expression"):
            raise ValueError(f"kind must be identity or expression, got {kind!r}")
        coords = np.array(self.id_coords if kind == "identity" else self.exp_coords, dtype=np.float64)
        coords[index] = value
        if kind == "identity":
            return replace(self, id_coords=coords, label=_edited(self.label))
        return replace(self, exp_coords=coords, neutral=False, label=_edited(self.label))

    def with_identity(self, space: LatentSpace, id_code: torch.Tensor, name: str) -> "FaceState":
        """This state with the identity code ``id_code`` (d_id,) (the expression kept)."""
        coords, residual = space.identity.split(id_code.detach().cpu().numpy())
        return replace(self, id_coords=coords, id_residual=residual, label=_combined(name, _expression_part(self.label)))

    def with_expression(self, space: LatentSpace, exp_code: torch.Tensor, neutral: bool, name: str) -> "FaceState":
        """This state with the expression code ``exp_code`` (d_exp,) and neutral flag (the identity kept)."""
        coords, residual = space.expression.split(exp_code.detach().cpu().numpy())
        return replace(self, exp_coords=coords, exp_residual=residual, neutral=bool(neutral),
                       label=_combined(_identity_part(self.label), name))

    def face(self, space: LatentSpace, device: torch.device | str = "cpu") -> Face:
        """The :class:`imface.generate.Face` (float32 codes on ``device``) this state draws."""
        id_code = space.identity.join(self.id_coords, self.id_residual)
        exp_code = space.expression.join(self.exp_coords, self.exp_residual)
        return Face(self.label, torch.tensor(id_code, dtype=torch.float32, device=device),
                    torch.tensor(exp_code, dtype=torch.float32, device=device), self.neutral)


def _edited(label: str) -> str:
    return label if label.endswith(" (edited)") else f"{label} (edited)"


# Labels of faces put together from a named identity and a named expression: "IDENTITY + EXPRESSION".
def _identity_part(label: str) -> str:
    return label.removesuffix(" (edited)").partition(" + ")[0]


def _expression_part(label: str) -> str:
    head, plus, tail = label.removesuffix(" (edited)").partition(" + ")
    return tail if plus else "neutral"


def _combined(identity: str, expression: str) -> str:
    return f"{identity} + {expression}"


def face_key(face: Face) -> str:
    """A short fingerprint of what a face draws: its float32 codes and the neutral flag (the
    expression code counts even on a neutral face: a joint-deformation model still reads it)."""
    digest = hashlib.blake2b(digest_size=8)
    for code in (face.id_code, face.exp_code):
        digest.update(code.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    digest.update(b"neutral" if face.neutral else b"expression")
    return digest.hexdigest()
