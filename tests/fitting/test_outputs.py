"""What a fit writes (the fits-folder contract: fits.json, codes, fit.json, history, mesh) and how a
rerun resumes: finished scans are skipped, changed settings refit, the index is merged; a raw
input's figures, within its footprint."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh

from imface.contracts.fits import read_codes, read_fits_index
from imface.fitting.outputs import distance_scale, footprint_metrics, scan_metrics
from imface.fitting.run import fit
from imface.ops.crop import crop_to_sphere, remove_unused_vertices
from imface.ops.metrics import evaluate_reconstruction
from tests.fitting import FAST
from tests.synthetic_processed import sphere_of
from tests.synthetic_raw import make_canonical_scan


def test_outputs_follow_the_contract_and_rerun_resumes(tiny, tmp_path):
    data_dir, exp_dir, _ = tiny
    out = tmp_path / "fits"
    results = fit(exp_dir, data_dir, out, scans=["001/1_neutral", "002/2_smile"], same_identity=True, **FAST)
    index = read_fits_index(out)
    assert index["format_version"] == 1 and index["same_identity"] is True and index["model"] == str(exp_dir)
    assert [s["name"] for s in index["scans"]] == ["001/1_neutral", "002/2_smile"]
    entry = index["scans"][1]
    assert entry == {"name": "002/2_smile", "folder": "002/2_smile", "neutral": False, "identity": "002",
                     "expression": "smile", "processed": str((data_dir / "002/2_smile").resolve())}
    for result in results:
        folder = out / result.name
        codes = read_codes(folder)
        assert codes["id_code"].shape == (16,) and codes["exp_code"].shape == (16,)
        assert codes["neutral"].dtype == torch.uint8 and codes["neutral"].tolist() == [int(result.neutral)]
        torch.testing.assert_close(codes["pose_rotation"], torch.eye(3))
        assert codes["pose_translation"].abs().max() == 0
        info = json.loads((folder / "fit.json").read_text())
        assert info["steps"] == FAST["steps"] and info["metrics"]["chamfer_mm"] > 0
        assert info["settings"]["robust_distance"] == 0.0  # processed scans: no clutter to ignore
        assert {"fscore@1mm", "fscore@2.5mm", "fscore@5mm", "normal_consistency"} <= set(info["metrics"])
        assert len((folder / "loss_history.jsonl").read_text().splitlines()) == FAST["steps"]
        assert len(trimesh.load(folder / "mesh.ply", process=False).faces) > 0
    stamp = (out / "002/2_smile/fit.json").stat().st_mtime_ns
    again = fit(exp_dir, data_dir, out, scans=["001/1_neutral", "002/2_smile"], same_identity=True, **FAST)
    assert all(r.skipped for r in again) and (out / "002/2_smile/fit.json").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again[1].id_code, results[1].id_code)
    changed = fit(exp_dir, data_dir, out, scans=["002/2_smile"], same_identity=True, **{**FAST, "steps": 5})
    assert not changed[0].skipped and json.loads((out / "002/2_smile/fit.json").read_text())["steps"] == 5
    assert len(read_fits_index(out)["scans"]) == 2  # merged, not replaced


# --- A raw input's figures: both one-way distances within its footprint -------------------------------------------

MM_FRAMES = {"unit": "mm", "raw_to_input": np.diag([0.01, 0.01, 0.01, 1.0]).tolist()}


def tight_face_and_wider_fit() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A tight face mesh (a crop of tests/synthetic_raw's face, model units) and a "fit" of it: the same
    face triangulated anew, 0.1 mm in front, reaching over the whole crop sphere (past the input's border)."""
    face = make_canonical_scan(step=4.0, extras=False)
    vertices, faces = face["vertices"] / 100.0, face["faces"]
    centres = vertices[faces].mean(axis=1) * 100.0
    tight = (np.abs(centres[:, 0]) < 55.0) & (centres[:, 1] > -75.0) & (centres[:, 1] < 50.0)
    fine = make_canonical_scan(step=2.5, extras=False)
    fit_mesh = crop_to_sphere(fine["vertices"] / 100.0 + [0.0, 0.0, 0.001], fine["faces"], np.zeros(3), 1.0)
    return remove_unused_vertices(vertices, faces[tight]), fit_mesh


def test_a_tight_face_mesh_fitted_well_reads_small_both_ways():
    (input_vertices, input_faces), (fit_vertices, fit_faces) = tight_face_and_wider_fit()
    metrics = footprint_metrics(fit_vertices, fit_faces, input_vertices, input_faces, 20_000, MM_FRAMES)
    assert metrics["distance_unit"] == "mm" and metrics["align"] == "none"
    assert 0.05 < metrics["input_to_fit_mm"] < 0.15 and 0.05 < metrics["fit_to_input_mm"] < 0.15
    assert abs(metrics["input_to_fit_mm"] - metrics["fit_to_input_mm"]) < 0.2
    assert abs(metrics["input_to_fit_median_mm"] - metrics["fit_to_input_median_mm"]) < 0.2
    assert metrics["chamfer_mm"] == pytest.approx(0.5 * (metrics["input_to_fit_mm"] + metrics["fit_to_input_mm"]))
    assert 0.3 < metrics["footprint_share"] < 0.7 and metrics["fscore@1mm"] > 99.9
    # The whole-surface Chamfer (the figure before: ICP, the fit's surface beyond the border counted) is large.
    whole = scan_metrics(input_vertices, input_faces, trimesh.Trimesh(fit_vertices, fit_faces, process=False), 20_000)
    assert whole["chamfer_mm"] > 3.0 > 10 * metrics["chamfer_mm"]
    raw = scan_metrics(input_vertices, input_faces, trimesh.Trimesh(fit_vertices, fit_faces, process=False), 20_000,
                       kind="raw_mesh", frames=MM_FRAMES)
    assert raw == metrics


def test_an_arbitrary_unit_reads_in_input_units():
    (input_vertices, input_faces), (fit_vertices, fit_faces) = tight_face_and_wider_fit()
    in_mm = footprint_metrics(fit_vertices, fit_faces, input_vertices, input_faces, 5000, MM_FRAMES)
    frames = {"unit": "arbitrary", "raw_to_input": np.diag([0.04, 0.04, 0.04, 1.0]).tolist()}  # 4 mm per input unit
    own = footprint_metrics(fit_vertices, fit_faces, input_vertices, input_faces, 5000, frames)
    assert own["distance_unit"] == "input units" and own["fscore@1mm"] is None  # no mm to threshold at
    for key in ("chamfer_mm", "input_to_fit_mm", "fit_to_input_mm", "input_to_fit_median_mm", "fit_to_input_median_mm"):
        assert own[key] == pytest.approx(in_mm[key] / 4.0)
    assert own["footprint_share"] == in_mm["footprint_share"]


def test_a_fit_nowhere_over_its_input_has_no_fit_to_input_figures():
    (input_vertices, input_faces), (fit_vertices, fit_faces) = tight_face_and_wider_fit()
    away = fit_vertices + [3.0, 0.0, 0.0]  # 300 mm to the side
    metrics = footprint_metrics(away, fit_faces, input_vertices, input_faces, 2000, MM_FRAMES)
    assert metrics["footprint_share"] == 0.0 and metrics["input_to_fit_mm"] > 100.0
    assert metrics["fit_to_input_mm"] is None and metrics["chamfer_mm"] is None and metrics["fscore@1mm"] is None


@pytest.mark.parametrize("frames, expected", [
    (None, (100.0, "mm")),
    ({"unit": "mm", "raw_to_input": np.diag([0.01, 0.01, 0.01, 1.0]).tolist()}, (100.0, "mm")),
    ({"unit": "cm", "raw_to_input": np.diag([0.1, 0.1, 0.1, 1.0]).tolist()}, (100.0, "mm")),
    ({"unit": "mm", "raw_to_input": np.diag([0.0125, 0.0125, 0.0125, 1.0]).tolist()}, (80.0, "mm")),  # refined scale
    ({"unit": "model", "raw_to_input": np.eye(4).tolist()}, (100.0, "mm")),
    ({"unit": "arbitrary", "raw_to_input": np.diag([0.5, 0.5, 0.5, 1.0]).tolist()}, (2.0, "input units")),
])
def test_distance_scale_follows_the_input_frame(frames, expected):
    scale, unit = distance_scale(frames)
    assert (pytest.approx(scale), unit) == expected
    with pytest.raises(ValueError, match="raw_to_input"):
        distance_scale({"unit": "arbitrary", "raw_to_input": [[0.0]]})


def test_raw_fits_are_scored_within_the_footprint(tiny, tmp_path):
    # A tight cap of a sphere the tiny model knows, as a mesh and as a point cloud with clutter beyond
    # the crop sphere; the fit is the whole sphere, reaching far past the cap.
    _, _, loaded = tiny
    centre, radius = sphere_of(1, "smile")
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=radius)
    cap = sphere.submesh([np.flatnonzero(sphere.triangles_center[:, 2] > 0.6 * radius)], append=True)
    cap.apply_translation(centre)
    (tmp_path / "in").mkdir()
    trimesh.Trimesh(cap.vertices * 100.0, cap.faces, process=False).export(tmp_path / "in" / "face.ply")
    cloud = trimesh.sample.sample_surface(cap, 3000, seed=1)[0]
    clutter = cloud[:1000] + [1.6, 0.0, 0.0]  # 160 mm to the side: beyond the crop sphere, not scored
    np.save(tmp_path / "in" / "cloud.npy", np.concatenate([cloud, clutter]) * 100.0)
    results = fit(loaded, [tmp_path / "in" / "face.ply", tmp_path / "in" / "cloud.npy"], tmp_path / "fits",
                  neutral="no", unit="mm", pose="none", **{**FAST, "steps": 80})
    by_name = {r.name: r.metrics for r in results}
    for name in ("face", "cloud"):
        metrics = by_name[name]
        assert json.loads((tmp_path / "fits" / name / "fit.json").read_text())["metrics"] == metrics
        assert metrics["distance_unit"] == "mm" and metrics["footprint_share"] < 0.5
        assert metrics["input_to_fit_mm"] < 1.0 and metrics["fit_to_input_mm"] < 1.0
        assert abs(metrics["input_to_fit_mm"] - metrics["fit_to_input_mm"]) < 0.2
    assert by_name["face"]["input_share"] == pytest.approx(1.0) and by_name["cloud"]["input_share"] == 0.75
    mesh = trimesh.load(tmp_path / "fits/face/mesh.ply", process=False)
    target = trimesh.load(tmp_path / "fits/face/target.ply", process=False)
    whole = evaluate_reconstruction(mesh.vertices, mesh.faces, target.vertices, target.faces, num_points=2000)
    assert whole.chamfer_mm > 5.0  # the figure fit.json gave before: the sphere's far side counted
