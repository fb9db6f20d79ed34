"""``imface data``: the built-in face data (BFM 2009 or ICT-FaceKit + the non-linear generator)."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Optional

import typer

from imface.builtin.registry import SOURCES, SourceEntry
from imface.cli.options import opt
from imface.errors import ImfaceError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False, rich_markup_mode=None)


@app.callback()
def _data() -> None:
    """Built-in face data."""


def _write_and_report(name: str, out: Optional[Path], identities: int, expressions: str, seed: int, noise: float,
                      holes: int, workers: int, report: bool, report_identities: int, report_heldout: int,
                      report_scans: int, progress: bool, source_path: Optional[Path] = None) -> None:
    """What `data bfm` and `data ict` do, on the face source ``name``."""
    # heavy imports here keep `imface --help` fast
    from tqdm import tqdm

    from imface.builtin.nonlinearity import nonlinearity_report
    from imface.builtin.registry import load_source
    from imface.builtin.write import ScanOptions, parse_expressions, write_dataset

    if out is None and not report:
        raise ImfaceError(None, "nothing to do: give --out DIR and/or --report")
    face_source = load_source(name, source=source_path)  # download and check before any progress bar
    if out is not None:
        total = identities * len(parse_expressions(expressions))
        with tqdm(total=total, desc=name, unit="scan", disable=not progress) as bar:
            summary = write_dataset(out, identities=identities, expressions=expressions, seed=seed,
                                    options=ScanOptions(noise_mm=noise, holes=holes), workers=workers,
                                    progress=lambda done: bar.update(done - bar.n), source=name,
                                    source_path=source_path)
        typer.echo(f"{summary.out}: {summary.identities} identities x {summary.expressions} expressions, "
                   f"{summary.written} scans written, {summary.skipped} already there, {summary.seconds:.1f} s")
    if report:
        result = nonlinearity_report(face_source, train_identities=report_identities,
                                     heldout_identities=report_heldout, scans=report_scans, seed=seed)
        for line in result.lines():
            typer.echo(line)


_OUT = opt("--out", None, "The raw scanner-style dataset.")
_NOISE = typer.Option(0.05, "--noise", min=0.0, help="Scan noise along the normals, mm (std).")
_HOLES = typer.Option(3, "--holes", min=0, help="Random disc-shaped holes per scan, away from landmarks.")
_REPORT = typer.Option(False, "--report", help="Print the held-out PCA residual of expression displacements.")
_REPORT_IDS = typer.Option(100, "--report-identities", min=2, help="Training identities for --report.")
_REPORT_HELDOUT = typer.Option(20, "--report-heldout", min=1, help="Held-out identities for --report.")
_REPORT_SCANS = typer.Option(1, "--report-scans", min=1, help="Scans per (identity, expression) for --report.")


def _add_source_command(name: str, entry: SourceEntry) -> None:
    """``imface data NAME``: one command per registered face source, with the same options
    (``--source`` only where the source has a local copy)."""

    def command(
        out: Optional[Path] = _OUT,
        identities: int = opt("--identities", 12),
        expressions: str = opt("--expressions"),
        seed: int = opt("--seed", 0),
        noise: float = _NOISE,
        holes: int = _HOLES,
        workers: int = opt("--workers", 1, "Scans are written by identity."),
        report: bool = _REPORT,
        report_identities: int = _REPORT_IDS,
        report_heldout: int = _REPORT_HELDOUT,
        report_scans: int = _REPORT_SCANS,
        source: Optional[Path] = typer.Option(None, "--source", help=entry.local_copy or ""),
        progress: bool = opt("--progress"),
    ) -> None:
        _write_and_report(name, out, identities, expressions, seed, noise, holes, workers, report, report_identities,
                          report_heldout, report_scans, progress, source)

    command.__doc__ = entry.summary
    command.__name__ = name
    if entry.local_copy is None:  # typer reads the signature: no --source for this source
        signature = inspect.signature(command)
        command.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[p for p in signature.parameters.values() if p.name != "source"])
    app.command(name)(command)


for _name, _entry in SOURCES.items():
    _add_source_command(_name, _entry)
