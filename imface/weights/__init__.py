"""Models shipped inside the package, and what a model argument names.

A shipped model is an exported model folder (:mod:`imface.contracts.model`) under
``imface/weights/<name>/``, with its MODEL_CARD.md and NOTICE.txt; pyproject.toml's package-data
installs it. :func:`resolve_model` turns what a user gives (``--model``, ``load_pretrained(path)``)
into a folder: nothing gives the default shipped model, a folder wins over a shipped name.

Imports nothing heavy: ``imface --help`` and the CLI's option parsing may use it.
"""
from __future__ import annotations

import os
from pathlib import Path

from imface.errors import ImfaceError

#: The shipped model used wherever a model is needed and none is given.
DEFAULT_MODEL = "ict"
#: Shipped model name -> its folder inside the installed package.
SHIPPED: dict[str, Path] = {"ict": Path(__file__).resolve().parent / "ict"}
#: The exported folder's metadata file (imface.contracts.model.INFO_NAME; that module imports torch).
INFO_FILE = "model.json"

__all__ = ["DEFAULT_MODEL", "SHIPPED", "model_label", "resolve_model", "shipped_models"]


def shipped_models() -> list[str]:
    """The names of the shipped models (installed or not), sorted."""
    return sorted(SHIPPED)


def resolve_model(spec: str | os.PathLike | None) -> Path:
    """The model folder ``spec`` names.

    None: the default shipped model (``DEFAULT_MODEL``); an existing folder: that folder (a local
    folder wins over a shipped name); a shipped model's name: its folder in the package. A shipped
    name whose folder is missing from this install, or anything else, is an ImfaceError.
    """
    name = DEFAULT_MODEL if spec is None else os.fspath(spec)
    if spec is not None and Path(name).is_dir():
        return Path(name)
    if name not in SHIPPED:
        raise ImfaceError(name, "no such model folder, and not the name of a shipped model (shipped: "
                          f"{', '.join(shipped_models())}); give an exported model or an experiment folder")
    folder = SHIPPED[name]
    if not (folder / INFO_FILE).is_file():
        raise ImfaceError(None, f"shipped model {name!r} is not installed ({folder} holds no {INFO_FILE}); "
                          "reinstall imface, or give --model an exported model or an experiment folder")
    return folder


def model_label(folder: str | os.PathLike) -> str:
    """How outputs record the model in ``folder``: a shipped model by its name (so the record still
    resolves after imface is reinstalled elsewhere), any other folder by its path."""
    path = Path(folder).resolve()
    for name, shipped in SHIPPED.items():
        if path == shipped.resolve():
            return name
    return str(folder)
