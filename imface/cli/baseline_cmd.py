"""``imface baseline build|fit``: the PCA, bilinear and FLAME-like 3DMM baselines."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(no_args_is_help=True, help="Linear, bilinear and FLAME-like morphable-model baselines.")


def _pair(text: str, option: str) -> tuple[int, int] | None:
    from imface.errors import ImfaceError

    if text.strip().lower() == "none":
        return None
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ImfaceError(None, f"{option} expects 'identity,expression' ranks or 'none', got {text!r}")
    return int(parts[0]), int(parts[1])


@app.command("build")
def build(
    data: Path = typer.Option(..., "--data", help="Processed dataset with registered.ply per training scan."),
    out: Path = typer.Option(..., "--out", help="Folder for the models (and baselines.json)."),
    pca_sizes: str = typer.Option("32,64,128,256", "--pca-sizes", help="Comma list of PCA sizes ('' for none)."),
    bilinear: str = typer.Option("32,16", "--bilinear", help="Bilinear ranks 'identity,expression', or none."),
    flame: str = typer.Option("32,32", "--flame", help="FLAME-like ranks 'identity,expression', or none."),
) -> None:
    """Build the baselines from the training split's registered meshes."""
    from imface.baselines import build_baselines
    from imface.cli.parsing import int_list

    built = build_baselines(data, out, pca_sizes=tuple(int_list(pca_sizes, "--pca-sizes")),
                            bilinear=_pair(bilinear, "--bilinear"), flame=_pair(flame, "--flame"))
    for name, path in built.models.items():
        typer.echo(f"built {name}: {path}")
    for name, note in built.notes.items():
        typer.echo(f"note {name}: {note}")


@app.command("fit")
def fit(
    model: Path = typer.Option(..., "--model", help="A baseline model folder (from imface baseline build)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Processed dataset holding the scans to fit."),
    inputs: Optional[List[Path]] = typer.Option(
        None, "--in", help="Instead of --data: raw meshes (.obj/.ply/.off/.stl) or point sets (.npy/.xyz/.txt/.ply), "
        "or folders of them, as imface fit takes them (same unit, pose and crop handling). Repeatable."),
    out: Path = typer.Option(..., "--out", help="Fits folder (with --data: <out>/<scan>/fitted_full.ply, fitted.ply, "
                             "fit.json; with --in: the layout of imface fit's)."),
    split: str = typer.Option("test", "--split", help="train | test | held_out_expression (with --data)."),
    scans: Optional[str] = typer.Option(None, "--scans", help="Comma list of scan names (default: the whole split)."),
    points: int = typer.Option(20000, "--points", min=100, help="Points sampled on each scan."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    unit: str = typer.Option("auto", "--unit", help="auto | model | mm | cm | m for --in (auto: any unit or size)."),
    pose: str = typer.Option("auto", "--pose", help="auto | fit | none for --in."),
    preview: bool = typer.Option(False, "--preview", help="With --in: preview.png per scan and a contact sheet."),
) -> None:
    """Fit a baseline to processed scans (--data; score with imface eval --fits OUT --data DATA --recon-name
    fitted_full.ply) or to raw meshes and point sets (--in; score with imface eval --fits OUT)."""
    from imface.baselines import fit_baseline
    from imface.errors import ImfaceError
    from imface.contracts.dataset import SPLIT_LISTS, read_manifest

    if (data is None) == (not inputs):
        raise ImfaceError(None, "give either --data (a processed dataset) or --in (raw meshes or point sets)")
    if inputs:
        from imface.fitting.baseline import fit_baseline_inputs

        for row in fit_baseline_inputs(model, inputs, out, unit=unit, pose=pose, points=points, seed=seed,
                                       preview=preview):
            found = row["alignment"]
            scale = "" if found is None else f", {found['mm_per_input_unit']:.4g} mm per input unit ({row['unit']})"
            typer.echo(f"fitted {row['name']}: rms {row['rms']:.4g} ({row['seconds']:.1f} s{scale})")
        typer.echo(f"score with: imface eval --fits {out}")
        return
    manifest = read_manifest(data)
    if split not in SPLIT_LISTS:
        raise ImfaceError(None, f"--split must be one of {', '.join(SPLIT_LISTS)}, got {split!r}")
    names = [s.strip() for s in scans.split(",") if s.strip()] if scans else list(getattr(manifest, split))
    unknown = [n for n in names if n not in manifest.by_name]
    if unknown:
        raise ImfaceError(data, f"no scan(s) named {', '.join(unknown[:3])} in the manifest")
    if not names:
        raise ImfaceError(data, f"the '{split}' split is empty")
    for name in names:
        result = fit_baseline(model, manifest.folder(name), out / name, points=points, seed=seed)
        typer.echo(f"fitted {name}: rms {result.history[-1]['rms']:.4g} ({result.seconds:.1f} s)")
