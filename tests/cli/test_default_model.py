"""Verbs that need a model use the shipped one when --model is left out (imface.weights); here a
stand-in: the tiny trained model, exported in fp16, registered as the shipped default."""
from __future__ import annotations

import json

import pytest

from imface.pretrained import export_model
from imface.weights import DEFAULT_MODEL, SHIPPED, resolve_model
from tests.run_cli import run_cli

FAST = ("--resolution", "32", "--device", "cpu")


@pytest.fixture(scope="module")
def stand_in(trained_tiny, tmp_path_factory):
    return export_model(trained_tiny[1], tmp_path_factory.mktemp("installed") / DEFAULT_MODEL, dtype="fp16")


@pytest.fixture(autouse=True)
def shipped(stand_in, tmp_path, monkeypatch):
    monkeypatch.setitem(SHIPPED, DEFAULT_MODEL, stand_in)
    monkeypatch.chdir(tmp_path)  # no local folder named like the shipped model
    return stand_in


def _error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_the_stand_in_is_the_default(shipped):
    assert resolve_model(None) == shipped and resolve_model(DEFAULT_MODEL) == shipped


def test_sample_without_model_uses_the_shipped_one(tmp_path):
    assert run_cli("sample", "--count", "2", "--out", str(tmp_path / "s"), *FAST) == 0
    faces = json.loads((tmp_path / "s" / "faces.json").read_text())["faces"]
    assert len(faces) == 2 and all((tmp_path / "s" / face["file"]).is_file() for face in faces)
    assert (tmp_path / "s" / "sheet.png").is_file()


def test_model_names_the_shipped_one(shipped, tmp_path):
    identity = sorted(json.loads((shipped / "codes.json").read_text())["identities"])[0]
    assert run_cli("extract", "--model", DEFAULT_MODEL, "--identity", identity, "--out", str(tmp_path / "e"),
                   "--no-preview", *FAST) == 0
    assert (tmp_path / "e" / f"{identity}.ply").is_file()


def test_fit_without_model_uses_the_shipped_one(shipped, trained_tiny, tmp_path):
    scan = trained_tiny[0] / "004" / "2_smile"  # a processed scan of the test split
    assert run_cli("fit", "--in", str(scan), "--out", str(tmp_path / "f"), "--steps", "2", "--surface-points", "64",
                   "--space-points", "64", "--no-landmarks", *FAST) == 0
    fitted = [path.parent for path in (tmp_path / "f").rglob("fit.json")]
    assert len(fitted) == 1 and (fitted[0] / "codes.safetensors").is_file()
    # Recorded by name, so the record still resolves after imface is installed elsewhere.
    assert json.loads((fitted[0] / "fit.json").read_text())["settings"]["model"] == DEFAULT_MODEL
    assert json.loads((tmp_path / "f" / "fits.json").read_text())["model"] == DEFAULT_MODEL


@pytest.mark.parametrize("verb", [("sample",), ("fit", "--in", "scan.ply")])
def test_a_model_that_does_not_exist_is_one_line(verb, tmp_path, capsys):
    assert run_cli(*verb, "--model", "does-not-exist", "--out", str(tmp_path / "o"), *FAST) != 0
    line = _error_line(capsys)
    assert line.startswith("error: does-not-exist: "), line
    assert not (tmp_path / "o").exists()


def test_a_shipped_model_missing_from_the_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(SHIPPED, DEFAULT_MODEL, tmp_path / "gone")
    assert run_cli("sample", "--count", "1", "--out", str(tmp_path / "s"), *FAST) != 0
    assert f"shipped model '{DEFAULT_MODEL}' is not installed" in _error_line(capsys)
