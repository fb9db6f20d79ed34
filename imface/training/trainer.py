"""The auto-decoder training loop (DeepSDF-style): networks and per-scan codes optimised together.

One function, :func:`train`, used by ``imface train`` and from Python. The experiment
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
import math
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

from imface.dataset import CodeTables, EpochBatchSampler, FaceScanDataset, build_code_tables, load_scan_index
from imface.training import checkpoint as ckpt
from imface.config.experiment import ExperimentConfig, config_differences, load_config, save_config
from imface.training.curves import CURVES_PNG, CurveProbe, curve_record, plot_learning_curves, read_curves
from imface.training.distributed import DistributedContext, any_rank, barrier, init_distributed, mean_over_ranks, shutdown
from imface.training.optim import RowAdam
from imface.training.precision import Precision
from imface.training.warmup import warm_start_template
from imface.training.writer import CURVES_NAME, LOG_DIR, LOSSES_NAME, RunWriter, plot_loss_curves, sdf_slice_image
from imface.errors import ImfaceError
from imface.io.atomic import write_json
from imface.threads import get_threads

log = logging.getLogger(__name__)
CONFIG_NAME, RUN_NAME, CODES_NAME = "config.yaml", "run.json", "codes.json"


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


class _StopSignals:
    """SIGINT/SIGTERM set a flag the loop polls, so it can checkpoint and exit cleanly; a second
    SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _ignore_interrupts(worker_id: int) -> None:
    # Ctrl-C reaches the whole process group; the main process decides when to stop, and its
    # workers must keep serving batches until it does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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


def _num_workers(config: ExperimentConfig) -> int:
    if config.data.num_workers >= 0:
        return config.data.num_workers
    threads = get_threads()
    return 0 if threads <= 2 else min(8, threads // 2)


def _optimizer_states(optimizers: list[torch.optim.Optimizer]) -> list[dict[str, Any]]:
    """In-memory copies of the optimisers' states (the rollback target)."""
    return [ckpt.clone_state(o.state_dict()) for o in optimizers]


def _non_finite_terms(names: list[str], values: torch.Tensor) -> list[str]:
    # Name the loss terms that broke; "total" or "grad_norm" only when no single term did.
    bad = [n for n, v in zip(names, values.tolist()) if not math.isfinite(v)]
    for group in ([n for n in bad if n not in ("total", "grad_norm")], [n for n in bad if n == "total"]):
        if group:
            return group
    return bad


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
    from imface.losses import compute_losses
    from imface.model import ImFace

    started = time.monotonic()
    data_dir, exp_dir = Path(data_dir), Path(exp_dir)
    ctx = init_distributed(device)
    writer: RunWriter | None = None
    try:
        precision = Precision(config.train.precision, ctx.device)
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
        per_rank = _per_rank_batch(config, len(dataset), ctx)  # checked before anything is written
        failure: ImfaceError | None = None
        resuming = False
        if ctx.is_main:
            try:
                resuming = _prepare_folder(config, exp_dir, resume, codes, index.sha256, data_dir, ctx)
            except ImfaceError as err:
                failure = err
        if any_rank(ctx, failure is not None):
            raise failure or ImfaceError(exp_dir, "rank 0 refused the experiment folder")
        resume_state = ckpt.load_resume_state(exp_dir) if resume else None  # every rank reads it (shared folder)

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
        step, resumed_seconds = 0, 0.0
        if resume_state is not None:
            if not isinstance(resume_state.get("optimizer"), list):
                raise ImfaceError(ckpt.resume_path(exp_dir), "written by an older imface (one optimizer for networks "
                                  "and codes); it cannot be resumed exactly: start a new --exp-dir")
            ckpt.load_model_weights(model, ckpt.checkpoint_path(exp_dir, resume_state["weights_step"]))
            for o, state in zip(optimizers, resume_state["optimizer"]):
                o.load_state_dict(state)
            for sched, state in zip(schedulers, resume_state["scheduler"]):
                sched.load_state_dict(state)
            ckpt.restore_rng_state(resume_state["rng"])
            step = int(resume_state["step"])
            resumed_seconds = float(resume_state.get("train_seconds", 0.0))
        warmup: list[float] = []
        if resume_state is None and t.template_warmup_steps > 0:  # before DDP, identically on every rank
            warmup_started = time.monotonic()
            warmup = warm_start_template(model, dataset, t.template_warmup_steps, t.template_warmup_lr, config.loss,
                                         seed=t.seed, device=ctx.device)
            resumed_seconds = time.monotonic() - warmup_started  # the warm start counts as training time
        ddp = model
        if ctx.distributed:
            ddp = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)

        sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                     seed=config.train.seed, drop_last=True)
        steps_per_epoch = len(BatchSampler(sampler, per_rank, drop_last=True))
        total_steps = config.train.epochs * steps_per_epoch
        if config.train.max_steps > 0:
            total_steps = min(total_steps, config.train.max_steps)

        writer = RunWriter(exp_dir, enabled=ctx.is_main, start_step=step)
        # SDF slices of the first neutral and the first non-neutral training scan.
        image_scans = [s for s in (next((s for s in dataset.scans if s.neutral), None),
                                   next((s for s in dataset.scans if not s.neutral), None)) if s is not None]
        # The in-memory copy of the last checkpoint that a non-finite step rolls back to (every rank keeps one).
        snapshot: dict[str, Any] = {}
        if resume_state is not None:
            snapshot = {"model": ckpt.model_state(model), "optimizer": _optimizer_states(optimizers), "step": step}
        last_saved = step if resume_state is not None else -1

        clock = {"start": time.monotonic(), "probe": 0.0}

        def train_seconds() -> float:
            """Wall time of this run's training so far (all runs of the folder), probe time excluded."""
            return resumed_seconds + time.monotonic() - clock["start"] - clock["probe"]

        def save(at_step: int) -> Path:
            nonlocal snapshot, last_saved
            snapshot = {"model": ckpt.model_state(model), "optimizer": _optimizer_states(optimizers), "step": at_step}
            path = ckpt.checkpoint_path(exp_dir, at_step)
            if ctx.is_main:
                ckpt.save_weights(path, snapshot["model"], {"step": str(at_step), "format": "imface-checkpoint-1"})
                ckpt.save_resume_state(exp_dir, {
                    "step": at_step, "epoch": at_step // steps_per_epoch, "weights_step": at_step,
                    "optimizer": [o.state_dict() for o in optimizers], "scheduler": [sc.state_dict() for sc in schedulers],
                    "rng": ckpt.capture_rng_state(), "world_size": ctx.world_size, "train_seconds": train_seconds(),
                })
                ckpt.prune_checkpoints(exp_dir, config.train.keep_checkpoints, protect=at_step)
            barrier(ctx)
            last_saved = at_step
            return path

        if warmup:
            writer.log_event(0, "template_warmup", f"TempNet pre-fit to the mean neutral face: {len(warmup)} steps, "
                             f"loss {warmup[0]:.4g} -> {warmup[-1]:.4g}")
        if resume_state is None:
            save(step)  # step 0: a rollback target and a resume point from the start
        if ctx.is_main and resume and not resuming:
            log.info("nothing to resume in %s; starting a new run", exp_dir)

        names: list[str] | None = None
        last_losses: dict[str, float] = {}
        rollbacks = consecutive_failures = 0
        stopped = "finished"
        bar = None
        if ctx.is_main and progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total_steps, initial=step, unit="step", dynamic_ncols=True, desc="train")
        workers = _num_workers(config)
        loader = DataLoader(dataset, batch_sampler=EpochBatchSampler(sampler, per_rank, step, total_steps),
                            num_workers=workers, worker_init_fn=_ignore_interrupts,
                            pin_memory=ctx.device.type == "cuda", persistent_workers=workers > 0,
                            prefetch_factor=4 if workers > 0 else None)
        probe = None
        if ctx.is_main and t.curve_every_steps > 0 and t.curve_scans > 0:
            probe = CurveProbe(dataset, codes, t.curve_scans, t.curve_resolution, ctx.device)

        def measure_curve() -> None:
            if probe is not None:
                figures = probe.measure(model)
                clock["probe"] += figures["seconds"]
                writer.log_curve(curve_record(step, step // steps_per_epoch, train_seconds(), figures))

        first_step = step
        if resume_state is None:
            measure_curve()  # the curve starts at step 0
        with _StopSignals() as signals:
            for batch in loader:
                epoch = step // steps_per_epoch
                step_started = time.monotonic()
                batch = {k: v.to(ctx.device, non_blocking=True) for k, v in batch.items()}
                for o in optimizers:
                    o.zero_grad(set_to_none=True)
                with precision.autocast():
                    outputs = ddp(batch)
                losses = compute_losses(outputs, batch, config.loss, config.model)
                losses = {k: torch.as_tensor(v, device=ctx.device, dtype=torch.float32) for k, v in losses.items()}
                total = losses["total"] if "total" in losses else torch.stack(list(losses.values())).sum()
                # Backward even on a non-finite loss, so every DDP rank runs the same collectives.
                precision.backward(total, optimizers)
                clip = config.train.grad_clip_norm if config.train.grad_clip_norm > 0 else float("inf")
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                names = names or sorted(k for k in losses if k != "total") + ["total"]
                values = torch.stack([losses[k].detach().float() for k in names] + [grad_norm.detach().float()])
                out_of_time = t.max_minutes > 0 and (time.monotonic() - started) > t.max_minutes * 60
                # The step's one host sync: the values, checked and logged on the host.
                host_values = values.tolist()
                # fp16 loss scaling meets inf gradients by design: the scaler skips that step.
                checked = host_values[:-1] if precision.scales_loss else host_values
                if any_rank(ctx, not all(math.isfinite(v) for v in checked)):
                    bad = _non_finite_terms(names + ["grad_norm"], values)
                    consecutive_failures += 1
                    rollbacks += 1
                    model.load_state_dict(snapshot["model"])
                    for o, state, sched in zip(optimizers, snapshot["optimizer"], schedulers):
                        o.zero_grad(set_to_none=True)
                        o.load_state_dict(state)
                        for group, lr in zip(o.param_groups, sched.get_last_lr()):
                            group["lr"] = lr
                    message = (f"non-finite {', '.join(bad) or 'loss on another rank'} at step {step + 1}; "
                               f"rolled back to the checkpoint of step {snapshot['step']}")
                    log.warning(message)
                    writer.log_event(step + 1, "non_finite", message, terms=bad)
                    if consecutive_failures > t.max_nan_rollbacks:
                        raise ImfaceError(exp_dir, f"training diverged: {consecutive_failures} non-finite steps in a row "
                                          f"(last: {', '.join(bad)}); try a lower train.lr or train.grad_clip_norm")
                else:
                    consecutive_failures = 0
                    precision.step(optimizers)
                    mean = mean_over_ranks(ctx, values).tolist() if ctx.distributed else host_values
                    last_losses = dict(zip(names, mean[:-1]))
                    writer.log_step(step + 1, epoch, last_losses,
                                    {"networks": optimizers[0].param_groups[0]["lr"], "codes": optimizers[1].param_groups[0]["lr"]},
                                    float(mean[-1]), time.monotonic() - step_started)
                step += 1
                if step % steps_per_epoch == 0:
                    with warnings.catch_warnings():  # an epoch whose every step was rolled back is fine
                        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
                        for sched in schedulers:
                            sched.step()
                if bar is not None:
                    bar.update(1)
                    if last_losses:
                        bar.set_postfix({k: f"{v:.3g}" for k, v in last_losses.items() if k in ("total", "sdf", "normal")},
                                        refresh=False)
                if ctx.is_main and t.image_every_steps > 0 and step % t.image_every_steps == 0:
                    for scan in image_scans:
                        image = sdf_slice_image(model, model.identity_codes.weight[codes.identities[scan.identity]],
                                                model.expression_codes.weight[codes.expression_row(scan)], scan.neutral)
                        writer.log_image(f"sdf_slice/{scan.name}", image, step)
                if t.curve_every_steps > 0 and step % t.curve_every_steps == 0:
                    measure_curve()
                if t.checkpoint_every_steps > 0 and step % t.checkpoint_every_steps == 0:
                    save(step)
                signalled = signals.received is not None
                if any_rank(ctx, signalled or out_of_time or step >= total_steps):
                    if step >= total_steps:
                        stopped = "max_steps" if step < config.train.epochs * steps_per_epoch else "finished"
                    else:
                        stopped = "signal" if any_rank(ctx, signalled) else "max_minutes"
                    break
        if bar is not None:
            bar.close()
        if t.curve_every_steps > 0 and step % t.curve_every_steps != 0 and step > first_step:
            measure_curve()  # every run's curve ends at its last step (once: not again on a no-op resume)
        checkpoint = save(step) if last_saved != step else ckpt.checkpoint_path(exp_dir, step)
        if writer is not None and ctx.is_main:
            writer.close()
            plot_loss_curves(exp_dir / LOG_DIR / LOSSES_NAME, exp_dir / CURVES_NAME)
            plot_learning_curves(read_curves(exp_dir), exp_dir / CURVES_PNG)
        return TrainResult(exp_dir, step, step // steps_per_epoch, stopped, checkpoint, last_losses,
                           time.monotonic() - started, rollbacks)
    finally:
        if writer is not None:
            writer.close()
        shutdown(ctx)
