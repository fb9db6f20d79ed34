"""Learning curves of training recipes, over seeds: how each choice of the training recipe was
judged (docs/lab/2026-12-03-training-recipe.md).

Each variant (a name and ``section.field=value`` overrides on a training preset) is trained
for every seed; the run is paused at each ``--eval-at`` step (exact ``--resume``), and the
model then fits validation scans (the held-out identities of a *tuning* dataset, never the
benchmark's test scans) with the benchmark's fit settings, scored with ``imface eval``'s
protocol. The training-scan probe (``curves.jsonl``) runs alongside.

Scoring uses ``--eval-points`` (default 50k) samples per surface instead of the benchmark's 250k
to save time: nearest-neighbour distances between sparser samples add a floor (about 0.2 mm
here), so compare variants with each other, not with benchmark figures.

Prints, per variant, validation Chamfer mean +- std over seeds at every eval step, and writes
``summary.json`` and ``curves.png`` (validation Chamfer against steps and against training
seconds; probe Chamfer against steps) into ``--out``. Resumes: finished evaluations are kept.

    python experiments/recipe_curves.py --data TUNE --out runs/recipe --seeds 0 1 2 \
        --variant old=model.positional_frequencies=6 --variant new=
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository root

from experiments.common import split_overrides  # noqa: E402
from imface.benchmark.run import choose_test_scans  # noqa: E402
from imface.config.experiment import apply_overrides, preset  # noqa: E402
from imface.contracts.dataset import read_manifest  # noqa: E402
from imface.eval.evaluate import evaluate_folder  # noqa: E402
from imface.fitting.run import fit  # noqa: E402
from imface.threads import set_threads  # noqa: E402
from imface.training.curves import read_curves  # noqa: E402
from imface.training.trainer import train  # noqa: E402


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``NAME=key=value,key=value`` -> (NAME, overrides)."""
    name, _, overrides = text.partition("=")
    return name, split_overrides(overrides)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="tuning dataset (its test split = validation)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variant", action="append", required=True, help="NAME=key=value,key=value (may be empty)")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-at", type=int, nargs="+", default=[250, 500])
    parser.add_argument("--val-scans", type=int, default=4)
    parser.add_argument("--fit-steps", type=int, default=150)
    parser.add_argument("--fit-points", type=int, default=1024)
    parser.add_argument("--fit-space-points", type=int, nargs="+", default=[256],
                        help="free-space samples per fit step; several values compare fit settings")
    parser.add_argument("--eval-points", type=int, default=50_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    set_threads(args.threads)
    scans = choose_test_scans(read_manifest(args.data), args.val_scans)
    print(f"validation scans: {', '.join(scans)}", flush=True)
    results: dict[str, dict] = {}
    variants = [parse_variant(v) for v in args.variant]
    for seed in args.seeds:  # seed-major: a run stopped early still has every variant's first seeds
        for name, overrides in variants:
            exp = args.out / name / f"seed-{seed}"
            config = apply_overrides(preset(args.preset), overrides + [f"train.seed={seed}"])
            config.train.max_minutes = 0.0
            records = []
            for at in sorted(args.eval_at):
                config.train.max_steps = at
                marker = exp / f"val-{at}.json"
                if marker.is_file():
                    records.append(json.loads(marker.read_text()))
                    continue
                train(config, args.data, exp, resume=(exp / "config.yaml").is_file(), progress=False)
                curves = read_curves(exp)
                seconds = curves[-1]["train_seconds"] if curves else float("nan")
                record = {"step": at, "train_seconds": seconds}
                for space in args.fit_space_points:
                    fits = exp / f"fits-{at}-s{space}"
                    started = time.perf_counter()
                    fit(exp, args.data, fits, split="test", scans=scans, steps=args.fit_steps, points=args.fit_points,
                        space_points=space, landmarks=False, seed=seed, metrics_points=0)
                    fit_seconds = time.perf_counter() - started
                    summary = evaluate_folder(fits, fits / "eval", data_dir=args.data, num_points=args.eval_points)
                    record[f"s{space}"] = {"chamfer_mm": summary.overall["chamfer_mm"]["mean"],
                                           "fscore@1mm": summary.overall["fscore@1mm"]["mean"],
                                           "fit_seconds": fit_seconds}
                (marker.parent).mkdir(parents=True, exist_ok=True)
                marker.write_text(json.dumps(record))
                records.append(record)
                print(f"{name} seed {seed} step {at}: " + ", ".join(
                    f"space {k[1:]}: {v['chamfer_mm']:.3f} mm" for k, v in record.items() if k.startswith("s") and k[1:].isdigit()),
                    flush=True)
            results.setdefault(name, {})[seed] = {"val": records, "probe": read_curves(exp)}
            (args.out / "summary.json").write_text(json.dumps(results, indent=1))
    report(results, args.out, args.fit_space_points[0])
    return 0


def report(results: dict, out: Path, space: int) -> None:
    import matplotlib  # only for the figure, at the end of a long run

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = f"s{space}"
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), dpi=100)
    print(f"\nvalidation Chamfer (mm), mean +- std over seeds, fits with {space} free-space points:")
    for name, seeds in results.items():
        steps = [r["step"] for r in next(iter(seeds.values()))["val"]]
        table = np.array([[r[key]["chamfer_mm"] for r in s["val"]] for s in seeds.values()])
        secs = np.array([[r["train_seconds"] for r in s["val"]] for s in seeds.values()])
        mean, std = table.mean(0), table.std(0)
        print(f"  {name:>14}: " + "  ".join(f"step {st}: {m:.3f} +- {d:.3f}" for st, m, d in zip(steps, mean, std))
              + f"  (train s at last: {secs[:, -1].mean():.0f})")
        line = axes[0].errorbar(steps, mean, yerr=std, marker="o", capsize=3, label=name)
        axes[1].errorbar(secs.mean(0), mean, yerr=std, marker="o", capsize=3, color=line[0].get_color(), label=name)
        for index, s in enumerate(seeds.values()):
            probe = [(p["step"], p.get("chamfer_mm")) for p in s["probe"] if p.get("chamfer_mm") is not None]
            if probe:
                x, y = zip(*probe)
                axes[2].plot(x, y, color=line[0].get_color(), alpha=0.7, label=name if index == 0 else None)
    axes[0].set(xlabel="training step", ylabel="validation Chamfer (mm)", title="held-out identities, fitted")
    axes[1].set(xlabel="training seconds (2 cores)", ylabel="validation Chamfer (mm)", title="against wall time")
    axes[2].set(xlabel="training step", ylabel="probe Chamfer (mm)", title="training scans, own codes", ylim=(0, 3))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curves.png")
    print(f"wrote {out / 'curves.png'}")


if __name__ == "__main__":
    sys.exit(main())
