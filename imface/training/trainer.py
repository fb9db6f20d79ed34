"""The auto-decoder training loop (DeepSDF-style): networks and per-scan codes optimised together.

One function, :func:`train`, used by ``imface train`` and from Python: it sets up (data, folder,
model, optimisers, resume or warm start) and hands the steps to :mod:`imface.training.loop`. The experiment
folder is the contract: ``config.yaml``, ``run.json``, ``codes.json``, ``checkpoints/``
(safetensors weights + ``resume.pt``), ``logs/`` (TensorBoard, ``losses.jsonl``,
``events.jsonl``) and ``loss_curves.png``.

The same code runs as one process or under ``torchrun`` (DistributedDataParallel, one
share of every global batch per rank, only rank 0 writes).
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from imface.config.experiment import ExperimentConfig, config_differences, load_config, save_config
from imface.dataset import CodeTables, FaceScanDataset, build_code_tables, load_scan_index
from imface.errors import ImfaceError
from imface.io.atomic import write_json
from imface.model import ImFace
from imface.training import checkpoint as ckpt
from imface.training.distributed import DistributedContext, any_rank, init_distributed, shutdown
from imface.training.loop import TrainingRun
from imface.training.optim import RowAdam
from imface.training.precision import Precision
from imface.training.warmup import warm_start_template
from imface.contracts.experiment import CODES_NAME, CONFIG_NAME, RUN_NAME

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """How a call to :func:`train` ended. ``stopped`` is finished | max_steps | max_minutes | signal."""

    exp_dir: Path
    step: int
    epoch: int
    stopped: str
    checkpoint: Path | None
    losses: dict[str, float] = field(default_factory=dict)  # the last step's (mean over ranks)
    seconds: float = 0.0
    rollbacks: int = 0


def lr_factor(epoch: int, start: int, every: int, factor: float) -> float:
    """The lr multiplier in ``epoch`` (0-based): 1 before ``start``, then ``factor`` once more
    every ``every`` epochs, starting at epoch ``start`` (paper: start 200, every 10, factor 0.95)."""
    if epoch < start:
        return 1.0
    return factor ** (1 + (epoch - start) // max(1, every))


def git_commit() -> str | None:
    """The imface source tree's git commit, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ImfaceError(path, f"unreadable ({err})") from None
    if not isinstance(value, dict):
        raise ImfaceError(path, "expected a JSON object")
    return value


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _prepare_folder(config: ExperimentConfig, exp_dir: Path, resume: bool, codes: CodeTables,
                    manifest_sha: str, data_dir: Path, ctx: DistributedContext) -> bool:
    """Check and write config.yaml, codes.json and run.json (rank 0). Returns True when there is a run to resume."""
    config_file = exp_dir / CONFIG_NAME
    has_run = ckpt.resume_path(exp_dir).is_file()
    changed: list[str] = []
    if exp_dir.is_dir() and not config_file.is_file() and any(exp_dir.iterdir()):
        raise ImfaceError(exp_dir, "is not empty and holds no experiment (config.yaml); use a new --exp-dir")
    if config_file.is_file():
        saved = load_config(config_file)
        changed = config_differences(saved, config)
        if not resume and changed:
            raise ImfaceError(config_file, f"this folder holds a run with a different config ({', '.join(changed[:6])}"
                              f"{', ...' if len(changed) > 6 else ''}); use another --exp-dir, or --resume to continue it")
        if not resume and has_run:
            raise ImfaceError(exp_dir, "this folder already holds a run; pass --resume to continue it or use another --exp-dir")
        if resume and has_run and any(name.startswith("model.") for name in changed):
            raise ImfaceError(config_file, f"cannot resume with another architecture ({', '.join(changed)})")
    codes_file = exp_dir / CODES_NAME
    if resume and has_run and codes_file.is_file():
        try:
            saved_codes = CodeTables.from_json(_read_json(codes_file))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ImfaceError(codes_file, "not a code table file (identities, expressions, expression_embedding)") from None
        if saved_codes != codes:
            raise ImfaceError(codes_file, "the dataset's training scans changed since this run began; cannot resume")
    run_file = exp_dir / RUN_NAME
    if resume and has_run and run_file.is_file():
        run = _read_json(run_file)
        if run.get("manifest_sha256") not in (None, manifest_sha):
            raise ImfaceError(data_dir / "manifest.json", "differs from the one this run was trained on; cannot resume")
        run.setdefault("resumes", []).append({"at": _now(), "argv": sys.argv, "world_size": ctx.world_size,
                                              "changed_config_fields": changed})
    else:
        run = {
            "seed": config.train.seed, "git_commit": git_commit(), "data_dir": str(data_dir.resolve()),
            "manifest_sha256": manifest_sha, "torch_version": torch.__version__, "python_version": sys.version.split()[0],
            "device": str(ctx.device), "world_size": ctx.world_size, "started_at": _now(), "argv": sys.argv,
        }
    exp_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, config_file)
    write_json(codes_file, codes.to_json())
    write_json(run_file, run)
    return resume and has_run


def _split_parameters(model: torch.nn.Module) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    codes = [model.identity_codes.weight, model.expression_codes.weight]
    ids = {id(p) for p in codes}
    return [p for p in model.parameters() if id(p) not in ids], codes


def _per_rank_batch(config: ExperimentConfig, num_scans: int, ctx: DistributedContext) -> int:
    scans = config.data.scans_per_batch
    if scans < 1 or scans % ctx.world_size:
        raise ImfaceError(None, f"data.scans_per_batch ({scans}) must be a positive multiple of the number of processes ({ctx.world_size})")
    if num_scans < ctx.world_size:
        raise ImfaceError(None, f"{num_scans} training scans cannot be shared by {ctx.world_size} processes")
    per_rank = min(scans // ctx.world_size, num_scans // ctx.world_size)
    if per_rank * ctx.world_size < scans:
        log.warning("only %d training scans: using %d scans per batch instead of %d", num_scans, per_rank * ctx.world_size, scans)
    return per_rank


def _load_data(config: ExperimentConfig, data_dir: Path,
               ctx: DistributedContext) -> tuple[Any, CodeTables, FaceScanDataset, int]:
    """The dataset's scan index, code tables, training split and scans per rank per batch."""
    index = load_scan_index(data_dir)
    codes = build_code_tables(
        index, config.model.expression_embedding, neutral_suppression=config.model.deformation == "disentangled"
    )
    dataset = FaceScanDataset(index, codes, split="train", seed=config.train.seed,
                              surface_points_per_scan=config.data.surface_points_per_scan,
                              space_points_per_scan=config.data.space_points_per_scan,
                              near_points_per_scan=config.data.near_points_per_scan,
                              holdout_points=config.data.holdout_points)
    if config.train.curve_every_steps > 0 and config.data.holdout_points < 1:
        raise ImfaceError(None, "train.curve_every_steps needs data.holdout_points > 0 (points the probe measures on)")
    return index, codes, dataset, _per_rank_batch(config, len(dataset), ctx)  # checked before anything is written


def _claim_folder(config: ExperimentConfig, exp_dir: Path, resume: bool, codes: CodeTables, manifest_sha: str,
                  data_dir: Path, ctx: DistributedContext) -> bool:
    """Rank 0 checks and writes the experiment folder; every rank fails if it refused. True: a run to resume."""
    failure: ImfaceError | None = None
    resuming = False
    if ctx.is_main:
        try:
            resuming = _prepare_folder(config, exp_dir, resume, codes, manifest_sha, data_dir, ctx)
        except ImfaceError as err:
            failure = err
    if any_rank(ctx, failure is not None):
        raise failure or ImfaceError(exp_dir, "rank 0 refused the experiment folder")
    return resuming


def _build_model(config: ExperimentConfig, codes: CodeTables, dataset: FaceScanDataset,
                 ctx: DistributedContext) -> tuple[ImFace, list[torch.optim.Optimizer], list[Any]]:
    """The seeded model on the device, its two optimisers (networks, codes) and their lr schedules."""
    torch.manual_seed(config.train.seed)  # the same initial weights on every rank and every run
    template = torch.from_numpy(dataset.neutral_template())
    model = ImFace(config.model, codes.num_identities, codes.num_expressions, template).to(ctx.device)
    networks, code_tables = _split_parameters(model)
    t = config.train
    optimizers = [torch.optim.Adam(networks, lr=t.lr),
                  RowAdam(code_tables, lr=t.code_lr) if t.code_optimizer == "row_adam"
                  else torch.optim.Adam(code_tables, lr=t.code_lr)]
    schedulers = [torch.optim.lr_scheduler.LambdaLR(
        o, lambda epoch: lr_factor(epoch, t.lr_decay_start_epoch, t.lr_decay_every_epochs, t.lr_decay_factor))
        for o in optimizers]
    return model, optimizers, schedulers


def _restore(model: ImFace, optimizers: list[torch.optim.Optimizer], schedulers: list[Any], exp_dir: Path,
             resume_state: dict[str, Any]) -> tuple[int, float]:
    """Weights, optimiser and schedule states and RNG state of the saved run; returns its step and training seconds."""
    if not isinstance(resume_state.get("optimizer"), list):
        raise ImfaceError(ckpt.resume_path(exp_dir), "written by an older imface (one optimizer for networks "
                          "and codes); it cannot be resumed exactly: start a new --exp-dir")
    ckpt.load_model_weights(model, ckpt.checkpoint_path(exp_dir, resume_state["weights_step"]))
    for o, state in zip(optimizers, resume_state["optimizer"]):
        o.load_state_dict(state)
    for sched, state in zip(schedulers, resume_state["scheduler"]):
        sched.load_state_dict(state)
    ckpt.restore_rng_state(resume_state["rng"])
    return int(resume_state["step"]), float(resume_state.get("train_seconds", 0.0))


def train(
    config: ExperimentConfig,
    data_dir: str | Path,
    exp_dir: str | Path,
    resume: bool = False,
    *,
    device: str = "auto",
    progress: bool = True,
) -> TrainResult:
    """Train ImFace on the train split of a processed dataset into an experiment folder.

    config: the experiment (``train.max_steps`` / ``train.max_minutes`` bound this call);
    data_dir: a processed dataset (manifest.json); exp_dir: the experiment folder;
    resume: continue the run in ``exp_dir`` exactly where its last checkpoint left it
    (a folder without one starts fresh); device: auto | cpu | cuda.
    Under torchrun every rank calls this; only rank 0 writes files, and every rank reads
    ``data_dir`` (and ``exp_dir`` when resuming), so both must be on storage all nodes share.
    """
    started = time.monotonic()
    data_dir, exp_dir = Path(data_dir), Path(exp_dir)
    ctx = init_distributed(device)
    run: TrainingRun | None = None
    try:
        precision = Precision(config.train.precision, ctx.device)
        index, codes, dataset, per_rank = _load_data(config, data_dir, ctx)
        resuming = _claim_folder(config, exp_dir, resume, codes, index.sha256, data_dir, ctx)
        resume_state = ckpt.load_resume_state(exp_dir) if resume else None  # every rank reads it (shared folder)
        model, optimizers, schedulers = _build_model(config, codes, dataset, ctx)
        step, resumed_seconds, warmup = 0, 0.0, []
        t = config.train
        if resume_state is not None:
            step, resumed_seconds = _restore(model, optimizers, schedulers, exp_dir, resume_state)
        elif t.template_warmup_steps > 0:  # before DDP, identically on every rank
            warmup_started = time.monotonic()
            warmup = warm_start_template(model, dataset, t.template_warmup_steps, t.template_warmup_lr, config.loss,
                                         seed=t.seed, device=ctx.device)
            resumed_seconds = time.monotonic() - warmup_started  # the warm start counts as training time
        run = TrainingRun(config, exp_dir, ctx, precision, dataset, codes, per_rank, (model, optimizers, schedulers),
                          step=step, resumed_seconds=resumed_seconds, resumed=resume_state is not None,
                          progress=progress)
        run.begin(warmup, resume, resuming)
        stopped = run.run_steps(started)
        checkpoint = run.finish()
        return TrainResult(exp_dir, run.step, run.step // run.steps_per_epoch, stopped, checkpoint, run.last_losses,
                           time.monotonic() - started, run.rollbacks)
    finally:
        if run is not None:
            run.writer.close()
        shutdown(ctx)
