"""``imface fit``: fit codes (and poses) of a trained model to new scans (paper Eq. 17)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from imface.config import DEFAULT_FIT_LR, DEFAULT_FIT_ROBUST_MM, DEFAULT_FIT_SPACE_POINTS, DEFAULT_SCALE_SWEEP
from imface.frame import MM_PER_UNIT


def fit(
    model: Path = typer.Option(..., "--model", help="Trained model: an experiment folder or an exported model."),
    inputs: List[Path] = typer.Option(
        ..., "--in", help="Processed dataset or scan folder, raw dataset with landmarks, meshes without "
        "landmarks (.obj/.ply/.off) or point sets (.npy/.xyz/.ply); a folder of them. Repeatable."
    ),
    out: Path = typer.Option(..., "--out", help="Fits folder: fits.json and one folder per scan."),
    same_identity: bool = typer.Option(False, "--same-identity", help="One shared z_id per identity."),
    steps: int = typer.Option(200, "--steps", min=1, help="Optimisation steps."),
    points: int = typer.Option(2048, "--points", min=16, help="Surface samples per scan and step."),
    space_points: int = typer.Option(DEFAULT_FIT_SPACE_POINTS, "--space-points", min=1,
                                     help="Free-space samples per scan and step (jittered surface points for point clouds)."),
    lr: float = typer.Option(DEFAULT_FIT_LR, "--lr", help="Adam lr of the codes, in units of the training codes' spread."),
    landmarks: bool = typer.Option(True, "--landmarks/--no-landmarks", help="Use the scans' landmarks when they have them."),
    resolution: int = typer.Option(128, "--resolution", min=16, help="Marching-cubes grid of the fitted meshes."),
    split: str = typer.Option("test", "--split", help="train | test | all: which scans of a processed dataset."),
    scans: Optional[str] = typer.Option(None, "--scans", help="Comma-separated scan names (e.g. 001/2_smile)."),
    neutral: str = typer.Option("auto", "--neutral", help="auto | yes | no for scans whose neutrality is unknown."),
    unit: str = typer.Option("auto", "--unit", help="auto | model | mm | cm | m for inputs without landmarks (auto: "
                             "any unit or size, found with the pose by a similarity search onto the mean face)."),
    pose: str = typer.Option("auto", "--pose", help="auto | fit | none: fit a rigid pose (auto: raw inputs without landmarks)."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Scans optimised together."),
    seed: int = typer.Option(0, "--seed", help="Seed of the per-scan sample orders."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    robust: Optional[float] = typer.Option(None, "--robust", min=0.0, help="mm: in the second half of the fit, surface "
                                           "points farther than this from the fitted surface stop pulling (clutter, "
                                           f"outliers); 0: off. Default {DEFAULT_FIT_ROBUST_MM:g} for raw meshes and "
                                           "point sets, 0 for processed datasets."),
    code_prior: float = typer.Option(0.0, "--code-prior", min=0.0, help="Weight of a Mahalanobis prior on the codes "
                                     "(training codes' mean and spread); 0: off."),
    scale_lr: float = typer.Option(0.0, "--scale-lr", min=0.0, help="Adam lr of the log-scale of inputs whose unit "
                                   "was searched (--unit auto), refined with the codes and pose; 0: keep the search's."),
    scale_sweep: int = typer.Option(DEFAULT_SCALE_SWEEP, "--scale-sweep", min=0, help="For inputs whose unit "
                                    "was searched: fits at this many scales around the search's pick the "
                                    "scale (the search alone mistakes a person's size for the unit); 0: off."),
    preview: bool = typer.Option(False, "--preview", help="Write per scan preview.png (target | fit | error, front "
                                 "and side) and a contact sheet OUT/preview.png."),
) -> None:
    """Fit new scans to codes. Re-running skips scans already fitted with the same settings."""
    from imface.fitting.fitter import fit as run_fit
    from imface.errors import ImfaceError

    if device not in ("auto", "cpu", "cuda"):
        raise ImfaceError(None, f"--device must be auto, cpu or cuda, got {device!r}")
    names = [n.strip() for n in scans.split(",") if n.strip()] if scans else None
    robust_distance = None if robust is None else robust / MM_PER_UNIT  # None: the fitter's default for the inputs
    results = run_fit(model, list(inputs), out, same_identity=same_identity, steps=steps, points=points, space_points=space_points, lr=lr,
                      landmarks=landmarks, resolution=resolution, split=split, scans=names, neutral=neutral,
                      unit=unit, pose=pose, device=device, batch_size=batch_size, seed=seed, preview=preview,
                      progress=True, robust_distance=robust_distance, code_prior=code_prior,
                      scale_lr=scale_lr, scale_sweep=scale_sweep)
    for result in results:
        # Against the input as fitted (cropped): its noise, holes' borders and any clutter left
        # inside the crop count, so this reads higher than the preview's median fit-to-input distance.
        chamfer = "" if not result.metrics else f"  chamfer to the input {result.metrics['chamfer_mm']:.3f} mm"
        state = "skipped (already fitted)" if result.skipped else f"{result.seconds:.1f} s"
        typer.echo(f"{result.name}: {state}  loss {result.losses.get('total', float('nan')):.4g}{chamfer}")
    from imface.fitting.outputs import read_fit

    # The robust distance the fitter resolved for these inputs (the default depends on their kind).
    used = (read_fit(results[0].folder) or {}).get("settings", {}) if results else {}
    robust_mm = float(used.get("robust_distance", 0.0)) * MM_PER_UNIT
    robust_text = f"robust data term {robust_mm:g} mm" if robust_mm > 0 else "robust data term off"
    typer.echo(f"{len(results)} scan(s) in {out}; {robust_text}"
               + (f"; pictures: {out / 'preview.png'}" if preview else ""))
