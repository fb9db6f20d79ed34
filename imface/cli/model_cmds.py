"""Verbs that use a trained model: ``export``, ``extract``, ``correspond``, ``sample``,
``interpolate``, ``transfer``. Plain typer functions; :mod:`imface.cli.main` registers them.

``--model`` is an exported model folder, a training experiment folder (latest checkpoint) or a
shipped model's name; left out, the shipped model (:mod:`imface.weights`), except for export.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from imface.cli.deprecated import hidden, renamed, renamed_flag
from imface.cli.options import MODEL_DETAIL, check_device, model_of_faces, model_of_fits, opt, required
from imface.cli.parsing import name_list
from imface.errors import ImfaceError

_MODEL = opt("--model", None, MODEL_DETAIL)
_FACES_MODEL = opt("--model", None, MODEL_DETAIL[:-1] + "; with FITS_DIR:SCAN faces, the one their fits folder names).")
_OUT = opt("--out", ..., "The meshes, faces.json and the contact sheet.")
_UNIT = opt("--unit", "model", "Of the written meshes: model (1 = 100 mm) | mm.")
_PREVIEW = opt("--preview", True, "A contact sheet OUT/sheet.png.")
_OLD_UNITS = hidden("--units")


def _load(model: Path | None, device: str):
    from imface.pretrained import load_pretrained  # heavy imports here keep `imface --help` fast

    return load_pretrained(model, device=check_device(device))  # None: the shipped model


def _report(summary: dict, out: Path, preview: bool) -> None:
    for record in summary["faces"]:
        line = f"{out / record['file']}: {record['vertices']} vertices, {record['faces']} faces"
        if "error_mm" in record:
            line += f", error mean {record['error_mm']['mean']:.3f} mm, median {record['error_mm']['median']:.3f} mm"
        typer.echo(line)
    typer.echo(f"contact sheet: {out / 'sheet.png'}" if preview else f"summary: {out / 'faces.json'}")


def export(
    model: Optional[Path] = opt("--model", None, "The experiment folder to export (imface train --out). Required."),
    out: Path = opt("--out", ..., "The exported model."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Weights file (default: the latest)."),
    dtype: str = typer.Option("fp32", "--dtype", help="Storage precision of the network weights: fp32 | fp16 "
                              "(half the file; loading casts back to float32)."),
    old_exp_dir: Optional[Path] = hidden("--exp-dir"),
) -> None:
    """Export a trained experiment as a self-contained, checksummed model folder (on the CPU: no compute)."""
    # heavy imports here keep `imface --help` fast
    from imface.contracts.model import read_model_folder
    from imface.pretrained import export_model

    exp_dir = required(renamed(model, old_exp_dir, "--model", "--exp-dir"), "--model")
    folder = export_model(exp_dir, out, checkpoint, dtype=dtype)
    info = read_model_folder(folder).info
    typer.echo(f"{folder}: {info['num_identities']} identities, {info['num_expressions']} expression codes, "
               f"step {info['source_step']}, weights {info['weights_dtype']}")


def extract(
    model: Optional[Path] = _MODEL,
    out: Path = _OUT,
    fits: Optional[Path] = opt("--fits", None, "One mesh per fitted scan."),
    scans: Optional[str] = opt("--scans", None, "With --fits (default: every fitted scan)."),
    identity: Optional[str] = typer.Option(None, "--identity", help="A training identity name (the model's codes)."),
    expression: str = typer.Option("neutral", "--expression", help="With --identity: an expression key of the "
                                   "model's codes (e.g. 002/2_smile), or neutral."),
    codes: Optional[Path] = typer.Option(None, "--codes", help="A fitted-codes file of a fits folder (id_code, "
                                         "exp_code, neutral)."),
    resolution: int = opt("--resolution"),
    unit: str = _UNIT,
    fmt: str = opt("--format"),
    color: str = typer.Option("none", "--color", help="Vertex colours: none | template | blend | error (needs "
                              "--target, or --fits of processed scans)."),
    target: Optional[Path] = typer.Option(None, "--target", help="Target mesh (model units) for --color error."),
    blend_field: str = typer.Option("template", "--blend-field", help="Whose blend weights --color blend shows: template | identity."),
    error_max: float = typer.Option(5.0, "--error-max", min=0.0, help="Top of the --color error scale, mm."),
    dense: bool = typer.Option(False, "--dense", help="Evaluate the full grid instead of coarse-to-fine."),
    device: str = opt("--device"),
    progress: bool = opt("--progress", detail="SDF evaluation per mesh."),
    preview: bool = _PREVIEW,
    old_units: Optional[str] = _OLD_UNITS,
) -> None:
    """Extract meshes of fitted scans or named codes by marching cubes, optionally coloured."""
    # heavy imports here keep `imface --help` fast
    import torch

    from imface.generate import generate_meshes
    from imface.io.mesh import read_mesh

    unit = renamed(unit, old_units, "--unit", "--units", "model")
    if sum(x is not None for x in (fits, identity, codes)) != 1:
        raise ImfaceError(None, "give exactly one of --fits, --identity (with --expression) or --codes")
    if blend_field not in ("template", "identity"):
        raise ImfaceError(None, f"--blend-field must be template or identity, got {blend_field!r}")
    pretrained = _load(model_of_fits(model, fits) if fits is not None else model, device)
    faces, targets = _extract_faces(pretrained, fits, name_list(scans, "--scans"), identity, expression, codes,
                                    with_targets=color == "error" and target is None)
    if target is not None:
        mesh = read_mesh(target)
        targets = {face.name: (mesh.vertices, mesh.faces) for face in faces}
    with torch.no_grad():
        summary = generate_meshes(pretrained, faces, out, resolution=resolution, units=unit, fmt=fmt, color=color,
                                  targets=targets, blend_field=blend_field, error_max_mm=error_max,
                                  coarse_to_fine=not dense, title=f"extract ({color})", sheet=preview,
                                  progress=progress)
    _report(summary, out, preview)


def _extract_faces(pretrained, fits: Path | None, scans: list[str] | None, identity: str | None, expression: str,
                   codes: Path | None, with_targets: bool) -> tuple[list, dict[str, Any]]:
    """The faces extract draws (from --fits, --identity or --codes) and, with ``with_targets``,
    each fitted scan's processed mesh in model space (for --color error)."""
    # heavy imports here keep `imface --help` fast
    from imface.contracts.dataset import MESH_NAME
    from imface.contracts.fits import fitted_codes
    from imface.correspondence import load_fits
    from imface.generate import Face
    from imface.io.mesh import read_mesh

    targets: dict[str, Any] = {}
    if fits is not None:
        fitted = load_fits(fits, scans or None, device=pretrained.device)
        for scan in fitted if with_targets else []:
            path = None if scan.processed is None else scan.processed / MESH_NAME
            if path is None or not path.is_file():
                raise ImfaceError(scan.folder, "--color error needs --target or a processed scan with its mesh")
            mesh = read_mesh(path)
            targets[scan.name] = (scan.to_model_space(mesh.vertices), mesh.faces)
        return [s.face for s in fitted], targets
    if identity is not None:
        id_code = pretrained.identity_code(identity)
        exp_code, neutral = pretrained.expression_code(expression)
        return [Face(f"{identity}+{expression}" if not neutral else identity, id_code, exp_code, neutral)], targets
    given = fitted_codes(codes, codes.stem)  # type: ignore[arg-type,union-attr]
    device = pretrained.device
    return [Face(given.name, given.id_code.to(device), given.exp_code.to(device), given.neutral)], targets


def correspond(
    fits: Path = opt("--fits", ..., "Its fitted scans are put in correspondence."),
    out: Path = opt("--out", ..., "One folder per pair, correspondence.json and the contact sheet."),
    model: Optional[Path] = opt("--model", None, "The one the fits were made with: a folder or a shipped "
                                "model's name (default: the one the fits folder names)."),
    pairs: Optional[str] = typer.Option(None, "--pairs", help="Pairs to match: a comma list of scanA:scanB "
                                        "(default: the first scan with each other)."),
    metrics_on: str = typer.Option("all", "--metrics-on", help="Pairs scored: all (every ordered pair of scans) | listed (--pairs only)."),
    preview: bool = _PREVIEW,
    device: str = opt("--device"),
    old_render: Optional[bool] = hidden("--render/--no-render"),
) -> None:
    """Dense correspondence between fitted scans through template space, with ground-truth errors."""
    # heavy imports here keep `imface --help` fast
    from imface.correspondence import load_fits, parse_pairs, run_correspondence

    preview = renamed_flag(preview, old_render, "--preview", "--render", True)
    if metrics_on not in ("all", "listed"):
        raise ImfaceError(None, f"--metrics-on must be all or listed, got {metrics_on!r}")
    pretrained = _load(model_of_fits(model, fits), device)
    names = [s.name for s in load_fits(fits)]
    summary = run_correspondence(pretrained, fits, out, parse_pairs(pairs, names), metric_pairs=metrics_on,
                                 render=preview)
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
    model: Optional[Path] = _MODEL,
    out: Path = _OUT,
    count: int = opt("--count", 8, "Random draws."),
    seed: int = opt("--seed", 0),
    neutral_only: bool = typer.Option(False, "--neutral-only", help="Neutral faces only (no expression code)."),
    scale: float = typer.Option(1.0, "--scale", min=0.0, help="Scale of the deviation from the mean code."),
    resolution: int = opt("--resolution"),
    unit: str = _UNIT,
    fmt: str = opt("--format"),
    device: str = opt("--device"),
    progress: bool = opt("--progress", detail="SDF evaluation per mesh."),
    preview: bool = _PREVIEW,
    old_neutral: Optional[bool] = hidden("--neutral"),
    old_units: Optional[str] = _OLD_UNITS,
) -> None:
    """Random faces drawn from the Gaussian statistics of the training codes."""
    from imface.generate import generate_meshes, sample_faces  # heavy imports here keep `imface --help` fast

    neutral_only = renamed(neutral_only, old_neutral, "--neutral-only", "--neutral", False)
    unit = renamed(unit, old_units, "--unit", "--units", "model")
    pretrained = _load(model, device)
    faces = sample_faces(pretrained.code_stats, count, seed=seed, scale=scale, neutral=neutral_only,
                         device=pretrained.device)
    _report(generate_meshes(pretrained, faces, out, resolution=resolution, units=unit, fmt=fmt, sheet=preview,
                            title=f"samples (seed {seed}, scale {scale:g})", progress=progress), out, preview)


def interpolate(
    model: Optional[Path] = _FACES_MODEL,
    out: Path = _OUT,
    start: str = typer.Option(..., "--from", help="Face at the start: IDENTITY or IDENTITY+EXPRESSION (training "
                              "names), or FITS_DIR:SCAN."),
    end: str = typer.Option(..., "--to", help="Face at the end: the same forms as --from."),
    count: int = opt("--count", 5, "Both ends included.", min=2),
    resolution: int = opt("--resolution"),
    unit: str = _UNIT,
    fmt: str = opt("--format"),
    device: str = opt("--device"),
    progress: bool = opt("--progress", detail="SDF evaluation per mesh."),
    preview: bool = _PREVIEW,
    old_steps: Optional[int] = hidden("--steps"),
    old_units: Optional[str] = _OLD_UNITS,
) -> None:
    """Faces linear in code space between two codes."""
    # heavy imports here keep `imface --help` fast
    from imface.generate import generate_meshes, interpolate_faces, resolve_face

    count = renamed(count, old_steps, "--count", "--steps", 5)
    unit = renamed(unit, old_units, "--unit", "--units", "model")
    pretrained = _load(model_of_faces(model, [start, end]), device)
    faces = interpolate_faces(resolve_face(pretrained, start), resolve_face(pretrained, end), count)
    _report(generate_meshes(pretrained, faces, out, resolution=resolution, units=unit, fmt=fmt, sheet=preview,
                            title=f"{start} -> {end}", progress=progress), out, preview)


def transfer(
    model: Optional[Path] = _FACES_MODEL,
    out: Path = _OUT,
    identity_from: str = typer.Option(..., "--identity-from", help="Face giving z_id (IDENTITY, IDENTITY+EXPRESSION "
                                      "or FITS_DIR:SCAN)."),
    expression_from: List[str] = typer.Option(..., "--expression-from", help="Face giving z_exp (the same forms; "
                                              "repeatable)."),
    resolution: int = opt("--resolution"),
    unit: str = _UNIT,
    fmt: str = opt("--format"),
    device: str = opt("--device"),
    progress: bool = opt("--progress", detail="SDF evaluation per mesh."),
    preview: bool = _PREVIEW,
    old_units: Optional[str] = _OLD_UNITS,
) -> None:
    """Expression transfer: the identity of one face with the expression of another."""
    # heavy imports here keep `imface --help` fast
    from imface.generate import generate_meshes, resolve_face, transfer_face

    unit = renamed(unit, old_units, "--unit", "--units", "model")
    pretrained = _load(model_of_faces(model, [identity_from, *expression_from]), device)
    source = resolve_face(pretrained, identity_from)
    faces = [source]
    for spec in expression_from:
        donor = resolve_face(pretrained, spec)
        faces += [donor, transfer_face(source, donor)]
    _report(generate_meshes(pretrained, faces, out, resolution=resolution, units=unit, fmt=fmt, sheet=preview,
                            title="expression transfer", progress=progress), out, preview)
