"""``imface view``: an interactive 3D viewer of a model (and its fits) in the browser."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imface.cli.options import MODEL_DETAIL, check_device, model_folder, model_of_fits, opt

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def view(
    model: Optional[Path] = opt("--model", None, MODEL_DETAIL[:-1] + "; with --fits, the one the fits folder names)."),
    fits: Optional[Path] = opt("--fits", None, "Its fitted scans are listed, each with its target and metrics."),
    data: Optional[Path] = opt("--data", None, "Its scans are the targets of training faces and fits."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to serve on: 127.0.0.1 is this machine only; "
                             "0.0.0.0 lets other machines connect (anyone who can reach the port)."),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port to serve on (the next free one when it is "
                             "taken; 0: any free port)."),
    resolution: int = opt("--resolution", detail="Of the refined mesh, drawn once a slider rests (64 while it moves)."),
    device: str = opt("--device"),
    progress: bool = opt("--progress", detail="One line per refined mesh, with its time."),
) -> None:
    """Explore a model in the browser: latent sliders, training faces, interpolation, transfer, fits."""
    # heavy imports here keep `imface --help` fast
    from imface.pretrained import load_pretrained
    from imface.viewer.server import Viewer

    folder = model_folder(model_of_fits(model, fits) if fits is not None and model is None else model)
    pretrained = load_pretrained(folder, device=check_device(device))
    viewer = Viewer(pretrained, fits=fits, data=data, host=host, port=port, resolution=resolution,
                    log=typer.echo if progress else None)
    viewer.start()
    typer.echo(f"imface view: {viewer.url}  (model {pretrained.path}; Ctrl-C stops)")
    if host not in LOCAL_HOSTS:
        typer.echo(f"imface view: serving on {host}: other machines can connect; the viewer has no password", err=True)
    viewer.serve_forever()
    typer.echo("imface view: stopped")
