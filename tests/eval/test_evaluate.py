"""``imface eval``: per-scan metrics, summary groups, failures and the CLI exit code."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
import typer
from typer.testing import CliRunner

from imface.cli.eval_cmd import eval_
from imface.contracts.fits import write_fit, write_fits_index
from imface.errors import ImfaceError
from imface.fitting.outputs import footprint_metrics
from imface.io.mesh import read_mesh
from imface.ops.crop import remove_unused_vertices
from imface.ops.ground_truth_crop import crop_like_ground_truth
from imface.ops.metrics import evaluate_reconstruction
from imface.eval.evaluate import evaluate_folder, group_statistics
from imface.contracts.dataset import ManifestScan, write_manifest
from tests.baselines import grid

SCANS = [("001", "neutral"), ("001", "smile"), ("002", "neutral"), ("002", "smile"), ("003", "anger")]
HELD_OUT_EXPRESSIONS = ["smile"]


def ground_truth_like() -> tuple[np.ndarray, np.ndarray]:
    """A gently curved height field in the crop sphere, already cropped like a ground truth.

    The grid is jittered so that its Delaunay triangulation is unique: on a regular grid
    the float32 round trip of a PLY file would flip the (co-circular) diagonals."""
    xy, faces = grid(0.04, (-0.6, 0.6), (-0.6, 0.6))
    xy = xy + np.random.default_rng(0).uniform(-0.008, 0.008, xy.shape)
    vertices = np.column_stack([xy, 0.3 - 0.1 * (xy**2).sum(1)])
    return crop_like_ground_truth(vertices, faces)


def write_mesh(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    trimesh.Trimesh(vertices, faces, process=False).export(path)


def scan_name(identity: str, expression: str) -> str:
    return f"{identity}/{expression}"


def make_dataset(root: Path, reconstruct) -> tuple[Path, Path]:
    """Processed dataset ``root/data`` and fits folder ``root/fits``; ``reconstruct(v, f)`` gives each fit."""
    data, fits = root / "data", root / "fits"
    vertices, faces = ground_truth_like()
    scans, entries = [], []
    for identity, expression in SCANS:
        name = scan_name(identity, expression)
        write_mesh(data / name / "mesh.ply", vertices, faces)
        write_mesh(fits / name / "mesh.ply", *reconstruct(vertices, faces))
        scans.append(ManifestScan(name, identity, expression, expression == "neutral", name))
        entries.append({"name": name, "folder": name, "neutral": expression == "neutral", "identity": identity,
                        "expression": expression, "processed": str(data / name)})
    write_manifest(data, scans, test_identities=["003"], test_expressions=HELD_OUT_EXPRESSIONS)
    write_fits_index(fits, "model", False, entries)
    return data, fits


def test_identical_reconstruction_scores_perfectly(tmp_path):
    _, fits = make_dataset(tmp_path, lambda v, f: (v, f))
    summary = evaluate_folder(fits, num_points=5000)
    assert not summary.failed and len(summary.scored) == len(SCANS)
    for result in summary.scored:
        assert result.metrics["chamfer_mm"] < 1e-6
        assert result.metrics["fscore@1mm"] == pytest.approx(100.0)
        assert result.metrics["normal_consistency"] == pytest.approx(1.0)
    per_scan = json.loads((fits / "eval" / "001" / "smile.json").read_text())
    assert per_scan["name"] == "001/smile" and per_scan["expression"] == "smile" and per_scan["seen"] is False
    assert per_scan["ground_truth"].endswith("data/001/smile/mesh.ply")
    assert per_scan["settings"]["num_points"] == 5000 and per_scan["settings"]["crop"] is True


def test_rigid_offset_is_removed_by_icp(tmp_path):
    _, fits = make_dataset(tmp_path, lambda v, f: (v + [0.0, 0.0, 0.02], f))
    summary = evaluate_folder(fits, num_points=5000)
    for result in summary.scored:
        assert result.metrics["chamfer_mm"] < 0.05
        np.testing.assert_allclose(result.metrics["translation_mm"], [0.0, 0.0, -2.0], atol=0.05)


def two_mm_shell(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two layers 2 mm either side of the surface along its normals: no rigid motion brings them closer."""
    normals = trimesh.Trimesh(vertices, faces, process=False).vertex_normals
    return np.concatenate([vertices + 0.02 * normals, vertices - 0.02 * normals]), np.concatenate([faces, faces + len(vertices)])


def test_two_mm_offset_gives_two_mm_chamfer(tmp_path):
    # Without the crop: the crop would drop the hidden lower layer (then ICP removes the offset).
    _, fits = make_dataset(tmp_path, two_mm_shell)
    summary = evaluate_folder(fits, tmp_path / "scores", num_points=20_000, crop=False)
    for result in summary.scored:
        assert 1.95 < result.metrics["chamfer_mm"] < 2.3
        assert result.metrics["fscore@1mm"] < 1.0  # a few boundary samples, where vertex normals tilt
        assert result.metrics["fscore@5mm"] == pytest.approx(100.0)
    assert (tmp_path / "scores" / "summary.json").is_file()
    # With the crop only the visible upper layer is kept, and ICP moves it 2 mm down; what is
    # left is the sampling gap of two different triangulations (about 0.5 mm at 20k points).
    cropped = evaluate_folder(fits, tmp_path / "cropped", num_points=20_000)
    for result in cropped.scored:
        assert result.metrics["chamfer_mm"] < 1.0
        assert result.metrics["translation_mm"][2] == pytest.approx(-2.0, abs=0.1)


def test_summary_groups_and_failures(tmp_path):
    _, fits = make_dataset(tmp_path, lambda v, f: (v, f))
    evaluate_folder(fits, num_points=2000)
    assert (fits / "eval" / "002" / "neutral.json").is_file()
    (fits / "002" / "neutral" / "mesh.ply").unlink()
    summary = evaluate_folder(fits, num_points=2000)
    assert [r.name for r in summary.failed] == ["002/neutral"]
    assert "mesh file not found" in summary.failed[0].error and "\n" not in summary.failed[0].error
    assert summary.overall["count"] == 4
    assert {k: v["count"] for k, v in summary.per_expression.items()} == {"anger": 1, "neutral": 1, "smile": 2}
    assert {k: v["count"] for k, v in summary.seen_unseen.items()} == {"seen": 2, "unseen": 2}
    document = json.loads((fits / "eval" / "summary.json").read_text())
    assert document["failed"] == [{"name": "002/neutral", "reason": summary.failed[0].error}]
    assert document["num_scans"] == 5 and document["num_scored"] == 4
    assert not (fits / "eval" / "002" / "neutral.json").exists()


def test_group_statistics_mean_and_median():
    metrics = [{"chamfer_mm": c, "fscore@1mm": 50.0} for c in (1.0, 2.0, 6.0)]
    stats = group_statistics(metrics)
    assert stats["count"] == 3
    assert stats["chamfer_mm"] == {"mean": pytest.approx(3.0), "median": 2.0}
    assert stats["fscore@1mm"]["median"] == 50.0 and "normal_consistency" not in stats
    assert "in_input_units" not in stats
    apart = group_statistics(metrics + [{"chamfer_mm": 40.0, "normal_consistency": 0.9, "distance_unit": "input units"}])
    assert apart["count"] == 4 and apart["in_input_units"] == 1  # distances in input units are not millimetres
    assert apart["chamfer_mm"]["mean"] == pytest.approx(3.0) and apart["normal_consistency"]["mean"] == 0.9


def test_folder_without_index_needs_data_and_uses_recon_name(tmp_path):
    data, fits = make_dataset(tmp_path, lambda v, f: (v, f))
    baseline = tmp_path / "baseline"
    for identity, expression in SCANS[:3]:
        name = scan_name(identity, expression)
        write_mesh(baseline / name / "fitted_full.ply", *ground_truth_like())
    with pytest.raises(ImfaceError, match="--data"):
        evaluate_folder(baseline, recon_name="fitted_full.ply", num_points=2000)
    summary = evaluate_folder(baseline, data_dir=data, recon_name="fitted_full.ply", num_points=2000)
    assert [r.name for r in summary.scored] == ["001/neutral", "001/smile", "002/neutral"]
    assert summary.seen_unseen["unseen"]["count"] == 1
    with pytest.raises(ImfaceError, match="no scans"):
        evaluate_folder(baseline, data_dir=data, recon_name="other.ply")


def test_cli_exit_codes(tmp_path):
    _, fits = make_dataset(tmp_path, lambda v, f: (v, f))
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command("eval")(eval_)
    app.command("unused")(lambda: None)  # two commands so typer keeps the verb
    runner = CliRunner()
    ok = runner.invoke(app, ["eval", "--fits", str(fits), "--points", "2000", "--out", str(tmp_path / "out")])
    assert ok.exit_code == 0, ok.output
    assert "overall" in ok.output and "expression smile" in ok.output and "unseen expressions" in ok.output
    (fits / "003" / "anger" / "mesh.ply").unlink()
    failed = runner.invoke(app, ["eval", "--fits", str(fits), "--points", "2000", "--no-crop"])
    assert failed.exit_code == 2
    assert "failed 003/anger" in failed.output
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = runner.invoke(app, ["eval", "--fits", str(empty), "--data", str(empty)])
    assert isinstance(refused.exception, ImfaceError)


# --- Fits of raw inputs, scored against their own input (no --data) -----------------------------------------------


def make_raw_fits(root: Path) -> Path:
    """A fits folder of two raw-input fits with no processed scan: ``face_mm`` (unit mm) and
    ``face_any`` (an arbitrary unit, 4 mm per input unit). Each target.ply is a tight face patch
    (model space), each mesh.ply a fit 0.2 mm in front of it that reaches far past its border."""
    fits = root / "fits"
    vertices, faces = ground_truth_like()
    tight = np.abs(vertices[faces].mean(axis=1)[:, :2]).max(axis=1) < 0.3
    entries = []
    for name, unit, scale in (("face_mm", "mm", 0.01), ("face_any", "arbitrary", 0.04)):
        write_mesh(fits / name / "target.ply", *remove_unused_vertices(vertices, faces[tight]))
        write_mesh(fits / name / "mesh.ply", vertices + [0.0, 0.0, 0.002], faces)
        write_fit(fits / name, {"name": name, "kind": "raw_mesh", "metrics": None,
                                "frames": {"unit": unit, "raw_to_input": np.diag([scale, scale, scale, 1.0]).tolist()}})
        entries.append({"name": name, "folder": name, "neutral": False, "identity": name, "expression": "unknown",
                        "processed": None})
    write_fits_index(fits, "model", False, entries)
    return fits


def test_raw_fits_are_scored_within_the_inputs_footprint(tmp_path):
    fits = make_raw_fits(tmp_path)
    summary = evaluate_folder(fits, num_points=5000)
    assert not summary.failed
    scores = {r.name: r.metrics for r in summary.scored}
    target, fitted = read_mesh(fits / "face_mm/target.ply"), read_mesh(fits / "face_mm/mesh.ply")
    frames = json.loads((fits / "face_mm/fit.json").read_text())["frames"]
    assert scores["face_mm"] == footprint_metrics(fitted.vertices, fitted.faces, target.vertices, target.faces, 5000,
                                                  frames)  # what imface fit writes in fit.json
    mm = scores["face_mm"]
    assert mm["distance_unit"] == "mm" and mm["input_to_fit_mm"] == pytest.approx(0.2, abs=0.01)
    assert mm["fit_to_input_mm"] == pytest.approx(0.2, abs=0.01) and mm["chamfer_mm"] == pytest.approx(0.2, abs=0.01)
    assert 0.1 < mm["footprint_share"] < 0.5  # the fit reaches well past the patch
    whole = evaluate_reconstruction(fitted.vertices, fitted.faces, target.vertices, target.faces, num_points=5000)
    assert whole.chamfer_mm > 2.0  # the authors' protocol would count the fit beyond the patch
    anywhere = scores["face_any"]
    assert anywhere["distance_unit"] == "input units" and anywhere["fscore@1mm"] is None
    assert anywhere["input_to_fit_mm"] == pytest.approx(mm["input_to_fit_mm"] / 4.0)
    # The summary pools millimetres: the arbitrary-unit scan is counted apart.
    assert summary.overall["count"] == 2 and summary.overall["in_input_units"] == 1
    assert summary.overall["input_to_fit_mm"]["mean"] == pytest.approx(mm["input_to_fit_mm"])
    assert "input->fit mm" in summary.table() and "fit->input mm" in summary.table()


def test_a_raw_fit_with_unusable_frames_fails_alone(tmp_path):
    fits = make_raw_fits(tmp_path)
    write_fit(fits / "face_any", {"frames": {"unit": "arbitrary", "raw_to_input": [[0.0]]}})
    summary = evaluate_folder(fits, num_points=2000)
    assert [r.name for r in summary.failed] == ["face_any"] and "raw_to_input" in summary.failed[0].error
    assert [r.name for r in summary.scored] == ["face_mm"]
