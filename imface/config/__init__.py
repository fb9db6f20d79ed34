"""Every setting of imface as dataclasses that round-trip through YAML, and the one parser.

- :mod:`imface.config.model`: the architecture and the losses (``ModelConfig``, ``LossConfig``)
  and the fitting defaults;
- :mod:`imface.config.experiment`: data and training settings, presets, ablations, overrides;
- :mod:`imface.config.fit`: fitting defaults and :class:`FitSettings`;
- :mod:`imface.config.benchmark`: what ``imface benchmark`` runs.
"""
from imface.config.fit import (
                               DEFAULT_FIT_CODE_PRIOR,
                               DEFAULT_FIT_EXP_CODE_PRIOR,
                               DEFAULT_FIT_LR,
                               DEFAULT_FIT_ROBUST_MM,
                               DEFAULT_FIT_SPACE_POINTS,
                               DEFAULT_SCALE_SWEEP,
                               FitSettings,
)
from imface.config.model import LossConfig, ModelConfig

__all__ = ["DEFAULT_FIT_CODE_PRIOR", "DEFAULT_FIT_EXP_CODE_PRIOR", "DEFAULT_FIT_LR", "DEFAULT_FIT_ROBUST_MM", "DEFAULT_FIT_SPACE_POINTS", "DEFAULT_SCALE_SWEEP",
           "FitSettings", "LossConfig", "ModelConfig"]
