"""A tuning view of a processed dataset: the same scans (hard links, nothing copied or changed),
with a manifest whose test split is the benchmark's *validation* identities (training identities,
never the test ones) and whose training split is the rest of the training scans.

Models trained on the view and fitted to its test split judge settings without touching the
benchmark's test scans (experiments/fit_settings.py). Hard links, not symlinks: the manifest reader
refuses scan paths that resolve outside the dataset folder.

    python experiments/validation_view.py --data bench_out/processed --out runs/val --identities 2
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from imface.benchmark.validation import validation_identities
from imface.contracts.dataset import MANIFEST_NAME, read_manifest
from imface.io.atomic import write_json

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="processed dataset (manifest.json)")
    parser.add_argument("--out", type=Path, required=True, help="new folder (same file system as --data)")
    parser.add_argument("--identities", type=int, default=2, help="validation identities (the benchmark's choice)")
    args = parser.parse_args()

    source = args.data.resolve()
    validation = validation_identities(read_manifest(source), args.identities)
    raw = json.loads((source / MANIFEST_NAME).read_text())
    for folder, _, files in os.walk(source):  # hard-link every file but the manifest
        target = args.out / Path(folder).relative_to(source)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            if not (Path(folder) == source and name == MANIFEST_NAME) and not (target / name).exists():
                os.link(Path(folder) / name, target / name)
    split = raw["split"]
    identity = {s["name"]: s["identity"] for s in raw["scans"]}
    split["test"] = [n for n in split["train"] if identity[n] in validation]
    split["train"] = [n for n in split["train"] if identity[n] not in validation]
    split["held_out_expression"] = [n for n in split.get("held_out_expression", []) if identity[n] not in validation]
    split["test_identities"], split["test_expressions"] = validation, []
    write_json(args.out / MANIFEST_NAME, raw)
    read_manifest(args.out)  # the view must validate
    print(f"{args.out}: validation identities {', '.join(validation)}: {len(split['train'])} training scans, "
          f"{len(split['test'])} validation scans")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
