"""Which code prior keeps fits on the face manifold without damping expressions? A trained model,
fitted to the validation scans of a processed dataset with each prior setting; prints per
setting the mean Chamfer (50k points a surface, ICP), the mouth region's 90th-percentile
target-to-fit distance on expressive scans and the Chamfer per expression, and writes each
setting's fits (with previews) to ``OUT/<setting>/`` for looking at.

A setting is ``ID_WEIGHT:EXP_WEIGHT[:BASIS]``: the weight of the Mahalanobis prior on the identity
code and on the expression code (``imface fit --code-prior`` / ``--exp-code-prior``), and the code
axes (diagonal | principal).

    python experiments/fit_prior.py --model MODEL --data VAL --split train --out runs/prior \\
        --settings 0:0,0.1:0.01,1:0.1:principal
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository root

from experiments.common import mouth_p90_mm  # noqa: E402
from imface.contracts.dataset import MESH_NAME, read_manifest  # noqa: E402
from imface.fitting.run import fit  # noqa: E402
from imface.threads import set_threads  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="processed validation scans")
    parser.add_argument("--split", default="test")
    parser.add_argument("--identities", type=int, default=0, help="only the first N identities (0: all)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--settings", required=True, help="comma list of ID:EXP[:BASIS]")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    set_threads(args.threads)
    manifest = read_manifest(args.data)
    scans = sorted(manifest.test if args.split == "test" else manifest.train)
    if args.identities:
        keep = sorted({s.split("/")[0] for s in scans})[: args.identities]
        scans = [s for s in scans if s.split("/")[0] in keep]
    for setting in args.settings.split(","):
        parts = setting.split(":")
        id_weight, exp_weight = float(parts[0]), float(parts[1])
        basis = parts[2] if len(parts) > 2 else "diagonal"
        out = args.out / setting.replace(":", "_")
        started = time.perf_counter()
        results = fit(args.model, args.data, out, split=args.split, scans=scans, seed=0, metrics_points=50_000,
                      code_prior=id_weight, exp_code_prior=exp_weight, code_basis=basis, preview=True)
        seconds = time.perf_counter() - started
        chamfer = {r.name: r.metrics["chamfer_mm"] for r in results}
        mouth = [mouth_p90_mm(args.data / r.name / MESH_NAME, out / r.name / MESH_NAME)
                 for r in results if "neutral" not in r.name]
        by_expression: dict[str, list[float]] = {}
        for name, value in chamfer.items():
            by_expression.setdefault(name.split("/")[1].split("_", 1)[1], []).append(value)
        line = (f"prior {setting}: chamfer {np.mean(list(chamfer.values())):.3f} mouth_p90 {np.mean(mouth):.3f} "
                f"({len(chamfer)} scans, {seconds:.0f} s) | "
                + " ".join(f"{e}:{np.mean(v):.2f}" for e, v in sorted(by_expression.items())))
        print(line, flush=True)
        with open(args.out / "log.txt", "a") as log:
            log.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
