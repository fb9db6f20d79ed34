"""``imface check-data``: print the sanity report of a processed dataset; exit 2 on problems."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imface.cli.deprecated import renamed
from imface.cli.options import opt, required


def check_data(
    data: Optional[Path] = opt("--data", None, "Required."),
    max_surface_checks: int = typer.Option(
        20_000, "--max-surface-checks", min=1, help="Surface points per scan checked against its mesh."
    ),
    workers: int = opt("--workers", 1, "Scans checked at once."),
    old_data: Optional[Path] = typer.Argument(None, hidden=True, metavar="DATA"),
) -> None:
    """Check a processed dataset: shapes, finite values, SDF signs, landmarks, neutral scans."""
    from imface.preprocess.check import check_dataset  # heavy imports here keep `imface --help` fast

    data = required(renamed(data, old_data, "--data DATA", "DATA (positional)"), "--data")
    report = check_dataset(data, max_surface_checks=max_surface_checks, workers=workers)
    typer.echo(report.format())
    if not report.ok:
        raise typer.Exit(2)
