"""The paper's path on FaceScape-shaped data, through the command line: ``preprocess --layout
facescape --split-from paper`` (no --landmark-indices) -> ``check-data`` -> ``baseline build``,
then ``train --preset tiny`` and ``benchmark --preset tiny`` to ``report.md``. About 40 s on two
shared cores (the benchmark part about 30 s), so all of it is in the default suite.

The data: identities in FaceScape's folder layout (``<id>/models_reg/<n>_<expression>.obj``),
TU-like meshes that all share one grid topology (a face-shaped height field; each identity a
width, each expression a smooth displacement of the mouth and jaw), written in the TU models'
frame (mm, facing +z, nose tip near (0, -9, 71)). The grid topology is registered as a TU
topology for the test only, with its 68 landmark ids; the paper split's logic runs on the
test's own identities (train 1-4, test 5 and an absent 7; identity 9 is in neither list).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from imface.contracts.dataset import read_manifest
from imface.io.mesh import read_mesh
from imface.preprocess import facescape, split
from tests.run_cli import run_cli
from tests.synthetic_raw import make_canonical_scan, write_obj

GRID_STEP_MM = 6.0
#: Where the TU models' frame puts the canonical frame's origin (their nose tip is near (0, -9, 71)).
TU_OFFSET_MM = np.array([0.0, -9.0, 31.0])
EXPRESSIONS = (1, 2, 3, 5)  # neutral, smile, mouth_stretch, jaw_left (not a paper training expression)
TRAIN, TEST, ABSENT, OUTSIDE = ("1", "2", "3", "4"), ("5",), ("7",), ("9",)
SMALL = ["--surface-samples", "6000", "--space-samples", "2000", "--near-surface", "2000"]


def _expression_displacement(vertices: np.ndarray, number: int) -> np.ndarray:
    """(V, 3) mm: a smooth move of the lower face for each FaceScape expression number."""
    x, y = vertices[:, 0], vertices[:, 1]
    lower = np.exp(-(x / 45.0) ** 2) / (1.0 + np.exp((y + 22.0) / 4.0))  # 1 below the mouth, 0 above
    corners = np.exp(-((np.abs(x) - 25.0) ** 2 + (y + 33.0) ** 2) / (2 * 10.0**2))
    move = np.zeros_like(vertices)
    if number == 2:  # smile: mouth corners up and out
        move[:, 0], move[:, 1] = 4.0 * np.sign(x) * corners, 5.0 * corners
    elif number == 3:  # mouth stretch: the jaw drops
        move[:, 1] = -14.0 * lower
    elif number == 5:  # jaw left: the jaw moves to the subject's left (+x)
        move[:, 0] = 10.0 * lower
    return move


def write_facescape_like(root: Path) -> tuple[Path, int]:
    """The raw dataset (module docstring) and its grid topology's landmark id file; returns the
    id file and the vertex count."""
    template = make_canonical_scan(GRID_STEP_MM, extras=False)
    ids = cKDTree(template["vertices"][:, :2]).query(template["landmarks"][:, :2])[1]
    id_file = root / "grid_landmark_ids.txt"
    root.mkdir(parents=True, exist_ok=True)
    np.savetxt(id_file, ids, fmt="%d")
    rng = np.random.default_rng(0)
    for identity in TRAIN + TEST + OUTSIDE:
        face = make_canonical_scan(GRID_STEP_MM, width=rng.uniform(0.93, 1.07), extras=False)
        for number in EXPRESSIONS:
            vertices = face["vertices"] + _expression_displacement(face["vertices"], number) + TU_OFFSET_MM
            name = f"{number}_{facescape.FACESCAPE_EXPRESSIONS[number]}.obj"
            write_obj(root / "raw" / identity / "models_reg" / name, vertices, face["faces"])
    return id_file, len(template["vertices"])


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    """(raw folder, processed folder, vertex count, preprocess output) after the CLI preprocess,
    with the grid registered as a TU topology and the paper split on the test's identities."""
    base = tmp_path_factory.mktemp("facescape")
    id_file, vertex_count = write_facescape_like(base)
    paper = facescape.FaceScapeSplit("paper", TRAIN, TEST + ABSENT, facescape.PAPER_TRAIN_EXPRESSIONS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(facescape.TU_TOPOLOGIES, vertex_count, facescape.TuTopology("test-grid", vertex_count, id_file))
        patch.setattr(split, "paper_split", lambda: paper)
        code = run_cli("preprocess", "--in", str(base / "raw"), "--out", str(base / "data"), "--layout", "facescape",
                    "--split-from", "paper", "--no-progress", *SMALL)
    assert code == 0
    return base / "raw", base / "data", vertex_count, id_file


def test_facescape_preprocess_check_and_baselines(processed, tmp_path, capsys):
    _, data, vertex_count, id_file = processed
    manifest = read_manifest(data)
    # the paper split's logic: its identities only, its test identities, the other expressions held out
    assert manifest.identities == sorted(TRAIN + TEST)
    assert manifest.test_identities == TEST and len(manifest.test) == len(EXPRESSIONS)
    assert sorted(manifest.held_out_expression) == [f"{i}/5_jaw_left" for i in TRAIN]
    assert len(manifest.train) == len(TRAIN) * 3 and manifest.extra["split_from"] == "paper"
    assert set(manifest.test_expressions) == {"jaw_left", "jaw_right", "mouth_left", "mouth_right", "eye_closed"}
    scan = manifest.folder(manifest.train[0])
    meta = json.loads((scan / "meta.json").read_text())
    assert meta["source"]["landmark_indices"] == str(id_file)  # the ids of the detected topology
    assert np.allclose(np.asarray(meta["raw_to_model"])[:3, :3], np.eye(3) / 100)  # no rotation: TU frame kept
    landmarks = json.loads((scan / "landmarks.json").read_text())
    assert np.allclose(landmarks["ibug68"][30], [0.0, 0.0, 0.4], atol=1e-6)  # --align auto: none for TU models
    assert len(read_mesh(scan / "registered.ply").vertices) == vertex_count  # the TU model is the registered mesh

    assert run_cli("check-data", "--data", str(data)) == 0
    assert "OK: no problems found" in capsys.readouterr().out
    models = tmp_path / "baselines"
    assert run_cli("baseline", "build", "--data", str(data), "--out", str(models), "--pca-sizes", "2,4",
                "--bilinear", "2,2", "--flame", "2,2") == 0
    index = json.loads((models / "baselines.json").read_text())
    assert index["training_scans"] == len(manifest.train)
    assert {"pca2", "pca4", "bilinear", "flame_like"} <= set(index["models"])
    assert all(entry["vertices"] == vertex_count for entry in index["models"].values())


def test_an_unknown_topology_or_scattered_ids_are_one_line_each(processed, tmp_path, capsys):
    raw, _, vertex_count, id_file = processed
    # without the test topology registered, the grid is no TU topology: one line naming the first mesh
    assert run_cli("preprocess", "--in", str(raw), "--out", str(tmp_path / "d1"), "--no-progress", *SMALL) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(raw / "1" / "models_reg" / "1_neutral.obj") in err[0]
    assert f"{vertex_count:,} vertices: not a FaceScape TU topology" in err[0]
    # ids of another numbering (shifted) land on the surface but scattered: refused per scan, naming the mesh
    shifted = tmp_path / "shifted_ids.txt"
    np.savetxt(shifted, (np.loadtxt(id_file, dtype=int) + 37) % vertex_count, fmt="%d")
    assert run_cli("preprocess", "--in", str(raw), "--out", str(tmp_path / "d2"), "--landmark-indices",
                str(shifted), "--test-identities", "1", "--no-progress", *SMALL) == 2
    out = capsys.readouterr().out
    assert "implausible landmarks (vertex ids from" in out and "/models_reg/1_neutral.obj: " in out


def test_facescape_train_and_benchmark_to_the_report(processed, tmp_path):
    _, data, _, _ = processed
    assert run_cli("train", "--data", str(data), "--out", str(tmp_path / "exp"), "--preset", "tiny",
                "--max-steps", "20", "--device", "cpu", "--no-progress") == 0
    assert run_cli("benchmark", "--data", str(data), "--out", str(tmp_path / "bench"), "--preset", "tiny",
                "--variants", "full,no-dist", "--train-steps", "10", "--device", "cpu", "--no-progress") == 0
    report = (tmp_path / "bench" / "report.md").read_text()
    assert "Table 1 analog" in report
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert {"full", "no-dist", "pca2", "bilinear", "flame_like"} <= set(results["methods"])
    assert all(row["chamfer_mm"]["mean"] > 0 for row in results["methods"].values())
