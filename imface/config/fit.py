"""Fitting settings (paper Eq. 17): the defaults of ``imface fit`` and the settings of one fit."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

#: Default free-space samples per scan and step of a fit (``imface fit --space-points``). A model
#: trained on mostly surface samples is best fitted the same way: on held-out validation scans,
#: fits with many free-space samples ended further from the scan (docs/lab/2026-12-03-training-recipe.md).
DEFAULT_FIT_SPACE_POINTS = 256
#: Default Adam lr of a fit's codes, in units of the training codes' spread (``imface fit --lr``).
#: Chosen on held-out validation identities of the benchmark data (docs/lab/2026-12-03-training-recipe.md):
#: at 0.1 the 150-step fits had not converged (0.1 -> 1.0 was better on 32 of 32 scans, two models).
DEFAULT_FIT_LR = 1.0

#: Default robust distance (mm) of fits of raw meshes and point sets (``imface fit --robust``):
#: in the second half of a fit, surface points farther than this from the fitted surface stop
#: pulling. Chosen on validation identities (docs/lab/2026-12-04-landmark-free-fitting.md): cluttered, holed
#: meshes fitted better in 9 of 9 cases than without it. Processed scans carry no clutter: 0.
DEFAULT_FIT_ROBUST_MM = 5.0

#: Scales tried by short fits for inputs whose unit the search found (``imface fit --scale-sweep``,
#: :mod:`imface.fitting.scale_sweep`; 0: keep the search's scale, the person's size included).
#: Off (docs/lab/2026-12-05-session4-sweep-off-person-size.md): on six validation people and
#: three models the sweep (7 scales) left scale within 2% where it was (26 of 72 inputs either way), cost Chamfer (meshes 0.689 ->
#: 0.709 mm, one-view clouds 0.706 -> 0.728) and 12-16 s a fit; it had looked right on two people.
DEFAULT_SCALE_SWEEP = 0

#: Default weights of the fit's Mahalanobis code prior on the identity code and on the expression code
#: (``imface fit --code-prior`` / ``--exp-code-prior``; None: the identity's). Chosen on 20 validation scans
#: of 2 people the shipped model never saw (docs/lab/2026-12-06-shipped-model.md): 1 / 0.1 against none,
#: 3 / 0.1 (and, on other models, 1 / 1, which damped expressions); a small gain, in the mouth most.
DEFAULT_FIT_CODE_PRIOR = 1.0
DEFAULT_FIT_EXP_CODE_PRIOR: float | None = 0.1


@dataclass
class FitSettings:
    """Everything that changes a fit's result. ``surface_points`` / ``space_points``: samples per
    scan and step; ``pose_lr``: Adam lr of the pose twist (radians, model units); ``near_sigma``:
    model units, the jitter of the Eikonal points of surface-only scans; ``landmarks``: use the
    landmark term when the scan has landmarks; ``resolution``: output mesh grid.
    ``robust_distance`` (model units, 0: off): surface points farther than this from the
    fitted surface stop pulling (truncated L1) in the second half of the fit, once the codes
    have found the face: clutter the crop kept (hair, a collar) and outliers. ``code_prior``:
    weight of a Mahalanobis prior on the codes, the mean squared code in units of the training
    codes' spread (0: only the paper's embedding term); ``exp_code_prior``: its weight on the expression
    codes when it should differ (None: ``code_prior``), so the identity can be held on the training
    faces' manifold without damping the expression. ``scale_lr``: Adam lr of the log-scale
    of scans whose unit the similarity search found (``--unit auto``), refined with the codes and
    the pose (0: the search's scale is kept). ``code_basis``: the axes the codes move along,
    ``diagonal`` or ``principal`` (the code space of :mod:`imface.fitting.code_space`). ``scale_sweep``: for those
    scans, short fits (``scale_sweep_steps``, 0: ``steps``) at this many scales spread evenly in
    log scale within ``1 +- scale_sweep_range`` of the search's choose the scale the fit runs at
    (:mod:`imface.fitting.scale_sweep`; 0: off)."""

    steps: int = 200
    lr: float = DEFAULT_FIT_LR
    final_lr_fraction: float = 0.05
    pose_lr: float = 2.0e-3
    surface_points: int = 2048
    space_points: int = 2048
    landmarks: bool = True
    near_sigma: float = 0.03
    resolution: int = 128
    seed: int = 0
    robust_distance: float = 0.0
    code_prior: float = DEFAULT_FIT_CODE_PRIOR
    exp_code_prior: float | None = DEFAULT_FIT_EXP_CODE_PRIOR
    scale_lr: float = 0.0
    code_basis: str = "diagonal"
    scale_sweep: int = DEFAULT_SCALE_SWEEP
    scale_sweep_range: float = 0.075
    scale_sweep_steps: int = 60

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
