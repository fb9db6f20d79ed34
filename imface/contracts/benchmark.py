"""The benchmark folder (``imface benchmark --out B``): every stage's output has one place.

::

    benchmark.yaml                      the BenchmarkConfig (a different one is refused)
    data.json                           the processed dataset it ran on
    imface/<variant>/seed-<s>/          experiment folders (imface train); trained.json per run
    fits/imface/<variant>/seed-<s>/     fits folders (imface fit) of the chosen test scans; fitted.json
    baselines/                          baseline models (baselines.json lists them)
    validation/                         baseline settings chosen on validation identities (chosen.json)
    fits/baselines/<model>/             a fits folder per baseline (fits.json, <scan>/mesh.ply, fit.json)
    eval/<method>/seed-<s>/             per-scan JSON and summary.json (imface eval)
    correspondence/                     imface correspond over the full model's fits (Fig. 5 analog)
    figures/                            fig4_reconstructions.png, learning_curves.png
    timings.json, results.json          seconds per stage; every figure of the report
    report.md
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONFIG_NAME = "benchmark.yaml"
DATA_NAME = "data.json"
TIMINGS_NAME = "timings.json"
RESULTS_NAME = "results.json"
REPORT_NAME = "report.md"
TRAINED_NAME = "trained.json"
FITTED_NAME = "fitted.json"
BASELINES_INDEX_NAME = "baselines.json"
CORRESPONDENCE_NAME = "correspondence.json"
FIG4_NAME = "fig4_reconstructions.png"
CURVES_FIGURE_NAME = "learning_curves.png"
#: A method's seed folder for models without a seed (the baselines are deterministic).
NO_SEED = "seed-none"


def seed_folder(seed: int | None) -> str:
    return NO_SEED if seed is None else f"seed-{seed}"


@dataclass(frozen=True)
class BenchmarkFolder:
    """The paths of one benchmark folder (``root``)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def data(self) -> Path:
        return self.root / DATA_NAME

    @property
    def timings(self) -> Path:
        return self.root / TIMINGS_NAME

    @property
    def results(self) -> Path:
        return self.root / RESULTS_NAME

    @property
    def report(self) -> Path:
        return self.root / REPORT_NAME

    def experiment(self, variant: str, seed: int) -> Path:
        """An ImFace variant's experiment folder."""
        return self.root / "imface" / variant / seed_folder(seed)

    def imface_fits(self, variant: str, seed: int) -> Path:
        """The fits folder of an ImFace variant's test scans."""
        return self.root / "fits" / "imface" / variant / seed_folder(seed)

    @property
    def baselines(self) -> Path:
        return self.root / "baselines"

    @property
    def baselines_index(self) -> Path:
        return self.baselines / BASELINES_INDEX_NAME

    def baseline_fits(self, name: str) -> Path:
        """The fits folder of one baseline."""
        return self.root / "fits" / "baselines" / name

    @property
    def validation(self) -> Path:
        return self.root / "validation"

    def evaluation(self, method: str, run: str) -> Path:
        """``imface eval``'s output of one method and run (``seed-<s>`` or ``NO_SEED``)."""
        return self.root / "eval" / method / run

    @property
    def correspondence(self) -> Path:
        return self.root / "correspondence"

    @property
    def figures(self) -> Path:
        return self.root / "figures"
