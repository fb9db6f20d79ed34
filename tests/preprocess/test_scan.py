"""One scan preprocessed: the round trip to the raw frame, the canonical frame and crop, pose and
unit invariance, SDF signs and gradients, hidden surface removal, per-scan seeds, near-surface
samples, the preview, and optional outputs that go stale."""
from __future__ import annotations

import json

import igl
import numpy as np
import pytest
import trimesh

from imface.frame import FIVE_LANDMARK_IDS, NOSE_TIP_ID
from imface.io.mesh import read_mesh
from imface.preprocess.align import apply_matrix
from imface.preprocess.layouts import discover_scans
from imface.preprocess.scan import PreprocessConfig, preprocess_scan, transform_to_raw
from tests.preprocess import SMALL
from tests.synthetic_raw import make_raw_scan, write_builtin_scan


def _surface_distance(points, vertices, faces):
    return np.sqrt(igl.point_mesh_squared_distance(points, vertices, faces)[0])


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
        write_builtin_scan(tmp_path / f"raw{index}" / "p" / "1_neutral", scan)
        (tmp_path / f"raw{index}" / "dataset.json").write_text('{"layout": "imface-builtin"}')
        source = discover_scans(tmp_path / f"raw{index}")[0]
        result = preprocess_scan(source, tmp_path / f"out{index}", PreprocessConfig(**SMALL))
        meta = json.loads((result.output_dir / "meta.json").read_text())
        assert meta["unit"] == unit
        outputs.append(read_mesh(result.output_dir / "registered.ply").vertices)
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-6)
    np.testing.assert_allclose(outputs[2], outputs[0], atol=1e-6)


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


def test_preview_is_written(tmp_path, processed):
    pytest.importorskip("imface.preprocess.preview")
    raw, _, _, _ = processed
    scan = discover_scans(raw)[0]
    result = preprocess_scan(scan, tmp_path, PreprocessConfig(**SMALL, preview=True))
    assert (result.output_dir / "preview.png").stat().st_size > 1000


def test_stale_optional_outputs_are_removed(tmp_path, processed):
    raw, _, _, _ = processed
    scan = discover_scans(raw)[0]
    first = preprocess_scan(scan, tmp_path, PreprocessConfig(**{**SMALL, "near_surface_samples": 100}))
    assert (first.output_dir / "near_points.npy").is_file()
    result = preprocess_scan(scan, tmp_path, PreprocessConfig(**{**SMALL, "near_surface_samples": 0}))
    assert result.output_dir == first.output_dir
    assert not (result.output_dir / "near_points.npy").exists()
