"""The preprocessing batch on synthetic face-like scans: every scan done and inputs untouched,
resumability, sharding, the split, workers, the CLI summary, other layouts and landmark files
(one scan's outputs: test_scan.py; bad input: test_bad_input.py)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from imface.cli import preprocess_cmd
from imface.contracts.dataset import read_manifest
from imface.errors import ImfaceError
from imface.frame import FIVE_LANDMARK_IDS, NOSE_TIP_ID
from imface.preprocess.layouts import discover_scans
from imface.preprocess.run import choose_test_identities, preprocess_dataset, shard_scans
from imface.preprocess.scan import PreprocessConfig
from tests.preprocess import SMALL
from tests.synthetic_raw import (hash_tree, make_canonical_scan, make_raw_scan, scan_height_mm, write_builtin_dataset,
                                 write_obj)


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


@pytest.mark.slow
def test_worker_pool_matches_serial(tmp_path, processed):
    raw, out, _, _ = processed
    summary = preprocess_dataset(raw, tmp_path / "pool", PreprocessConfig(**SMALL, workers=2), progress=False)
    assert len(summary.done) == 9
    for result in summary.done:
        np.testing.assert_array_equal(np.load(result.output_dir / "space_sdf.npy"),
                                      np.load(out / result.name / "space_sdf.npy"))


def test_cli_preprocess_prints_summary(tmp_path):
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


def test_a_scan_that_now_fails_drops_out_of_the_manifest(tmp_path):
    raw = write_builtin_dataset(tmp_path / "raw", identities=2, expressions=((1, "neutral"),))
    preprocess_dataset(raw, tmp_path / "out", PreprocessConfig(**SMALL), progress=False)
    np.savetxt(raw / "002" / "1_neutral.lmk.txt", np.zeros((3, 3)))
    summary = preprocess_dataset(raw, tmp_path / "out", PreprocessConfig(**SMALL), progress=False)
    assert [r.name for r in summary.failed] == ["002/1_neutral"] and len(summary.skipped) == 1
    assert [s.name for s in read_manifest(tmp_path / "out").scans] == ["001/1_neutral"]
