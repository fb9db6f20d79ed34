"""Every setting of imface as dataclasses that round-trip through YAML, and the one parser.

- :mod:`imface.config.model`: the architecture and the losses (``ModelConfig``, ``LossConfig``)
  and the fitting defaults;
- :mod:`imface.config.experiment`: data and training settings, presets, ablations, overrides;
- :mod:`imface.config.benchmark`: what ``imface benchmark`` runs.
"""
from imface.config.model import (DEFAULT_FIT_LR, DEFAULT_FIT_ROBUST_MM, DEFAULT_FIT_SPACE_POINTS,
                                 DEFAULT_SCALE_SWEEP, LossConfig, ModelConfig)

__all__ = ["DEFAULT_FIT_LR", "DEFAULT_FIT_ROBUST_MM", "DEFAULT_FIT_SPACE_POINTS", "DEFAULT_SCALE_SWEEP",
           "LossConfig", "ModelConfig"]
