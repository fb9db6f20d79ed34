"""``imface eval``: reconstruction metrics (authors' protocol) over a fits folder."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def eval_(
    fits: Path = typer.Option(..., "--fits", help="Fits folder (fits.json) or a folder laid out <scan>/<recon-name>."),
    data: Optional[Path] = typer.Option(
        None, "--data", help="Processed dataset: ground truths <data>/<scan>/mesh.ply and the seen/unseen split."
    ),
    recon_name: str = typer.Option("mesh.ply", "--recon-name", help="Reconstruction file in each scan folder."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default <fits>/eval)."),
    points: int = typer.Option(250_000, "--points", min=1, help="Surface samples per mesh."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    crop: bool = typer.Option(True, "--crop/--no-crop", help="Crop reconstructions like the ground truth first."),
) -> None:
    """Chamfer, F-score and normal consistency per scan, with mean/median per expression and seen/unseen."""
    from imface.eval.evaluate import evaluate_folder

    summary = evaluate_folder(fits, out, data_dir=data, recon_name=recon_name, num_points=points, seed=seed,
                              crop=crop)
    for result in summary.failed:
        typer.echo(f"failed {result.name}: {result.error}", err=True)
    if summary.scored:
        typer.echo(summary.table())
    typer.echo(f"{len(summary.scored)} of {len(summary.results)} scan(s) scored; summary in {summary.out_dir / 'summary.json'}")
    if summary.failed:
        raise typer.Exit(2)
