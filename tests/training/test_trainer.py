"""The training loop on the synthetic sphere dataset with the real ImFace at the tiny preset."""
from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import imface.losses
from imface.training import checkpoint as ckpt
from imface.config.experiment import apply_ablations, apply_overrides, preset
from imface.dataset import FaceScanDataset, build_code_tables, load_scan_index
from imface.training.trainer import train
from imface.errors import ImfaceError
from tests.synthetic_processed import write_synthetic_dataset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("faces"), num_identities=3,
                                   surface_points=256, space_points=256, five_only=("002/2_smile",))


def _config(*overrides: str):
    return apply_overrides(preset("tiny"), list(overrides))


def _losses(exp_dir) -> list[dict]:
    return [json.loads(line) for line in (exp_dir / "logs/losses.jsonl").read_text().splitlines()]


def _weights(path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_tiny_training_drives_the_sdf_loss_down(data_dir, tmp_path):
    result = train(_config("train.max_steps=100"), data_dir, tmp_path / "exp", device="cpu", progress=False)
    assert result.step == 100 and result.stopped == "max_steps"
    sdf = [r["loss/sdf"] for r in _losses(tmp_path / "exp")]
    assert len(sdf) == 100
    assert np.mean(sdf[:3]) > 3.0 * np.mean(sdf[-10:])
    assert (tmp_path / "exp/loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_experiment_folder_contents(data_dir, tmp_path):
    exp = tmp_path / "exp"
    config = _config("train.max_steps=4", "train.checkpoint_every_steps=2", "train.image_every_steps=2")
    train(config, data_dir, exp, device="cpu", progress=False)
    assert yaml.safe_load((exp / "config.yaml").read_text()) == config.to_dict()
    codes = json.loads((exp / "codes.json").read_text())
    assert codes["identities"] == {"001": 0, "002": 1, "003": 2}
    assert codes["expression_embedding"] == "per_scan" and len(codes["expressions"]) == 6
    run = json.loads((exp / "run.json").read_text())
    assert run["seed"] == 0 and run["torch_version"] == torch.__version__ and run["device"] == "cpu"
    assert len(run["manifest_sha256"]) == 64 and "git_commit" in run and "started_at" in run
    assert [s for s, _ in ckpt.list_checkpoints(exp)] == [0, 2, 4]
    weights = _weights(ckpt.checkpoint_path(exp, 4))
    assert weights["identity_codes.weight"].shape == (3, 16) and weights["expression_codes.weight"].shape == (6, 16)
    resume = torch.load(exp / "checkpoints/resume.pt", weights_only=True)
    assert resume["step"] == 4 and resume["weights_step"] == 4
    events = EventAccumulator(str(exp / "logs"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {"loss/sdf", "loss/total", "loss/eikonal_canonical", "lr/networks", "lr/codes", "grad_norm"} <= set(tags["scalars"])
    assert any(tag.startswith("sdf_slice/") for tag in tags["images"])


def test_resume_continues_exactly(data_dir, tmp_path):
    config = _config("train.max_steps=6", "train.checkpoint_every_steps=3", "train.lr_decay_start_epoch=1",
                     "train.lr_decay_every_epochs=1", "train.lr_decay_factor=0.5")
    train(config, data_dir, tmp_path / "whole", device="cpu", progress=False)
    first = train(apply_overrides(config, ["train.max_steps=3"]), data_dir, tmp_path / "split", device="cpu", progress=False)
    assert first.step == 3
    second = train(config, data_dir, tmp_path / "split", resume=True, device="cpu", progress=False)
    assert second.step == 6
    whole, split = _losses(tmp_path / "whole"), _losses(tmp_path / "split")
    assert [r["step"] for r in split] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(whole, split):
        assert a["lr/networks"] == b["lr/networks"]  # the schedule resumes too (it decays every epoch here)
        for key in a:
            if key.startswith("loss/"):
                assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-6), (a["step"], key)
    wa, wb = _weights(ckpt.checkpoint_path(tmp_path / "whole", 6)), _weights(ckpt.checkpoint_path(tmp_path / "split", 6))
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], rtol=1e-6, atol=1e-7)


def test_loader_workers_do_not_change_the_run(data_dir, tmp_path):
    # 5 steps cross an epoch boundary (2 steps per epoch), so workers must see each epoch's samples
    for workers in (0, 2):
        train(_config("train.max_steps=5", f"data.num_workers={workers}"), data_dir, tmp_path / f"w{workers}",
              device="cpu", progress=False)
    assert _losses(tmp_path / "w0") and [
        {k: v for k, v in r.items() if k.startswith("loss/")} for r in _losses(tmp_path / "w0")] == [
        {k: v for k, v in r.items() if k.startswith("loss/")} for r in _losses(tmp_path / "w2")]


def test_refuses_a_folder_with_another_config(data_dir, tmp_path):
    exp = tmp_path / "exp"
    train(_config("train.max_steps=1"), data_dir, exp, device="cpu", progress=False)
    with pytest.raises(ImfaceError, match="different config .*train.lr") as info:
        train(_config("train.max_steps=1", "train.lr=0.5"), data_dir, exp, device="cpu", progress=False)
    assert "\n" not in str(info.value)
    with pytest.raises(ImfaceError, match="already holds a run"):
        train(_config("train.max_steps=2"), data_dir, exp, device="cpu", progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other/notes.txt").write_text("mine")
    with pytest.raises(ImfaceError, match="holds no experiment"):
        train(_config("train.max_steps=1"), data_dir, tmp_path / "other", device="cpu", progress=False)
    with pytest.raises(ImfaceError, match="another architecture"):
        train(_config("train.max_steps=2", "model.local_hidden=8"), data_dir, exp, resume=True, device="cpu", progress=False)


def test_non_finite_loss_rolls_back_to_the_last_checkpoint(data_dir, tmp_path, monkeypatch):
    real = imface.losses.compute_losses
    calls = {"n": 0}

    def poisoned(outputs, batch, config, model_config):
        calls["n"] += 1
        losses = real(outputs, batch, config, model_config)
        if calls["n"] == 3:
            losses["normal"] = losses["normal"] * float("nan")
            losses["total"] = sum(v for k, v in losses.items() if k != "total")
        return losses

    monkeypatch.setattr(imface.losses, "compute_losses", poisoned)
    exp = tmp_path / "exp"
    result = train(_config("train.max_steps=3", "train.checkpoint_every_steps=2"), data_dir, exp, device="cpu", progress=False)
    assert result.rollbacks == 1
    good, final = _weights(ckpt.checkpoint_path(exp, 2)), _weights(ckpt.checkpoint_path(exp, 3))
    for key in good:
        assert torch.equal(final[key], good[key]), key
    events = [json.loads(line) for line in (exp / "logs/events.jsonl").read_text().splitlines()]
    assert events[0]["terms"] == ["normal"] and "normal" in events[0]["message"] and events[0]["step"] == 3
    assert [r["step"] for r in _losses(exp)] == [1, 2]


def test_repeated_non_finite_losses_stop_with_a_clear_error(data_dir, tmp_path, monkeypatch):
    real = imface.losses.compute_losses

    def always_nan(outputs, batch, config, model_config):
        losses = real(outputs, batch, config, model_config)
        losses["sdf"] = losses["sdf"] * float("inf")
        losses["total"] = sum(v for k, v in losses.items() if k != "total")
        return losses

    monkeypatch.setattr(imface.losses, "compute_losses", always_nan)
    with pytest.raises(ImfaceError, match="diverged.*sdf"):
        train(_config("train.max_steps=10", "train.max_nan_rollbacks=2"), data_dir, tmp_path / "exp",
              device="cpu", progress=False)


def test_sigterm_checkpoints_and_stops(data_dir, tmp_path, monkeypatch):
    real = imface.losses.compute_losses
    calls = {"n": 0}

    def signalling(outputs, batch, config, model_config):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(outputs, batch, config, model_config)

    monkeypatch.setattr(imface.losses, "compute_losses", signalling)
    exp = tmp_path / "exp"
    before = signal.getsignal(signal.SIGTERM)
    result = train(_config("train.max_steps=50"), data_dir, exp, device="cpu", progress=False)
    assert result.stopped == "signal" and result.step == 2
    assert ckpt.checkpoint_path(exp, 2).is_file()
    assert torch.load(exp / "checkpoints/resume.pt", weights_only=True)["step"] == 2
    assert signal.getsignal(signal.SIGTERM) == before  # the previous handler is back


def test_max_minutes_stops_after_the_budget(data_dir, tmp_path):
    result = train(_config("train.max_minutes=1e-6"), data_dir, tmp_path / "exp", device="cpu", progress=False)
    assert result.stopped == "max_minutes" and result.step == 1


@pytest.mark.parametrize("ablations", [["no-dist"], ["no-blend"], ["no-extend"], ["no-dist", "no-blend", "no-extend"]])
def test_each_ablation_trains(data_dir, tmp_path, ablations):
    config = apply_ablations(_config("train.max_steps=3"), ablations)
    result = train(config, data_dir, tmp_path / "exp", device="cpu", progress=False)
    assert result.step == 3 and result.rollbacks == 0
    assert all(np.isfinite(v) for v in result.losses.values())
    codes = json.loads((tmp_path / "exp/codes.json").read_text())
    if "no-extend" in ablations:
        # the joint (no-dist) model has no neutral suppression, so "neutral" gets a code too
        names = ["jaw_open", "neutral", "smile"] if "no-dist" in ablations else ["jaw_open", "smile"]
        assert codes["expression_embedding"] == "per_name" and sorted(codes["expressions"]) == names
    if "no-dist" in ablations:
        assert "eikonal_canonical" not in result.losses


def _curves(exp_dir) -> list[dict]:
    return [json.loads(line) for line in (exp_dir / "curves.jsonl").read_text().splitlines()]


def test_learning_curves_are_written_and_resume_with_the_run(data_dir, tmp_path):
    config = _config("train.max_steps=6", "train.checkpoint_every_steps=3", "train.curve_every_steps=2",
                     "train.curve_scans=2", "train.curve_resolution=16", "data.holdout_points=32")
    train(apply_overrides(config, ["train.max_steps=3"]), data_dir, tmp_path / "exp", device="cpu", progress=False)
    assert [r["step"] for r in _curves(tmp_path / "exp")] == [0, 2, 3]  # start, every 2 steps, the run's end
    train(config, data_dir, tmp_path / "exp", resume=True, device="cpu", progress=False)
    records = _curves(tmp_path / "exp")
    assert [r["step"] for r in records] == [0, 2, 3, 4, 6]
    for record in records:
        assert {"surface_sdf_mm", "space_sdf_mm", "normal_deg", "eikonal", "chamfer_mm", "fscore@1mm",
                "train_seconds", "seconds"} <= set(record)
        assert record["surface_sdf_mm"] >= 0 and 0 <= record["normal_deg"] <= 180
    seconds = [r["train_seconds"] for r in records]
    assert seconds == sorted(seconds)  # the training clock carries over the resume
    whole = train(config, data_dir, tmp_path / "whole", device="cpu", progress=False)
    assert whole.step == 6
    # the probe reads no training randomness: a resumed run measures what a straight one does
    assert [r["surface_sdf_mm"] for r in _curves(tmp_path / "whole")][-1] == pytest.approx(records[-1]["surface_sdf_mm"], rel=1e-5)


def test_learning_curves_need_held_back_points(data_dir, tmp_path):
    with pytest.raises(ImfaceError, match="holdout_points"):
        train(_config("train.max_steps=1", "train.curve_every_steps=1"), data_dir, tmp_path / "exp", device="cpu", progress=False)


def test_held_back_points_are_never_drawn(data_dir):
    index = load_scan_index(data_dir)
    dataset = FaceScanDataset(index, build_code_tables(index), surface_points_per_scan=200, space_points_per_scan=200,
                              holdout_points=56)
    held = dataset.held_back(0, 1000)
    assert len(held["surface_points"]) == 56
    held_rows = {tuple(p) for p in held["surface_points"].tolist()}
    for epoch in range(5):
        drawn = {tuple(p) for p in dataset[(epoch, 0)]["surface_points"].tolist()}
        assert not drawn & held_rows


@pytest.mark.parametrize("overrides", [
    ["train.code_optimizer=row_adam", "train.code_lr=0.01"],
    ["train.template_warmup_steps=20"],
    ["train.precision=bf16"],
    ["train.precision=tf32"],
    ["model.positional_frequencies=0", "model.hyper_output_scale=0.5"],
])
def test_each_recipe_option_trains(data_dir, tmp_path, overrides):
    result = train(_config("train.max_steps=4", *overrides), data_dir, tmp_path / "exp", device="cpu", progress=False)
    assert result.step == 4 and result.rollbacks == 0 and all(np.isfinite(list(result.losses.values())))


def test_row_adam_leaves_codes_of_absent_scans_alone(data_dir, tmp_path):
    # 2 steps per epoch: each step holds half of the scans, so the other half's codes must not move
    train(_config("train.max_steps=1", "train.code_optimizer=row_adam"), data_dir, tmp_path / "exp", device="cpu",
          progress=False)
    before = _weights(ckpt.checkpoint_path(tmp_path / "exp", 0))["expression_codes.weight"]
    after = _weights(ckpt.checkpoint_path(tmp_path / "exp", 1))["expression_codes.weight"]
    moved = (after != before).any(dim=1)
    assert 0 < int(moved.sum()) < len(moved)


def test_template_warm_start_fits_the_mean_face_before_step_0(data_dir, tmp_path):
    cold = train(_config("train.max_steps=1"), data_dir, tmp_path / "cold", device="cpu", progress=False)
    warm = train(_config("train.max_steps=1", "train.template_warmup_steps=60", "train.template_warmup_lr=3e-3"),
                 data_dir, tmp_path / "warm", device="cpu", progress=False)
    assert warm.losses["sdf"] < 0.7 * cold.losses["sdf"]
    events = [json.loads(line) for line in (tmp_path / "warm/logs/events.jsonl").read_text().splitlines()]
    assert events[0]["kind"] == "template_warmup" and "60 steps" in events[0]["message"]
    # the warm start is part of step 0's checkpoint, and only TempNet changed
    cold0, warm0 = _weights(ckpt.checkpoint_path(tmp_path / "cold", 0)), _weights(ckpt.checkpoint_path(tmp_path / "warm", 0))
    changed = {k for k in cold0 if not torch.equal(cold0[k], warm0[k])}
    assert changed and all(k.startswith("template_field.") for k in changed)


def test_fp16_needs_cuda_and_bad_values_are_refused(data_dir, tmp_path):
    if not torch.cuda.is_available():
        with pytest.raises(ImfaceError, match="fp16 needs a CUDA"):
            train(_config("train.max_steps=1", "train.precision=fp16"), data_dir, tmp_path / "a", device="cpu", progress=False)
    with pytest.raises(ImfaceError, match="train.precision"):
        _config("train.precision=fp8")
    with pytest.raises(ImfaceError, match="train.code_optimizer"):
        _config("train.code_optimizer=sgd")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16", "fp16"])
def test_each_precision_trains_on_cuda(data_dir, tmp_path, precision):
    result = train(_config("train.max_steps=4", f"train.precision={precision}"), data_dir, tmp_path / "exp",
                   device="cuda", progress=False)
    assert result.step == 4 and all(np.isfinite(list(result.losses.values())))


def test_a_resume_with_nothing_left_to_do_adds_no_curve_record(data_dir, tmp_path):
    config = _config("train.max_steps=3", "train.curve_every_steps=2", "train.curve_scans=1", "train.curve_resolution=16",
                     "data.holdout_points=32")
    train(config, data_dir, tmp_path / "exp", device="cpu", progress=False)
    train(config, data_dir, tmp_path / "exp", resume=True, device="cpu", progress=False)
    assert [r["step"] for r in _curves(tmp_path / "exp")] == [0, 2, 3]
