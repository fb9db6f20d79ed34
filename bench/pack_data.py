"""A compact copy of a processed dataset's training scans, small enough to carry to a lent GPU
machine (bench/gpu_check.sh): the first ``--identities`` training identities, each scan's
point files cut to evenly strided subsets, landmarks and meta copied, and meshes only for the
scans the learning-curve probe measures (its Chamfer needs them; training reads only samples). The copy is built from the user's data
and stays on this machine's disk; the BFM terms forbid committing it.

    python -m bench.pack_data --data bench_out/processed --out .gpu/data --identities 3
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from imface.training.curves import choose_probe_scans

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository root

# Rows kept per file: more than the presets' data.holdout_points (2,048) held back from training.
LIMITS = {"surface": 8192, "space": 4096, "near": 4096}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--identities", type=int, default=3)
    parser.add_argument("--probe-scans", type=int, default=3, help="train.curve_scans of the run (their meshes are kept)")
    args = parser.parse_args()
    manifest = json.loads((args.data / "manifest.json").read_text())
    train = manifest["split"]["train"]
    keep_ids = sorted({name.split("/")[0] for name in train})[: args.identities]
    scans = [s for s in manifest["scans"] if s["name"] in train and s["identity"] in keep_ids]

    probe = {scans[i]["name"] for i in choose_probe_scans([SimpleNamespace(**s) for s in scans], args.probe_scans)}
    if args.out.exists():
        shutil.rmtree(args.out)
    for scan in scans:
        source, target = args.data / scan["path"], args.out / scan["path"]
        target.mkdir(parents=True)
        for name in ("landmarks.json", "meta.json") + (("mesh.ply",) if scan["name"] in probe else ()):
            shutil.copy2(source / name, target / name)
        for path in source.glob("*.npy"):
            limit = LIMITS[path.stem.split("_")[0]]
            array = np.load(path, mmap_mode="r")
            stride = max(1, len(array) // limit)
            np.save(target / path.name, np.ascontiguousarray(array[::stride][:limit]))
    names = [s["name"] for s in scans]
    manifest.update(scans=scans, identities=keep_ids, neutral={n: v for n, v in manifest.get("neutral", {}).items() if n in names},
                    split={**manifest["split"], "train": names, "test": [], "held_out_expression": [], "test_identities": []})
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{args.out}: {len(scans)} training scans of {len(keep_ids)} identities, {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
