"""check-data passes a clean processed dataset and catches corrupted ones."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from imface.cli import check_cmd
from imface.errors import ImfaceError
from imface.preprocess.check import check_dataset
from imface.preprocess.run import preprocess_dataset
from imface.preprocess.scan import PreprocessConfig
from tests.synthetic_raw import write_builtin_dataset


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    raw = write_builtin_dataset(tmp_path_factory.mktemp("raw"), identities=2,
                                expressions=((1, "neutral"), (2, "smile")))
    out = tmp_path_factory.mktemp("out")
    summary = preprocess_dataset(raw, out, PreprocessConfig(surface_samples=3000, space_samples=2000,
                                                            near_surface_samples=300), progress=False)
    assert summary.ok
    return out


@pytest.fixture
def copy(clean, tmp_path):
    target = tmp_path / "data"
    shutil.copytree(clean, target)
    return target


def test_clean_dataset_passes(clean):
    report = check_dataset(clean)
    assert report.ok, report.format()
    assert report.scans == 4 and report.identities == 2
    assert report.sample_counts["surface_points"] == {3000}
    assert "OK" in report.format()


def _corrupt(path, change):
    array = np.load(path)
    change(array)
    np.save(path, array)


def test_flipped_sdf_signs_are_caught(copy):
    _corrupt(copy / "001" / "2_smile" / "space_sdf.npy", lambda a: np.negative(a, out=a))
    report = check_dataset(copy)
    assert not report.ok
    assert any("001/2_smile/space_sdf.npy" in p and "wrong sdf sign" in p for p in report.problems), report.problems


def test_nan_and_off_surface_points_are_caught(copy):
    _corrupt(copy / "002" / "1_neutral" / "surface_points.npy", lambda a: a.__setitem__((5, 1), np.nan))
    _corrupt(copy / "001" / "1_neutral" / "surface_points.npy", lambda a: a.__setitem__(slice(0, 10), a[:10] + 0.01))
    problems = check_dataset(copy, max_surface_checks=10**6).problems
    assert any("002/1_neutral/surface_points.npy: 1 rows with NaN/inf" in p for p in problems), problems
    assert any("001/1_neutral/surface_points.npy: 10 of 3000 checked points are off mesh.ply" in p for p in problems)


def test_wrong_magnitudes_shapes_and_normals_are_caught(copy):
    _corrupt(copy / "001" / "1_neutral" / "near_sdf.npy", lambda a: np.multiply(a, 2.0, out=a))
    np.save(copy / "002" / "2_smile" / "space_grad.npy", np.zeros((7, 3), np.float32))
    _corrupt(copy / "002" / "1_neutral" / "surface_normals.npy", lambda a: np.multiply(a, -1.0, out=a))
    problems = check_dataset(copy).problems
    assert any("001/1_neutral/near_sdf.npy" in p and "|sdf|" in p for p in problems), problems
    assert any("002/2_smile" in p and "differ in length" in p for p in problems), problems
    assert any("002/1_neutral/surface_normals.npy" in p and "away from the viewer" in p for p in problems)


def test_missing_landmarks_and_neutral_scans_are_caught(copy):
    path = copy / "001" / "2_smile" / "landmarks.json"
    path.write_text(json.dumps({"ibug68": None, "five": None}))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["scans"] = [s for s in manifest["scans"] if s["name"] != "002/1_neutral"]
    for key in ("train", "test", "held_out_expression"):  # 002 keeps only its smile, in train
        manifest["split"][key] = [n for n in manifest["split"][key] if not n.startswith("002/")]
    manifest["split"]["train"].append("002/2_smile")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    problems = check_dataset(copy).problems
    assert any("001/2_smile/landmarks.json: the five model landmarks are missing" in p for p in problems), problems
    assert any("training identity '002' has no neutral scan" in p for p in problems), problems


def test_missing_manifest_is_a_user_error(tmp_path):
    with pytest.raises(ImfaceError, match="manifest not found"):
        check_dataset(tmp_path)


def test_cli_exit_codes(clean, copy):
    app = typer.Typer()
    app.command("check-data")(check_cmd.check_data)
    app.command("other")(lambda: None)
    assert CliRunner().invoke(app, ["check-data", str(clean)]).exit_code == 0
    (copy / "001" / "1_neutral" / "space_points.npy").unlink()
    result = CliRunner().invoke(app, ["check-data", str(copy)])
    assert result.exit_code == 2 and "space_points.npy: missing" in result.output
