"""Time the preprocessing of one raw scan of about 100k triangles on one thread.

Times the first scan of ``--raw DIR`` (e.g. a folder from ``imface data bfm``) when
given; else one scan of the built-in generator (``imface.builtin.write``) when the BFM
statistics are in the cache; else the synthetic face-like scan of the tests at about
100k triangles.
Generated scans go to a temporary folder only.
Prints seconds per stage and ends with ``preprocess: X.XX s per scan`` (goal <= 3 s).

    python -m bench.preprocess [--repeats 3] [--raw DIR | --source builtin|synthetic]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository root

from imface.builtin.source import cache_dir  # noqa: E402
from imface.builtin.write import write_dataset  # noqa: E402
from imface.io.mesh import read_mesh  # noqa: E402
from imface.preprocess.layouts import discover_scans  # noqa: E402
from imface.preprocess.scan import STAGES, PreprocessConfig, preprocess_scan  # noqa: E402
from imface.threads import set_threads  # noqa: E402
from tests.synthetic_raw import write_builtin_dataset  # noqa: E402


def _builtin_scan(folder: Path) -> Path | None:
    """One raw scan from the built-in generator (``imface data bfm``: posed, noisy, with
    holes), written to a temporary folder; None when the BFM statistics are not in the
    cache (the bench never downloads)."""
    if not any(cache_dir().glob("bfm-statistics-*.npz")):
        return None

    write_dataset(folder, identities=1, expressions="neutral")
    return folder


def _synthetic_scan(folder: Path, step: float) -> Path:
    return write_builtin_dataset(folder, identities=1, expressions=((1, "neutral"),), step=step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--raw", type=Path, default=None, help="a raw dataset (e.g. from `imface data bfm`): "
                        "time its first scan")
    parser.add_argument("--source", choices=("auto", "builtin", "synthetic"), default="auto")
    parser.add_argument("--step", type=float, default=1.0, help="synthetic grid step, mm (1.0: ~100k triangles)")
    args = parser.parse_args()
    set_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        if args.raw is not None:
            raw, label = args.raw, f"raw dataset {args.raw}"
        else:
            raw = None if args.source == "synthetic" else _builtin_scan(Path(tmp) / "raw")
            label = "built-in (imface data bfm)"
            if raw is None:
                if args.source == "builtin":
                    raise SystemExit("no BFM statistics in the cache: run `imface data bfm` once, "
                                     "or use --source synthetic")
                raw, label = _synthetic_scan(Path(tmp) / "raw", args.step), "synthetic face-like height field"
        scan = discover_scans(raw)[0]
        triangles = len(read_mesh(scan.mesh_path).faces)
        print(f"scan: {label} {scan.name}, {triangles} triangles; 1 thread; default sample counts")
        config = PreprocessConfig()
        runs = []
        for repeat in range(args.repeats):
            started = time.perf_counter()
            result = preprocess_scan(scan, Path(tmp) / f"out{repeat}", config)
            runs.append((time.perf_counter() - started, result.timings))
        best_total, timings = min(runs, key=lambda run: run[0])
        for stage in STAGES:
            print(f"  {stage:15s} {timings.get(stage, 0.0):7.3f} s")
        print(f"  (best of {args.repeats}; median total {np.median([r[0] for r in runs]):.2f} s)")
        print(f"preprocess: {best_total:.2f} s per scan")


if __name__ == "__main__":
    main()
