"""The benchmark's learning curves: every ImFace variant scored at several points of its budget.

Each variant is trained in segments that end at ``curve_fractions`` of ``train_steps`` (exact
``--resume`` between them, so the run is the same as one straight run, and the checkpoint of
every segment's end is kept). The checkpoints before the last are fitted to the test scans and
scored with the same protocol as the final model. The figure shows held-out Chamfer against
steps and against training seconds, with the baselines as horizontal lines; the report says
whether each curve is still falling.

Folders: ``fits/imface/<variant>/seed-<s>/step-<k>/`` and ``eval/<variant>/seed-<s>/step-<k>/``.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from imface.benchmark.parallel import run_calls
from imface.config.benchmark import BenchmarkConfig
from imface.eval.evaluate import SUMMARY_NAME, evaluate_folder
from imface.fitting.run import fit
from imface.io.plots import pyplot, save_figure
from imface.pretrained import load_pretrained
from imface.training import checkpoint as ckpt
from imface.training.curves import curve_trend, read_curves

#: Relative change of held-out Chamfer over a curve's last segment beyond which it is still
#: falling (or rising); smaller changes count as flattened.
TREND_THRESHOLD = 0.02


def curve_steps(config: BenchmarkConfig) -> list[int]:
    """The steps at which each variant is scored, ascending, the last being ``train_steps``."""
    steps = {max(1, round(f * config.train_steps)) for f in config.curve_fractions if 0 < f < 1}
    return sorted(steps | {config.train_steps})


def curve_seeds(config: BenchmarkConfig) -> list[int]:
    """The seeds scored along the curve (the first ``curve_seeds``; all when 0)."""
    return list(config.seeds[: config.curve_seeds] if config.curve_seeds > 0 else config.seeds)


def step_dir(base: Path, step: int) -> Path:
    return base / f"step-{step}"


def fit_intermediate(config: BenchmarkConfig, data_dir: Path, bench_dir: Path, scans: list[str], device: str) -> bool:
    """Fit the test scans with every variant's checkpoints before the last; True if any work was done."""
    did = False
    for variant in config.variants:
        for seed in curve_seeds(config):
            exp_dir = bench_dir / "imface" / variant / f"seed-{seed}"
            for step in curve_steps(config)[:-1]:
                fits_dir = step_dir(bench_dir / "fits" / "imface" / variant / f"seed-{seed}", step)
                marker = fits_dir / "fitted.json"
                if marker.is_file() and json.loads(marker.read_text()).get("scans") == scans:
                    continue
                did = True
                model = load_pretrained(exp_dir, device, weights=ckpt.checkpoint_path(exp_dir, step))
                fit(model, data_dir, fits_dir, split="test", scans=scans, steps=config.fit_steps,
                    points=config.fit_points, space_points=config.fit_space_points, lr=config.fit_lr,
                    resolution=config.fit_resolution, seed=seed, landmarks=False, device=device, metrics_points=0)
                marker.write_text(json.dumps({"scans": scans, "step": step}))
    return did


def evaluate_intermediate(config: BenchmarkConfig, data_dir: Path, bench_dir: Path, scans: list[str],
                          workers: int = 1) -> bool:
    calls = []
    for variant in config.variants:
        for seed in curve_seeds(config):
            for step in curve_steps(config)[:-1]:
                out = step_dir(bench_dir / "eval" / variant / f"seed-{seed}", step)
                if (out / SUMMARY_NAME).is_file():
                    saved = json.loads((out / SUMMARY_NAME).read_text())
                    if sorted(r["name"] for r in saved["scans"]) == sorted(scans):
                        continue
                fits_dir = step_dir(bench_dir / "fits" / "imface" / variant / f"seed-{seed}", step)
                calls.append((evaluate_folder, {"recon_dir": fits_dir, "out_dir": out, "data_dir": data_dir,
                                                "num_points": config.eval_points, "seed": 0}))
    run_calls(calls, workers)
    return bool(calls)


def trend(values: list[float]) -> str:
    """``falling`` / ``flattened`` / ``rising`` from the curve's last segment (relative change)."""
    if len(values) < 2 or values[-2] in (None, 0) or values[-1] is None:
        return "too short"
    change = (values[-1] - values[-2]) / values[-2]
    if change < -TREND_THRESHOLD:
        return "falling"
    return "rising" if change > TREND_THRESHOLD else "flattened"


def collect_curves(config: BenchmarkConfig, bench_dir: Path) -> dict[str, Any]:
    """Per variant: steps, held-out Chamfer mean/std over the curve's seeds at each, training seconds at each,
    its trend, and the training-scan probe's trend (``curves.jsonl``)."""

    def read(path: Path) -> dict[str, Any] | None:
        return json.loads(path.read_text()) if path.is_file() else None

    steps = curve_steps(config)
    result: dict[str, Any] = {"steps": steps, "seeds": curve_seeds(config), "variants": {}}
    for variant in config.variants:
        chamfer: list[list[float]] = [[] for _ in steps]
        seconds: list[list[float]] = [[] for _ in steps]
        probe_trends = []
        for seed in curve_seeds(config):
            base = bench_dir / "eval" / variant / f"seed-{seed}"
            trained = read(bench_dir / "imface" / variant / f"seed-{seed}" / "trained.json") or {}
            at = {int(s["step"]): s["seconds"] for s in trained.get("segments", [])}
            for i, step in enumerate(steps):
                summary = read((base if step == steps[-1] else step_dir(base, step)) / "summary.json")
                value = ((summary or {}).get("overall", {}).get("chamfer_mm") or {}).get("mean")
                if value is not None:
                    chamfer[i].append(value)
                if step in at:
                    seconds[i].append(at[step])
            probe = read_curves(bench_dir / "imface" / variant / f"seed-{seed}")
            probe_trends.append(curve_trend([r["step"] for r in probe], [r.get("chamfer_mm") for r in probe]))
        means = [statistics.fmean(v) if v else None for v in chamfer]
        result["variants"][variant] = {
            "chamfer_mm": means,
            "chamfer_std": [statistics.stdev(v) if len(v) > 1 else None for v in chamfer],
            "train_seconds": [statistics.fmean(v) if v else None for v in seconds],
            "trend": trend(means), "probe_trends": probe_trends,
        }
    return result


def write_curve_figure(curves: dict[str, Any], baselines: dict[str, float], path: Path) -> Path:
    """Held-out Chamfer against steps and against training seconds, baselines as horizontal lines."""
    plt = pyplot()


    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), dpi=100)
    for name, row in curves["variants"].items():
        points = [(s, t, c, d) for s, t, c, d in zip(curves["steps"], row["train_seconds"], row["chamfer_mm"],
                                                      row["chamfer_std"]) if c is not None]
        if not points:
            continue
        steps, seconds, chamfer, std = zip(*points)
        std = [d or 0.0 for d in std]
        line = axes[0].errorbar(steps, chamfer, yerr=std, marker="o", capsize=3, label=name)
        timed = [(t, c, d) for t, c, d in zip(seconds, chamfer, std) if t is not None]
        if timed:
            x, y, e = zip(*timed)
            axes[1].errorbar(x, y, yerr=e, marker="o", capsize=3, color=line[0].get_color(), label=name)
    for index, (name, value) in enumerate(sorted(baselines.items(), key=lambda kv: kv[1])):
        for ax in axes:
            ax.axhline(value, color="0.4", linestyle=(0, (4, 2 + index)), linewidth=0.9)
            # neighbours in value alternate sides, so near-equal baselines keep readable labels
            ax.annotate(name, (1.0 if index % 2 == 0 else 0.2, value), xycoords=("axes fraction", "data"), fontsize=7,
                        color="0.3", ha="right", va="bottom")
    axes[0].set(xlabel="training step", ylabel="held-out Chamfer (mm)", title="held-out scans against steps")
    axes[1].set(xlabel="training seconds", ylabel="held-out Chamfer (mm)", title="against training wall time")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    save_figure(fig, path)
    return path
