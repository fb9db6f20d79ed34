"""Per-expression Chamfer of one or more ``imface eval`` summaries, pooled: mean +- std over every
scored fit (scans x summaries, e.g. two fit seeds), as the model card reports them. ``--metric``
pools another per-scan figure instead (``footprint_chamfer_mm``, ``completeness_mm``, ...).

    python experiments/eval_table.py --label ImFace runs/fits-s0/eval/summary.json runs/fits-s1/eval/summary.json \\
        --label PCA256 runs/pca/eval/summary.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def rows(paths: list[Path], metric: str = "chamfer_mm") -> dict[str, list[float]]:
    """expression -> ``metric`` (mm) of every scored scan of the summaries; "all" pools them."""
    out: dict[str, list[float]] = {"all": []}
    for path in paths:
        for scan in json.loads(Path(path).read_text())["scans"]:
            if scan.get("metrics") and scan["metrics"].get(metric) is not None:
                value = float(scan["metrics"][metric])
                out.setdefault(scan["expression"] or "?", []).append(value)
                out["all"].append(value)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", action="append", nargs="+", required=True, metavar=("LABEL", "SUMMARY"),
                        help="a column: its label, then its summary.json files")
    parser.add_argument("--metric", default="chamfer_mm", help="the per-scan metric to pool (default chamfer_mm)")
    args = parser.parse_args()
    columns = {group[0]: rows([Path(p) for p in group[1:]], args.metric) for group in args.label}
    expressions = sorted({e for c in columns.values() for e in c if e != "all"}) + ["all"]
    print("| expression | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for expression in expressions:
        cells = []
        for values in columns.values():
            v = values.get(expression, [])
            cells.append(f"{np.mean(v):.3f} ± {np.std(v):.3f} ({len(v)})" if v else "—")
        print(f"| {expression} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
