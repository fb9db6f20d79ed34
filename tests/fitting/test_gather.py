"""Which scans the inputs name and which this job reads: datasets, scan folders, folders of
files, shards of a batch, and the inputs refused (one line each) while the others are read."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

from imface.errors import ImfaceError
from imface.fitting import gather
from imface.fitting.gather import InputReport, gather_targets
from tests.synthetic_processed import write_synthetic_dataset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("faces"), num_identities=3, test_identities=1,
                                   surface_points=300, space_points=200)


def test_processed_dataset_splits_and_scan_selection(data_dir, tmp_path):
    test = gather_targets(data_dir, work_dir=tmp_path)
    assert [t.name for t in test] == ["003/1_neutral", "003/2_smile", "003/3_jaw_open"]
    assert [t.neutral for t in test] == [True, False, False] and test[1].expression == "smile"
    assert len(gather_targets(data_dir, work_dir=tmp_path, split="all")) == 9
    chosen = gather_targets(data_dir, work_dir=tmp_path, scans=["001/2_smile"])
    (target,) = chosen
    assert target.surface_points.shape == (300, 3) and target.space_sdf.shape == (200,)
    np.testing.assert_allclose(target.surface_points, np.load(data_dir / "001/2_smile/surface_points.npy"))
    assert target.landmarks.shape == (5, 3) and target.processed == (data_dir / "001/2_smile").resolve()
    assert not target.fit_pose and target.reference is not None
    with pytest.raises(ImfaceError, match="no scan named 009/1_x"):
        gather_targets(data_dir, work_dir=tmp_path, scans=["009/1_x"])
    with pytest.raises(ImfaceError, match="split"):
        gather_targets(data_dir, work_dir=tmp_path, split="val")


def test_one_processed_scan_folder(data_dir, tmp_path):
    (target,) = gather_targets(data_dir / "002/1_neutral", work_dir=tmp_path)
    assert target.name == "002/1_neutral" and target.identity == "002" and target.neutral


def test_named_mesh_files_give_identity_and_expression(tmp_path):
    (tmp_path / "007").mkdir()
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=90.0)  # mm
    sphere.export(tmp_path / "007/3_smile.obj")
    sphere.export(tmp_path / "007/1_neutral.obj")
    targets = gather_targets(tmp_path, work_dir=tmp_path / "out", unit="mm")
    assert [(t.name, t.identity, t.expression, t.neutral) for t in targets] == [
        ("007/1_neutral", "007", "neutral", True), ("007/3_smile", "007", "smile", False)]
    assert all(t.kind == "raw_mesh" and t.unit == "mm" and t.fit_pose for t in targets)
    assert targets[0].reference[0].max() == pytest.approx(0.9, abs=1e-6)  # the mesh, in model units


def _cap(rng: np.random.Generator, radius_mm: float = 90.0) -> np.ndarray:
    """A face-like point set (a sphere's front) in mm."""
    cap = rng.normal(size=(4000, 3))
    cap = radius_mm * cap / np.linalg.norm(cap, axis=1, keepdims=True)
    return cap[cap[:, 2] > 30]


def test_a_batch_reads_on_past_its_bad_inputs(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "face.npy", _cap(rng))
    np.save(tmp_path / "plane.npy", np.c_[rng.uniform(-100, 100, (3000, 2)), np.zeros(3000)])
    (tmp_path / "bad.xyz").write_text("1 2 3\n4 5 nan\n7 8 9\n")
    missing = tmp_path / "nowhere"
    with pytest.raises(ImfaceError, match="NaN"):  # without a report: the first bad input (sorted) raises
        gather_targets(tmp_path, work_dir=tmp_path / "out", unit="mm")
    report = InputReport()
    targets = gather_targets([tmp_path, missing], work_dir=tmp_path / "out", unit="mm", report=report)
    assert [t.name for t in targets] == ["face"] and report.total == 3 and report.raw
    lines = {p.name: p.message for p in report.problems}
    assert set(lines) == {"bad", "plane", missing.as_posix()}
    assert all(p.status == "refused" and "\n" not in p.message for p in report.problems)
    assert str(tmp_path / "plane.npy") in lines["plane"] and "plane, not a face" in lines["plane"]
    assert str(tmp_path / "bad.xyz") in lines["bad"] and "NaN" in lines["bad"]
    assert lines[missing.as_posix()] == f"{missing}: input not found"
    # errors of no one file (the options) still stop the batch at once
    with pytest.raises(ImfaceError, match="--pose none needs a given --unit"):
        gather_targets(tmp_path / "face.npy", work_dir=tmp_path / "out", pose="none", report=InputReport())


def test_an_unexpected_error_reading_one_input_is_that_inputs_failure(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        np.save(tmp_path / f"{name}.npy", _cap(rng))
    real = gather.file_target

    def flaky(path, *args):
        if path.stem == "b":
            raise RuntimeError("reader crashed\non two lines")
        return real(path, *args)

    monkeypatch.setattr(gather, "file_target", flaky)
    report = InputReport()
    assert [t.name for t in gather_targets(tmp_path, work_dir=tmp_path / "out", unit="mm", report=report)] == ["a"]
    (problem,) = report.problems
    assert problem.status == "failed" and isinstance(problem.error, RuntimeError)
    assert problem.message == f"{tmp_path / 'b.npy'}: internal error (RuntimeError: reader crashed on two lines)"
    with pytest.raises(RuntimeError):
        gather_targets(tmp_path, work_dir=tmp_path / "out", unit="mm")


def test_shards_split_the_sorted_scans_before_any_is_read(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("p1/a", "p1/b", "p2/c", "p3/d", "p3/e"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        np.save(tmp_path / f"{name}.npy", _cap(rng))
    (tmp_path / "p2/x.xyz").write_text("not numbers\n")  # read only by the shard it falls in
    parts = []
    for index in range(2):
        report = InputReport()
        parts.append([t.name for t in gather_targets(tmp_path, work_dir=tmp_path / "out", unit="mm",
                                                     shard=(index, 2), report=report)])
        assert report.total == 6 and len(report.problems) == (index == 1)
    assert parts == [["p1/a", "p2/c", "p3/d"], ["p1/b", "p3/e"]]  # every 2nd of the sorted names
    by_person = [[t.name for t in gather_targets(tmp_path, work_dir=tmp_path / "out", unit="mm", shard=(i, 2),
                                                 shard_by="identity", report=InputReport())] for i in range(2)]
    assert by_person == [["p1/a", "p1/b", "p3/d", "p3/e"], ["p2/c"]]  # a person's scans stay in one part
    assert gather_targets(tmp_path / "p1", work_dir=tmp_path / "out", unit="mm", shard=(2, 3)) == []  # nothing left


def test_two_inputs_with_one_scan_name_are_refused(tmp_path):
    (tmp_path / "x").mkdir()
    np.save(tmp_path / "a.npy", _cap(np.random.default_rng(0)))
    np.save(tmp_path / "x" / "a.npy", _cap(np.random.default_rng(1)))
    with pytest.raises(ImfaceError, match="share the scan name"):
        gather_targets([tmp_path / "a.npy", tmp_path / "x"], work_dir=tmp_path / "out", unit="mm",
                       report=InputReport())
