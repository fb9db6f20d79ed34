"""What ``imface benchmark`` runs: the ImFace variants, the baselines, the scans, per preset.

A :class:`BenchmarkConfig` is saved as ``benchmark.yaml`` in the benchmark folder; a
re-run with the same config resumes, one with another config is refused.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imface.config.fit import DEFAULT_FIT_LR, DEFAULT_FIT_SPACE_POINTS
from imface.config.parse import from_dict, load_yaml, save_yaml
from imface.errors import ImfaceError

BENCHMARK_PRESETS = ("tiny", "cpu", "long", "paper")

#: ImFace variant name -> (ablations of imface.config.experiment.ABLATIONS, dotted overrides).
#: ``full-2x64`` is the latent-size sweep point (the paper's model is 2 x 128).
VARIANTS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "full": ((), {}),
    "no-extend": (("no-extend",), {}),
    "no-blend": (("no-blend",), {}),
    "no-dist": (("no-dist",), {}),
    "i3dmm-like": (("no-dist", "no-blend", "no-extend"), {}),
    "full-2x64": ((), {"model.id_code_dim": 64, "model.exp_code_dim": 64}),
}
#: Table 2's rows (paper order), the variants that make up the ablation study.
ABLATION_ROWS = ("no-dist", "no-blend", "no-extend", "full")


@dataclass
class BenchmarkConfig:
    """One benchmark run. Training budgets are in steps, equal for every variant, so the
    comparison does not depend on how fast each variant's step happens to be."""

    preset: str = "cpu"
    train_preset: str = "cpu"  # imface.config.experiment preset each variant starts from
    train_steps: int = 500  # per variant and seed
    train_overrides: list[str] = field(default_factory=list)  # extra ``section.field=value``
    variants: list[str] = field(default_factory=lambda: ["full", "no-extend", "no-blend", "no-dist", "i3dmm-like"])
    seeds: list[int] = field(default_factory=lambda: [0])
    test_scans: int = 8  # held-out-identity scans fitted and scored (0: all of them)
    fit_steps: int = 200
    fit_points: int = 2048
    fit_space_points: int = DEFAULT_FIT_SPACE_POINTS
    fit_lr: float = DEFAULT_FIT_LR  # code lr in units of the training codes' spread
    # Learning curves: each variant is also scored at these fractions of train_steps (and at 1),
    # for the first curve_seeds seeds (0: all).
    curve_fractions: list[float] = field(default_factory=lambda: [0.25, 0.5])
    curve_seeds: int = 0
    fit_resolution: int = 128
    pca_sizes: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    bilinear_ranks: list[int] = field(default_factory=lambda: [32, 16])  # identity, expression
    flame_ranks: list[int] = field(default_factory=lambda: [32, 32])  # identity, expression
    # Paper conditions: the FLAME-like model also built on a topology decimated to about this many
    # vertices (FLAME has 5,023), fitted to the full-resolution scans (0: not built).
    paper_resolution: int = 5023
    # Validation: baseline regularisation is chosen from regularisation_grid on validation_scans
    # scans of validation_identities training identities, with baselines built without them.
    validation_identities: int = 2
    validation_scans: int = 4
    regularisation_grid: list[float] = field(default_factory=lambda: [1e-8, 1e-7, 1e-6])
    baseline_fit_points: int = 20000
    eval_points: int = 250_000
    figure_scans: int = 4  # rows of the Fig. 4 grid
    correspondence_pairs: int = 4  # pairs shown in the Fig. 5 sheet

    def validate(self) -> None:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ImfaceError(None, f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
        if not self.variants:
            raise ImfaceError(None, "at least one ImFace variant is needed")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ImfaceError(None, f"seeds must be distinct and non-empty, got {self.seeds}")
        for name in ("train_steps", "fit_steps", "fit_points", "fit_resolution", "eval_points", "baseline_fit_points"):
            if getattr(self, name) < 1:
                raise ImfaceError(None, f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.fit_lr > 0:
            raise ImfaceError(None, f"fit_lr must be > 0, got {self.fit_lr}")
        if any(not 0 < f < 1 for f in self.curve_fractions):
            raise ImfaceError(None, f"curve_fractions must lie strictly between 0 and 1, got {self.curve_fractions}")
        if self.test_scans < 0 or any(k < 1 for k in self.pca_sizes):
            raise ImfaceError(None, "test_scans must be >= 0 and PCA sizes >= 1")
        if self.curve_seeds < 0 or self.paper_resolution < 0 or self.validation_scans < 1:
            raise ImfaceError(None, "curve_seeds and paper_resolution must be >= 0 and validation_scans >= 1")
        if self.validation_identities < 1 or not self.regularisation_grid or min(self.regularisation_grid) < 0:
            raise ImfaceError(None, "validation_identities must be >= 1 and regularisation_grid non-empty, values >= 0")
        if len(self.bilinear_ranks) != 2 or len(self.flame_ranks) != 2:
            raise ImfaceError(None, "bilinear_ranks and flame_ranks are [identity, expression] pairs")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_PRESETS: dict[str, dict[str, Any]] = {
    # CI: a small network, a few steps, a couple of scans; checks that every stage runs.
    "tiny": {
        "train_preset": "tiny", "train_steps": 30, "variants": ["full", "no-extend", "no-blend", "no-dist", "i3dmm-like"],
        "test_scans": 2, "fit_steps": 10, "fit_points": 256, "fit_resolution": 32, "pca_sizes": [2, 4],
        "curve_fractions": [0.5],
        "bilinear_ranks": [2, 2], "flame_ranks": [2, 2], "baseline_fit_points": 2000, "eval_points": 5000,
        "figure_scans": 2, "correspondence_pairs": 1, "paper_resolution": 300, "validation_identities": 1,
        "validation_scans": 1, "regularisation_grid": [1e-7, 1e-5],
    },
    # A 2-core machine in under an hour (make benchmark, 50 training identities x 8 expressions, with
    # data building; docs/lab/2026-12-03-benchmark-cpu.md has the measured time). Baseline fits and scoring run on
    # 2 processes, and 3 validation scans instead of 4 (the run with 4 took 66 min):
    # the Table 2 variants, 500 steps each (2-3.5 min), two seeds (a third does not fit the hour;
    # the long preset runs three); the full model (2 x 128) against a PCA of equal size (256).
    "cpu": {"variants": ["full", "no-extend", "no-blend", "no-dist"], "seeds": [0, 1], "curve_seeds": 1,
            "curve_fractions": [0.5], "test_scans": 10, "pca_sizes": [64, 128, 256],
            "fit_steps": 150, "fit_points": 1024, "validation_scans": 3},
    # The numeric goals: three seeds, mean +- std, the latent sweep, every test scan. 8,000 steps
    # are ~400 epochs of ~150 training scans: a few GPU hours, or about a day on 2 CPU cores.
    "long": {
        "train_steps": 8000, "seeds": [0, 1, 2], "test_scans": 0, "fit_steps": 300, "fit_resolution": 256,
        "variants": ["full", "full-2x64", "no-extend", "no-blend", "no-dist", "i3dmm-like"],
    },
    # The paper's scale (GPU): batches of 72 scans x 16,384 points. On FaceScape's paper split the
    # 6 x 100,000 steps are estimated at 13-40 h on one H100 (docs/facescape.md says how).
    "paper": {
        "train_preset": "paper", "train_steps": 100000, "seeds": [0], "test_scans": 0, "fit_steps": 500,
        "fit_points": 8192, "fit_resolution": 256,
        "variants": ["full", "full-2x64", "no-extend", "no-blend", "no-dist", "i3dmm-like"],
    },
}


def benchmark_preset(name: str) -> BenchmarkConfig:
    """The named preset: tiny (CI), cpu (about an hour on 2 cores), long (1-2 days on 2 cores), paper
    (GPU; hours to days). ``imface benchmark --help`` and docs/benchmark.md state each one's cost."""
    if name not in _PRESETS:
        raise ImfaceError(None, f"unknown benchmark preset {name!r}; choose from {', '.join(BENCHMARK_PRESETS)}")
    config = BenchmarkConfig(preset=name, **_PRESETS[name])
    config.validate()
    return config


def save_benchmark_config(config: BenchmarkConfig, path: Path) -> None:
    save_yaml(path, config.to_dict())


def load_benchmark_config(path: Path) -> BenchmarkConfig:
    try:
        config = from_dict(BenchmarkConfig, load_yaml(path) or {}, "benchmark")
        config.validate()
    except ImfaceError as err:
        raise ImfaceError(path, err.problem) from None
    return config
