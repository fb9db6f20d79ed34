"""The ``imface`` command: one subcommand per job. The CLI only parses and prints."""
from __future__ import annotations

import sys
from typing import Optional

import typer

from imface.cli.options import HiddenArgumentsCommand
from imface.errors import ImfaceError
from imface.threads import set_threads

app = typer.Typer(
    name="imface",
    help="ImFace: implicit-neural 3D morphable face models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain click help: rich's option table cuts long option names at 80 columns.
    rich_markup_mode=None,
)


@app.callback()
def _global_options(
    threads: Optional[int] = typer.Option(
        None, "--threads", min=1, help="Threads for torch, BLAS and worker pools together (default: all cores)."
    ),
) -> None:
    set_threads(threads)


def _register() -> None:
    # Imported here so ``imface --help`` stays quick and each verb owns its module.
    from imface.cli import (baseline_cmd, benchmark_cmd, check_cmd, data_cmd, demo_cmd, eval_cmd, fit_cmd, model_cmds,
                            preprocess_cmd, train_cmd, view_cmd)

    app.add_typer(data_cmd.app, name="data", help="Built-in face data.")
    app.command("preprocess")(preprocess_cmd.preprocess)
    app.command("check-data", cls=HiddenArgumentsCommand)(check_cmd.check_data)
    app.command("train")(train_cmd.train)
    app.command("fit")(fit_cmd.fit)
    app.command("eval")(eval_cmd.eval_)
    for verb in ("export", "extract", "correspond", "sample", "interpolate", "transfer"):
        app.command(verb)(getattr(model_cmds, verb))
    app.add_typer(baseline_cmd.app, name="baseline", help="PCA, bilinear and FLAME-like baselines.")
    app.command("benchmark")(benchmark_cmd.benchmark)
    app.command("demo")(demo_cmd.demo)
    app.command("view")(view_cmd.view)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    _register()
    try:
        app(args=argv)
    except ImfaceError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
