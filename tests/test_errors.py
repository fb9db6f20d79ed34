"""ImfaceError: one line, ``<path>: <problem>``."""
from __future__ import annotations

from pathlib import Path

import pytest

from imface.errors import ImfaceError


def test_the_message_names_the_file_and_is_one_line():
    err = ImfaceError(Path("scans") / "a.obj", "cannot read mesh\n  (ValueError:   bad\tline)")
    assert str(err) == "scans/a.obj: cannot read mesh (ValueError: bad line)"
    assert err.path == "scans/a.obj" and err.problem == "cannot read mesh (ValueError: bad line)"
    assert "\n" not in str(err)


def test_without_a_path_the_message_is_the_problem():
    err = ImfaceError(None, "train.precision must be fp32, tf32, bf16 or fp16")
    assert err.path is None and str(err) == err.problem


def test_it_is_an_ordinary_exception():
    with pytest.raises(Exception, match="x.npy: empty"):
        raise ImfaceError("x.npy", 3 * " " + "empty")
