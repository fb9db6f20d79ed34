"""Checkpoint files: safetensors weights, a weights_only resume file, RNG states, pruning."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from safetensors import safe_open

from imface.training import checkpoint as ckpt
from imface.errors import ImfaceError


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    model.register_buffer("template", torch.arange(6.0).reshape(2, 3))
    return model


def test_weights_round_trip_through_safetensors(tmp_path):
    model = _model()
    path = ckpt.checkpoint_path(tmp_path, 12)
    ckpt.save_weights(path, ckpt.model_state(model), {"step": "12"})
    assert path.name == "step-00000012.safetensors"
    with safe_open(str(path), framework="pt") as handle:  # a real safetensors file
        assert set(handle.keys()) == set(model.state_dict()) and handle.metadata()["step"] == "12"
    other = _model()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    ckpt.load_model_weights(other, path)
    for key, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], value)
    assert not list(tmp_path.glob("checkpoints/.*"))  # no temp files left behind


def test_loading_into_another_architecture_is_a_one_line_error(tmp_path):
    path = ckpt.checkpoint_path(tmp_path, 0)
    ckpt.save_weights(path, ckpt.model_state(_model()))
    with pytest.raises(ImfaceError, match="does not fit this model"):
        ckpt.load_model_weights(torch.nn.Linear(3, 1), path)
    path.write_bytes(b"garbage")
    with pytest.raises(ImfaceError, match="safetensors"):
        ckpt.load_weights(path)


def test_resume_state_is_weights_only_loadable(tmp_path):
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 0.5**e)
    model(torch.ones(2, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    state = {"step": 5, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "rng": ckpt.capture_rng_state()}
    ckpt.save_resume_state(tmp_path, state)
    loaded = torch.load(ckpt.resume_path(tmp_path), weights_only=True)
    assert loaded["step"] == 5
    fresh = torch.optim.Adam(_model().parameters(), lr=1e-3)
    fresh.load_state_dict(loaded["optimizer"])
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    assert ckpt.load_resume_state(tmp_path)["scheduler"]["last_epoch"] == 1


def test_rng_states_restore_every_generator():
    state = ckpt.capture_rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random())
    ckpt.restore_rng_state(state)
    second = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert first[2] == second[2]


def test_prune_keeps_the_newest_and_the_protected(tmp_path):
    state = ckpt.model_state(_model())
    for step in (0, 10, 20, 30, 40):
        ckpt.save_weights(ckpt.checkpoint_path(tmp_path, step), state)
    ckpt.prune_checkpoints(tmp_path, keep=2, protect=10)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [10, 30, 40]
    ckpt.prune_checkpoints(tmp_path, keep=0)
    assert len(ckpt.list_checkpoints(tmp_path)) == 3
