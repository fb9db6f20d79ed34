"""``imface check-data``: print the sanity report of a processed dataset; exit 2 on problems."""
from __future__ import annotations

from pathlib import Path

import typer


def check_data(
    data_dir: Path = typer.Argument(..., help="Processed dataset folder (with manifest.json)."),
    max_surface_checks: int = typer.Option(
        20_000, "--max-surface-checks", min=1, help="Surface points per scan checked against mesh.ply."
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes checking scans in parallel."),
) -> None:
    """Check a processed dataset: shapes, finite values, SDF signs, landmarks, neutral scans."""
    from imface.preprocess.check import check_dataset

    report = check_dataset(data_dir, max_surface_checks=max_surface_checks, workers=workers)
    typer.echo(report.format())
    if not report.ok:
        raise typer.Exit(2)
