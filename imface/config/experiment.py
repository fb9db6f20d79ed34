"""Experiment configuration: dataclasses, presets, dotted overrides, ablations, YAML round trip.

An :class:`ExperimentConfig` nests the model and loss configs (``imface.config``) with the
data and training configs defined here. It is saved as ``config.yaml`` in the experiment
folder and read back with ``yaml.safe_load``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from imface.config.model import LossConfig, ModelConfig
from imface.config.parse import from_dict, load_yaml, save_yaml, to_plain
from imface.errors import ImfaceError

PRESETS = ("tiny", "cpu", "gpu", "paper")
# CLI ablation name -> the dotted overrides it stands for (i3DMM-like = all three).
ABLATIONS: dict[str, dict[str, Any]] = {
    "no-dist": {"model.deformation": "joint"},
    "no-blend": {"model.blend": False},
    "no-extend": {"model.expression_embedding": "per_name"},
}
# Fields that limit or schedule a run without changing what it computes: a folder may be
# resumed with other values for them.
RUN_LIMIT_FIELDS = ("train.max_steps", "train.max_minutes", "data.num_workers")
CODE_OPTIMIZERS = ("adam", "row_adam")
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")


@dataclass
class DataConfig:
    """What one training step reads: ``scans_per_batch`` scans (over all ranks together) and,
    per scan, random subsets of its surface, uniform-space and near-surface samples. The three
    counts set the sampling fractions (the authors' loader reads ~94% surface points).
    ``holdout_points``: the last rows of every scan's surface and space arrays that training
    never draws; the learning-curve probe measures on them."""

    scans_per_batch: int = 8
    surface_points_per_scan: int = 1024
    space_points_per_scan: int = 1024
    near_points_per_scan: int = 0  # needs near_*.npy (imface preprocess --near-surface)
    holdout_points: int = 0
    num_workers: int = -1  # DataLoader workers per rank; -1: from imface.threads (0 on <= 2 threads)

    def validate(self) -> None:
        for name in ("surface_points_per_scan", "space_points_per_scan", "near_points_per_scan", "holdout_points"):
            if getattr(self, name) < 0:
                raise ImfaceError(None, f"data.{name} must be >= 0, got {getattr(self, name)}")
        if self.surface_points_per_scan + self.space_points_per_scan + self.near_points_per_scan < 1:
            raise ImfaceError(None, "data: a step needs at least one point per scan")


@dataclass
class TrainConfig:
    """Optimiser, schedule and bookkeeping. Epochs count passes over the training scans."""

    epochs: int = 1500
    lr: float = 1.0e-4  # Adam, every network parameter
    code_lr: float = 1.0e-4  # the identity and expression code tables
    # "adam": plain Adam on the code tables (moves absent rows on stale moments); "row_adam":
    # Adam on the rows present in the step only (imface.training.optim.RowAdam).
    code_optimizer: str = "row_adam"
    lr_decay_start_epoch: int = 200  # from this epoch on the lr is multiplied by lr_decay_factor ...
    lr_decay_every_epochs: int = 10  # ... once more every this many epochs
    lr_decay_factor: float = 0.95
    seed: int = 0
    grad_clip_norm: float = 0.0  # 0: no clipping (the grad norm is still logged)
    checkpoint_every_steps: int = 1000
    keep_checkpoints: int = 5  # newest step checkpoints kept; 0 keeps all
    image_every_steps: int = 1000  # SDF slice images in TensorBoard; 0: never
    max_nan_rollbacks: int = 5  # consecutive non-finite steps before giving up
    max_steps: int = 0  # stop after this many steps in total; 0: run all epochs
    max_minutes: float = 0.0  # stop (with a checkpoint) after this much wall time in this run; 0: no limit
    # Warm start (imface.training.warmup): Adam steps fitting TempNet alone to the mean neutral face
    # before step 0, at this lr (0: off).
    template_warmup_steps: int = 200
    template_warmup_lr: float = 1.0e-3
    # Learning curves (imface.training.curves): every this many steps (0: never), on this many
    # training scans, meshes at this grid resolution; needs data.holdout_points > 0.
    curve_every_steps: int = 0
    curve_scans: int = 3
    curve_resolution: int = 64
    # fp32 | tf32 | bf16 | fp16 (imface.training.precision): TF32 matmuls on CUDA for all but fp32;
    # bf16/fp16 autocast the hypernetworks and Landmark-Nets (SIRENs, gradients, losses stay fp32).
    precision: str = "fp32"

    def validate(self) -> None:
        if self.code_optimizer not in CODE_OPTIMIZERS:
            raise ImfaceError(None, f"train.code_optimizer must be one of {', '.join(CODE_OPTIMIZERS)}, got {self.code_optimizer!r}")
        if self.precision not in PRECISIONS:
            raise ImfaceError(None, f"train.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.template_warmup_steps < 0 or not self.template_warmup_lr > 0:
            raise ImfaceError(None, "train.template_warmup_steps must be >= 0 and train.template_warmup_lr > 0")
        if self.curve_every_steps < 0 or self.curve_scans < 0 or self.curve_resolution < 8:
            raise ImfaceError(None, "train.curve_every_steps and train.curve_scans must be >= 0, train.curve_resolution >= 8")


@dataclass
class ExperimentConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(dataclasses.asdict(self))


def config_from_dict(raw: dict[str, Any]) -> ExperimentConfig:
    """Build a config from a (YAML) mapping; missing fields take their defaults, unknown ones are refused."""
    config = from_dict(ExperimentConfig, raw, "")
    for section in (config.model, config.loss, config.data, config.train):  # each section checks its own values
        if hasattr(section, "validate"):
            section.validate()
    return config


def load_config(path: str | Path) -> ExperimentConfig:
    path = Path(path)
    raw = load_yaml(path)
    try:
        return config_from_dict(raw or {})
    except ImfaceError as err:
        raise ImfaceError(path, err.problem) from None


def save_config(config: ExperimentConfig, path: str | Path) -> None:
    save_yaml(path, config.to_dict())


def set_field(config: ExperimentConfig, dotted: str, value: Any) -> ExperimentConfig:
    """A copy of ``config`` with ``section.field`` (any depth) set to ``value`` (coerced to the field's type)."""
    raw = config.to_dict()
    node = raw
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            raise ImfaceError(None, f"unknown config field {dotted!r} (sections: model, loss, data, train)")
        node = node[part]
    if len(parts) < 2 or parts[-1] not in node:
        raise ImfaceError(None, f"unknown config field {dotted!r}")
    node[parts[-1]] = value
    return config_from_dict(raw)


def apply_overrides(config: ExperimentConfig, overrides: Iterable[str]) -> ExperimentConfig:
    """Apply ``section.field=value`` strings, e.g. ``train.lr=1e-3`` or ``model.warp=translation``."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ImfaceError(None, f"--set expects section.field=value, got {item!r}")
        config = set_field(config, key.strip(), value.strip())
    return config


def apply_ablations(config: ExperimentConfig, ablations: Iterable[str]) -> ExperimentConfig:
    """Switch off parts of the model: ``no-dist``, ``no-blend``, ``no-extend`` (all three: i3DMM-like)."""
    for name in ablations:
        if name not in ABLATIONS:
            raise ImfaceError(None, f"unknown ablation {name!r}; choose from {', '.join(ABLATIONS)}")
        for key, value in ABLATIONS[name].items():
            config = set_field(config, key, value)
    return config


# The recipe of short runs (cpu, gpu presets; docs/lab/2026-12-03-training-recipe.md): a compressed schedule that
# stops at 60 min (with a checkpoint; --resume continues it), codes stepped 10x faster than the
# networks, and held-back samples for the learning curves. The paper's embedding weight (1e6) is
# meant for 1,500 epochs: in a run this short it pulls every code to ~0.01 norm before the
# networks learn to use them (held-out Chamfer 1.16 mm after 500 steps against 0.93 with 1e3).
# 1e2 fitted validation identities better than 1e3 in 3 of 3 seeds (0.788 against 0.802 mm); 1e1
# was no better than 1e2 (docs/lab/2026-12-03-training-recipe.md).
_SHORT_RUN_RECIPE: dict[str, Any] = {
    "loss.embedding": 1.0e2,
    "data.holdout_points": 2048,
    "train.epochs": 300,
    "train.lr": 2.0e-4,
    "train.code_lr": 2.0e-3,
    "train.lr_decay_start_epoch": 50,
    "train.lr_decay_every_epochs": 10,
    "train.max_minutes": 60.0,
}

# Preset -> dotted overrides on top of the defaults (the paper's architecture and losses).
_PRESET_OVERRIDES: dict[str, dict[str, Any]] = {
    # Sec. 4: minibatches of 72 scans, 1,500 epochs, lr 1e-4 decayed by 0.95 every 10 epochs after 200.
    # Sampling as the authors' loader: 16,384 points per scan drawn from the union of 250k surface
    # and 15k space samples, i.e. ~94% surface; no near-surface band.
    "paper": {
        "data.scans_per_batch": 72,
        "data.surface_points_per_scan": 15360,
        "data.space_points_per_scan": 1024,
        "data.near_points_per_scan": 0,
        "data.holdout_points": 2048,
        "train.epochs": 1500,
        "train.checkpoint_every_steps": 2000,
        "train.image_every_steps": 2000,
        "train.curve_every_steps": 2000,
    },
    # One modern GPU for about an hour (bench/gpu_check.sh measures its throughput): the cpu recipe
    # with a paper-sized batch (64 scans x 8,192 points, the cpu preset's sampling fractions), TF32
    # matmuls, and the compressed schedule; the call stops at 60 min (--resume continues it).
    "gpu": {
        **_SHORT_RUN_RECIPE,
        "data.scans_per_batch": 64,
        "data.surface_points_per_scan": 6144,
        "data.near_points_per_scan": 1024,
        "data.space_points_per_scan": 1024,
        "train.checkpoint_every_steps": 1000,
        "train.image_every_steps": 1000,
        "train.curve_every_steps": 500,
        "train.precision": "tf32",
    },
    # A 2-core laptop: a full-model step of 32 scans x 512 points costs about 0.5 s. Many scans and few
    # points per step: each scan's codes get 4x the updates of 8 x 2,048 at the same cost, and
    # validation fits were better in 3 of 3 seeds (docs/lab/2026-12-03-training-recipe.md). The epoch-based
    # schedule is 4x the short-run recipe's, so the lr decays at the same steps as with 8 scans.
    # 75% surface, 12.5% near-surface band, 12.5% uniform points.
    "cpu": {
        **_SHORT_RUN_RECIPE,
        "train.epochs": 1200,
        "train.lr_decay_start_epoch": 200,
        "train.lr_decay_every_epochs": 40,
        "data.scans_per_batch": 32,
        "data.surface_points_per_scan": 384,
        "data.near_points_per_scan": 64,
        "data.space_points_per_scan": 64,
        "train.checkpoint_every_steps": 250,
        "train.image_every_steps": 500,
        "train.curve_every_steps": 100,
    },
    # Tests and smoke runs: a small network and a few hundred points, seconds per run.
    "tiny": {
        "model.id_code_dim": 16,
        "model.exp_code_dim": 16,
        "model.local_hidden": 16,
        "model.hyper_hidden": 16,
        "model.landmark_hidden": 32,
        "data.scans_per_batch": 4,
        "data.surface_points_per_scan": 128,
        "data.space_points_per_scan": 128,
        "data.num_workers": 0,
        "train.template_warmup_steps": 0,
        "train.epochs": 100,
        "train.lr": 1.0e-3,
        "train.code_lr": 1.0e-3,
        "train.lr_decay_start_epoch": 50,
        "train.checkpoint_every_steps": 50,
        "train.image_every_steps": 0,
    },
}


def preset(name: str) -> ExperimentConfig:
    """The named preset: ``paper`` (GPU job), ``cpu`` (minutes on a laptop) or ``tiny`` (tests)."""
    if name not in _PRESET_OVERRIDES:
        raise ImfaceError(None, f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    config = ExperimentConfig()
    for key, value in _PRESET_OVERRIDES[name].items():
        config = set_field(config, key, value)
    return config


def _flatten(raw: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def config_differences(a: ExperimentConfig, b: ExperimentConfig, *, ignore_run_limits: bool = True) -> list[str]:
    """Dotted names of the fields whose values differ (run limits such as max_steps ignored)."""
    fa, fb = _flatten(a.to_dict()), _flatten(b.to_dict())
    ignored = set(RUN_LIMIT_FIELDS) if ignore_run_limits else set()
    return sorted(k for k in set(fa) | set(fb) if k not in ignored and fa.get(k) != fb.get(k))
