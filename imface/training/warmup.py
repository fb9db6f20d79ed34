"""Warm start of TempNet: a short pre-fit of the template SDF to the mean neutral face.

At initialisation TempNet's SDF is about 0 everywhere with |grad| about 0.06, and the first
hundred or so steps of a short run go to growing a face out of it. The processed scans all
share one canonical frame, so the neutral training scans' samples, pooled, describe the mean
neutral face; fitting TempNet alone to them (no hypernetworks, no codes, no double warp) costs
a few seconds and starts training from a face. ``train.template_warmup_steps`` (0: off).
"""
from __future__ import annotations

import numpy as np
import torch

from imface.config import LossConfig
from imface.dataset import FaceScanDataset
from imface.losses import eikonal_loss, normal_loss, sdf_loss

#: The warm-up reads its points as epochs from here on, which training never reaches.
_EPOCH_OFFSET = 1 << 40


def warm_start_template(model: torch.nn.Module, dataset: FaceScanDataset, steps: int, lr: float,
                        weights: LossConfig, *, scans_per_step: int = 8, seed: int = 0,
                        device: torch.device | str = "cpu") -> list[float]:
    """Fit ``model.template_field`` to the pooled samples of the dataset's neutral scans
    (all scans when none is neutral) for ``steps`` Adam steps at ``lr``, with the SDF, normal
    and Eikonal terms at their training weights. Returns the loss of each step.

    Reproducible: the scans and points come from ``seed``, not from the global RNG.
    """
    rows = [i for i, s in enumerate(dataset.scans) if s.neutral] or list(range(len(dataset)))
    rng = np.random.default_rng([seed, 7])
    field = model.template_field
    landmarks = model.template_five
    optimizer = torch.optim.Adam(field.parameters(), lr=lr)
    history = []
    for step in range(steps):
        chosen = rng.choice(rows, size=min(scans_per_step, len(rows)), replace=False)
        items = [dataset[(_EPOCH_OFFSET + step, int(i))] for i in chosen]  # draws apart from training's epochs
        batch = {k: torch.stack([item[k] for item in items]).to(device) for k in
                 ("surface_points", "surface_normals", "space_points", "space_sdf", "space_grad")}
        points = torch.cat((batch["surface_points"], batch["space_points"]), dim=1).requires_grad_(True)
        sdf = field(points, landmarks).sdf
        (gradient,) = torch.autograd.grad(sdf, points, torch.ones_like(sdf), create_graph=True)
        target = torch.cat((torch.zeros_like(batch["surface_points"][..., 0]), batch["space_sdf"]), dim=1)
        normals = torch.cat((batch["surface_normals"], batch["space_grad"]), dim=1)
        loss = (weights.sdf * sdf_loss(sdf, target) + weights.normal * normal_loss(gradient, normals)
                + weights.eikonal * eikonal_loss(gradient))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append(float(loss.detach()))
    return history
