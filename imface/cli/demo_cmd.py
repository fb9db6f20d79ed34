"""``imface demo``: the main job end to end on the built-in data."""
from __future__ import annotations

from pathlib import Path

import typer


def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", help="Folder for everything the demo writes."),
    identities: int = typer.Option(10, "--identities", min=2, help="Built-in identities to generate."),
    expressions: str = typer.Option("all", "--expressions", help="'all' or a comma list of FaceScape names."),
    train_minutes: float = typer.Option(5.0, "--train-minutes", min=0.0, help="Training budget; 0 skips training."),
    seed: int = typer.Option(0, "--seed", help="Seed for data, preprocessing and training."),
) -> None:
    """Build built-in face data, preprocess it, train, and write report.md with pictures."""
    from imface.demo import DemoConfig, run_demo

    run_demo(DemoConfig(out=out, identities=identities, expressions=expressions,
                        train_minutes=train_minutes, seed=seed))
