"""The shipped-model registry: what a model argument names, and that the shipped folders install."""
from __future__ import annotations

import fnmatch
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import imface.weights as weights
from imface.errors import ImfaceError
from imface.weights import DEFAULT_MODEL, SHIPPED, resolve_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A stand-in for the default shipped model: a folder with model.json (resolution reads nothing more)."""
    folder = tmp_path / "installed" / DEFAULT_MODEL
    folder.mkdir(parents=True)
    (folder / weights.INFO_FILE).write_text("{}")
    monkeypatch.setitem(SHIPPED, DEFAULT_MODEL, folder)
    return folder


def test_the_default_is_shipped_inside_the_package():
    assert DEFAULT_MODEL in SHIPPED and weights.shipped_models() == sorted(SHIPPED)
    package = Path(weights.__file__).resolve().parent
    assert all(folder == package / name for name, folder in SHIPPED.items())


def test_nothing_or_a_name_gives_the_shipped_folder(shipped):
    assert resolve_model(None) == shipped
    assert resolve_model(DEFAULT_MODEL) == shipped and resolve_model(Path(DEFAULT_MODEL)) == shipped


def test_a_local_folder_wins_over_a_shipped_name(shipped, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / DEFAULT_MODEL).mkdir()
    assert resolve_model(DEFAULT_MODEL) == Path(DEFAULT_MODEL)
    assert resolve_model(tmp_path / "installed") == tmp_path / "installed"  # any folder, for the loader to judge


def test_a_shipped_model_missing_from_the_install(tmp_path, monkeypatch):
    monkeypatch.setitem(SHIPPED, DEFAULT_MODEL, tmp_path / "gone")
    for spec in (None, DEFAULT_MODEL):
        with pytest.raises(ImfaceError, match=f"shipped model '{DEFAULT_MODEL}' is not installed") as err:
            resolve_model(spec)
        assert "\n" not in str(err.value) and str(tmp_path / "gone") in str(err.value)
    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / "MODEL_CARD.md").write_text("a card without the model")
    with pytest.raises(ImfaceError, match="is not installed"):
        resolve_model(None)


def test_anything_else_is_one_line_naming_it_and_the_shipped_names(shipped, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    for spec in ("does-not-exist", tmp_path / "nothing" / "here", tmp_path / "a-file"):
        with pytest.raises(ImfaceError, match="no such model folder") as err:
            resolve_model(spec)
        text = str(err.value)
        assert text.startswith(f"{spec}: ") and f"shipped: {DEFAULT_MODEL}" in text and "\n" not in text


def test_the_metadata_file_is_the_model_contracts():
    from imface.contracts.model import INFO_NAME  # imports torch; the registry may not

    assert weights.INFO_FILE == INFO_NAME


def test_the_registry_imports_no_torch():
    code = "import sys, imface.weights; print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_package_data_installs_every_file_of_a_shipped_folder():
    """pyproject.toml's package-data for imface.weights matches each file an export writes, and the card and notice."""
    from imface.contracts.model import CHECKSUMS_NAME, MODEL_FILES  # imports torch; the registry may not

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["imface.weights"]
    files = [*MODEL_FILES, CHECKSUMS_NAME, "MODEL_CARD.md", "NOTICE.txt"]
    unmatched = [name for name in files if not any(fnmatch.fnmatch(f"{DEFAULT_MODEL}/{name}", p) for p in patterns)]
    assert unmatched == []


def test_outputs_record_a_shipped_model_by_name_and_others_by_path(tmp_path, monkeypatch):
    from imface.weights import model_label

    monkeypatch.setitem(SHIPPED, "ict", tmp_path / "ict")
    (tmp_path / "ict").mkdir()
    assert model_label(tmp_path / "ict") == "ict"
    assert model_label(tmp_path / "other") == str(tmp_path / "other")
