"""The option parsers every verb shares: comma lists and --shard i/n."""
from __future__ import annotations

import pytest

from imface.cli.parsing import int_list, name_list, parse_shard
from imface.errors import ImfaceError


def test_lists_and_none():
    assert name_list(" a, b,, c ", "--scans") == ["a", "b", "c"]
    assert name_list("none", "--scans") == [] and name_list(None, "--scans") is None
    assert int_list("1,2", "--sizes") == [1, 2]
    with pytest.raises(ImfaceError, match="--sizes expects comma-separated integers"):
        int_list("1,x", "--sizes")


def test_shard_reads_i_of_n():
    assert parse_shard("1/4") == (1, 4) and parse_shard(" 0 / 2 ") == (0, 2)
    assert parse_shard(None) is None and parse_shard("") is None


@pytest.mark.parametrize("text", ["4/4", "2/1", "1", "a/b", "-1/3", "1/0", "1/2/3"])
def test_a_bad_shard_is_one_line_naming_the_option(text):
    with pytest.raises(ImfaceError) as err:
        parse_shard(text)
    assert str(err.value).startswith("--shard") and "i/n" in str(err.value) and "\n" not in str(err.value)
