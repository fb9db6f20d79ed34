"""Mesh extraction: dense vs coarse-to-fine marching cubes with an SDF that costs like ImFace.

Without a checkpoint the SDF is an analytic face-like height field plus a tiny
(0.1 mm) contribution of a randomly initialised ImFace evaluated on the same points,
so every query pays the real network's cost while the surface stays a face. With
``--exp-dir`` (and optionally ``--checkpoint``, default: the newest one) the trained
model's SDF of one training scan is used instead. Prints the dense and coarse-to-fine
times, points evaluated, the speedup and the largest deviation between the two meshes
(symmetric Hausdorff distance in voxels); the last line is the headline.

    python -m bench.extract [--resolution 256] [--threads 2] [--exp-dir runs/x]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository root

from imface.config import ModelConfig  # noqa: E402
from imface.frame import CANONICAL_LANDMARKS_MM, MM_PER_UNIT  # noqa: E402
from imface.model import ImFace  # noqa: E402
from imface.ops.marching_cubes import extract_mesh  # noqa: E402
from imface.ops.sdf_grid import SDFFunction  # noqa: E402
from imface.pretrained import load_pretrained  # noqa: E402
from imface.threads import set_threads  # noqa: E402
from tests.ops.meshes import face_height, hausdorff  # noqa: E402


def random_model_sdf(seed: int) -> SDFFunction:
    """Analytic face + 1e-3 * tanh(random ImFace SDF): costs one ImFace forward per point."""
    torch.manual_seed(seed)
    template = torch.tensor(CANONICAL_LANDMARKS_MM / MM_PER_UNIT, dtype=torch.float32)
    model = ImFace(ModelConfig(), 1, 1, template).eval()
    id_code, exp_code = model.identity_codes.weight[:1], model.expression_codes.weight[:1]
    neutral = torch.zeros(1, dtype=torch.bool)

    def sdf(points: torch.Tensor) -> torch.Tensor:
        network = model.sdf(points[None], id_code, exp_code, neutral)[0]
        return points[:, 2] - face_height(points[:, 0], points[:, 1]) + 1e-3 * torch.tanh(network)

    return sdf


def trained_model_sdf(exp_dir: Path, checkpoint: Path | None, scan: str | None) -> SDFFunction:
    """SDF of one training scan of a trained experiment folder: the first identity's code and the
    expression code of ``scan`` (default: the first expression; neutral when it has none)."""
    loaded = load_pretrained(exp_dir, "cpu", weights=checkpoint)
    expressions = loaded.codes.expressions
    name = scan or (next(iter(expressions)) if expressions else None)
    exp_row = expressions.get(name, 0) if name else 0
    neutral = name is None or name not in expressions
    model = loaded.model
    print(f"model: {checkpoint or exp_dir} (expression row {exp_row}, neutral={neutral})")
    return model.face_sdf(model.identity_codes.weight[0], model.expression_codes.weight[exp_row], neutral)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=2048)
    parser.add_argument("--band-factors", type=float, nargs="*", default=[],
                        help="extra coarse-to-fine runs with these band factors (the headline uses the default)")
    parser.add_argument("--exp-dir", type=Path, default=None, help="a trained experiment folder")
    parser.add_argument("--checkpoint", type=Path, default=None, help="weights file (default: newest in --exp-dir)")
    parser.add_argument("--scan", default=None, help="training scan name for the expression code")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    set_threads(args.threads)
    # Subnormal floats (e.g. far-field blend weights) slow CPU math several-fold; flush them in both runs.
    torch.set_flush_denormal(True)

    if args.exp_dir is not None:
        sdf = trained_model_sdf(args.exp_dir, args.checkpoint, args.scan)
    else:
        sdf = random_model_sdf(args.seed)
        print("model: analytic face + randomly initialised ImFace (cost only)")
    options = dict(chunk_size=args.chunk_size, device=args.device)
    runs = [("dense", dict(coarse_to_fine=False)), ("coarse-to-fine", dict(coarse_to_fine=True))]
    runs += [(f"band {factor:g}", dict(coarse_to_fine=True, band_factor=factor)) for factor in args.band_factors]
    voxel = 2.0 / (args.resolution - 1)
    dense = None
    results = {}
    for name, run_options in runs:
        start = time.perf_counter()
        mesh = extract_mesh(sdf, args.resolution, **options, **run_options)
        seconds = time.perf_counter() - start
        points = mesh.metadata["points_evaluated"]
        line = (f"{name:<15s} {seconds:8.2f} s  {points:>10,d} points  {points / seconds:>9,.0f} points/s  "
                f"levels {mesh.metadata['level_resolutions']}  {len(mesh.faces):,d} faces")
        if dense is None:
            dense = (seconds, points, mesh)
        else:
            deviation = hausdorff(dense[2], mesh, samples=200_000) / voxel
            results[name] = (dense[0] / seconds, deviation)
            line += f"  ({100 * points / dense[1]:.1f}% of dense points, {dense[0] / seconds:.1f}x, " \
                    f"max deviation {deviation:.2f} voxel)"
        print(line, flush=True)
    print(f"resolution {args.resolution}^3, threads {args.threads}, chunk {args.chunk_size}")
    speedup, deviation = results["coarse-to-fine"]
    print(f"extract: speedup {speedup:.1f}x, max deviation {deviation:.2f} voxel")

if __name__ == "__main__":
    main()
