"""imface fit on batches as users bring them: one bad scan among faces does not stop the batch
(one line for it, the others written, exit code 2), and --shard splits a batch over jobs that
write one fits folder (tiny trained model, fast settings)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from imface.contracts.fits import read_fits_index
from tests.run_cli import run_cli
from tests.synthetic_processed import sphere_of

# In model units with no pose search: the refusals here come from reading, and the test stays quick.
FAST = ["--steps", "4", "--surface-points", "64", "--space-points", "32", "--resolution", "20", "--device", "cpu",
        "--neutral", "no", "--unit", "model", "--pose", "none", "--scale-sweep", "0", "--batch-size", "2"]
FACES = ("a_face", "b_face", "c_face")


def _face(identity: int, expression: str) -> trimesh.Trimesh:
    """The front of one of the tiny model's sphere faces, model units: a face to it."""
    centre, radius = sphere_of(identity, expression)
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    keep = np.flatnonzero(sphere.vertices[sphere.faces].mean(axis=1)[:, 2] > -0.3 * radius)
    front = sphere.submesh([keep], append=True)
    return trimesh.Trimesh(front.vertices + centre, front.faces, process=False)


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """A folder of three faces and one plane (not a face), model units."""
    folder = tmp_path_factory.mktemp("scans")
    for i, name in enumerate(FACES):
        _face(i, ("smile", "jaw_open", "smile")[i]).export(folder / f"{name}.ply")
    rng = np.random.default_rng(0)
    np.save(folder / "plane.npy", np.c_[rng.uniform(-0.8, 0.8, (3000, 2)), np.zeros(3000)])
    return folder


def _fitted(out) -> list[str]:
    return sorted(p.parent.name for p in out.glob("*/fit.json"))


def test_one_non_face_in_a_batch_is_one_line_and_the_faces_are_written(trained_tiny, scans, tmp_path, capsys):
    _, exp_dir = trained_tiny
    out = tmp_path / "fits"
    code = run_cli("fit", "--model", str(exp_dir), "--in", str(scans), "--out", str(out), *FAST)
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert _fitted(out) == list(FACES) and not (out / "plane").exists()
    assert [e["name"] for e in read_fits_index(out)["scans"]] == list(FACES)
    lines = [line for line in captured.err.splitlines() if "plane" in line]
    assert lines == [line for line in captured.err.splitlines() if line.startswith(("refused", "failed"))]
    (line,) = lines
    assert line.startswith(f"refused: {scans / 'plane.npy'}: ") and "not a face" in line
    assert "fit: 3 fitted, 0 skipped (already fitted), 1 refused, 0 failed" in captured.out
    assert all(f"{name}: " in captured.out for name in FACES)  # --progress (the default): a line per scan
    # a re-run skips the faces and refuses the plane again
    assert run_cli("fit", "--model", str(exp_dir), "--in", str(scans), "--out", str(out), *FAST) == 2
    assert "fit: 0 fitted, 3 skipped (already fitted), 1 refused, 0 failed" in capsys.readouterr().out


def test_two_shards_into_one_folder_fit_every_scan_once(trained_tiny, scans, tmp_path, capsys):
    _, exp_dir = trained_tiny
    out = tmp_path / "fits"
    faces = [scans / f"{name}.ply" for name in FACES]
    args = ["fit", "--model", str(exp_dir), *[a for f in faces for a in ("--in", str(f))], "--out", str(out), *FAST,
            "--no-progress"]
    assert run_cli(*args, "--shard", "1/2") == 0
    assert _fitted(out) == ["b_face"]  # every 2nd of the sorted names, from the 2nd
    assert "fit: 1 fitted, 0 skipped (already fitted), 0 refused, 0 failed, shard 1/2" in capsys.readouterr().out
    first = (out / "b_face/fit.json").stat().st_mtime_ns
    assert run_cli(*args, "--shard", "0/2") == 0
    assert _fitted(out) == list(FACES) and (out / "b_face/fit.json").stat().st_mtime_ns == first
    assert "fit: 2 fitted, 0 skipped" in capsys.readouterr().out
    assert [e["name"] for e in read_fits_index(out)["scans"]] == list(FACES)  # both shards' parts
    assert [e["name"] for e in json.loads((out / "fits.json").read_text())["scans"]] == list(FACES)
    assert run_cli(*args) == 0  # the whole batch again: nothing left to fit
    assert "fit: 0 fitted, 3 skipped (already fitted), 0 refused, 0 failed" in capsys.readouterr().out


@pytest.mark.parametrize("spec", ["2/2", "1", "a/b"])
def test_a_bad_shard_is_refused_in_one_line_before_any_work(trained_tiny, scans, tmp_path, capsys, spec):
    _, exp_dir = trained_tiny
    out = tmp_path / "fits"
    assert run_cli("fit", "--model", str(exp_dir), "--in", str(scans), "--out", str(out), *FAST, "--shard", spec) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --shard") and "i/n" in err and "\n" not in err
    assert not out.exists()
