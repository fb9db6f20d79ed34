"""Benchmark: how fast the fast fitting schedule gets within 5% of a long reference fit.

One test scan of a processed dataset is fitted twice with the frozen model: a reference fit
(``--ref-steps``, default 3,000 steps of the same cosine schedule) and the fast fit
(``--steps``, default 300). Every ``--every`` steps the fast fit's surface is extracted
(marching cubes at ``--resolution``) and its Chamfer distance to the scan's mesh.ply measured
(imface.ops.metrics, no ICP: both live in model space). Only the optimisation is timed (the
mesh extraction at checkpoints is not). Prints the curve and a headline:

    fit: 42.0 seconds to within 5%        or        fit: not within 5% after N steps (X.X%)

Then it times a landmark-free fit as a user runs it (``imface fit --unit auto``): the same scan's
mesh in an arbitrary unit (x 37.3), turned by 30 degrees, with hair and shoulders added, from
reading to written outputs, the scale and pose search included.

Usage (from the repository root):
    python -m bench.fit --exp-dir EXP [--data DATA] [--scan 001/2_smile]
    python -m bench.fit --quick      # tiny model on synthetic data (exercises the script)
A cpu-preset model comes from ``imface data bfm --out RAW``, ``imface preprocess --in RAW --out DATA``
and ``imface train --preset cpu --data DATA --out EXP``.
"""
from __future__ import annotations

import argparse
import atexit
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import trimesh

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository root

from imface.builtin import perturb  # noqa: E402
from imface.config import DEFAULT_FIT_LR, DEFAULT_FIT_SPACE_POINTS  # noqa: E402
from imface.config.fit import FitSettings  # noqa: E402
from imface.contracts.dataset import read_manifest  # noqa: E402
from imface.fitting import outputs as fit_io  # noqa: E402
from imface.fitting.fitter import optimise  # noqa: E402
from imface.fitting.inputs import processed_target  # noqa: E402
from imface.fitting.run import fit  # noqa: E402
from imface.generate import face_mesh as fitted_mesh  # noqa: E402
from imface.io.mesh import read_mesh, write_mesh  # noqa: E402
from imface.ops.metrics import evaluate_reconstruction  # noqa: E402
from imface.ops.rigid import random_rotation  # noqa: E402
from imface.threads import set_threads  # noqa: E402
from tests.model_fixtures import trained_tiny_experiment  # noqa: E402


def _chamfer(model, state, gt, resolution: int, points: int) -> float:
    mesh = fitted_mesh(model, state.id_codes[0], state.exp_codes[0], bool(state.neutral[0]), resolution)
    return evaluate_reconstruction(mesh.vertices, mesh.faces, gt.vertices, gt.faces, num_points=points, seed=0,
                                   align="none").chamfer_mm


def _run(loaded, target, settings, gt, args, every: int) -> list[tuple[int, float, float]]:
    """[(step, optimisation seconds so far, chamfer mm)] at every ``every`` steps and the end."""
    curve: list[tuple[int, float, float]] = []
    clock = {"start": time.perf_counter(), "paused": 0.0}

    def checkpoint(step, state):
        paused = time.perf_counter()
        seconds = paused - clock["start"] - clock["paused"]
        curve.append((step, seconds, _chamfer(loaded.model, state, gt, args.resolution, args.metric_points)))
        clock["paused"] += time.perf_counter() - paused

    clock["start"] = time.perf_counter()
    optimise(loaded.model, [target], settings, loaded.code_stats, loaded.experiment.loss,
             callback=checkpoint, callback_every=every)
    return curve


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exp-dir", type=Path, help="trained model (experiment or exported folder), cpu preset")
    parser.add_argument("--data", type=Path, help="processed dataset (default: the experiment's run.json data_dir)")
    parser.add_argument("--scan", help="scan name (default: the first test scan)")
    parser.add_argument("--quick", action="store_true", help="train a tiny model on synthetic spheres and use it")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200, help="fast fit steps")
    parser.add_argument("--lr", type=float, default=DEFAULT_FIT_LR, help="code lr in units of the training codes' spread")
    parser.add_argument("--points", type=int, default=2048, help="surface samples per step")
    parser.add_argument("--space-points", type=int, default=DEFAULT_FIT_SPACE_POINTS, help="free-space samples per step")
    parser.add_argument("--ref-steps", type=int, default=3000)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--metric-points", type=int, default=50_000)
    args = parser.parse_args()

    set_threads(args.threads)

    if args.quick:
        root = Path(tempfile.mkdtemp(prefix="imface-bench-fit-"))
        atexit.register(shutil.rmtree, root, True)
        print(f"--quick: training the tiny preset on synthetic spheres in {root} ...", flush=True)
        args.data, args.exp_dir = trained_tiny_experiment(root)
        args.resolution = min(args.resolution, 64)
    elif args.exp_dir is None:
        print("bench/fit.py needs a trained cpu-preset model: --exp-dir EXP. Make one with\n"
              "  imface data bfm --out RAW && imface preprocess --in RAW --out DATA &&\n"
              "  imface train --preset cpu --data DATA --out EXP\n"
              "or run with --quick to exercise the script on a tiny synthetic model.", file=sys.stderr)
        return 2
    if args.data is None:
        run = json.loads((args.exp_dir / "run.json").read_text())
        args.data = Path(run["data_dir"])
    manifest = read_manifest(args.data)
    name = args.scan or (manifest.test[0] if manifest.test else manifest.train[0])
    scan = manifest.scan(name)
    loaded = fit_io.load_model(args.exp_dir)
    target = processed_target(manifest.folder(name), name, scan.identity, scan.expression, scan.neutral,
                              np.random.default_rng(0))
    gt = trimesh.load(manifest.folder(name) / "mesh.ply", process=False)
    print(f"model {args.exp_dir}  scan {name}  threads {args.threads}  points {args.points}", flush=True)

    reference = FitSettings(steps=args.ref_steps, lr=args.lr, surface_points=args.points, space_points=args.space_points)
    started = time.perf_counter()
    ref_curve = _run(loaded, target, reference, gt, args, every=args.ref_steps)
    ref_chamfer = ref_curve[-1][2]
    print(f"reference: {args.ref_steps} steps in {time.perf_counter() - started:.1f} s, chamfer {ref_chamfer:.4f} mm "
          f"(start {ref_curve[0][2]:.4f} mm)", flush=True)

    fast = FitSettings(steps=args.steps, lr=args.lr, surface_points=args.points, space_points=args.space_points)
    curve = _run(loaded, target, fast, gt, args, every=args.every)
    print(f"{'step':>6} {'seconds':>8} {'chamfer mm':>11} {'vs ref':>8}")
    reached = None
    for step, seconds, chamfer in curve:
        ratio = chamfer / ref_chamfer - 1.0
        print(f"{step:>6} {seconds:>8.1f} {chamfer:>11.4f} {100 * ratio:>7.1f}%", flush=True)
        if reached is None and ratio <= 0.05:
            reached = (step, seconds)
    if reached is not None:
        print(f"reached within 5% of the reference at step {reached[0]}")
        print(f"fit: {reached[1]:.1f} seconds to within 5%")
    else:
        print(f"fit: not within 5% after {curve[-1][0]} steps ({100 * (curve[-1][2] / ref_chamfer - 1):.1f}%)")
    _landmark_free(args, manifest.folder(name))
    return 0


def _landmark_free(args, scan_dir: Path) -> None:
    """Time ``imface fit --unit auto`` on the scan's mesh given in an arbitrary unit (x 37.3),
    turned by 30 degrees, with hair and shoulders: reading, the scale and pose search, the
    crop, the fit (``--steps``) and the outputs, as a user runs it."""
    rng = np.random.default_rng(0)
    mesh = read_mesh(scan_dir / "mesh.ply")
    extra = perturb.clutter(rng)
    vertices = np.concatenate([mesh.vertices, extra.vertices])
    faces = np.concatenate([mesh.faces, extra.faces + len(mesh.vertices)])
    rotation = random_rotation(rng, 30.0)
    root = Path(tempfile.mkdtemp(prefix="imface-bench-fit-raw-"))
    atexit.register(shutil.rmtree, root, True)
    write_mesh(root / "scan.ply", 37.3 * vertices @ rotation.T, faces)
    started = time.perf_counter()
    (result,) = fit(args.exp_dir, root / "scan.ply", root / "fits", steps=args.steps, lr=args.lr, points=args.points,
                    space_points=args.space_points, landmarks=False, resolution=args.resolution, metrics_points=0)
    seconds = time.perf_counter() - started
    found = json.loads((root / "fits/scan/fit.json").read_text())["frames"]["alignment"]
    print(f"landmark-free: scale {found['scale'] * 37.3:.4f} of the truth, alignment residual "
          f"{found['residual_mm']:.2f} mm, coverage {100 * found['coverage']:.0f}%")
    print(f"fit: {seconds:.1f} seconds per landmark-free fit with the pose and scale search, "
          f"{args.steps} steps, mesh at {args.resolution}^3 (goal <= 60 s)")


if __name__ == "__main__":
    sys.exit(main())
