"""``imface fit``: fit codes (and poses) of a trained model to new scans (paper Eq. 17)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from imface.cli.deprecated import hidden, note, renamed
from imface.cli.options import MODEL_DETAIL, check_device, model_folder, opt
from imface.cli.parsing import name_list, parse_shard
from imface.config import (DEFAULT_FIT_CODE_PRIOR, DEFAULT_FIT_EXP_CODE_PRIOR, DEFAULT_FIT_LR, DEFAULT_FIT_ROBUST_MM,
                           DEFAULT_FIT_SPACE_POINTS, DEFAULT_SCALE_SWEEP)
from imface.errors import ImfaceError
from imface.frame import MM_PER_UNIT


def fit(
    model: Optional[Path] = opt("--model", None, MODEL_DETAIL),
    data: Optional[Path] = opt("--data", None, "Its --split or --scans are fitted."),
    inputs: Optional[List[Path]] = opt(
        "--in", None, "Meshes without landmarks (.obj/.ply/.off), point sets (.npy/.xyz/.ply), a raw dataset with "
        "landmarks, a processed scan folder, or folders of them. Repeatable."),
    out: Path = opt("--out", ..., "The fits folder, one folder per scan."),
    same_identity: bool = typer.Option(False, "--same-identity", help="One shared z_id per identity."),
    steps: int = typer.Option(200, "--steps", min=1, help="Optimisation steps."),
    surface_points: int = typer.Option(2048, "--surface-points", min=16, help="Surface samples per scan and step."),
    space_points: int = typer.Option(DEFAULT_FIT_SPACE_POINTS, "--space-points", min=1,
                                     help="Free-space samples per scan and step (jittered surface points for point clouds)."),
    lr: float = typer.Option(DEFAULT_FIT_LR, "--lr", help="Adam lr of the codes, in units of the training codes' spread."),
    landmarks: bool = typer.Option(True, "--landmarks/--no-landmarks", help="Use the scans' landmarks when they have them."),
    resolution: int = opt("--resolution", detail="Of the fitted meshes."),
    split: str = opt("--split"),
    scans: Optional[str] = opt("--scans", None, "Default: the whole split. E.g. 001/2_smile."),
    neutral: str = typer.Option("auto", "--neutral", help="Neutrality of scans whose label is unknown: auto | yes | no."),
    unit: str = opt("--unit", "auto", "Of inputs without landmarks: auto (any unit or size, found with the pose by a "
                    "similarity search onto the mean face) | model | mm | cm | m."),
    pose: str = opt("--pose", "auto", "Auto: fit for raw inputs without landmarks."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Scans optimised together."),
    seed: int = opt("--seed", 0, "Of the per-scan sample orders."),
    device: str = opt("--device"),
    robust: Optional[float] = typer.Option(None, "--robust", min=0.0, help="Robust data term, mm: in the second half "
                                           "of the fit, surface points farther than this from the fitted surface stop "
                                           f"pulling (clutter, outliers); 0: off. Default {DEFAULT_FIT_ROBUST_MM:g} for "
                                           "raw meshes and point sets, 0 for processed datasets."),
    code_prior: float = typer.Option(DEFAULT_FIT_CODE_PRIOR, "--code-prior", min=0.0, help="Weight of a Mahalanobis "
                                     "prior on the codes (training codes' mean and spread); 0: off."),
    exp_code_prior: Optional[float] = typer.Option(DEFAULT_FIT_EXP_CODE_PRIOR, "--exp-code-prior", min=0.0,
                                                   help="Its weight on the expression codes."),
    scale_lr: float = typer.Option(0.0, "--scale-lr", min=0.0, help="Adam lr of the log-scale of inputs whose unit "
                                   "was searched (--unit auto), refined with the codes and pose; 0: keep the search's."),
    scale_sweep: int = typer.Option(DEFAULT_SCALE_SWEEP, "--scale-sweep", min=0, help="For inputs whose unit "
                                    "was searched: fits at this many scales around the search's pick the "
                                    "scale (the search alone mistakes a person's size for the unit); 0: off."),
    preview: bool = opt("--preview", False, "A preview.png per scan (target | fit | error, front and side) and a "
                        "contact sheet OUT/preview.png."),
    shard: Optional[str] = typer.Option(None, "--shard", help="Part of the scans to process: i/n, part i (0-based) of "
                                        "n. Of the sorted scans (of the identities with --same-identity), e.g. a job "
                                        "array's index; the parts may write one --out at once."),
    progress: bool = opt("--progress", detail="A bar over the scans and one line per scan as its batch finishes."),
    old_points: Optional[int] = hidden("--points"),
) -> None:
    """Fit new scans to codes. Re-running skips scans already fitted with the same settings.

    A scan refused (not a face, a bad file) or failed is one line; the others are fitted, and the
    exit code is 2 when any was refused or failed.
    """
    # heavy imports here keep `imface --help` fast
    from imface.fitting.gather import InputReport
    from imface.fitting.run import fit as run_fit

    check_device(device)
    part = parse_shard(shard)
    surface_points = renamed(surface_points, old_points, "--surface-points", "--points", 2048)
    sources, split, names = _sources(data, list(inputs or []), split, name_list(scans, "--scans"))
    robust_distance = None if robust is None else robust / MM_PER_UNIT  # None: the fitter's default for the inputs
    report = InputReport()
    results = run_fit(model_folder(model), sources, out, same_identity=same_identity, steps=steps,
                      points=surface_points, space_points=space_points, lr=lr, landmarks=landmarks,
                      resolution=resolution, split=split,
                      scans=names, neutral=neutral, unit=unit, pose=pose, device=device, batch_size=batch_size,
                      seed=seed, preview=preview, progress=progress, robust_distance=robust_distance,
                      code_prior=code_prior, exp_code_prior=exp_code_prior, scale_lr=scale_lr,
                      scale_sweep=scale_sweep, shard=part, report=report, progress_bar=progress)
    _report(results, report, out, preview, progress, part)
    if report.problems:
        raise typer.Exit(2)


def _sources(data: Path | None, inputs: list[Path], split: str,
             names: list[str] | None) -> tuple[list[Path], str, list[str] | None]:
    """The fitter's inputs, split and scan names for --data, --in, --split and --scans."""
    # heavy imports here keep `imface --help` fast
    from imface.baselines.selection import SPLITS, select_scans
    from imface.contracts.dataset import MANIFEST_NAME, read_manifest

    if data is None and not inputs:
        raise ImfaceError(None, "give --data (a processed dataset) and/or --in (raw meshes, point sets or scans)")
    if split not in SPLITS:
        raise ImfaceError(None, f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    datasets = [path for path in inputs if (Path(path) / MANIFEST_NAME).is_file()]
    if datasets:
        note("--in DATASET (a processed dataset)", "--data DATASET")
    if split == "held_out_expression":  # the fitter takes train | test | all: name this list's scans
        dataset = data if data is not None else next(iter(datasets), None)
        if dataset is None:
            raise ImfaceError(None, "--split held_out_expression needs --data")
        split, names = "all", select_scans(read_manifest(dataset), "held_out_expression", names)
    return ([data] if data is not None else []) + inputs, split, names


def _report(results: list, report, out: Path, preview: bool, progress: bool, shard: tuple[int, int] | None) -> None:
    """Skipped scans and, without --progress, the refused and failed ones (the fitter prints each
    scan it fits and, with --progress, each problem as it happens), then one summary line."""
    # heavy imports here keep `imface --help` fast
    from imface.contracts.fits import PREVIEW_NAME, read_fit
    from imface.fitting.run import metrics_text

    for result in results:
        if progress and result.skipped:
            typer.echo(f"{result.name}: skipped (already fitted)  loss "
                       f"{result.losses.get('total', float('nan')):.4g}{metrics_text(result.metrics)}")
    for problem in [] if progress else report.problems:
        typer.echo(problem.line, err=True)
    # The robust distance the fitter resolved for these inputs (the default depends on their kind).
    used = (read_fit(results[0].folder) or {}).get("settings", {}) if results else {}
    robust_mm = float(used.get("robust_distance", 0.0)) * MM_PER_UNIT
    robust_text = f"robust data term {robust_mm:g} mm" if robust_mm > 0 else "robust data term off"
    skipped = sum(result.skipped for result in results)
    part = "" if shard is None else f", shard {shard[0]}/{shard[1]}"
    typer.echo(f"fit: {len(results) - skipped} fitted, {skipped} skipped (already fitted), "
               f"{len(report.with_status('refused'))} refused, {len(report.with_status('failed'))} failed{part}; "
               f"{len(results)} scan(s) in {out}; {robust_text}" + (f"; pictures: {out / PREVIEW_NAME}" if preview else ""))
