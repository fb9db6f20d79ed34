"""``imface benchmark``: parse options into a BenchmarkConfig and call :func:`imface.benchmark.run_benchmark` (or, with
``--dry-run``, :func:`imface.benchmark.run.dry_run_benchmark`)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from imface.cli.deprecated import hidden, renamed
from imface.cli.options import check_device, opt, required
from imface.cli.parsing import int_list, name_list


def benchmark(
    data: Path = opt("--data", ..., "Needs a test split."),
    out: Optional[Path] = opt("--out", None, "The benchmark folder (models, fits, scores, figures, report.md). "
                              "Required."),
    preset: str = opt("--preset", "cpu", "One of tiny | cpu | long | paper (their costs are above)."),
    variants: Optional[str] = typer.Option(
        None, "--variants", help="ImFace variants to train: a comma list of full, no-extend, no-blend, no-dist, "
        "i3dmm-like, full-2x64 (default: the preset's)."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Training and fitting seeds: a comma list "
                                        "(default: the preset's)."),
    train_steps: Optional[int] = typer.Option(None, "--train-steps", min=1, help="Training steps per variant and seed."),
    test_scans: Optional[int] = typer.Option(None, "--test-scans", min=0, help="Held-out scans to fit and score (0: all)."),
    overrides: List[str] = opt("--set", [], "For the training of every variant, e.g. train.lr=1e-3."),
    device: str = opt("--device"),
    progress: bool = opt("--progress"),
    workers: Optional[int] = opt("--workers", None, "Baseline fits and scoring (default: the --threads count)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Run every stage small (two test scans, a few steps) in a "
                                 "temporary folder, then stop; --out is not written."),
    old_exp_dir: Optional[Path] = hidden("--exp-dir"),
) -> None:
    """Train ImFace and its ablations, build and fit the baselines, score them all, and write report.md.

    Re-running the same command resumes; a folder holding another config is refused. Before any
    training it checks what every stage needs (registered meshes, test and validation scans,
    baselines, disk, device) and stops with one line on the first problem.

    \b
    Presets: variants x seeds x training steps, and the time they take
      tiny   5 x 1 x 30       minutes on 2 CPU cores (CI; a tiny network)
      cpu    4 x 2 x 500      56 min on 2 CPU cores (measured: make benchmark)
      long   6 x 3 x 8,000    1-2 days on 2 CPU cores (estimate)
      paper  6 x 1 x 100,000  15-44 h on one H100 GPU (estimate: see
                              docs/facescape.md)
    """
    from imface.benchmark import benchmark_preset, run_benchmark  # heavy imports here keep `imface --help` fast
    from imface.benchmark.run import dry_run_benchmark  # heavy as well: kept out of `imface --help`

    out = required(renamed(out, old_exp_dir, "--out", "--exp-dir"), "--out")
    device = check_device(device)
    config = benchmark_preset(preset)
    if variants is not None:
        config.variants = name_list(variants, "--variants") or []
    if seeds is not None:
        config.seeds = int_list(seeds, "--seeds") or []
    if train_steps is not None:
        config.train_steps = train_steps
    if test_scans is not None:
        config.test_scans = test_scans
    config.train_overrides = list(overrides)
    if dry_run:
        result = dry_run_benchmark(data, out, config, device=device, progress=progress, workers=workers)
        typer.echo(result.summary(config))
        return
    report = run_benchmark(data, out, config, device=device, progress=progress, workers=workers)
    typer.echo(f"report: {report}")
