"""Verbs that use a trained model: ``export``, ``extract``, ``correspond``, ``sample``,
``interpolate``, ``transfer``. Plain typer functions; the lead registers them on the app.

``--model`` is an exported model folder or a training experiment folder (latest checkpoint).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

_MODEL = typer.Option(..., "--model", help="Exported model folder, or an experiment folder (latest checkpoint).")
_OUT = typer.Option(..., "--out", help="Output folder.")
_RESOLUTION = typer.Option(256, "--resolution", min=8, help="Marching-cubes grid points per axis.")
_UNITS = typer.Option("model", "--units", help="model (1 = 100 mm) | mm.")
_FORMAT = typer.Option("ply", "--format", help="ply | obj.")
_DEVICE = typer.Option("cpu", "--device", help="cpu | cuda | auto.")
_GENERATION_RESOLUTION = typer.Option(128, "--resolution", min=8, help="Marching-cubes grid points per axis.")
_PROGRESS = typer.Option(False, "--progress/--no-progress", help="Show SDF evaluation progress.")


def _load(model: Path, device: str):
    from imface.pretrained import load_pretrained

    return load_pretrained(model, device=device)


def _report(summary: dict, out: Path) -> None:
    for record in summary["faces"]:
        line = f"{out / record['file']}: {record['vertices']} vertices, {record['faces']} faces"
        if "error_mm" in record:
            line += f", error mean {record['error_mm']['mean']:.3f} mm, median {record['error_mm']['median']:.3f} mm"
        typer.echo(line)
    typer.echo(f"contact sheet: {out / 'sheet.png'}" if (out / "sheet.png").is_file() else f"summary: {out / 'faces.json'}")


def export(
    exp_dir: Path = typer.Option(..., "--exp-dir", help="Training experiment folder."),
    out: Path = _OUT,
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Weights file (default: the latest)."),
) -> None:
    """Export a trained experiment as a self-contained, checksummed model folder."""
    from imface.pretrained import export_model

    folder = export_model(exp_dir, out, checkpoint)
    info = json.loads((folder / "model.json").read_text())
    typer.echo(f"{folder}: {info['num_identities']} identities, {info['num_expressions']} expression codes, "
               f"step {info['source_step']}")


def extract(
    model: Path = _MODEL,
    out: Path = _OUT,
    fits: Optional[Path] = typer.Option(None, "--fits", help="A fits folder (imface fit): one mesh per fitted scan."),
    scans: Optional[str] = typer.Option(None, "--scans", help="With --fits: comma-separated scan names (default all)."),
    identity: Optional[str] = typer.Option(None, "--identity", help="A training identity name (codes.json)."),
    expression: str = typer.Option("neutral", "--expression", help="With --identity: an expression key of codes.json, or neutral."),
    codes: Optional[Path] = typer.Option(None, "--codes", help="A codes.safetensors file (id_code, exp_code, neutral)."),
    resolution: int = _RESOLUTION,
    units: str = _UNITS,
    fmt: str = _FORMAT,
    color: str = typer.Option("none", "--color", help="none | template | blend | error (needs --target, or --fits "
                              "with processed scans that have mesh.ply)."),
    target: Optional[Path] = typer.Option(None, "--target", help="Target mesh (model units) for --color error."),
    blend_field: str = typer.Option("template", "--blend-field", help="template | identity: whose blend weights --color blend shows."),
    error_max: float = typer.Option(5.0, "--error-max", min=0.0, help="mm at the top of the --color error scale."),
    dense: bool = typer.Option(False, "--dense", help="Evaluate the full grid instead of coarse-to-fine."),
    device: str = _DEVICE,
    progress: bool = _PROGRESS,
) -> None:
    """Extract meshes of fitted scans or named codes by marching cubes, optionally coloured."""
    import torch

    from imface.correspondence import load_fits, read_codes_file
    from imface.errors import ImfaceError
    from imface.generate import Face, generate_meshes
    from imface.io.mesh import read_mesh

    if sum(x is not None for x in (fits, identity, codes)) != 1:
        raise ImfaceError(None, "give exactly one of --fits, --identity (with --expression) or --codes")
    if blend_field not in ("template", "identity"):
        raise ImfaceError(None, f"--blend-field must be template or identity, got {blend_field!r}")
    pretrained = _load(model, device)
    targets: dict = {}
    if fits is not None:
        fitted = load_fits(fits, [s.strip() for s in scans.split(",")] if scans else None, device=pretrained.device)
        faces = [s.face for s in fitted]
        if color == "error" and target is None:
            for scan in fitted:
                path = None if scan.processed is None else scan.processed / "mesh.ply"
                if path is None or not path.is_file():
                    raise ImfaceError(scan.folder, "--color error needs --target or a processed scan with mesh.ply")
                mesh = read_mesh(path)
                targets[scan.name] = (scan.to_model_space(mesh.vertices), mesh.faces)
    elif identity is not None:
        id_code = pretrained.identity_code(identity)
        exp_code, neutral = pretrained.expression_code(expression)
        faces = [Face(f"{identity}+{expression}" if not neutral else identity, id_code, exp_code, neutral)]
    else:
        id_code, exp_code, neutral, _, _ = read_codes_file(codes)  # type: ignore[arg-type]
        faces = [Face(codes.stem, id_code.to(pretrained.device), exp_code.to(pretrained.device), neutral)]  # type: ignore[union-attr]
    if target is not None:
        mesh = read_mesh(target)
        targets = {face.name: (mesh.vertices, mesh.faces) for face in faces}
    with torch.no_grad():
        summary = generate_meshes(pretrained, faces, out, resolution=resolution, units=units, fmt=fmt, color=color,
                                  targets=targets, blend_field=blend_field, error_max_mm=error_max,
                                  coarse_to_fine=not dense, title=f"extract ({color})", progress=progress)
    _report(summary, out)


def correspond(
    fits: Path = typer.Option(..., "--fits", help="A fits folder (imface fit)."),
    out: Path = _OUT,
    model: Optional[Path] = typer.Option(None, "--model", help="Model folder (default: the one fits.json names)."),
    pairs: Optional[str] = typer.Option(None, "--pairs", help="scanA:scanB,... (default: the first scan with each other)."),
    metrics_on: str = typer.Option("all", "--metrics-on", help="all (every ordered pair of scans) | listed (--pairs only)."),
    render: bool = typer.Option(True, "--render/--no-render", help="Write the PNG contact sheet."),
    device: str = _DEVICE,
) -> None:
    """Dense correspondence between fitted scans through template space, with ground-truth errors."""
    from imface.correspondence import FITS_NAME, load_fits, parse_pairs, run_correspondence
    from imface.errors import ImfaceError

    if metrics_on not in ("all", "listed"):
        raise ImfaceError(None, f"--metrics-on must be all or listed, got {metrics_on!r}")
    if model is None:
        try:
            model = Path(json.loads((fits / FITS_NAME).read_text())["model"])
        except (OSError, ValueError, KeyError, TypeError):
            raise ImfaceError(fits / FITS_NAME, "names no model; pass --model") from None
    pretrained = _load(model, device)
    names = [s.name for s in load_fits(fits)]
    summary = run_correspondence(pretrained, fits, out, parse_pairs(pairs, names), metric_pairs=metrics_on,
                                 render=render)
    for record in summary["pairs"]:
        typer.echo(f"{record['a']} -> {record['b']}: {out / record['folder']} "
                   f"(mean template-space distance {record['mean_template_distance']:.4f})")
    for key, label in (("landmark_transfer_error", "landmark transfer error"),
                       ("dense_correspondence_error", "dense correspondence error")):
        stats = summary[key]
        typer.echo(f"{label}: " + ("n/a (no ground truth)" if stats is None else
                                   f"mean {stats['mean_mm']:.3f} mm, median {stats['median_mm']:.3f} mm "
                                   f"({stats['count']} points, {stats['pairs']} pairs)"))
    typer.echo(f"summary: {out / 'correspondence.json'}")


def sample(
    model: Path = _MODEL,
    out: Path = _OUT,
    count: int = typer.Option(8, "--count", min=1, help="Faces to draw."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same faces)."),
    neutral: bool = typer.Option(False, "--neutral", help="Neutral faces only (no expression code)."),
    scale: float = typer.Option(1.0, "--scale", min=0.0, help="Scale of the deviation from the mean code."),
    resolution: int = _GENERATION_RESOLUTION,
    units: str = _UNITS,
    fmt: str = _FORMAT,
    device: str = _DEVICE,
) -> None:
    """Random faces drawn from the Gaussian statistics of the training codes."""
    from imface.generate import generate_meshes, sample_faces

    pretrained = _load(model, device)
    faces = sample_faces(pretrained.code_stats, count, seed=seed, scale=scale, neutral=neutral, device=pretrained.device)
    _report(generate_meshes(pretrained, faces, out, resolution=resolution, units=units, fmt=fmt,
                            title=f"samples (seed {seed}, scale {scale:g})"), out)


def interpolate(
    model: Path = _MODEL,
    out: Path = _OUT,
    start: str = typer.Option(..., "--from", help="IDENTITY, IDENTITY+EXPRESSION (codes.json names) or FITS_DIR:SCAN."),
    end: str = typer.Option(..., "--to", help="Same forms as --from."),
    steps: int = typer.Option(5, "--steps", min=2, help="Faces including both ends."),
    resolution: int = _GENERATION_RESOLUTION,
    units: str = _UNITS,
    fmt: str = _FORMAT,
    device: str = _DEVICE,
) -> None:
    """Faces linear in code space between two codes."""
    from imface.generate import generate_meshes, interpolate_faces, resolve_face

    pretrained = _load(model, device)
    faces = interpolate_faces(resolve_face(pretrained, start), resolve_face(pretrained, end), steps)
    _report(generate_meshes(pretrained, faces, out, resolution=resolution, units=units, fmt=fmt,
                            title=f"{start} -> {end}"), out)


def transfer(
    model: Path = _MODEL,
    out: Path = _OUT,
    identity_from: str = typer.Option(..., "--identity-from", help="Face giving z_id (IDENTITY, IDENTITY+EXPRESSION or FITS_DIR:SCAN)."),
    expression_from: List[str] = typer.Option(..., "--expression-from", help="Face giving z_exp (same forms; repeatable)."),
    resolution: int = _GENERATION_RESOLUTION,
    units: str = _UNITS,
    fmt: str = _FORMAT,
    device: str = _DEVICE,
) -> None:
    """Expression transfer: the identity of one face with the expression of another."""
    from imface.generate import generate_meshes, resolve_face, transfer_face

    pretrained = _load(model, device)
    source = resolve_face(pretrained, identity_from)
    faces = [source]
    for spec in expression_from:
        donor = resolve_face(pretrained, spec)
        faces += [donor, transfer_face(source, donor)]
    _report(generate_meshes(pretrained, faces, out, resolution=resolution, units=units, fmt=fmt,
                            title="expression transfer"), out)
