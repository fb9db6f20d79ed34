"""ImFace (Eq. 5): f(p) = T(I_p''(E(p, z_exp, l), z_id, l'), l'') + I_delta(E(p), z_id, l').

Units: points and landmarks in model units (1 = 100 mm, face inside the unit sphere,
nose tip at (0, 0, 0.4)); signed distances in model units, negative behind the face.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, NamedTuple

import torch
from torch import nn

from imface.components.mlp import last_linear, mlp
from imface.config import ModelConfig
from imface.config.experiment import load_config
from imface.contracts.experiment import CONFIG_NAME, is_experiment, latest_checkpoint, load_weights
from imface.contracts.model import WEIGHTS_NAME, is_model_folder, read_model_folder
from imface.devices import resolve_device
from imface.errors import ImfaceError
from imface.fields.expression import ExpressionField
from imface.fields.identity import IdentityField
from imface.fields.template import TemplateField
from imface.weights import resolve_model


class ImFaceOutput(NamedTuple):
    """Everything one evaluation computes, for B scans and N points.

    sdf (B, N) = template_sdf + residual; template_sdf s0 (B, N); residual delta (B, N);
    canonical_points p' (B, N, 3) (None for deformation="joint": no canonical space);
    template_points p'' (B, N, 3); landmarks l (B, k, 3) used by ExpNet (or by the joint
    field); canonical_landmarks l' (B, k, 3) (None for "joint"); expression_weights,
    identity_weights, template_weights (B, N, k) blend weights (expression_weights is
    None for "joint"; identity_weights are the joint field's there);
    gradient d sdf / d p (B, N, 3) and canonical_gradient d s0 / d p' (B, N, 3), or None
    unless asked for.
    """

    sdf: torch.Tensor
    template_sdf: torch.Tensor
    residual: torch.Tensor
    canonical_points: torch.Tensor | None
    template_points: torch.Tensor
    landmarks: torch.Tensor
    canonical_landmarks: torch.Tensor | None
    expression_weights: torch.Tensor | None
    identity_weights: torch.Tensor
    template_weights: torch.Tensor
    gradient: torch.Tensor | None
    canonical_gradient: torch.Tensor | None


def _landmark_net(in_dim: int, config: ModelConfig, template_five: torch.Tensor) -> nn.Sequential:
    """eta / eta': code -> (k * 3,) landmarks; starts out predicting the template's."""
    net = mlp(in_dim, config.landmark_hidden, 3 * config.num_regions, config.landmark_layers, config.landmark_activation)
    out = last_linear(net)
    with torch.no_grad():
        out.weight.mul_(0.01)
        out.bias.copy_(template_five.reshape(-1))
    return net


class ImFace(nn.Module):
    """The ImFace model with its code tables and Landmark-Nets.

    config: the architecture; num_identities / num_expressions: rows of the code
    tables; template_landmarks: (68, 3) model units, the mean neutral canonical
    landmarks of the training set (a fixed buffer; TempNet uses its k
    ``config.landmark_ids`` rows).
    """

    def __init__(
        self, config: ModelConfig, num_identities: int, num_expressions: int, template_landmarks: torch.Tensor
    ) -> None:
        super().__init__()
        config.validate()
        template_landmarks = torch.as_tensor(template_landmarks, dtype=torch.float32)
        if template_landmarks.shape != (68, 3):
            raise ValueError(f"template_landmarks must be (68, 3), got {tuple(template_landmarks.shape)}")
        self.config = config
        self.register_buffer("template_landmarks", template_landmarks.clone())
        self.register_buffer("landmark_ids", torch.tensor(config.landmark_ids, dtype=torch.long))
        self.identity_codes = nn.Embedding(num_identities, config.id_code_dim)
        self.expression_codes = nn.Embedding(num_expressions, config.exp_code_dim)
        nn.init.normal_(self.identity_codes.weight, 0.0, config.code_init_std)
        nn.init.normal_(self.expression_codes.weight, 0.0, config.code_init_std)
        template_five = template_landmarks[list(config.landmark_ids)]
        both = config.exp_code_dim + config.id_code_dim
        self.landmark_net = _landmark_net(both, config, template_five)  # eta: z_exp (+) z_id -> l
        if config.disentangled:
            self.canonical_landmark_net = _landmark_net(config.id_code_dim, config, template_five)  # eta'
            self.expression_field = ExpressionField(config)
            self.identity_field = IdentityField(config)
        else:
            self.identity_field = IdentityField(config, code_dim=both)  # the one joint deformation field
        self.template_field = TemplateField(config)

    @classmethod
    def from_state(cls, config: ModelConfig, state: dict[str, torch.Tensor], source: str | Path | None = None) -> "ImFace":
        """The model a state dict describes (code table sizes from its tensors), in eval mode with
        ``requires_grad`` off. ImfaceError naming ``source`` when the state does not fit ``config``."""
        tables = ("template_landmarks", "identity_codes.weight", "expression_codes.weight")
        if any(name not in state for name in tables):
            raise ImfaceError(source, "is not an ImFace weights file (no template_landmarks / identity_codes / "
                              "expression_codes)")
        rows = (state["identity_codes.weight"].shape[0], state["expression_codes.weight"].shape[0])
        model = cls(config, rows[0], rows[1], state["template_landmarks"].float())
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ImfaceError(source, "does not fit the model its config.yaml describes (another architecture?): "
                              f"{' '.join(str(err).split())[:300]}") from None
        model.eval()
        model.requires_grad_(False)
        return model

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, device: str | torch.device = "auto") -> "ImFace":
        """Load a model folder (``imface export``) or an experiment folder's latest checkpoint;
        a shipped model's name, or None for the model shipped with imface (:mod:`imface.weights`).

        Weights come from safetensors and metadata from YAML/JSON: nothing is unpickled. For the
        code tables and statistics as well, use :func:`imface.load_pretrained`.
        """
        path = resolve_model(path)
        if is_model_folder(path):
            folder = read_model_folder(path)
            config, state, source = folder.config, folder.state, path / WEIGHTS_NAME
        elif is_experiment(path) and latest_checkpoint(path) is not None:
            source = latest_checkpoint(path)
            config, state = load_config(path / CONFIG_NAME), load_weights(source)
        else:
            raise ImfaceError(path, "not a model folder: expected model.json (an exported model) or config.yaml "
                              "and checkpoints/ (an experiment)")
        return cls.from_state(config.model, state, source).to(resolve_device(device))

    def face_sdf(self, id_code: torch.Tensor, exp_code: torch.Tensor, neutral: bool
                 ) -> Callable[[torch.Tensor], torch.Tensor]:
        """The SDF of one face as a function (N, 3) points -> (N,) values, model units, without
        autograd, on the model's device: what mesh extraction evaluates.

        id_code (d_id,), exp_code (d_exp,); neutral: the scan is neutral (no expression code).
        """
        device = self.template_landmarks.device
        ids, exps = id_code.to(device).reshape(1, -1), exp_code.to(device).reshape(1, -1)
        flag = torch.tensor([bool(neutral)], device=device)

        def sdf(points: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return self.sdf(points.to(device)[None], ids, exps, flag)[0]

        return sdf

    @property
    def template_five(self) -> torch.Tensor:
        """l'': (k, 3) the template's region landmarks, model units."""
        return self.template_landmarks[self.landmark_ids]

    def predict_landmarks(
        self, id_codes: torch.Tensor, exp_codes: torch.Tensor, neutral: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Landmark-Nets: l = eta(z_exp (+) z_id) and l' = eta'(z_id), each (B, k, 3) model units.

        On neutral scans l := l'. For deformation="joint" l' is None and l is never replaced.
        """
        shape = (id_codes.shape[0], self.config.num_regions, 3)
        # Back to the codes' dtype: under mixed precision (train.precision) the MLPs may run in 16 bits.
        observed = self.landmark_net(torch.cat((exp_codes, id_codes), dim=-1)).reshape(shape).to(id_codes.dtype)
        if not self.config.disentangled:
            return observed, None
        canonical = self.canonical_landmark_net(id_codes).reshape(shape).to(id_codes.dtype)
        return torch.where(neutral.reshape(-1, 1, 1), canonical, observed), canonical

    def evaluate(
        self,
        points: torch.Tensor,
        id_codes: torch.Tensor,
        exp_codes: torch.Tensor,
        neutral: torch.Tensor,
        *,
        with_gradients: bool = False,
    ) -> ImFaceOutput:
        """Evaluate the model and all its intermediates.

        points: (B, N, 3) model units; id_codes: (B, d_id); exp_codes: (B, d_exp);
        neutral: (B,) bool. with_gradients: also return d sdf/d p and d s0/d p'
        (differentiable when autograd is enabled, so losses can use them).
        """
        neutral = neutral.to(device=points.device, dtype=torch.bool)
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad() if with_gradients else contextlib.nullcontext():
            if with_gradients and not points.requires_grad:
                points = points.detach().requires_grad_(True)
            landmarks, canonical_landmarks = self.predict_landmarks(id_codes, exp_codes, neutral)
            if self.config.disentangled:
                expression = self.expression_field(points, exp_codes, landmarks, neutral)
                canonical_points, expression_weights = expression.points, expression.weights
                identity = self.identity_field(canonical_points, id_codes, canonical_landmarks)
            else:
                canonical_points, expression_weights = None, None
                identity = self.identity_field(points, torch.cat((exp_codes, id_codes), dim=-1), landmarks)
            template = self.template_field(identity.points, self.template_five)
            sdf = template.sdf + identity.residual
            gradient = canonical_gradient = None
            if with_gradients and canonical_points is None:
                gradient = _spatial_gradient(sdf, points, create_graph)
            elif with_gradients:
                # Chain rule by hand: d sdf/d p = J_E^T (d s0/d p' + d delta/d p'), so TempNet
                # is differentiated once (for d s0/d p') instead of once per gradient.
                canonical_gradient = _spatial_gradient(template.sdf, canonical_points, create_graph)
                residual_gradient = _spatial_gradient(identity.residual, canonical_points, create_graph)
                seed = canonical_gradient + residual_gradient
                gradient = _vector_jacobian(canonical_points, points, seed, create_graph)
        output = ImFaceOutput(
            sdf,
            template.sdf,
            identity.residual,
            canonical_points,
            identity.points,
            landmarks,
            canonical_landmarks,
            expression_weights,
            identity.weights,
            template.weights,
            gradient,
            canonical_gradient,
        )
        if with_gradients and not create_graph:  # asked for gradients under no_grad: hand back plain tensors
            output = ImFaceOutput(*(None if t is None else t.detach() for t in output))
        return output

    def sdf(self, points: torch.Tensor, id_codes: torch.Tensor, exp_codes: torch.Tensor, neutral: torch.Tensor) -> torch.Tensor:
        """Signed distance f(p): points (B, N, 3) model units -> (B, N) model units."""
        return self.evaluate(points, id_codes, exp_codes, neutral).sdf

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Training forward over a batch (see the training-batch contract in the docs).

        Evaluates the surface points, space points and the scan's 68 landmarks in one
        pass, with spatial gradients built with create_graph=True. Returns:
        surface_sdf (B, Ns), space_sdf (B, Nq), surface_gradient (B, Ns, 3),
        space_gradient (B, Nq, 3), surface_residual (B, Ns), space_residual (B, Nq),
        landmarks (B, k, 3) l, template_warped_landmarks (B, 68, 3) I(E(l_bar)),
        template_landmarks (68, 3), id_codes (B, d_id), exp_codes (B, d_exp); and for the
        disentangled model also surface/space_canonical_gradient, canonical_landmarks
        (B, k, 3) l' and warped_landmarks (B, 68, 3) E(l_bar).
        """
        id_codes = self.identity_codes(batch["identity_index"])
        exp_codes = self.expression_codes(batch["expression_index"])
        surface, space, scan_landmarks = batch["surface_points"], batch["space_points"], batch["landmarks"]
        num_surface, num_space = surface.shape[1], space.shape[1]
        points = torch.cat((surface, space, scan_landmarks.to(surface.dtype)), dim=1)
        out = self.evaluate(points, id_codes, exp_codes, batch["neutral"], with_gradients=True)
        split = (num_surface, num_space, scan_landmarks.shape[1])

        def parts(tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return torch.split(tensor, split, dim=1)

        results: dict[str, torch.Tensor] = {}
        for name, tensor in (("sdf", out.sdf), ("gradient", out.gradient), ("residual", out.residual),
                             ("canonical_gradient", out.canonical_gradient)):
            if tensor is not None:
                surface_part, space_part, _ = parts(tensor)
                results[f"surface_{name}"], results[f"space_{name}"] = surface_part, space_part
        results["landmarks"] = out.landmarks
        results["template_warped_landmarks"] = parts(out.template_points)[2]
        if out.canonical_points is not None:
            results["warped_landmarks"] = parts(out.canonical_points)[2]
            results["canonical_landmarks"] = out.canonical_landmarks  # type: ignore[assignment]
        results["template_landmarks"] = self.template_landmarks
        results["id_codes"] = id_codes
        results["exp_codes"] = exp_codes
        return results


def _spatial_gradient(values: torch.Tensor, points: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """d values / d points for per-point values (B, N) of points (B, N, 3) -> (B, N, 3)."""
    return _vector_jacobian(values, points, torch.ones_like(values), create_graph)


def _vector_jacobian(
    outputs: torch.Tensor, inputs: torch.Tensor, seed: torch.Tensor, create_graph: bool
) -> torch.Tensor:
    """seed^T d outputs / d inputs: outputs and seed (B, N, ...) of inputs (B, N, 3) -> (B, N, 3)."""
    (grad,) = torch.autograd.grad(outputs, inputs, grad_outputs=seed, create_graph=create_graph, retain_graph=True)
    return grad
