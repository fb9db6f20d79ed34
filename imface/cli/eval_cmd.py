"""``imface eval``: reconstruction metrics over a fits folder (authors' protocol; a raw input's fit
against its own input, within the input's footprint, as ``imface fit`` scores it)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imface.cli.deprecated import hidden, renamed, renamed_flag
from imface.cli.options import opt


def eval_(
    fits: Path = opt("--fits", ..., "Or any folder laid out <scan>/<recon-name>."),
    data: Optional[Path] = opt("--data", None, "Its scans' meshes are the ground truths, and its manifest gives the "
                               "seen/unseen split (default: the scans the fits name)."),
    recon_name: Optional[str] = typer.Option(None, "--recon-name", help="Reconstruction file in each scan folder "
                                             "(default: the fitted mesh)."),
    out: Optional[Path] = opt("--out", None, "Scores and summary (default: <fits>/eval)."),
    metric_points: int = typer.Option(250_000, "--metric-points", min=1, help="Surface samples per mesh for the metrics."),
    seed: int = opt("--seed", 0, "Of the surface sampling."),
    crop: bool = typer.Option(True, "--crop/--no-crop", help="Crop reconstructions like the ground truth first."),
    preview: bool = opt("--preview", True, "A contact sheet OUT/sheet.png, target | fit | error per scan."),
    old_points: Optional[int] = hidden("--points"),
    old_sheet: Optional[bool] = hidden("--sheet/--no-sheet"),
) -> None:
    """Chamfer, F-score and normal consistency per scan, with mean/median per expression and seen/unseen.
    Fits of raw scans without --data: scored against their own input within its footprint, both
    ways (input->fit, fit->input), in mm, or in input units where the input's unit is arbitrary."""
    # heavy imports here keep `imface --help` fast
    from imface.contracts.fits import MESH_NAME
    from imface.eval.evaluate import evaluate_folder, write_eval_sheet

    metric_points = renamed(metric_points, old_points, "--metric-points", "--points", 250_000)
    preview = renamed_flag(preview, old_sheet, "--preview", "--sheet", True)
    summary = evaluate_folder(fits, out, data_dir=data, recon_name=recon_name or MESH_NAME, num_points=metric_points,
                              seed=seed, crop=crop)
    for result in summary.failed:
        typer.echo(f"failed {result.name}: {result.error}", err=True)
    if summary.scored:
        typer.echo(summary.table())
        apart = summary.overall.get("in_input_units", 0)
        if apart:
            typer.echo(f"{apart} scan(s) in an arbitrary unit: their distances are in input units (in "
                       f"{summary.out_dir}/<scan>.json), left out of the mm columns")
        if preview:
            typer.echo(f"pictures: {write_eval_sheet(summary)}")
    typer.echo(f"{len(summary.scored)} of {len(summary.results)} scan(s) scored; summary in {summary.out_dir / 'summary.json'}")
    if summary.failed:
        raise typer.Exit(2)
