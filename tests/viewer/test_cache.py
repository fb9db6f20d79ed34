"""The mesh cache: by key and resolution, least recently used out first, fields computed once."""
from __future__ import annotations

import numpy as np
import pytest

from imface.viewer.cache import FaceMesh, MeshCache


def _mesh(key: str, resolution: int = 64) -> FaceMesh:
    return FaceMesh(key, resolution, np.zeros((3, 3), np.float32), np.array([[0, 1, 2]], np.int32))


def test_get_put_by_key_and_resolution():
    cache = MeshCache(4)
    assert cache.get("a", 64) is None and cache.misses == 1
    mesh = cache.put(_mesh("a"))
    assert cache.get("a", 64) is mesh and cache.hits == 1
    assert cache.get("a", 128) is None
    assert ("a", 64) in cache and ("a", 128) not in cache


def test_the_least_recently_used_mesh_goes_first():
    cache = MeshCache(2)
    cache.put(_mesh("a"))
    cache.put(_mesh("b"))
    cache.get("a", 64)  # a is now newer than b
    cache.put(_mesh("c"))
    assert len(cache) == 2
    assert ("a", 64) in cache and ("c", 64) in cache and ("b", 64) not in cache
    with pytest.raises(ValueError):
        MeshCache(0)


def test_a_field_is_computed_once():
    mesh = _mesh("a")
    calls = []

    def compute():
        calls.append(1)
        return np.arange(3)

    first = mesh.field("x", compute)
    second = mesh.field("x", compute)
    assert first is second and len(calls) == 1
    assert np.array_equal(mesh.field("y", lambda: np.ones(3)), np.ones(3))
