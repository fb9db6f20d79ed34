"""Which training data helps ImFace more at a fixed budget: tuning datasets compared on the same
validation scans, over seeds (the cpu preset, 500 steps each, one torch job at a time).

Each ``--data NAME=FOLDER`` is a processed tuning dataset (``imface data bfm --seed 1``: no
benchmark person) whose test split holds the same validation scans (``--scans``). Prints, per
dataset and seed, the validation Chamfer (50k points, ICP) and the 90th percentile of the mouth
region's target-to-fit distance on the expressive scans, then mean +- std per dataset.

    python experiments/data_regime.py --out runs/regime --data ids10=runs/tune --data ids50=runs/tune50

The two datasets compared in docs/lab/2026-12-03-benchmark-cpu.md (10 training identities x 15
expressions against 50 x 8; validation: identities 003 and 012 of both):

    imface data bfm --out runs/tune_raw --identities 12 --seed 1 --workers 2
    imface preprocess --in runs/tune_raw --out runs/tune --workers 2 --surface-samples 100000 \
        --space-samples 15000 --test-identities 2
    imface data bfm --out runs/tune50_raw --identities 52 --seed 1 --workers 2 \
        --expressions neutral,smile,mouth_stretch,anger,grin,brow_raiser,lip_puckerer,cheek_blowing
    imface preprocess --in runs/tune50_raw --out runs/tune50 --workers 2 --surface-samples 100000 \
        --space-samples 15000 --test-identities 003,012 --test-expressions ''
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository root

from experiments.common import mouth_p90_mm, train_or_reuse  # noqa: E402
from imface.contracts.dataset import MESH_NAME  # noqa: E402
from imface.fitting.run import fit  # noqa: E402
from imface.threads import set_threads  # noqa: E402

SCANS = [f"{i}/{e}" for i in ("003", "012") for e in ("1_neutral", "2_smile", "3_mouth_stretch", "16_grin")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", required=True, help="NAME=FOLDER")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--scans", default=",".join(SCANS))
    args = parser.parse_args()

    set_threads(2)

    scans = args.scans.split(",")
    summary: dict[str, list[float]] = {}
    for spec in args.data:
        name, _, folder = spec.partition("=")
        data = Path(folder)
        for seed in args.seeds:
            exp = args.out / name / f"seed-{seed}"
            train_or_reuse(data, exp, args.steps, seed)
            result_file = exp / "val.json"
            if not result_file.is_file():
                results = fit(exp, data, exp / "fits", split="test", scans=scans, landmarks=False, seed=0,
                              steps=150, points=1024, metrics_points=50_000)
                rows = {r.name: {"chamfer": r.metrics["chamfer_mm"],
                                 "mouth_p90": mouth_p90_mm(data / r.name / MESH_NAME, exp / "fits" / r.name / MESH_NAME)}
                        for r in results}
                result_file.write_text(json.dumps(rows, indent=1))
            rows = json.loads(result_file.read_text())
            chamfer = float(np.mean([r["chamfer"] for r in rows.values()]))
            mouth_p90 = float(np.mean([r["mouth_p90"] for k, r in rows.items() if "neutral" not in k]))
            summary.setdefault(name, []).append(chamfer)
            print(f"{name} seed {seed}: chamfer {chamfer:.3f} mm, mouth p90 {mouth_p90:.3f} mm", flush=True)
    for name, values in summary.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{name}: validation chamfer {statistics.fmean(values):.3f} +- {spread:.3f} mm over {len(values)} seeds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
