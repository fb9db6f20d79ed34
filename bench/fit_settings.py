"""Fit settings judged on validation identities: train (or reuse) a model on a tuning view
(bench/validation_view.py), fit every validation scan with the given settings, and print the
mean Chamfer (50k points per surface, ICP: compare runs with each other, not with benchmark
figures), the mouth region's 90th-percentile target-to-fit distance on the expressive scans, and
the Chamfer per expression. Each line is also appended to ``OUT/log.txt``; per-scan figures go
to ``OUT/NAME/seed-S/fits-FIT/rows.json``, so runs can be compared scan by scan.

``--train-scans N`` fits N training scans instead (from the mean codes, like a new scan), and
``--own-codes`` scores the training scans decoded with their own trained codes: together they
tell a decoder that cannot represent a scan from codes that have not converged.

    PYTHONPATH=. python bench/fit_settings.py --data runs/val --out runs/exp --name base --seed 0 \
        --fit lr1 --fit-lr 1.0
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


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

    from imface.threads import set_threads

    set_threads(2)
    import trimesh
    from data_regime import mouth
    from scipy.spatial import cKDTree

    from imface.frame import MM_PER_UNIT
    from imface.config.experiment import apply_overrides, preset
    from imface.fitting.fitter import fit
    from imface.training.trainer import train
    from imface.contracts.dataset import read_manifest

    if args.spread_floor is not None:
        from imface.fitting import code_space

        code_space.SPREAD_FLOOR = args.spread_floor
    exp = args.out / args.name / f"seed-{args.seed}"
    started = time.perf_counter()
    if not (exp / "checkpoints" / f"step-{args.steps:08d}.safetensors").is_file():
        overrides = [o for o in args.set.split(",") if o] + [f"train.seed={args.seed}"]
        config = apply_overrides(preset(args.preset), overrides)
        config.train.max_minutes, config.train.max_steps = 0.0, args.steps
        train(config, args.data, exp, resume=(exp / "config.yaml").is_file(), progress=False)
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
    rows = {}
    for result in results:
        target = np.asarray(trimesh.load(args.data / result.name / "mesh.ply").vertices)
        fitted = np.asarray(trimesh.load(fits / result.name / "mesh.ply").vertices)
        distance = cKDTree(fitted).query(mouth(target))[0] * MM_PER_UNIT
        rows[result.name] = {"chamfer": result.metrics["chamfer_mm"], "mouth_p90": float(np.percentile(distance, 90))}
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
    import trimesh

    from imface.fitting.fitter import fitted_mesh
    from imface.ops.metrics import evaluate_reconstruction
    from imface.pretrained import load_pretrained

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
