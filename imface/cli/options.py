"""The command line's vocabulary: each shared option with its one meaning (docs/cli.md's table).

A verb takes a shared option with :func:`opt`; its help is the shared meaning, then the verb's
detail. ``tests/cli/test_vocabulary.py`` checks every verb against docs/cli.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand

from imface.errors import ImfaceError
from imface.weights import DEFAULT_MODEL, SHIPPED, resolve_model

#: The first words of every shared option's help: what the option means, in every verb.
MEANINGS = {
    "--data": "Processed dataset folder (from imface preprocess).",
    "--in": "Raw input to read.",
    "--model": "Trained model.",
    "--fits": "Fits folder (from imface fit or imface baseline fit).",
    "--out": "Output folder.",
    "--device": "Torch device: auto (CUDA when available) | cpu | cuda.",
    "--progress": "Show progress while working.",
    "--preview": "Write pictures.",
    "--resolution": "Marching-cubes grid points per axis.",
    "--unit": "Length unit.",
    "--format": "Mesh file format: ply | obj.",
    "--seed": "Random seed (the same seed gives the same result).",
    "--workers": "Processes working in parallel.",
    "--scans": "Comma list of scan names.",
    "--split": "Scans of --data to take: train | test | held_out_expression | all.",
    "--count": "Number of faces to generate.",
    "--set": "Config override KEY=VALUE (repeatable).",
    "--preset": "Named settings.",
    "--pose": "Rigid pose of inputs without landmarks: auto | fit | none.",
    "--identities": "Built-in identities to generate.",
    "--expressions": "Built-in expressions: all, or a comma list of FaceScape names.",
}
#: Defaults that are the same in every verb.
DEFAULTS: dict[str, Any] = {"--device": "auto", "--progress": True, "--resolution": 128, "--format": "ply",
                            "--split": "test", "--expressions": "all"}
#: Switches: the name and its negative.
_DECLS = {"--progress": ("--progress/--no-progress",), "--preview": ("--preview/--no-preview",)}
#: Bounds of numeric options (the same in every verb).
_BOUNDS: dict[str, dict[str, int]] = {"--resolution": {"min": 16}, "--workers": {"min": 1}, "--count": {"min": 1},
                                      "--identities": {"min": 1}}
_SHARED = object()
#: --model of the verbs that fall back on the shipped model.
MODEL_DETAIL = (f"An exported model, an experiment folder, or a shipped model's name (default: {DEFAULT_MODEL}, "
                "shipped with imface).")


def opt(name: str, default: Any = _SHARED, detail: str = "", **kwargs: Any) -> Any:
    """The typer option ``name`` of the vocabulary: its shared meaning, then ``detail``.

    ``default``: ``...`` for a required option; left out for a shared default (``DEFAULTS``).
    """
    if default is _SHARED:
        default = DEFAULTS[name]
    text = f"{MEANINGS[name]} {detail}".strip()
    return typer.Option(default, *_DECLS.get(name, (name,)), help=text, **{**_BOUNDS.get(name, {}), **kwargs})


def check_device(device: str) -> str:
    """``device`` when it is one of auto | cpu | cuda; an ImfaceError naming --device otherwise."""
    from imface.devices import DEVICES  # imports torch: kept out of ``imface --help``

    if device not in DEVICES:
        raise ImfaceError(None, f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    return device


def model_folder(model: Path | None) -> Path:
    """--model for a verb that falls back on the shipped model: None or a shipped model's name
    (no folder of that name here) resolved to its folder; any other path as given, for the
    loader to read or refuse."""
    if model is None or (not model.exists() and str(model) in SHIPPED):
        return resolve_model(model)
    return model


def model_of_fits(model: Path | None, fits: Path) -> Path:
    """--model, or without it the model the fits folder was made with (its fits.json names it)."""
    from imface.contracts.fits import read_fits_index  # imports torch: kept out of ``imface --help``

    if model is not None:
        return model
    named = read_fits_index(fits).get("model")
    if not named:
        raise ImfaceError(fits, "the fits folder names no model; pass --model")
    return Path(named)


def model_of_faces(model: Path | None, specs: list[str]) -> Path | None:
    """--model, or without it the model of the fits folders that faces given as ``FITS_DIR:SCAN``
    come from (None, the shipped model, when no face comes from a fits folder). Fits made with
    different models cannot be mixed without --model: their codes mean different faces."""
    from imface.contracts.fits import fits_face  # imports torch: kept out of ``imface --help``

    if model is not None:
        return model
    folders = {face[0] for face in map(fits_face, specs) if face is not None}  # as resolve_face reads them
    models = {str(model_of_fits(None, folder)): folder for folder in sorted(folders)}
    if len(models) > 1:
        a, b = list(models.values())[:2]
        raise ImfaceError(b, f"its fits were made with another model than those of {a}; pass --model")
    return Path(next(iter(models))) if models else None


def required(value: Any, option: str) -> Any:
    """``value`` of an option that is required but can also come under an old spelling."""
    if value is None:
        raise ImfaceError(None, f"missing option {option}")
    return value


class HiddenArgumentsCommand(TyperCommand):
    """A verb whose hidden positional arguments (old spellings) stay out of the usage line too."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if not getattr(param, "hidden", False):
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces
