"""``imface demo``: the main job end to end on the built-in data."""
from __future__ import annotations

from pathlib import Path

import typer

from imface.cli.options import opt


def demo(
    out: Path = opt("--out", Path("demo_out"), "Everything the demo writes."),
    identities: int = opt("--identities", 10, min=2),
    expressions: str = opt("--expressions"),
    train_minutes: float = typer.Option(5.0, "--train-minutes", min=0.0, help="Training budget; 0 skips training."),
    seed: int = opt("--seed", 0, "For data, preprocessing and training."),
) -> None:
    """Build built-in face data, preprocess it, train, and write report.md with pictures."""
    from imface.demo import DemoConfig, run_demo  # heavy imports here keep `imface --help` fast

    run_demo(DemoConfig(out=out, identities=identities, expressions=expressions,
                        train_minutes=train_minutes, seed=seed))
