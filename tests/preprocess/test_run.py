"""The preprocessing pipeline on synthetic face-like scans: frames, round trip, SDF signs,
hidden surface, units, seeds, resumability, sharding, split and workers."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import trimesh

from imface.frame import FIVE_LANDMARK_IDS, NOSE_TIP_ID
from imface.preprocess.layouts import discover_scans
from imface.preprocess.align import apply_matrix, detect_unit_scale
from imface.preprocess.scan import PreprocessConfig, preprocess_scan, transform_to_raw
from imface.preprocess.run import choose_test_identities, preprocess_dataset, shard_scans
from imface.errors import ImfaceError
from imface.contracts.dataset import read_manifest
from imface.io.mesh import read_mesh
from tests.synthetic_raw import hash_tree, make_raw_scan, scan_height_mm, write_builtin_dataset, write_obj

SMALL = dict(surface_samples=4000, space_samples=3000, near_surface_samples=2000)


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    raw = write_builtin_dataset(tmp_path_factory.mktemp("raw"), identities=3,
                                expressions=((1, "neutral"), (2, "smile"), (5, "jaw_left")))
    before = hash_tree(raw)
    out = tmp_path_factory.mktemp("out")
    summary = preprocess_dataset(raw, out, PreprocessConfig(**SMALL), progress=False)
    return raw, out, summary, before


def _surface_distance(points, vertices, faces):
    import igl

    return np.sqrt(igl.point_mesh_squared_distance(points, vertices, faces)[0])


def test_batch_processes_every_scan_and_leaves_inputs_untouched(processed):
    raw, out, summary, before = processed
    assert summary.ok and len(summary.done) == 9 and not summary.skipped
    assert hash_tree(raw) == before
    for result in summary.done:
        assert set(result.timings) == {"read", "align", "crop", "hidden_surface", "delaunay", "samples", "write"}
    folder = out / "001" / "1_neutral"
    for name in ("mesh.ply", "registered.ply", "surface_points.npy", "surface_normals.npy", "space_points.npy",
                 "space_sdf.npy", "space_grad.npy", "landmarks.json", "meta.json"):
        assert (folder / name).is_file(), name
    assert np.load(folder / "surface_points.npy").shape == (4000, 3)
    assert np.load(folder / "space_sdf.npy").dtype == np.float32
    assert not list(out.rglob(".*"))  # no atomic-write leftovers


def test_round_trip_to_the_raw_frame(processed):
    raw, out, _, _ = processed
    folder = out / "002" / "2_smile"
    meta = json.loads((folder / "meta.json").read_text())
    np.testing.assert_allclose(np.asarray(meta["model_to_raw"]) @ np.asarray(meta["raw_to_model"]), np.eye(4),
                               atol=1e-12)
    registered = read_mesh(folder / "registered.ply").vertices
    raw_registered = read_mesh(raw / "002" / "2_smile.registered.ply").vertices
    np.testing.assert_allclose(transform_to_raw(registered, folder), raw_registered, atol=1e-4)
    # The processed mesh keeps raw vertices (plus new ones on cut edges): all lie on the raw surface.
    raw_mesh = read_mesh(raw / "002" / "2_smile.obj")
    back = transform_to_raw(read_mesh(folder / "mesh.ply").vertices, meta)
    assert _surface_distance(back, raw_mesh.vertices, raw_mesh.faces).max() < 1e-4
    landmarks = json.loads((folder / "landmarks.json").read_text())
    raw_landmarks = np.loadtxt(raw / "002" / "2_smile.lmk.txt")
    np.testing.assert_allclose(transform_to_raw(np.asarray(landmarks["ibug68"]), meta), raw_landmarks, atol=1e-4)


def test_canonical_frame_nose_tip_and_crop(processed):
    _, out, _, _ = processed
    folder = out / "001" / "1_neutral"
    landmarks = json.loads((folder / "landmarks.json").read_text())
    ibug = np.asarray(landmarks["ibug68"])
    np.testing.assert_allclose(ibug[NOSE_TIP_ID], [0.0, 0.0, 0.4], atol=1e-6)
    np.testing.assert_allclose(np.asarray(landmarks["five"]), ibug[list(FIVE_LANDMARK_IDS)])
    assert ibug[45, 0] > ibug[36, 0] and ibug[27, 1] > ibug[8, 1]  # frontal: x along the eyes, y up
    mesh = read_mesh(folder / "mesh.ply")
    assert np.linalg.norm(mesh.vertices, axis=1).max() <= 1.0 + 1e-6
    assert np.linalg.norm(mesh.vertices, axis=1).max() > 0.98  # the crop reached the sphere
    normals = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).face_normals
    assert (normals[:, 2] > 0).all()  # pseudo-watertight height field faces the viewer


def test_pose_and_unit_do_not_change_the_result(tmp_path):
    outputs = []
    for index, (unit, seed) in enumerate((("mm", 1), ("cm", 2), ("m", 3))):
        scan = make_raw_scan(np.random.default_rng(seed), unit=unit)
        folder = tmp_path / f"raw{index}" / "p"
        write_obj(folder / "1_neutral.obj", scan["vertices"], scan["faces"])
        np.savetxt(folder / "1_neutral.lmk.txt", scan["landmarks"])
        trimesh.Trimesh(scan["registered_vertices"], scan["registered_faces"], process=False).export(
            folder / "1_neutral.registered.ply")
        (tmp_path / f"raw{index}" / "dataset.json").write_text('{"layout": "imface-builtin"}')
        source = discover_scans(tmp_path / f"raw{index}")[0]
        result = preprocess_scan(source, tmp_path / f"out{index}", PreprocessConfig(**SMALL))
        meta = json.loads((result.output_dir / "meta.json").read_text())
        assert meta["unit"] == unit
        outputs.append(read_mesh(result.output_dir / "registered.ply").vertices)
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-6)
    np.testing.assert_allclose(outputs[2], outputs[0], atol=1e-6)


@pytest.mark.parametrize("unit, scale", [("mm", 1.0), ("cm", 0.1), ("m", 0.001)])
def test_unit_detection(unit, scale):
    five = np.array([[-45.0, 35, 0], [45, 35, 0], [0, 0, 40], [-25, -33, 7], [25, -33, 7]]) * scale
    assert detect_unit_scale(five, None, (70.0, 120.0), "s.obj") == (unit, {"mm": 1.0, "cm": 10.0, "m": 1e3}[unit])
    with pytest.raises(ImfaceError, match="not a face in mm, cm or m; pass --unit"):
        detect_unit_scale(five * 0.3, None, (70.0, 120.0), "s.obj")
    wrong = "cm" if unit != "cm" else "mm"
    with pytest.raises(ImfaceError, match=f"with unit {wrong}"):
        detect_unit_scale(five, wrong, (70.0, 120.0), "s.obj")


def _height_at(points_xy, vertices, faces):
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    origins = np.column_stack([points_xy, np.full(len(points_xy), 10.0)])
    locations, rays, _ = mesh.ray.intersects_location(origins, np.tile([0, 0, -1.0], (len(origins), 1)),
                                                     multiple_hits=False)
    heights = np.full(len(origins), np.nan)
    heights[rays] = locations[:, 2]
    return heights


def test_sdf_signs_and_gradients(processed):
    _, out, _, _ = processed
    folder = out / "003" / "1_neutral"
    mesh = read_mesh(folder / "mesh.ply")
    points, sdf = np.load(folder / "space_points.npy"), np.load(folder / "space_sdf.npy")
    grad = np.load(folder / "space_grad.npy")
    height = _height_at(points[:, :2], mesh.vertices, mesh.faces)
    front, behind = points[:, 2] > height + 0.05, points[:, 2] < height - 0.05
    assert front.sum() > 100 and behind.sum() > 100
    assert (sdf[front] > 0).all() and (sdf[behind] < 0).all()
    np.testing.assert_allclose(np.abs(sdf), _surface_distance(points.astype(np.float64), mesh.vertices, mesh.faces),
                               atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(grad, axis=1), 1.0, atol=1e-5)
    surface, normals = np.load(folder / "surface_points.npy"), np.load(folder / "surface_normals.npy")
    assert _surface_distance(surface.astype(np.float64), mesh.vertices, mesh.faces).max() < 1e-6
    assert (normals[:, 2] >= 0).all()


def test_hidden_cavity_is_removed_and_overhang_kept(processed):
    raw, out, _, _ = processed
    folder = out / "001" / "2_smile"
    raw_to_model = np.asarray(json.loads((folder / "meta.json").read_text())["raw_to_model"])
    raw_scan = read_mesh(raw / "001" / "2_smile.obj").vertices
    model = apply_matrix(raw_scan, raw_to_model)
    mesh = read_mesh(folder / "mesh.ply")
    # Every raw vertex that survived is visible: nothing of the processed mesh lies in front of it.
    processed_height = _height_at(model[:, :2], mesh.vertices, mesh.faces)
    kept = _surface_distance(model, mesh.vertices, mesh.faces) < 1e-7
    hidden = model[:, 2] < processed_height - 0.05  # e.g. the mouth cavity 15 mm behind the lips
    assert hidden.sum() > 20 and not (kept & hidden).any()
    assert kept.sum() > 500


def test_seeds_are_per_scan_and_reproducible(tmp_path, processed):
    raw, out, _, _ = processed
    scan = discover_scans(raw)[0]
    again = preprocess_scan(scan, tmp_path / "a", PreprocessConfig(**SMALL))
    first = np.load(out / scan.name / "space_points.npy")
    np.testing.assert_array_equal(np.load(again.output_dir / "space_points.npy"), first)
    other = preprocess_scan(scan, tmp_path / "b", PreprocessConfig(**SMALL, seed=7))
    assert not np.array_equal(np.load(other.output_dir / "space_points.npy"), first)
    second = discover_scans(raw)[1]
    assert not np.array_equal(np.load(out / second.name / "space_points.npy"), first)


def test_near_surface_samples(tmp_path, processed):
    raw, _, _, _ = processed
    scan = discover_scans(raw)[0]
    result = preprocess_scan(scan, tmp_path, PreprocessConfig(**{**SMALL, "near_surface_samples": 500},
                                                                near_surface_sigma=0.005))
    near, near_sdf = np.load(result.output_dir / "near_points.npy"), np.load(result.output_dir / "near_sdf.npy")
    assert near.shape == (500, 3) and near_sdf.shape == (500,)
    assert np.abs(near_sdf).max() < 0.05 and np.abs(near_sdf).mean() < 0.01


def test_resume_skips_complete_scans_and_redoes_changed_ones(tmp_path):
    raw = write_builtin_dataset(tmp_path / "raw", identities=2, expressions=((1, "neutral"),))
    config = PreprocessConfig(**SMALL)
    first = preprocess_dataset(raw, tmp_path / "out", config, progress=False)
    assert len(first.done) == 2
    second = preprocess_dataset(raw, tmp_path / "out", config, progress=False)
    assert len(second.skipped) == 2 and not second.done
    with open(raw / "002" / "1_neutral.obj", "a") as fh:
        fh.write("# edited\n")
    third = preprocess_dataset(raw, tmp_path / "out", config, progress=False)
    assert [r.name for r in third.done] == ["002/1_neutral"] and len(third.skipped) == 1
    (tmp_path / "out" / "001" / "1_neutral" / "meta.json").unlink()  # an interrupted scan
    fourth = preprocess_dataset(raw, tmp_path / "out", config, progress=False)
    assert [r.name for r in fourth.done] == ["001/1_neutral"]
    changed = preprocess_dataset(raw, tmp_path / "out", PreprocessConfig(surface_samples=3000, space_samples=3000),
                                 progress=False)
    assert len(changed.done) == 2


def test_shards_cover_every_scan_once(tmp_path):
    raw = write_builtin_dataset(tmp_path / "raw", identities=3, expressions=((1, "neutral"), (2, "smile")))
    scans = discover_scans(raw)
    for count in (1, 2, 4, 7):
        parts = [shard_scans(scans, (i, count)) for i in range(count)]
        names = [s.name for part in parts for s in part]
        assert sorted(names) == sorted(s.name for s in scans) and len(set(names)) == len(names)
    for index in range(2):
        summary = preprocess_dataset(raw, tmp_path / "out", PreprocessConfig(**SMALL, shard=(index, 2)),
                                     progress=False)
        assert len(summary.done) == 3
    assert len(read_manifest(tmp_path / "out").scans) == 6  # the last shard's manifest sees all work


def test_split_is_deterministic_and_sensible(processed):
    _, out, _, _ = processed
    manifest = read_manifest(out)
    assert len(manifest.test_identities) == 1  # ~10% of 3, at least one
    held = manifest.test_identities[0]
    assert all(manifest.scan(n).identity == held for n in manifest.test)
    assert all(manifest.scan(n).expression == "jaw_left" for n in manifest.held_out_expression)
    assert len(manifest.train) == 4 and len(manifest.test) == 3 and len(manifest.held_out_expression) == 2
    ids = [f"{i:03d}" for i in range(40)]
    assert choose_test_identities(ids, None, 0) == choose_test_identities(list(reversed(ids)), None, 0)
    assert len(choose_test_identities(ids, None, 0)) == 4
    assert choose_test_identities(ids, None, 0) != choose_test_identities(ids, None, 1)
    assert choose_test_identities(["a"], None, 0) == []
    assert choose_test_identities(ids, ["007", "003"], 0) == ["003", "007"]
    with pytest.raises(ImfaceError, match="unknown identities"):
        choose_test_identities(ids, ["nobody"], 0)
    with pytest.raises(ImfaceError, match="still train"):
        choose_test_identities(ids[:2], 2, 0)


def test_output_folder_may_not_be_the_input(tmp_path):
    raw = write_builtin_dataset(tmp_path / "raw", identities=1, expressions=((1, "neutral"),))
    with pytest.raises(ImfaceError, match="output folder is the input"):
        preprocess_dataset(raw, raw, PreprocessConfig(**SMALL), progress=False)


def test_preview_is_written(tmp_path, processed):
    pytest.importorskip("imface.preprocess.preview")
    raw, _, _, _ = processed
    scan = discover_scans(raw)[0]
    result = preprocess_scan(scan, tmp_path, PreprocessConfig(**SMALL, preview=True))
    assert (result.output_dir / "preview.png").stat().st_size > 1000


@pytest.mark.slow
def test_worker_pool_matches_serial(tmp_path, processed):
    raw, out, _, _ = processed
    summary = preprocess_dataset(raw, tmp_path / "pool", PreprocessConfig(**SMALL, workers=2), progress=False)
    assert len(summary.done) == 9
    for result in summary.done:
        np.testing.assert_array_equal(np.load(result.output_dir / "space_sdf.npy"),
                                      np.load(out / result.name / "space_sdf.npy"))


def test_cli_preprocess_prints_summary(tmp_path):
    import typer
    from typer.testing import CliRunner

    from imface.cli import preprocess_cmd

    raw = write_builtin_dataset(tmp_path / "raw", identities=2, expressions=((1, "neutral"),))
    app = typer.Typer()
    app.command()(preprocess_cmd.preprocess)
    app.command("other")(lambda: None)  # two commands: typer keeps the subcommand name
    args = ["preprocess", "--in", str(raw), "--out", str(tmp_path / "out"), "--surface-samples", "2000",
            "--space-samples", "1000", "--no-progress", "--shard", "0/1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 done, 0 skipped, 0 failed" in result.output and "manifest:" in result.output
    shutil.copy(raw / "001" / "1_neutral.obj", raw / "002" / "1_neutral.lmk.txt")  # break one scan
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "1 failed" in result.output and str(raw / "002" / "1_neutral.lmk.txt") in result.output
    assert scan_height_mm(np.zeros(1), np.zeros(1))[0] == pytest.approx(40.0)


def test_facescape_layout_with_vertex_index_landmarks_and_align_none(tmp_path):
    from tests.synthetic_raw import make_canonical_scan

    scan = make_canonical_scan()
    # Shuffled vertex order: the ids address the file's order, which mesh cleanup does not keep.
    order = np.random.default_rng(0).permutation(len(scan["vertices"]))
    vertices, faces = scan["vertices"][order], np.argsort(order)[scan["faces"]]
    ids = np.argmin(np.linalg.norm(vertices[None, :, :2] - scan["landmarks"][:, None, :2], axis=2), axis=1)
    for identity in ("7", "8"):
        write_obj(tmp_path / "fs" / identity / "models_reg" / "1_neutral.obj", vertices, faces)
    np.savetxt(tmp_path / "ids.txt", ids, fmt="%d")
    config = PreprocessConfig(**SMALL, align="none", landmark_indices=tmp_path / "ids.txt")
    summary = preprocess_dataset(tmp_path / "fs", tmp_path / "out", config, progress=False)
    assert summary.ok and len(summary.done) == 2, summary.format()
    meta = json.loads((tmp_path / "out" / "7" / "1_neutral" / "meta.json").read_text())
    # align none: no rotation, only the shift that puts the nose tip at (0, 0, 40) mm.
    np.testing.assert_allclose(np.asarray(meta["raw_to_model"])[:3, :3], np.eye(3) / 100, atol=1e-12)
    landmarks = json.loads((tmp_path / "out" / "7" / "1_neutral" / "landmarks.json").read_text())
    shift = np.asarray(meta["raw_to_model"])[:3, 3]
    np.testing.assert_allclose(np.asarray(landmarks["ibug68"]), vertices[ids] / 100 + shift, atol=1e-7)
    np.testing.assert_allclose(landmarks["ibug68"][NOSE_TIP_ID], [0.0, 0.0, 0.4], atol=1e-7)


def test_five_landmarks_from_a_list(tmp_path):
    scan = make_raw_scan(np.random.default_rng(11))
    write_obj(tmp_path / "a.obj", scan["vertices"], scan["faces"])
    np.savetxt(tmp_path / "a5.txt", scan["landmarks"][list(FIVE_LANDMARK_IDS)])
    (tmp_path / "list.csv").write_text("mesh,landmarks,identity,expression\na.obj,a5.txt,p,neutral\n")
    summary = preprocess_dataset(tmp_path / "list.csv", tmp_path / "out", PreprocessConfig(**SMALL), progress=False)
    assert summary.ok, summary.format()
    landmarks = json.loads((tmp_path / "out" / "p" / "a" / "landmarks.json").read_text())
    assert landmarks["ibug68"] is None and len(landmarks["five"]) == 5
    np.testing.assert_allclose(landmarks["five"][2], [0.0, 0.0, 0.4], atol=1e-7)


def test_stale_optional_outputs_are_removed(tmp_path, processed):
    raw, _, _, _ = processed
    scan = discover_scans(raw)[0]
    first = preprocess_scan(scan, tmp_path, PreprocessConfig(**{**SMALL, "near_surface_samples": 100}))
    assert (first.output_dir / "near_points.npy").is_file()
    result = preprocess_scan(scan, tmp_path, PreprocessConfig(**{**SMALL, "near_surface_samples": 0}))
    assert result.output_dir == first.output_dir
    assert not (result.output_dir / "near_points.npy").exists()


def test_a_scan_that_now_fails_drops_out_of_the_manifest(tmp_path):
    raw = write_builtin_dataset(tmp_path / "raw", identities=2, expressions=((1, "neutral"),))
    preprocess_dataset(raw, tmp_path / "out", PreprocessConfig(**SMALL), progress=False)
    np.savetxt(raw / "002" / "1_neutral.lmk.txt", np.zeros((3, 3)))
    summary = preprocess_dataset(raw, tmp_path / "out", PreprocessConfig(**SMALL), progress=False)
    assert [r.name for r in summary.failed] == ["002/1_neutral"] and len(summary.skipped) == 1
    assert [s.name for s in read_manifest(tmp_path / "out").scans] == ["001/1_neutral"]
