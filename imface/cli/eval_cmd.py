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
    sheet: bool = typer.Option(True, "--sheet/--no-sheet", help="Also write OUT/sheet.png: target | fit | error per scan."),
) -> None:
    """Chamfer, F-score and normal consistency per scan, with mean/median per expression and seen/unseen."""
    from imface.eval.evaluate import evaluate_folder

    summary = evaluate_folder(fits, out, data_dir=data, recon_name=recon_name, num_points=points, seed=seed,
                              crop=crop)
    for result in summary.failed:
        typer.echo(f"failed {result.name}: {result.error}", err=True)
    if summary.scored:
        typer.echo(summary.table())
        if sheet:
            typer.echo(f"pictures: {write_eval_sheet(summary)}")
    typer.echo(f"{len(summary.scored)} of {len(summary.results)} scan(s) scored; summary in {summary.out_dir / 'summary.json'}")
    if summary.failed:
        raise typer.Exit(2)


def write_eval_sheet(summary) -> Path:
    """One row per scored scan (target | reconstruction cropped like it | error; front and side)."""
    from imface.fitting.inputs import read_input_geometry
    from imface.fitting.preview import preview_row, write_sheet
    from imface.io.mesh import read_mesh

    rows, labels = [], []
    for result in summary.scored:
        target_vertices, _, target_faces = read_input_geometry(Path(result.ground_truth))
        recon = read_mesh(Path(result.reconstruction))
        cells, median = preview_row(target_vertices, target_faces, recon.vertices, recon.faces)
        rows.append(cells)
        labels.append(f"{result.name}\nChamfer {result.metrics['chamfer_mm']:.2f} mm, median {median:.2f} mm")
    return write_sheet(summary.out_dir / "sheet.png", rows, labels, f"{len(rows)} scan(s) scored")
