"""Experiment configs: presets, YAML round trip, dotted overrides, ablations, the lr schedule."""
from __future__ import annotations

import pytest
import yaml

from imface.config.experiment import (
    ExperimentConfig,
    apply_ablations,
    apply_overrides,
    config_differences,
    load_config,
    preset,
    save_config,
)
from imface.training.trainer import lr_factor
from imface.errors import ImfaceError


@pytest.mark.parametrize("name", ["tiny", "cpu", "gpu", "paper"])
def test_presets_round_trip_through_yaml(name, tmp_path):
    config = preset(name)
    save_config(config, tmp_path / "config.yaml")
    text = (tmp_path / "config.yaml").read_text()
    assert "!!python" not in text  # plain YAML, readable by safe_load
    assert set(yaml.safe_load(text)) == {"model", "loss", "data", "train"}
    assert load_config(tmp_path / "config.yaml") == config


def test_paper_preset_follows_the_paper():
    config = preset("paper")
    assert config.data.scans_per_batch == 72
    assert config.data.surface_points_per_scan + config.data.space_points_per_scan == 16384
    assert config.train.epochs == 1500 and config.train.lr == 1e-4 and config.train.code_lr == 1e-4
    assert (config.train.lr_decay_start_epoch, config.train.lr_decay_every_epochs, config.train.lr_decay_factor) == (200, 10, 0.95)
    # the authors' sampling: ~94% surface points (250k surface + 15k space samples pooled), no band
    assert config.data.surface_points_per_scan / 16384 == pytest.approx(0.94, abs=0.01)
    assert config.data.near_points_per_scan == 0


def test_cpu_and_gpu_presets_share_the_recipe():
    cpu, gpu = preset("cpu"), preset("gpu")
    for config in (cpu, gpu):
        data = config.data
        total = data.surface_points_per_scan + data.near_points_per_scan + data.space_points_per_scan
        assert data.surface_points_per_scan / total >= 0.7 and data.near_points_per_scan > 0
        assert config.train.code_optimizer == "row_adam" and config.train.code_lr >= 5 * config.train.lr
        assert config.train.template_warmup_steps > 0 and config.train.curve_every_steps > 0
        assert config.data.holdout_points > 0 and config.model.positional_frequencies == 0
    assert gpu.train.precision == "tf32" and cpu.train.precision == "fp32"
    assert gpu.data.scans_per_batch * gpu.data.surface_points_per_scan > 10 * cpu.data.scans_per_batch * cpu.data.surface_points_per_scan


def test_overrides_are_coerced_to_the_field_types():
    config = apply_overrides(ExperimentConfig(), [
        "train.lr=1e-3", "model.warp=translation", "model.blend=false", "data.scans_per_batch=16",
        "model.landmark_ids=[1, 2, 3, 4, 5]", "loss.sdf=10",
    ])
    assert config.train.lr == 1e-3 and isinstance(config.train.lr, float)
    assert config.model.warp == "translation" and config.model.blend is False
    assert config.data.scans_per_batch == 16 and config.model.landmark_ids == (1, 2, 3, 4, 5)
    assert config.loss.sdf == 10.0 and isinstance(config.loss.sdf, float)


@pytest.mark.parametrize("bad, message", [
    ("train.nope=1", "unknown config field"),
    ("nope.lr=1", "unknown config field"),
    ("train.epochs=1.5", "number"),
    ("model.blend=maybe", "true or false"),
    ("train.lr", "section.field=value"),
    ("model.warp=bogus", "model.warp"),
])
def test_bad_overrides_are_one_line_errors(bad, message):
    with pytest.raises(ImfaceError, match=message) as info:
        apply_overrides(ExperimentConfig(), [bad])
    assert "\n" not in str(info.value)


def test_unknown_yaml_keys_are_refused(tmp_path):
    (tmp_path / "c.yaml").write_text("train:\n  lr: 0.1\n  learning_rate: 0.2\n")
    with pytest.raises(ImfaceError, match="train.learning_rate"):
        load_config(tmp_path / "c.yaml")


def test_ablations_switch_the_model():
    base = ExperimentConfig()
    assert apply_ablations(base, ["no-dist"]).model.deformation == "joint"
    assert apply_ablations(base, ["no-blend"]).model.blend is False
    assert apply_ablations(base, ["no-extend"]).model.expression_embedding == "per_name"
    all_three = apply_ablations(base, ["no-dist", "no-blend", "no-extend"])
    assert config_differences(base, all_three) == ["model.blend", "model.deformation", "model.expression_embedding"]
    with pytest.raises(ImfaceError, match="unknown ablation"):
        apply_ablations(base, ["no-everything"])


def test_run_limits_do_not_count_as_config_changes():
    base = preset("tiny")
    limited = apply_overrides(base, ["train.max_steps=7", "train.max_minutes=3", "data.num_workers=2"])
    assert config_differences(base, limited) == []
    assert config_differences(base, apply_overrides(base, ["train.lr=0.5"])) == ["train.lr"]


def test_lr_schedule_matches_the_paper():
    factors = [lr_factor(e, 200, 10, 0.95) for e in (0, 199, 200, 209, 210, 219, 220, 1499)]
    assert factors[:2] == [1.0, 1.0]
    assert factors[2] == factors[3] == pytest.approx(0.95)
    assert factors[4] == factors[5] == pytest.approx(0.95**2)
    assert factors[6] == pytest.approx(0.95**3)
    assert factors[7] == pytest.approx(0.95 ** (1 + 1299 // 10))
