"""The training loop of one :func:`imface.training.trainer.train` call, in named steps.

:class:`TrainingRun` holds what the steps share: the model (and its DDP wrapper), optimisers and
schedulers, the data loader, the writer, the in-memory checkpoint a non-finite step rolls back
to, and the clock. ``begin`` writes the start of the run, ``run_steps`` optimises until a stop
(end, ``max_steps``, ``max_minutes`` or a signal; every rank agrees on it), and ``finish``
writes the end. Only rank 0 writes files.
"""
from __future__ import annotations

import logging
import math
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler
from tqdm.auto import tqdm

import imface.losses
from imface.config.experiment import ExperimentConfig
from imface.dataset import CodeTables, EpochBatchSampler, FaceScanDataset
from imface.errors import ImfaceError
from imface.threads import get_threads
from imface.training import checkpoint as ckpt
from imface.training.curves import CURVES_PNG, CurveProbe, curve_record, plot_learning_curves, read_curves
from imface.training.distributed import DistributedContext, any_rank, barrier, mean_over_ranks
from imface.training.precision import Precision
from imface.training.writer import CURVES_NAME, LOG_DIR, LOSSES_NAME, RunWriter, plot_loss_curves, sdf_slice_image

log = logging.getLogger(__name__)


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


class TrainingRun:
    """The state of one training call from its first step to its last (see the module docstring).

    training: (model, optimisers [networks, codes], their lr schedulers), already restored when
    resuming; step: the step to start from; resumed_seconds: training time of earlier calls (or
    of the template warm start); resumed: this call continues a saved run.
    """

    def __init__(self, config: ExperimentConfig, exp_dir: Path, ctx: DistributedContext, precision: Precision,
                 dataset: FaceScanDataset, codes: CodeTables, per_rank: int, training: tuple, *, step: int,
                 resumed_seconds: float, resumed: bool, progress: bool) -> None:
        self.config, self.exp_dir, self.ctx, self.precision = config, exp_dir, ctx, precision
        self.dataset, self.codes, self.per_rank, self.progress = dataset, codes, per_rank, progress
        self.model, self.optimizers, self.schedulers = training
        self.step, self.resumed_seconds, self.fresh = step, resumed_seconds, not resumed
        self.ddp = self.model
        if ctx.distributed:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
        self.sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                          seed=config.train.seed, drop_last=True)
        self.steps_per_epoch = len(BatchSampler(self.sampler, per_rank, drop_last=True))
        self.total_steps = config.train.epochs * self.steps_per_epoch
        if config.train.max_steps > 0:
            self.total_steps = min(self.total_steps, config.train.max_steps)
        # SDF slices of the first neutral and the first non-neutral training scan.
        self.image_scans = [s for s in (next((s for s in dataset.scans if s.neutral), None),
                                        next((s for s in dataset.scans if not s.neutral), None)) if s is not None]
        # The in-memory copy of the last checkpoint that a non-finite step rolls back to (every rank keeps one).
        self.snapshot: dict[str, Any] = {}
        if resumed:
            self.snapshot = {"model": ckpt.model_state(self.model), "optimizer": _optimizer_states(self.optimizers),
                             "step": step}
        self.last_saved = step if resumed else -1
        self.names: list[str] | None = None
        self.last_losses: dict[str, float] = {}
        self.rollbacks = self.consecutive_failures = 0
        self.bar: Any = None
        self.loader: DataLoader | None = None
        self.probe: CurveProbe | None = None
        self.first_step = step
        self.writer = RunWriter(exp_dir, enabled=ctx.is_main, start_step=step)
        self.clock = {"start": time.monotonic(), "probe": 0.0}

    def train_seconds(self) -> float:
        """Wall time of this run's training so far (all runs of the folder), probe time excluded."""
        return self.resumed_seconds + time.monotonic() - self.clock["start"] - self.clock["probe"]

    def save(self, at_step: int) -> Path:
        """Checkpoint ``at_step`` (weights, resume state; rank 0 writes) and make it the rollback target."""
        self.snapshot = {"model": ckpt.model_state(self.model), "optimizer": _optimizer_states(self.optimizers),
                         "step": at_step}
        path = ckpt.checkpoint_path(self.exp_dir, at_step)
        if self.ctx.is_main:
            ckpt.save_weights(path, self.snapshot["model"], {"step": str(at_step), "format": "imface-checkpoint-1"})
            ckpt.save_resume_state(self.exp_dir, {
                "step": at_step, "epoch": at_step // self.steps_per_epoch, "weights_step": at_step,
                "optimizer": [o.state_dict() for o in self.optimizers],
                "scheduler": [sc.state_dict() for sc in self.schedulers],
                "rng": ckpt.capture_rng_state(), "world_size": self.ctx.world_size,
                "train_seconds": self.train_seconds(),
            })
            ckpt.prune_checkpoints(self.exp_dir, self.config.train.keep_checkpoints, protect=at_step)
        barrier(self.ctx)
        self.last_saved = at_step
        return path

    def measure_curve(self) -> None:
        """One point of the learning curve (rank 0 with a probe); its time is not training time."""
        if self.probe is not None:
            figures = self.probe.measure(self.model)
            self.clock["probe"] += figures["seconds"]
            self.writer.log_curve(curve_record(self.step, self.step // self.steps_per_epoch, self.train_seconds(),
                                               figures))

    def begin(self, warmup: list[float], resume: bool, resuming: bool) -> None:
        """Log the warm start, checkpoint step 0 of a new run, and open the bar, loader and probe."""
        t = self.config.train
        if warmup:
            self.writer.log_event(0, "template_warmup", f"TempNet pre-fit to the mean neutral face: {len(warmup)} "
                                  f"steps, loss {warmup[0]:.4g} -> {warmup[-1]:.4g}")
        if self.fresh:
            self.save(self.step)  # step 0: a rollback target and a resume point from the start
        if self.ctx.is_main and resume and not resuming:
            log.info("nothing to resume in %s; starting a new run", self.exp_dir)
        if self.ctx.is_main and self.progress:
            self.bar = tqdm(total=self.total_steps, initial=self.step, unit="step", dynamic_ncols=True, desc="train")
        workers = _num_workers(self.config)
        self.loader = DataLoader(self.dataset,
                                 batch_sampler=EpochBatchSampler(self.sampler, self.per_rank, self.step, self.total_steps),
                                 num_workers=workers, worker_init_fn=_ignore_interrupts,
                                 pin_memory=self.ctx.device.type == "cuda", persistent_workers=workers > 0,
                                 prefetch_factor=4 if workers > 0 else None)
        if self.ctx.is_main and t.curve_every_steps > 0 and t.curve_scans > 0:
            self.probe = CurveProbe(self.dataset, self.codes, t.curve_scans, t.curve_resolution, self.ctx.device)
        self.first_step = self.step
        if self.fresh:
            self.measure_curve()  # the curve starts at step 0

    def run_steps(self, started: float) -> str:
        """Optimise until every rank agrees to stop; returns finished | max_steps | max_minutes | signal.

        started: time.monotonic() when the call began (``train.max_minutes`` counts from it).
        """
        t = self.config.train
        stopped = "finished"
        with _StopSignals() as signals:
            for batch in self.loader:
                epoch = self.step // self.steps_per_epoch
                step_started = time.monotonic()
                values = self._forward_backward(batch)
                out_of_time = t.max_minutes > 0 and (time.monotonic() - started) > t.max_minutes * 60
                # The step's one host sync: the values, checked and logged on the host.
                host_values = values.tolist()
                # fp16 loss scaling meets inf gradients by design: the scaler skips that step.
                checked = host_values[:-1] if self.precision.scales_loss else host_values
                if any_rank(self.ctx, not all(math.isfinite(v) for v in checked)):
                    self._roll_back(values)
                else:
                    self._apply(values, host_values, epoch, step_started)
                self.step += 1
                self._after_step()
                signalled = signals.received is not None
                if any_rank(self.ctx, signalled or out_of_time or self.step >= self.total_steps):
                    if self.step >= self.total_steps:
                        stopped = "max_steps" if self.step < t.epochs * self.steps_per_epoch else "finished"
                    else:
                        stopped = "signal" if any_rank(self.ctx, signalled) else "max_minutes"
                    break
        return stopped

    def _forward_backward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Losses and gradients of one batch (clipped); returns the (terms + 1,) tensor of the loss
        terms in ``self.names`` order and the gradient norm, still on the device."""
        batch = {k: v.to(self.ctx.device, non_blocking=True) for k, v in batch.items()}
        for o in self.optimizers:
            o.zero_grad(set_to_none=True)
        with self.precision.autocast():
            outputs = self.ddp(batch)
        # Looked up on the module at each step, so a replaced compute_losses (tests) is the one used.
        losses = imface.losses.compute_losses(outputs, batch, self.config.loss, self.config.model)
        losses = {k: torch.as_tensor(v, device=self.ctx.device, dtype=torch.float32) for k, v in losses.items()}
        total = losses["total"] if "total" in losses else torch.stack(list(losses.values())).sum()
        # Backward even on a non-finite loss, so every DDP rank runs the same collectives.
        self.precision.backward(total, self.optimizers)
        clip = self.config.train.grad_clip_norm if self.config.train.grad_clip_norm > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.names = self.names or sorted(k for k in losses if k != "total") + ["total"]
        return torch.stack([losses[k].detach().float() for k in self.names] + [grad_norm.detach().float()])

    def _roll_back(self, values: torch.Tensor) -> None:
        """A non-finite step on some rank: back to the last checkpoint, or stop after too many in a row."""
        bad = _non_finite_terms(self.names + ["grad_norm"], values)
        self.consecutive_failures += 1
        self.rollbacks += 1
        self.model.load_state_dict(self.snapshot["model"])
        for o, state, sched in zip(self.optimizers, self.snapshot["optimizer"], self.schedulers):
            o.zero_grad(set_to_none=True)
            o.load_state_dict(state)
            for group, lr in zip(o.param_groups, sched.get_last_lr()):
                group["lr"] = lr
        message = (f"non-finite {', '.join(bad) or 'loss on another rank'} at step {self.step + 1}; "
                   f"rolled back to the checkpoint of step {self.snapshot['step']}")
        log.warning(message)
        self.writer.log_event(self.step + 1, "non_finite", message, terms=bad)
        if self.consecutive_failures > self.config.train.max_nan_rollbacks:
            raise ImfaceError(self.exp_dir, f"training diverged: {self.consecutive_failures} non-finite steps in a "
                              f"row (last: {', '.join(bad)}); try a lower train.lr or train.grad_clip_norm")

    def _apply(self, values: torch.Tensor, host_values: list[float], epoch: int, step_started: float) -> None:
        """A finite step: update the weights and log the losses (mean over ranks)."""
        self.consecutive_failures = 0
        self.precision.step(self.optimizers)
        mean = mean_over_ranks(self.ctx, values).tolist() if self.ctx.distributed else host_values
        self.last_losses = dict(zip(self.names, mean[:-1]))
        lrs = {"networks": self.optimizers[0].param_groups[0]["lr"], "codes": self.optimizers[1].param_groups[0]["lr"]}
        self.writer.log_step(self.step + 1, epoch, self.last_losses, lrs, float(mean[-1]),
                             time.monotonic() - step_started)

    def _after_step(self) -> None:
        """What follows a step: the epoch's lr decay, the bar, SDF slices, a curve point, a checkpoint."""
        t = self.config.train
        if self.step % self.steps_per_epoch == 0:
            with warnings.catch_warnings():  # an epoch whose every step was rolled back is fine
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
                for sched in self.schedulers:
                    sched.step()
        if self.bar is not None:
            self.bar.update(1)
            if self.last_losses:
                self.bar.set_postfix({k: f"{v:.3g}" for k, v in self.last_losses.items()
                                      if k in ("total", "sdf", "normal")}, refresh=False)
        if self.ctx.is_main and t.image_every_steps > 0 and self.step % t.image_every_steps == 0:
            for scan in self.image_scans:
                image = sdf_slice_image(self.model, self.model.identity_codes.weight[self.codes.identities[scan.identity]],
                                        self.model.expression_codes.weight[self.codes.expression_row(scan)],
                                        scan.neutral)
                self.writer.log_image(f"sdf_slice/{scan.name}", image, self.step)
        if t.curve_every_steps > 0 and self.step % t.curve_every_steps == 0:
            self.measure_curve()
        if t.checkpoint_every_steps > 0 and self.step % t.checkpoint_every_steps == 0:
            self.save(self.step)

    def finish(self) -> Path:
        """The last curve point and checkpoint, the writer closed and the plots drawn (rank 0);
        returns the last checkpoint's path."""
        if self.bar is not None:
            self.bar.close()
        t = self.config.train
        if t.curve_every_steps > 0 and self.step % t.curve_every_steps != 0 and self.step > self.first_step:
            self.measure_curve()  # every run's curve ends at its last step (once: not again on a no-op resume)
        checkpoint = self.save(self.step) if self.last_saved != self.step else ckpt.checkpoint_path(self.exp_dir, self.step)
        if self.ctx.is_main:
            self.writer.close()
            plot_loss_curves(self.exp_dir / LOG_DIR / LOSSES_NAME, self.exp_dir / CURVES_NAME)
            plot_learning_curves(read_curves(self.exp_dir), self.exp_dir / CURVES_PNG)
        return checkpoint
