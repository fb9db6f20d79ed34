"""``imface baseline build|fit``: the PCA, bilinear and FLAME-like 3DMM baselines."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from imface.cli.deprecated import hidden, renamed
from imface.cli.options import opt
from imface.cli.parsing import NONE, int_list, name_list
from imface.errors import ImfaceError

app = typer.Typer(no_args_is_help=True, help="Linear, bilinear and FLAME-like morphable-model baselines.",
                  rich_markup_mode=None)


def _pair(text: str, option: str) -> tuple[int, int] | None:
    if text.strip().lower() == NONE:
        return None
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ImfaceError(None, f"{option} expects 'identity,expression' ranks or 'none', got {text!r}")
    return int(parts[0]), int(parts[1])


@app.command("build")
def build(
    data: Path = opt("--data", ..., "The training split's registered meshes are used."),
    out: Path = opt("--out", ..., "The models and their index."),
    pca_sizes: str = typer.Option("32,64,128,256", "--pca-sizes", help="PCA model sizes: a comma list, or none."),
    bilinear: str = typer.Option("32,16", "--bilinear", help="Bilinear ranks 'identity,expression', or none."),
    flame: str = typer.Option("32,32", "--flame", help="FLAME-like ranks 'identity,expression', or none."),
) -> None:
    """Build the baselines from the training split's registered meshes."""
    from imface.baselines import build_baselines  # heavy imports here keep `imface --help` fast

    built = build_baselines(data, out, pca_sizes=tuple(int_list(pca_sizes, "--pca-sizes") or ()),
                            bilinear=_pair(bilinear, "--bilinear"), flame=_pair(flame, "--flame"))
    for name, path in built.models.items():
        typer.echo(f"built {name}: {path}")
    for name, note in built.notes.items():
        typer.echo(f"note {name}: {note}")


@app.command("fit")
def fit(
    model: Path = opt("--model", ..., "A baseline model (from imface baseline build)."),
    data: Optional[Path] = opt("--data", None, "Its scans are fitted (or --in)."),
    inputs: Optional[List[Path]] = opt(
        "--in", None, "Raw meshes (.obj/.ply/.off/.stl) or point sets (.npy/.xyz/.txt/.ply), or folders of them, "
        "handled as imface fit handles them (unit, pose, crop). Repeatable; instead of --data."),
    out: Path = opt("--out", ..., "The fits folder (with --in: laid out as imface fit's)."),
    split: str = opt("--split"),
    scans: Optional[str] = opt("--scans", None, "Default: the whole split."),
    scan_points: int = typer.Option(20000, "--scan-points", min=100, help="Points sampled on each scan for its fit."),
    seed: int = opt("--seed", 0, "Of the surface sampling."),
    unit: str = opt("--unit", "auto", "Of the --in inputs: auto (any unit or size) | model | mm | cm | m."),
    pose: str = opt("--pose", "auto", "With --in."),
    preview: bool = opt("--preview", False, "With --in: preview.png per scan and a contact sheet."),
    progress: bool = opt("--progress", detail="One line per fitted scan."),
    old_points: Optional[int] = hidden("--points"),
) -> None:
    """Fit a baseline to processed scans (--data) or to raw meshes and point sets (--in).

    Score the fits with imface eval --fits OUT: both write a fits folder (fits.json). With --in, an
    input refused (not a face, a bad file) or failed is one line, the others are fitted, and the
    exit code is 2.
    """
    from imface.baselines import fit_baseline  # heavy imports here keep `imface --help` fast
    from imface.baselines.io import write_baseline_index
    from imface.baselines.selection import select_scans
    from imface.contracts.dataset import read_manifest
    from imface.fitting.baseline import fit_baseline_inputs
    from imface.fitting.gather import InputReport

    scan_points = renamed(scan_points, old_points, "--scan-points", "--points", 20000)
    if (data is None) == (not inputs):
        raise ImfaceError(None, "give either --data (a processed dataset) or --in (raw meshes or point sets)")
    if inputs:
        report = InputReport()
        rows = fit_baseline_inputs(model, inputs, out, unit=unit, pose=pose, points=scan_points, seed=seed,
                                   preview=preview, report=report)
        for row in rows if progress else []:
            found = row["alignment"]
            scale = "" if found is None else f", {found['mm_per_input_unit']:.4g} mm per input unit ({row['unit']})"
            typer.echo(f"fitted {row['name']}: rms {row['rms']:.4g} ({row['seconds']:.1f} s{scale})")
        for problem in report.problems:
            typer.echo(problem.line, err=True)
        typer.echo(f"baseline fit: {len(rows)} fitted, {len(report.with_status('refused'))} refused, "
                   f"{len(report.with_status('failed'))} failed" + (f"; score with: imface eval --fits {out}" if rows else ""))
        if report.problems:
            raise typer.Exit(2)
        return
    manifest = read_manifest(data)
    names = select_scans(manifest, split, name_list(scans, "--scans"))
    for name in names:
        result = fit_baseline(model, manifest.folder(name), out / name, points=scan_points, seed=seed)
        if progress:
            typer.echo(f"fitted {name}: rms {result.history[-1]['rms']:.4g} ({result.seconds:.1f} s)")
    write_baseline_index(out, model, manifest, names)
