"""imface baseline fit --in: a linear baseline on raw meshes and point sets, as imface fit takes them."""
from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from imface.baselines.io import build_baselines, load_model
from imface.contracts.dataset import read_manifest
from imface.contracts.fits import read_fits_index
from imface.errors import ImfaceError
from imface.eval.evaluate import evaluate_folder
from imface.fitting.baseline import fit_baseline_inputs
from imface.io.mesh import read_mesh
from imface.ops.rigid import apply_rigid, kabsch, random_rotation
from tests.baselines import write_dataset
from tests.run_cli import run_cli


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    data = write_dataset(root / "data", identities=6, test_identities=1)
    built = build_baselines(data, root / "models", pca_sizes=(8,), bilinear=None, flame=None)
    manifest = read_manifest(data)
    neutral = next(name for name in manifest.test if name.endswith("neutral"))
    return built.models["pca8"], manifest.folder(neutral)


def test_a_turned_mesh_in_mm_and_a_cloud_in_an_odd_unit_are_fitted_and_scored(baseline, tmp_path):
    model_path, scan = baseline
    mesh = read_mesh(scan / "mesh.ply")
    rotation = random_rotation(np.random.default_rng(0), 25.0)
    trimesh.Trimesh(100 * mesh.vertices @ rotation.T + [5, -3, 40], mesh.faces, process=False).export(tmp_path / "a.ply")
    cloud = trimesh.sample.sample_surface(trimesh.Trimesh(mesh.vertices, mesh.faces), 4000, seed=1)[0]
    np.save(tmp_path / "b.npy", 3.7 * cloud @ rotation.T)
    out = tmp_path / "fits"
    rows = fit_baseline_inputs(model_path, [tmp_path / "a.ply"], out, unit="mm", preview=True)
    rows += fit_baseline_inputs(model_path, [tmp_path / "b.npy"], out, preview=True)
    assert [r["name"] for r in rows] == ["a", "b"]
    assert rows[0]["unit"] == "mm" and rows[1]["unit"] == "arbitrary"
    # these synthetic people differ from their mean face in size by up to ~15%, so the found
    # scale is that close (bench/fit_any.py measures built-in faces: within 2%)
    assert rows[1]["alignment"]["scale"] * 3.7 == pytest.approx(1.0, rel=0.15)
    registered = read_mesh(scan / "registered.ply").vertices
    start = load_model(model_path).reconstruct(load_model(model_path).initial_coefficients())
    for name in ("a", "b"):
        for file in ("mesh.ply", "mesh_raw.ply", "target.ply", "fit.json", "preview.png"):
            assert (out / name / file).is_file(), (name, file)
        info = json.loads((out / name / "fit.json").read_text())
        assert info["frames"]["alignment"]["coverage"] > 0.8
    # the mm mesh (known scale): the fitted shape is near the truth's, up to the rigid pose the
    # search chose (a person's pose against the mean face is not the canonical frame exactly)

    inside = np.linalg.norm(registered, axis=1) < 0.9

    def shape_error(vertices: np.ndarray) -> float:
        moved = apply_rigid(vertices, *kabsch(vertices[inside], registered[inside]))
        return float(np.sqrt(np.mean(np.sum((moved - registered)[inside] ** 2, 1))))

    assert shape_error(read_mesh(out / "a" / "mesh.ply").vertices) < 0.6 * shape_error(start)
    raw = read_mesh(out / "a" / "mesh_raw.ply").vertices  # back in the input's frame and mm
    assert np.linalg.norm(raw.mean(axis=0) - (100 * registered @ rotation.T + [5, -3, 40]).mean(axis=0)) < 5.0
    summary = evaluate_folder(out, num_points=5000)  # no --data: against their own inputs
    assert len(summary.scored) == 2 and all(r.metrics["chamfer_mm"] < 5.0 for r in summary.scored)
    assert (out / "preview.png").is_file()


def test_cli_takes_either_data_or_inputs(baseline, tmp_path, capsys):
    model_path, scan = baseline
    assert run_cli("baseline", "fit", "--model", str(model_path), "--out", str(tmp_path / "o")) != 0
    assert "either --data" in capsys.readouterr().err
    np.save(tmp_path / "plane.npy", np.column_stack([np.random.default_rng(0).uniform(-50, 50, (500, 2)),
                                                     np.zeros(500)]))
    before = (tmp_path / "plane.npy").read_bytes()
    assert run_cli("baseline", "fit", "--model", str(model_path), "--in", str(tmp_path / "plane.npy"),
                "--out", str(tmp_path / "o")) != 0
    err = capsys.readouterr().err
    assert "plane" in err and str(tmp_path / "plane.npy") in err
    assert (tmp_path / "plane.npy").read_bytes() == before
    mesh = read_mesh(scan / "mesh.ply")
    trimesh.Trimesh(10 * mesh.vertices, mesh.faces, process=False).export(tmp_path / "cm.ply")
    assert run_cli("baseline", "fit", "--model", str(model_path), "--in", str(tmp_path / "cm.ply"), "--unit", "cm",
                "--out", str(tmp_path / "o")) == 0
    assert "(cm)" in capsys.readouterr().out


def test_one_non_face_among_faces_is_one_line_and_the_faces_are_written(baseline, tmp_path, capsys):
    model_path, scan = baseline
    mesh = read_mesh(scan / "mesh.ply")
    scans = tmp_path / "scans"
    scans.mkdir()
    for name, shift in (("a", 0.0), ("c", 4.0)):
        trimesh.Trimesh(100 * mesh.vertices + shift, mesh.faces, process=False).export(scans / f"{name}.ply")
    np.save(scans / "b.npy", np.column_stack([np.random.default_rng(0).uniform(-50, 50, (500, 2)), np.zeros(500)]))
    out = tmp_path / "fits"
    assert run_cli("baseline", "fit", "--model", str(model_path), "--in", str(scans), "--unit", "mm",
                   "--scan-points", "2000", "--out", str(out)) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [line for line in captured.err.splitlines() if "b.npy" in line]
    (line,) = captured.err.splitlines()
    assert line.startswith(f"refused: {scans / 'b.npy'}: ") and "plane" in line
    assert "baseline fit: 2 fitted, 1 refused, 0 failed" in captured.out
    assert sorted(p.parent.name for p in out.glob("*/fit.json")) == ["a", "c"]
    assert [e["name"] for e in read_fits_index(out)["scans"]] == ["a", "c"]
    with pytest.raises(ImfaceError, match="plane"):  # the library without a report: after the faces, its line
        fit_baseline_inputs(model_path, [scans], tmp_path / "again", unit="mm", points=2000)
    assert (tmp_path / "again/c/fit.json").is_file()
