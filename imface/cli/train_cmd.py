"""``imface train``: parse options into an ExperimentConfig and call :func:`imface.training.trainer.train`."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import List, Optional

import typer

from imface.cli.deprecated import hidden, renamed
from imface.cli.options import check_device, opt, required
from imface.cli.parsing import joined_list
from imface.errors import ImfaceError


def train(
    data: Path = opt("--data", ...),
    out: Optional[Path] = opt("--out", None, "The experiment folder (config, checkpoints, codes, logs). Required."),
    preset: Optional[str] = opt(
        "--preset", None, "One of tiny | cpu | gpu | paper (default: cpu, or the folder's own config with --resume)."
    ),
    config: Optional[Path] = typer.Option(None, "--config", help="Start from this experiment config file instead of a preset."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Stop after this many steps in total."),
    max_minutes: Optional[float] = typer.Option(
        None, "--max-minutes", min=0.0, help="Stop (with a checkpoint) after this many minutes; 0: no limit."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    device: str = opt("--device", detail="Under torchrun: one GPU per local rank."),
    seed: Optional[int] = opt("--seed", None, "Of the initial weights and the data sampling (default: the config's)."),
    precision: Optional[str] = typer.Option(
        None, "--precision", help="Training precision: fp32 | tf32 | bf16 | fp16 (train.precision; fp16 needs CUDA; TF32 "
        "only acts on CUDA)."
    ),
    ablation: List[str] = typer.Option(
        [], "--ablation", help="Parts to remove: a comma list of no-dist, no-blend, no-extend (all three: i3DMM-like)."
    ),
    overrides: List[str] = opt("--set", [], "E.g. --set train.lr=1e-3 --set model.warp=translation."),
    progress: bool = opt("--progress"),
    old_exp_dir: Optional[Path] = hidden("--exp-dir"),
) -> None:
    """Train ImFace (auto-decoder) on a processed dataset. Ctrl-C checkpoints and stops; --resume continues."""
    # heavy imports here keep `imface --help` fast
    from imface.config import experiment as cfg
    from imface.contracts.experiment import CONFIG_NAME
    from imface.training.trainer import train as run_training

    exp_dir = required(renamed(out, old_exp_dir, "--out", "--exp-dir"), "--out")
    check_device(device)
    if preset is not None and config is not None:
        raise ImfaceError(None, "give either --preset or --config, not both")
    saved = exp_dir / CONFIG_NAME
    if config is not None:
        experiment = cfg.load_config(config)
    elif preset is not None:
        experiment = cfg.preset(preset)
    elif resume and saved.is_file():
        # max_steps bounds one call; the folder's saved value would stop a resumed run at once.
        experiment = cfg.set_field(cfg.load_config(saved), "train.max_steps", 0)
    else:
        experiment = cfg.preset("cpu")
    experiment = cfg.apply_ablations(experiment, joined_list(ablation, "--ablation"))
    experiment = cfg.apply_overrides(experiment, overrides)
    if seed is not None:
        experiment = cfg.set_field(experiment, "train.seed", seed)
    if precision is not None:
        experiment = cfg.set_field(experiment, "train.precision", precision)
    if max_steps is not None:
        experiment = cfg.set_field(experiment, "train.max_steps", max_steps)
    if max_minutes is not None:
        experiment = cfg.set_field(experiment, "train.max_minutes", max_minutes)

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    result = run_training(experiment, data, exp_dir, resume=resume, device=device, progress=progress)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return
    summary = ", ".join(f"{k} {v:.4g}" for k, v in result.losses.items() if k in ("total", "sdf", "normal", "eikonal"))
    typer.echo(f"{result.stopped} at step {result.step} (epoch {result.epoch}) in {result.seconds:.0f} s"
               f"{'; ' + summary if summary else ''}")
    if result.rollbacks:
        typer.echo(f"{result.rollbacks} non-finite step(s) were rolled back (see {exp_dir}/logs/events.jsonl)")
    typer.echo(f"checkpoint: {result.checkpoint}")
    if result.stopped in ("max_minutes", "signal", "max_steps"):
        typer.echo(f"continue with: imface train --data {data} --out {exp_dir} --resume")
