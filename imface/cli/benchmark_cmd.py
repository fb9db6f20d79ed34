"""``imface benchmark``: parse options into a BenchmarkConfig and call :func:`imface.benchmark.run_benchmark`."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def benchmark(
    data: Path = typer.Option(..., "--data", help="Processed dataset (manifest.json with a test split)."),
    exp_dir: Path = typer.Option(..., "--exp-dir", help="Benchmark folder: models, fits, scores, figures, report.md."),
    preset: str = typer.Option("cpu", "--preset", help="tiny (CI) | cpu (about an hour, 2 cores) | long (hours) | paper (GPU)."),
    variants: Optional[str] = typer.Option(
        None, "--variants", help="Comma list of ImFace variants: full, no-extend, no-blend, no-dist, i3dmm-like, full-2x64."
    ),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Comma list of training/fitting seeds."),
    train_steps: Optional[int] = typer.Option(None, "--train-steps", min=1, help="Training steps per variant and seed."),
    test_scans: Optional[int] = typer.Option(None, "--test-scans", min=0, help="Held-out scans to fit and score (0: all)."),
    overrides: List[str] = typer.Option([], "--set", help="Training config override for every variant, e.g. train.lr=1e-3."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show training progress bars."),
    workers: Optional[int] = typer.Option(
        None, "--workers", min=1, help="Processes for baseline fits and scoring (default: the --threads count)."),
) -> None:
    """Train ImFace and its ablations, build and fit the baselines, score them all, and write report.md.

    Re-running the same command resumes; a folder holding another config is refused.
    """
    from imface.benchmark import benchmark_preset, run_benchmark
    from imface.cli.parsing import int_list
    from imface.errors import ImfaceError

    if device not in ("auto", "cpu", "cuda"):
        raise ImfaceError(None, f"--device must be auto, cpu or cuda, got {device!r}")
    config = benchmark_preset(preset)
    if variants is not None:
        config.variants = [v.strip() for v in variants.split(",") if v.strip()]
    if seeds is not None:
        config.seeds = int_list(seeds, "--seeds")
    if train_steps is not None:
        config.train_steps = train_steps
    if test_scans is not None:
        config.test_scans = test_scans
    config.train_overrides = list(overrides)
    report = run_benchmark(data, exp_dir, config, device=device, progress=progress, workers=workers)
    typer.echo(f"report: {report}")
