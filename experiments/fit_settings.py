"""Fit settings judged on validation identities: train (or reuse) a model on a tuning view
(experiments/validation_view.py), fit every validation scan with the given settings, and print the
mean Chamfer (50k points per surface, ICP: compare runs with each other, not with benchmark
figures), the mouth region's 90th-percentile target-to-fit distance on the expressive scans, and
the Chamfer per expression. Each line is also appended to ``OUT/log.txt``; per-scan figures go
to ``OUT/NAME/seed-S/fits-FIT/rows.json``, so runs can be compared scan by scan.

``--train-scans N`` fits N training scans instead (from the mean codes, like a new scan), and
``--own-codes`` scores the training scans decoded with their own trained codes: together they
tell a decoder that cannot represent a scan from codes that have not converged.

    python experiments/fit_settings.py --data runs/val --out runs/exp --name base --seed 0 \
        --fit lr1 --fit-lr 1.0
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import trimesh

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository root

from experiments.common import mouth_p90_mm, split_overrides, train_or_reuse  # noqa: E402
from imface.contracts.dataset import MESH_NAME, read_manifest  # noqa: E402
from imface.fitting import code_space  # noqa: E402
from imface.fitting.run import fit  # noqa: E402
from imface.generate import face_mesh as fitted_mesh  # noqa: E402
from imface.ops.metrics import evaluate_reconstruction  # noqa: E402
from imface.pretrained import load_pretrained  # noqa: E402
from imface.threads import set_threads  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="tuning view (its test split = validation)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--name", required=True, help="training variant name")
    parser.add_argument("--set", default="", help="training overrides, key=value,key=value")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=500, help="training steps")
    parser.add_argument("--fit", default="base", help="name of this fit setting")
    parser.add_argument("--fit-steps", type=int, default=150)
    parser.add_argument("--fit-lr", type=float, default=0.1, help="code lr (0.1: the default before 2026-12-03)")
    parser.add_argument("--fit-points", type=int, default=1024)
    parser.add_argument("--code-basis", default="diagonal", help="axes the fit moves the codes along")
    parser.add_argument("--code-prior", type=float, default=0.0, help="weight of the fit's code prior")
    parser.add_argument("--spread-floor", type=float, default=None, help="code_space.SPREAD_FLOOR for this run")
    parser.add_argument("--resolution", type=int, default=128, help="grid of the fitted meshes")
    parser.add_argument("--train-scans", type=int, default=0, help="fit this many training scans instead")
    parser.add_argument("--own-codes", action="store_true", help="also score the training scans' own codes")
    args = parser.parse_args()

    set_threads(2)
    if args.spread_floor is not None:
        code_space.SPREAD_FLOOR = args.spread_floor
    exp = args.out / args.name / f"seed-{args.seed}"
    started = time.perf_counter()
    train_or_reuse(args.data, exp, args.steps, args.seed, args.preset, split_overrides(args.set))
    train_seconds = time.perf_counter() - started
    manifest = read_manifest(args.data)
    scans, split = sorted(manifest.test), "test"
    if args.train_scans:
        scans, split = sorted(manifest.train)[:: len(manifest.train) // args.train_scans][: args.train_scans], "train"
    fits = exp / f"fits-{args.fit}"
    started = time.perf_counter()
    results = fit(exp, args.data, fits, split=split, scans=scans, landmarks=False, seed=0, steps=args.fit_steps,
                  points=args.fit_points, lr=args.fit_lr, metrics_points=50_000, resolution=args.resolution,
                  code_basis=args.code_basis, code_prior=args.code_prior)
    fit_seconds = time.perf_counter() - started
    rows = {result.name: {"chamfer": result.metrics["chamfer_mm"],
                          "mouth_p90": mouth_p90_mm(args.data / result.name / MESH_NAME, fits / result.name / MESH_NAME)}
            for result in results}
    if args.own_codes and split == "train":
        own_codes(exp, args.data, rows)
    (fits / "rows.json").write_text(json.dumps(rows, indent=1))
    by_expression: dict[str, list[float]] = {}
    for name, row in rows.items():
        by_expression.setdefault(name.split("/")[1].split("_", 1)[1], []).append(row["chamfer"])
    chamfer = np.mean([r["chamfer"] for r in rows.values()])
    mouth_p90 = np.mean([r["mouth_p90"] for k, r in rows.items() if "neutral" not in k] or [np.nan])
    own = [r["own_codes"] for r in rows.values() if "own_codes" in r]
    line = (f"{args.name} seed {args.seed} fit {args.fit}: chamfer {chamfer:.3f} mouth_p90 {mouth_p90:.3f}"
            + (f" own-codes {np.mean(own):.3f}" if own else "")
            + f" train {train_seconds:.0f}s fit {fit_seconds:.0f}s | "
            + " ".join(f"{e}:{np.mean(v):.2f}" for e, v in sorted(by_expression.items())))
    print(line, flush=True)
    with open(args.out / "log.txt", "a") as log:
        log.write(line + "\n")
    return 0


def own_codes(exp: Path, data: Path, rows: dict) -> None:
    """Add each training scan's Chamfer decoded with its own trained codes (same protocol)."""
    model = load_pretrained(exp)
    for name, row in rows.items():
        z_id = model.identity_code(name.split("/")[0])
        z_exp, neutral = model.expression_code("neutral" if "neutral" in name else name)
        mesh = fitted_mesh(model.model, z_id, z_exp, neutral, resolution=128)
        truth = trimesh.load(data / name / "mesh.ply")
        row["own_codes"] = evaluate_reconstruction(np.asarray(mesh.vertices), np.asarray(mesh.faces),
                                                   np.asarray(truth.vertices), np.asarray(truth.faces),
                                                   num_points=50_000, footprint=False).chamfer_mm


if __name__ == "__main__":
    raise SystemExit(main())
