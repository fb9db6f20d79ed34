"""experiments/common.py: overrides, train-or-reuse and the mouth score."""
from __future__ import annotations

import numpy as np
import pytest

from experiments import common
from imface.contracts.experiment import CONFIG_NAME, checkpoint_path
from imface.io.mesh import write_mesh
from tests.ops.meshes import grid_mesh


def test_split_overrides():
    assert common.split_overrides("") == []
    assert common.split_overrides("loss.embedding=1e2,,train.lr=4e-4") == ["loss.embedding=1e2", "train.lr=4e-4"]


def test_train_or_reuse_trains_once_and_resumes_a_shorter_run(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(common, "train", lambda config, data, exp, resume, progress: calls.append((config, resume)))
    exp = tmp_path / "exp"
    common.train_or_reuse(tmp_path / "data", exp, 50, seed=3, overrides=["loss.embedding=1e2"])
    (config, resume), = calls
    assert config.train.seed == 3 and config.train.max_steps == 50 and config.train.max_minutes == 0.0
    assert config.loss.embedding == pytest.approx(1e2) and not resume
    checkpoint_path(exp, 50).parent.mkdir(parents=True)
    checkpoint_path(exp, 50).touch()
    common.train_or_reuse(tmp_path / "data", exp, 50, seed=3)
    assert len(calls) == 1  # the checkpoint at 50 steps exists: nothing to do
    (exp / CONFIG_NAME).touch()
    common.train_or_reuse(tmp_path / "data", exp, 80, seed=3)
    assert len(calls) == 2 and calls[1][1]  # longer: resumed


def test_the_mouth_is_the_lower_centre_and_its_p90_is_in_mm(tmp_path):
    vertices, faces = grid_mesh(1.0, 40)
    mouth = common.mouth(vertices)
    assert len(mouth) > 0 and np.abs(mouth[:, 0]).max() < 0.3 and mouth[:, 1].max() < 0.0
    write_mesh(tmp_path / "target.ply", vertices, faces)
    write_mesh(tmp_path / "fit.ply", vertices + [0.0, 0.0, 0.02], faces)  # 2 mm in front
    assert common.mouth_p90_mm(tmp_path / "target.ply", tmp_path / "fit.ply") == pytest.approx(2.0, abs=1e-4)
