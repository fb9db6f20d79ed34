"""Model and loss configuration (plain dataclasses that round-trip through YAML).

Training and data settings live in :mod:`imface.config.experiment`, which imports these;
fitting settings in :mod:`imface.config.fit`.
Defaults follow the paper (Sec. 3-4) and, where it defers to its supplement, the
authors' released code.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from imface.config.parse import from_dict
from imface.errors import ImfaceError

_WARPS = ("se3", "translation")
_DEFORMATIONS = ("disentangled", "joint")
_EMBEDDINGS = ("per_scan", "per_name")
_ACTIVATIONS = ("leaky_relu", "relu")


@dataclass
class ModelConfig:
    """Every architecture number of ImFace and the ablation switches of Table 2.

    Codes: ``id_code_dim``/``exp_code_dim`` wide, initialised N(0, code_init_std^2).
    Local fields psi_n: SIRENs with ``local_layers`` sine layers of ``local_hidden``
    units plus a linear output layer (default 39 -> 32 -> 32 -> 32 -> out); omega_0 =
    ``first_omega`` on the first layer and ``hidden_omega`` on the others; output
    weights scaled by ``local_output_scale``.
    ``positional_frequencies`` sin/cos octaves of x - l_n (0 disables gamma).
    Hyper Nets: ``hyper_layers`` linear layers, ``hyper_hidden`` wide, ReLU; output
    weights scaled by ``hyper_output_scale``. Fusion Network: ``fusion_layers`` linear
    layers, ``fusion_hidden`` wide, LeakyReLU, softmax over the regions (64 wide by
    default: the paper calls it lightweight; the authors' code uses 128 with LayerNorm).
    Landmark-Nets eta, eta': ``landmark_layers`` linear layers (the paper's "three fully
    connected layers", as in the authors' code), ``landmark_hidden`` wide.
    ``landmark_ids``: the iBUG ids (0-based) of the ``num_regions`` (k) region landmarks.

    Ablations: ``deformation="joint"`` (no-dist: one deformation field on
    z_exp (+) z_id, no canonical space), ``blend=False`` (no-blend: global SIRENs of
    about the same size; ``global_hidden = 0`` picks their width automatically),
    ``expression_embedding="per_name"`` (no-extend: one expression code per name).
    """

    id_code_dim: int = 128
    exp_code_dim: int = 128
    code_init_std: float = 0.01
    num_regions: int = 5
    landmark_ids: tuple[int, ...] = (36, 45, 30, 48, 54)
    local_hidden: int = 32
    local_layers: int = 3
    first_omega: float = 30.0
    hidden_omega: float = 30.0
    local_output_scale: float = 0.1
    positional_frequencies: int = 0  # off, as in the authors' released code (docs/lab/2026-12-03-training-recipe.md)
    hyper_hidden: int = 64
    hyper_layers: int = 3
    hyper_output_scale: float = 0.5  # a live code path from the start (docs/lab/2026-12-03-training-recipe.md)
    fusion_hidden: int = 64
    fusion_layers: int = 3
    landmark_hidden: int = 256
    landmark_layers: int = 3
    landmark_activation: str = "leaky_relu"
    warp: str = "se3"
    deformation: str = "disentangled"
    blend: bool = True
    global_hidden: int = 0
    expression_embedding: str = "per_scan"

    def validate(self) -> "ModelConfig":
        """Raise :class:`ImfaceError` on a value the model cannot be built with; return self."""
        _choice("model.warp", self.warp, _WARPS)
        _choice("model.deformation", self.deformation, _DEFORMATIONS)
        _choice("model.expression_embedding", self.expression_embedding, _EMBEDDINGS)
        _choice("model.landmark_activation", self.landmark_activation, _ACTIVATIONS)
        for name in ("id_code_dim", "exp_code_dim", "local_hidden", "local_layers", "hyper_hidden",
                     "fusion_hidden", "landmark_hidden"):
            if int(getattr(self, name)) < 1:
                raise ImfaceError(None, f"model.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("hyper_layers", "fusion_layers", "landmark_layers"):
            if int(getattr(self, name)) < 2:
                raise ImfaceError(None, f"model.{name} must be >= 2, got {getattr(self, name)}")
        if self.positional_frequencies < 0 or self.global_hidden < 0:
            raise ImfaceError(None, "model.positional_frequencies and model.global_hidden must be >= 0")
        if len(self.landmark_ids) < 1 or any(not 0 <= i < 68 for i in self.landmark_ids):
            raise ImfaceError(None, f"model.landmark_ids must be iBUG ids in 0..67, got {self.landmark_ids}")
        if len(self.landmark_ids) != self.num_regions:
            raise ImfaceError(None, f"model.num_regions ({self.num_regions}) must equal the number of "
                              f"model.landmark_ids ({len(self.landmark_ids)}): one local region per landmark")
        if self.code_init_std < 0:
            raise ImfaceError(None, "model.code_init_std must be >= 0")
        return self

    @property
    def disentangled(self) -> bool:
        return self.deformation == "disentangled"

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ModelConfig":
        """Build from a YAML/JSON mapping; unknown keys are an error, lists become tuples."""
        return from_dict(cls, values, "model").validate()


@dataclass
class LossConfig:
    """One weight per loss term (Eq. 10-15), applied to per-point means.

    Defaults are the authors' released weights. ``normal_on_space_points``: also
    apply the normal term on space points, with their ground-truth SDF gradients
    as targets (as the authors do); otherwise only on surface points.
    """

    sdf: float = 3000.0
    normal: float = 100.0
    eikonal: float = 50.0
    eikonal_canonical: float = 50.0
    embedding: float = 1.0e6
    landmark_generation: float = 1000.0
    landmark_consistency: float = 100.0
    residual: float = 100.0
    normal_on_space_points: bool = True

    def validate(self) -> "LossConfig":
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("float", float) and not value >= 0:
                raise ImfaceError(None, f"loss.{f.name} must be a weight >= 0, got {value}")
        return self

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "LossConfig":
        return from_dict(cls, values, "loss").validate()


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ImfaceError(None, f"{name} must be one of {', '.join(allowed)}, got {value!r}")
