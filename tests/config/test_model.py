"""Model and loss settings: a YAML round trip, and bad values refused with one line naming the field."""
from __future__ import annotations

import dataclasses

import pytest
import yaml

from imface.config.model import LossConfig, ModelConfig
from imface.errors import ImfaceError


def test_config_round_trips_through_yaml_and_rejects_bad_values():
    config = ModelConfig(deformation="joint", landmark_ids=(36, 45, 30, 48, 54))
    loaded = ModelConfig.from_dict(yaml.safe_load(yaml.safe_dump(dataclasses.asdict(config))))
    assert loaded == config
    assert LossConfig.from_dict(yaml.safe_load(yaml.safe_dump(dataclasses.asdict(LossConfig())))) == LossConfig()
    with pytest.raises(ImfaceError, match="warp"):
        ModelConfig.from_dict({"warp": "affine"})
    with pytest.raises(ImfaceError, match="unknown"):
        ModelConfig.from_dict({"hidden": 3})
    with pytest.raises(ImfaceError, match="num_regions"):
        ModelConfig(num_regions=4).validate()
    with pytest.raises(ImfaceError, match="loss.sdf"):
        LossConfig.from_dict({"sdf": -1.0})
