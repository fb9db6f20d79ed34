"""``imface preprocess`` and its options; the work is :func:`imface.preprocess.run.preprocess_dataset`."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from imface.cli.options import opt
from imface.cli.parsing import name_list, parse_shard
from imface.errors import ImfaceError


def parse_test_identities(text: str | None) -> int | list[str] | None:
    """A count (``"3"``) or a comma list of identity names (``none``: no names); None for the default."""
    if text is None:
        return None
    if re.fullmatch(r"\s*\d+\s*", text):
        return int(text)
    return name_list(text, "--test-identities")


def _layout_or_none(input_path: Path) -> str | None:
    """The detected layout, or None when there is none to detect (preprocess_dataset then says why)."""
    from imface.preprocess.layouts import detect_layout  # imports trimesh: kept out of `imface --help`

    try:
        return detect_layout(input_path)
    except ImfaceError:
        return None


def preprocess(
    input_path: Path = opt("--in", ..., "A raw dataset folder, or a .csv/.json scan list."),
    out: Path = opt("--out", ..., "The processed dataset."),
    layout: Optional[str] = typer.Option(None, "--layout", help="Raw dataset layout: facescape | builtin | list (default: detect)."),
    landmark_indices: Optional[Path] = typer.Option(
        None, "--landmark-indices", help="68 (or 5) 0-based vertex ids of the landmarks in fixed-topology meshes."
    ),
    unit: str = opt("--unit", "auto", "Of the raw scans: auto (from the eye-corner distance) | mm | cm | m."),
    align: str = typer.Option("auto", "--align", help="Alignment: auto (none for facescape, else landmarks) | landmarks "
                              "(Kabsch to frontal) | none (only centring)."),
    max_landmark_distance: float = typer.Option(
        5.0, "--max-landmark-distance", help="Refuse landmarks farther than this from the surface, mm."
    ),
    surface_samples: int = typer.Option(250_000, "--surface-samples", min=1, help="Surface points per scan."),
    space_samples: int = typer.Option(15_000, "--space-samples", min=1, help="Points in the unit sphere per scan."),
    near_surface: int = typer.Option(50_000, "--near-surface", min=0,
                                     help="Near-surface SDF samples per scan (read by training; 0: none)."),
    near_sigma: float = typer.Option(0.02, "--near-sigma", min=0.0, help="Near-surface noise, model units (0.02 = 2 mm)."),
    seed: int = opt("--seed", 0, "Per-scan seeds derive from it and the scan name."),
    test_identities: Optional[str] = typer.Option(
        None, "--test-identities", help="Held-out identities: a count, or a comma list of names (default ~10%)."
    ),
    split_from: Optional[str] = typer.Option(
        None, "--split-from", help="Train/test split instead of --test-identities: paper (the ImFace authors' FaceScape "
        "split) | FILE: test identities, one per line, or a .csv of scans with name and split columns.",
    ),
    test_expressions: str = typer.Option(
        "jaw_left,jaw_right,mouth_left,mouth_right,eye_closed", "--test-expressions",
        help="Expressions held out of training: a comma list, or none.",
    ),
    workers: int = opt("--workers", 1, "Each uses one thread."),
    shard: Optional[str] = typer.Option(None, "--shard", help="Part of the scans to process: i/n, part i (0-based) of n."),
    preview: bool = opt("--preview", False, "A preview.png render per scan."),
    force: bool = typer.Option(False, "--force", help="Reprocess scans that are already complete."),
    progress: bool = opt("--progress"),
) -> None:
    """Align, crop and sample raw face scans into a training dataset (paper Sec. 3.5)."""
    # heavy imports here keep `imface --help` fast
    from imface.preprocess.run import default_align, preprocess_dataset
    from imface.preprocess.scan import PreprocessConfig
    from imface.preprocess.split import resolve_split

    if align not in ("auto", "landmarks", "none"):
        raise ImfaceError(None, f"--align must be auto, landmarks or none, got {align!r}")
    if align == "auto":
        align = default_align(layout or _layout_or_none(input_path))
    config = PreprocessConfig(
        layout=layout, landmark_indices=landmark_indices, unit=None if unit == "auto" else unit, align=align,
        max_landmark_distance_mm=max_landmark_distance, surface_samples=surface_samples,
        space_samples=space_samples, near_surface_samples=near_surface, near_surface_sigma=near_sigma, seed=seed,
        test_identities=parse_test_identities(test_identities),
        test_expressions=tuple(name_list(test_expressions, "--test-expressions") or ()),
        workers=workers, shard=parse_shard(shard), preview=preview, force=force,
    )
    summary = preprocess_dataset(input_path, out, config, progress=progress, split=resolve_split(split_from))
    typer.echo(summary.format())
    if not summary.ok:
        raise typer.Exit(2)
