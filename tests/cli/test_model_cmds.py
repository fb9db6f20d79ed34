"""The model verbs through typer (registered here on a local app, as the lead does on the main one)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import trimesh
import typer
from typer.testing import CliRunner

from imface.cli import model_cmds
from imface.errors import ImfaceError
from imface.pretrained import load_pretrained
from tests.model_fixtures import trained_tiny  # noqa: F401
from tests.model_fixtures import add_registered_meshes, make_fits

VERBS = ("export", "extract", "correspond", "sample", "interpolate", "transfer")


@pytest.fixture(scope="module")
def cli():
    app = typer.Typer(pretty_exceptions_enable=False)
    for verb in VERBS:
        app.command(verb)(getattr(model_cmds, verb))
    runner = CliRunner()

    def run(*args: str):
        result = runner.invoke(app, [str(a) for a in args])
        if isinstance(result.exception, ImfaceError):
            return result
        assert result.exit_code == 0, result.output + repr(result.exception)
        return result

    return run


@pytest.fixture(scope="module")
def model(cli, trained_tiny, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("cli") / "model"
    result = cli("export", "--exp-dir", trained_tiny[1], "--out", out)
    assert "identities" in result.output and (out / "checksums.json").is_file()
    return out


def test_extract_named_face_in_mm_as_obj_with_template_colours(cli, model, tmp_path):
    result = cli("extract", "--model", model, "--identity", "002", "--expression", "002/2_smile", "--out", tmp_path,
                 "--resolution", "32", "--units", "mm", "--format", "obj", "--color", "template")
    mesh = trimesh.load(tmp_path / "002+002-2_smile.obj", process=False)
    assert "vertices" in result.output and np.abs(mesh.vertices).max() > 10.0  # mm, not model units
    assert mesh.visual.vertex_colors.shape[0] == len(mesh.vertices)
    assert json.loads((tmp_path / "faces.json").read_text())["units"] == "mm"


def test_extract_fits_with_error_colours_and_dense_grid(cli, model, trained_tiny, tmp_path):  # noqa: F811
    fits = make_fits(load_pretrained(model), trained_tiny[0], tmp_path / "fits", scans=("001/2_smile",), resolution=32)
    result = cli("extract", "--model", model, "--fits", fits, "--out", tmp_path / "out", "--resolution", "32",
                 "--color", "error", "--dense")
    assert "error mean" in result.output
    errors = np.load(tmp_path / "out" / "001-2_smile.error_mm.npy")
    assert np.all(np.isfinite(errors)) and errors.min() >= 0.0
    cli("extract", "--model", model, "--codes", fits / "001/2_smile/codes.safetensors", "--out", tmp_path / "codes",
        "--resolution", "32", "--color", "blend")
    assert (tmp_path / "codes" / "codes.ply").is_file()


def test_correspond_prints_both_measures(cli, model, trained_tiny, tmp_path):  # noqa: F811
    data = shutil.copytree(trained_tiny[0], tmp_path / "data")
    scans = ("001/1_neutral", "001/2_smile", "002/3_jaw_open")
    add_registered_meshes(data, scans)
    fits = make_fits(load_pretrained(model), data, tmp_path / "fits", scans=scans, resolution=32)
    result = cli("correspond", "--fits", fits, "--out", tmp_path / "corr", "--pairs", "001/2_smile:002/3_jaw_open")
    assert "landmark transfer error: mean" in result.output and "dense correspondence error: mean" in result.output
    saved = json.loads((tmp_path / "corr" / "correspondence.json").read_text())
    assert len(saved["pairs"]) == 1 and saved["metric_pairs"] == 6


def test_sample_interpolate_transfer(cli, model, tmp_path):
    cli("sample", "--model", model, "--out", tmp_path / "s", "--count", "2", "--seed", "3", "--resolution", "32")
    cli("sample", "--model", model, "--out", tmp_path / "s2", "--count", "2", "--seed", "3", "--resolution", "32")
    first, second = (json.loads((tmp_path / d / "faces.json").read_text())["faces"] for d in ("s", "s2"))
    assert [f["id_code"] for f in first] == [f["id_code"] for f in second] and len(first) == 2
    cli("interpolate", "--model", model, "--from", "001", "--to", "002+002/2_smile", "--steps", "3", "--out",
        tmp_path / "i", "--resolution", "32")
    assert len(json.loads((tmp_path / "i" / "faces.json").read_text())["faces"]) == 3
    cli("transfer", "--model", model, "--identity-from", "001", "--expression-from", "002+002/3_jaw_open",
        "--out", tmp_path / "t", "--resolution", "32")
    names = [f["name"] for f in json.loads((tmp_path / "t" / "faces.json").read_text())["faces"]]
    assert names == ["001", "002+002/3_jaw_open", "001~002+002/3_jaw_open"]
    assert (tmp_path / "t" / "sheet.png").is_file()


def test_faces_from_fits_use_the_fits_model_without_model(cli, model, trained_tiny, tmp_path):  # noqa: F811
    """interpolate / transfer with FITS_DIR:SCAN faces and no --model: the fits' model, not the shipped one."""
    fits = make_fits(load_pretrained(model), trained_tiny[0], tmp_path / "fits", scans=("001/2_smile",), resolution=32)
    cli("interpolate", "--from", f"{fits}:001/2_smile", "--to", "002", "--count", "2", "--out", tmp_path / "i",
        "--resolution", "32", "--no-preview")
    cli("transfer", "--identity-from", "002", "--expression-from", f"{fits}:001/2_smile", "--out", tmp_path / "t",
        "--resolution", "32", "--no-preview")
    for out in ("i", "t"):
        assert json.loads((tmp_path / out / "faces.json").read_text())["model"] == str(load_pretrained(model).path)
    other = shutil.copytree(fits, tmp_path / "other")
    index = json.loads((other / "fits.json").read_text())
    (other / "fits.json").write_text(json.dumps({**index, "model": str(tmp_path / "another-model")}))
    mixed = cli("interpolate", "--from", f"{fits}:001/2_smile", "--to", f"{other}:001/2_smile", "--out", tmp_path / "m")
    assert "made with another model" in str(mixed.exception) and "pass --model" in str(mixed.exception)


def test_bad_inputs_are_one_line_errors(cli, model, tmp_path):
    missing = cli("extract", "--model", tmp_path / "nope", "--identity", "001", "--out", tmp_path / "o")
    assert "no such model folder" in str(missing.exception)
    unknown = cli("transfer", "--model", model, "--identity-from", "0001", "--expression-from", "001", "--out", tmp_path)
    assert "nearest known: 001" in str(unknown.exception)
    both = cli("extract", "--model", model, "--identity", "001", "--codes", tmp_path / "c", "--out", tmp_path)
    assert "exactly one of" in str(both.exception)
    for result in (missing, unknown, both):
        assert "\n" not in str(result.exception)
