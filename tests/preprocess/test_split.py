"""Splits given before processing: the paper's (FaceScape identities and expressions), a file of
test identities, a CSV of scans; what each keeps, and the refusals."""
from __future__ import annotations

from pathlib import Path

import pytest

from imface.errors import ImfaceError
from imface.preprocess.facescape import FACESCAPE_EXPRESSIONS, FaceScapeSplit
from imface.preprocess.layouts import ScanSource
from imface.preprocess.split import (
    SplitPlan, apply_split, choose_test_identities, facescape_plan, read_split_file, resolve_split,
)


def _scans(identities, numbers=(1, 2, 5)):
    """FaceScape-named scans: <id>/<n>_<expression>."""
    return [ScanSource(f"{i}/{n}_{FACESCAPE_EXPRESSIONS[n]}", i, FACESCAPE_EXPRESSIONS[n], Path(f"{i}/{n}.obj"), None,
                       Path("ids.txt")) for i in identities for n in numbers]


def test_a_facescape_split_keeps_its_identities_and_holds_out_the_other_expressions():
    plan = facescape_plan(FaceScapeSplit("mine", ("1", "2", "3"), ("7", "9"), (1, 2, 3)))
    applied = apply_split(plan, _scans(["1", "2", "3", "4", "7"]))
    assert sorted({s.identity for s in applied.scans}) == ["1", "2", "3", "7"]  # 4 is in neither list
    assert applied.test_identities == ["7"]
    assert "jaw_left" in applied.test_expressions and "smile" not in applied.test_expressions
    assert len(applied.test_expressions) == 17
    assert any("1 of its 2 test identities are not in the data (9)" in n for n in applied.notes)
    assert any("3 scans of identities outside the split are not processed" in n for n in applied.notes)


def test_the_paper_split_by_name_and_a_plan_without_test_identities_in_the_data():
    plan = resolve_split("paper")
    assert plan.source == "paper" and len(plan.test_identities) == 10 and len(plan.identities) == 365
    assert resolve_split(None) is None and resolve_split("") is None
    with pytest.raises(ImfaceError, match=r"^paper: none of the split's test identities are in the data .*122"):
        apply_split(plan, _scans(["1", "2"]))
    with pytest.raises(ImfaceError, match="no training identity"):
        apply_split(plan, _scans(["122", "212"]))


def test_a_file_of_test_identities(tmp_path):
    path = tmp_path / "test_ids.txt"
    path.write_text("# held out\n003\n\n001  # two\n")
    plan = read_split_file(path)
    assert plan == SplitPlan(str(path), ("001", "003"))
    applied = apply_split(plan, _scans(["001", "002", "003"]))
    assert applied.test_identities == ["001", "003"] and applied.test_expressions is None
    assert len(applied.scans) == 9 and applied.notes == []
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ImfaceError, match="no test identities"):
        read_split_file(tmp_path / "empty.txt")
    with pytest.raises(ImfaceError, match="cannot read split file"):
        read_split_file(tmp_path / "missing.txt")


def _csv(tmp_path, rows, header="name,split"):
    path = tmp_path / "split.csv"
    path.write_text(header + "\n" + "".join(f"{name},{split}\n" for name, split in rows))
    return path


def test_a_csv_of_scans(tmp_path):
    rows = [("a/1_neutral", "train"), ("a/2_smile", "train"), ("a/5_jaw_left", "held_out_expression"),
            ("b/1_neutral", "test"), ("b/2_smile", "test"), ("b/5_jaw_left", "unused")]
    applied = apply_split(read_split_file(_csv(tmp_path, rows)), _scans(["a", "b", "c"]))
    assert [s.name for s in applied.scans] == [r[0] for r in rows[:5]]
    assert applied.test_identities == ["b"] and applied.test_expressions == ["jaw_left"]
    assert applied.notes == [f"split {tmp_path / 'split.csv'}: 4 of the dataset's 9 scans are not processed"]


def test_a_csv_that_does_not_split_by_identity_and_expression_is_refused(tmp_path):
    scans = _scans(["a", "b"])
    mixed = [("a/1_neutral", "train"), ("a/2_smile", "test"), ("b/1_neutral", "test")]
    with pytest.raises(ImfaceError, match="'a/1_neutral' is 'train', but its identity and expression make it 'test'"):
        apply_split(read_split_file(_csv(tmp_path, mixed)), scans)
    with pytest.raises(ImfaceError, match="does not have: z/1_neutral"):
        apply_split(read_split_file(_csv(tmp_path, [("z/1_neutral", "train")])), scans)
    with pytest.raises(ImfaceError, match="line 2: split 'val' is not one of"):
        read_split_file(_csv(tmp_path, [("a/1_neutral", "val")]))
    with pytest.raises(ImfaceError, match="line 3: scan 'a/1_neutral' is listed twice"):
        read_split_file(_csv(tmp_path, [("a/1_neutral", "train"), ("a/1_neutral", "test")]))
    with pytest.raises(ImfaceError, match="needs 'name' and 'split' columns"):
        read_split_file(_csv(tmp_path, [("a/1_neutral", "train")], header="scan,split"))


def test_choose_test_identities_has_its_home_here():
    assert choose_test_identities(["a", "b", "c"], ["b"], 0) == ["b"]
