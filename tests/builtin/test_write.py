import json

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree
from typer.testing import CliRunner

from imface.cli.data_cmd import app
from imface.builtin.write import parse_expressions, write_dataset
from imface.builtin.generator import FaceGenerator, GeneratorSettings
from imface.errors import ImfaceError
from imface.io.landmarks import read_landmarks
from imface.builtin.bfm import BFMSource

EXPRS = ["neutral", "smile", "mouth_stretch"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, bfm):
    out = tmp_path_factory.mktemp("builtin")
    summary = write_dataset(out, identities=2, expressions=",".join(EXPRS), seed=7)
    return out, summary


def _kabsch_rotation(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd((src - src.mean(0)).T @ (dst - dst.mean(0)))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


def test_files_and_marker(dataset):
    out, summary = dataset
    assert summary.written == 6 and summary.skipped == 0
    marker = json.loads((out / "dataset.json").read_text())
    assert marker["layout"] == "imface-builtin" and marker["units"] == "mm" and marker["seed"] == 7
    assert marker["identities"] == ["001", "002"] and marker["expressions"] == EXPRS
    for ident in ("001", "002"):
        for stem in ("1_neutral", "2_smile", "3_mouth_stretch"):
            for suffix in (".obj", ".lmk.txt", ".registered.ply"):
                assert (out / ident / f"{stem}{suffix}").is_file()


def test_landmarks_lie_on_raw_scan(dataset):
    out, _ = dataset
    for ident in ("001", "002"):
        for stem in ("1_neutral", "3_mouth_stretch"):
            scan = trimesh.load(out / ident / f"{stem}.obj", process=False)
            landmarks = read_landmarks(out / ident / f"{stem}.lmk.txt").ibug68  # (68, 3) mm
            distance, _ = cKDTree(scan.vertices).query(landmarks)
            assert distance.max() < 3.0, (ident, stem, distance.max())
            assert len(scan.faces) < 105_840  # cropped and holed


def test_registered_mesh_matches_generator_up_to_pose(dataset, bfm):
    out, _ = dataset
    gen = FaceGenerator(BFMSource(bfm), GeneratorSettings(seed=7))
    rotations = []
    for stem, name in (("1_neutral", "neutral"), ("2_smile", "smile")):
        mesh = trimesh.load(out / "001" / f"{stem}.registered.ply", process=False)
        assert mesh.vertices.shape == (53_215, 3)
        clean = gen.registered(0, name).astype(np.float64)
        rotation = _kabsch_rotation(clean, np.asarray(mesh.vertices))
        moved = (clean - clean.mean(0)) @ rotation.T + mesh.vertices.mean(0)
        assert np.abs(moved - mesh.vertices).max() < 1e-2  # rigid copy, no noise
        rotations.append(rotation)
    angle = np.degrees(np.arccos(np.clip((np.trace(rotations[0].T @ rotations[1]) - 1) / 2, -1, 1)))
    assert angle > 1.0  # each scan has its own pose


def test_resume_skips_existing(dataset):
    out, _ = dataset
    again = write_dataset(out, identities=2, expressions=",".join(EXPRS), seed=7)
    assert again.written == 0 and again.skipped == 6


def test_other_settings_in_same_folder_are_refused(dataset):
    out, _ = dataset
    with pytest.raises(ImfaceError, match="other settings"):
        write_dataset(out, identities=1, expressions="neutral", seed=8)


def test_parse_expressions():
    assert parse_expressions("all")[0] == "neutral" and len(parse_expressions("all")) == 20
    assert parse_expressions("smile, neutral") == ["neutral", "smile"]  # FaceScape order
    with pytest.raises(ImfaceError, match="frown"):
        parse_expressions("smile,frown")


def test_cli_writes_and_needs_a_job(tmp_path, bfm):
    runner = CliRunner()
    result = runner.invoke(app, ["bfm", "--out", str(tmp_path / "d"), "--identities", "1",
                                 "--expressions", "eye_closed", "--holes", "0", "--noise", "0"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "001" / "18_eye_closed.obj").is_file()
    assert "1 scans written" in result.output
    result = runner.invoke(app, ["bfm"])
    assert isinstance(result.exception, ImfaceError)


def test_cli_report_only(bfm):
    result = CliRunner().invoke(app, ["bfm", "--report", "--report-identities", "3", "--report-heldout", "1"])
    assert result.exit_code == 0, result.output
    assert "3 training / 1 held-out" in result.output
    rows = [line.split() for line in result.output.splitlines() if line.strip()[:1].isdigit()]
    assert [int(r[0]) for r in rows] == [0, 32, 64, 128, 256]
    assert all(float(r[1]) >= 0.0 for r in rows)
