"""The face-source plug-in: the shared download cache, and what both sources provide."""
from __future__ import annotations

import numpy as np
import pytest

from imface.builtin.bfm import BFMSource
from imface.builtin.ict import ICTSource
from imface.builtin.source import FaceSource, cache_dir


def test_cache_dir_honours_imface_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("IMFACE_CACHE", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("IMFACE_CACHE", "~/elsewhere")
    assert cache_dir() == tmp_path / "home" / "elsewhere"
    monkeypatch.delenv("IMFACE_CACHE")
    assert cache_dir() == tmp_path / "home" / ".cache" / "imface"
    monkeypatch.setenv("IMFACE_CACHE", "")
    assert cache_dir() == tmp_path / "home" / ".cache" / "imface"


def _protocol_members() -> set[str]:
    names = set(FaceSource.__annotations__)
    names |= {n for n, v in vars(FaceSource).items()
              if not n.startswith("_") and (callable(v) or isinstance(v, property))}
    return names


@pytest.fixture(params=["bfm", "ict"])
def face_source(request) -> FaceSource:
    if request.param == "bfm":
        return BFMSource(request.getfixturevalue("bfm"))
    return ICTSource(request.getfixturevalue("ict_model"))


def test_both_sources_provide_the_protocol(face_source):
    assert _protocol_members() >= {"name", "faces", "landmark_ids", "nose_tip_id", "mean_mm", "jaw_articulation",
                                   "cheek_inflation", "num_vertices", "identity_shape", "expression_motion",
                                   "provenance"}
    for member in _protocol_members():
        assert hasattr(face_source, member), member
    v = face_source.num_vertices
    assert face_source.mean_mm.shape == (v, 3) and face_source.mean_mm.dtype == np.float32
    assert face_source.faces.ndim == 2 and face_source.faces.shape[1] == 3 and face_source.faces.dtype == np.int64
    assert face_source.faces.min() == 0 and face_source.faces.max() < v
    assert face_source.landmark_ids.shape == (68,) and 0 <= face_source.nose_tip_id < v
    assert 0.0 < face_source.jaw_articulation <= 1.0 and 0.0 < face_source.cheek_inflation <= 1.0
    coefficients, rest = face_source.identity_shape(np.random.default_rng(0))
    assert coefficients.ndim == 1 and rest.shape == (v, 3) and rest.dtype == np.float64
    soft, bone = face_source.expression_motion("mouth_stretch", 0.8, np.random.default_rng(0))
    assert soft.shape == (v, 3) and soft.dtype == np.float32 and np.abs(soft).max() > 0.1
    assert bone is None or (bone.shape == (v, 3) and bone.dtype == np.float32)
    assert face_source.provenance() and all(isinstance(k, str) and isinstance(h, str)
                                            for k, h in face_source.provenance().items())



def test_cached_arrays_builds_once_reads_back_and_rebuilds_a_damaged_cache(tmp_path):
    from dataclasses import dataclass

    import numpy as np

    from imface.builtin.source import cached_arrays

    @dataclass(frozen=True)
    class Arrays:
        values: np.ndarray
        index: int

    calls = []

    def build():
        calls.append(1)
        return Arrays(np.arange(3.0), 7)

    path = tmp_path / "cache.npz"
    first = cached_arrays(path, Arrays, build)
    second = cached_arrays(path, Arrays, build)
    assert len(calls) == 1 and path.is_file()
    assert np.array_equal(second.values, first.values) and second.index == 7 and type(second.index) is int
    path.write_bytes(b"not an npz")
    assert cached_arrays(path, Arrays, build).index == 7 and len(calls) == 2
