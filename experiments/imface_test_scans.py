"""One ImFace `full` model on a benchmark's test scans, without the rest of the benchmark: train
the `cpu` preset for ``--steps`` steps (seed ``--seed``), fit the benchmark's ``--scans`` test scans
with the `cpu` benchmark preset's fit settings (150 steps, 1,024 points, no landmarks) and score
them with its protocol (250k points, crop, ICP). For a quick test-set figure of a recipe already
chosen on validation identities (minutes, against the benchmark's hour); never for choosing.

    python experiments/imface_test_scans.py --data bench_out/processed --out runs/testcheck --seed 0
    # the preset with a changed field (its own --out):
    python experiments/imface_test_scans.py --data bench_out/processed --out runs/testcheck_e3 --seed 0 \
        --set loss.embedding=1e3
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository root

from experiments.common import split_overrides, train_or_reuse  # noqa: E402
from imface.benchmark.run import choose_test_scans  # noqa: E402
from imface.contracts.dataset import read_manifest  # noqa: E402
from imface.eval.evaluate import evaluate_folder  # noqa: E402
from imface.fitting.run import fit  # noqa: E402
from imface.threads import set_threads  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--scans", type=int, default=10)
    parser.add_argument("--set", default="", help="training overrides on the cpu preset, key=value,key=value")
    args = parser.parse_args()

    set_threads(2)
    exp = args.out / f"seed-{args.seed}"
    train_or_reuse(args.data, exp, args.steps, args.seed, "cpu", split_overrides(args.set))
    scans = choose_test_scans(read_manifest(args.data), args.scans)
    fits = args.out / f"fits-{args.seed}"
    fit(exp, args.data, fits, split="test", scans=scans, steps=150, points=1024, seed=args.seed, landmarks=False,
        metrics_points=0)
    summary = evaluate_folder(fits, fits / "eval", data_dir=args.data, num_points=250_000)
    print(f"test Chamfer {summary.overall['chamfer_mm']['mean']:.3f} mm, "
          f"F@1mm {summary.overall['fscore@1mm']['mean']:.2f}% ({len(scans)} scans, seed {args.seed})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
