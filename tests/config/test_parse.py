"""The one settings parser: types coerced from YAML and command-line strings, unknown fields refused."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from imface.config.parse import coerce, from_dict, load_yaml, save_yaml, to_plain
from imface.errors import ImfaceError


@dataclass
class Inner:
    rate: float = 0.5
    ids: tuple[int, ...] = (1, 2)


@dataclass
class Outer:
    name: str = "x"
    steps: int = 10
    flag: bool = False
    limit: int | None = None
    inner: Inner = field(default_factory=Inner)


def test_from_dict_coerces_recurses_and_refuses():
    parsed = from_dict(Outer, {"steps": "20", "flag": "yes", "limit": "none", "inner": {"rate": 1, "ids": "3,4"}})
    assert parsed == Outer(steps=20, flag=True, limit=None, inner=Inner(rate=1.0, ids=(3, 4)))
    assert isinstance(parsed.inner.rate, float)
    with pytest.raises(ImfaceError, match="unknown config field.*inner.nope"):
        from_dict(Outer, {"inner": {"nope": 1}})
    with pytest.raises(ImfaceError, match="steps must be a number"):
        from_dict(Outer, {"steps": 2.5})
    with pytest.raises(ImfaceError, match="flag must be true or false"):
        from_dict(Outer, {"flag": "maybe"})
    with pytest.raises(ImfaceError, match="must be a mapping"):
        from_dict(Outer, ["steps"])
    assert coerce("7", int, 0, "x") == 7


def test_yaml_round_trip_and_bad_files(tmp_path):
    save_yaml(tmp_path / "c.yaml", {"inner": {"ids": (3, 4)}, "steps": 2})
    assert (tmp_path / "c.yaml").read_text().startswith("inner:")  # field order kept
    assert load_yaml(tmp_path / "c.yaml") == {"inner": {"ids": [3, 4]}, "steps": 2}
    assert to_plain({"a": (1, (2,))}) == {"a": [1, [2]]}
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ImfaceError, match="not valid YAML"):
        load_yaml(tmp_path / "bad.yaml")
    with pytest.raises(ImfaceError, match="no such config file"):
        load_yaml(tmp_path / "none.yaml")
