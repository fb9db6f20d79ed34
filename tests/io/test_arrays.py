"""Numeric arrays from user files: numbers back, or one ImfaceError naming the file."""
from __future__ import annotations

import numpy as np
import pytest

from imface.errors import ImfaceError
from imface.io.arrays import read_npy, read_text_table


def test_read_npy_returns_numeric_arrays_and_can_memory_map(tmp_path):
    array = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "a.npy", array)
    np.testing.assert_array_equal(read_npy(tmp_path / "a.npy"), array)
    mapped = read_npy(tmp_path / "a.npy", mmap=True)
    assert isinstance(mapped, np.memmap) and mapped.dtype == np.float32
    np.save(tmp_path / "b.npy", np.array([True, False]))
    assert read_npy(tmp_path / "b.npy").dtype == bool


@pytest.mark.parametrize("case", ["missing", "truncated", "not_npy", "strings", "objects"])
def test_read_npy_refuses_with_one_line_naming_the_file(tmp_path, case):
    path = tmp_path / f"{case}.npy"
    if case == "truncated":
        np.save(path, np.zeros((100, 3)))
        path.write_bytes(path.read_bytes()[:200])
    elif case == "not_npy":
        path.write_text("1 2 3\n")
    elif case == "strings":
        np.save(path, np.array(["a", "b"]))
    elif case == "objects":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)  # never unpickled
    with pytest.raises(ImfaceError) as info:
        read_npy(path, "landmarks")
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    if case == "strings":
        assert "not a numeric array" in str(info.value)


def test_read_text_table_takes_spaces_commas_and_comments(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("# x y z\n1 2 3\n4,5,6  # a comment\n\n 7\t8 9\n")
    table = read_text_table(path)
    assert table.dtype == np.float64
    np.testing.assert_array_equal(table, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    assert read_text_table(tmp_path / "empty.txt").shape == (0, 3)


@pytest.mark.parametrize("text, message", [("1 2 3\n4 5\n", "same count"), ("1 2 x\n", "same count")])
def test_read_text_table_refuses_ragged_or_non_numeric_rows(tmp_path, text, message):
    path = tmp_path / "t.txt"
    path.write_text(text)
    with pytest.raises(ImfaceError, match=message):
        read_text_table(path, "landmarks")
    path.write_bytes(b"\xff\xfe1 2 3")
    with pytest.raises(ImfaceError, match="cannot read landmarks"):
        read_text_table(path, "landmarks")
