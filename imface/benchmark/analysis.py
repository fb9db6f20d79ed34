"""Readings of the benchmark beyond Table 1: where each method wins (per expression), the
ablation order as a per-seed statement, how linear the identity data is, and the settings
chosen on the validation split. Each returns plain JSON for ``results.json``."""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from imface.baselines.io import load_training_meshes
from imface.baselines.pca import principal_components
from imface.config.benchmark import ABLATION_ROWS, BenchmarkConfig
from imface.contracts.benchmark import NO_SEED, BenchmarkFolder
from imface.errors import ImfaceError
from imface.eval.evaluate import SUMMARY_NAME
from imface.frame import MM_PER_UNIT


def _summary(bench_dir: Path, method: str, run: str) -> dict[str, Any]:
    path = BenchmarkFolder(bench_dir).evaluation(method, run) / SUMMARY_NAME
    return json.loads(path.read_text()) if path.is_file() else {}


def _chamfer_by_scan(bench_dir: Path, method: str, run: str) -> dict[str, float]:
    scans = _summary(bench_dir, method, run).get("scans", [])
    return {s["name"]: s["metrics"]["chamfer_mm"] for s in scans if s.get("metrics")}


def comparison_methods(rows: dict[str, dict[str, Any]]) -> list[str]:
    """ImFace full, the PCA of its latent size (else the largest), and the paper-condition baselines."""
    names = [n for n in ("full",) if n in rows]
    full_size = rows.get("full", {}).get("latent_size")
    pcas = sorted((r["latent_size"], n) for n, r in rows.items() if r["kind"] == "baseline" and n.startswith("pca"))
    if pcas:
        equal = [n for size, n in pcas if size == full_size]
        names.append(equal[0] if equal else pcas[-1][1])
    names += [n for n, r in rows.items() if r["kind"] == "baseline" and r.get("condition") == "paper"]
    return names


def per_expression(config: BenchmarkConfig, bench_dir: Path, rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per expression: mean Chamfer of each compared method (ImFace: mean over seeds of the
    per-seed means), whether the expression was seen in training, and the winner."""
    names = comparison_methods(rows)
    table: dict[str, dict[str, Any]] = {}
    for name in names:
        runs = [f"seed-{s}" for s in config.seeds] if rows[name]["kind"] == "imface" else [NO_SEED]
        per_run = []
        for run in runs:
            summary = _summary(bench_dir, name, run)
            per_run.append({e: (stats.get("chamfer_mm") or {}).get("mean")
                            for e, stats in summary.get("per_expression", {}).items()})
            for scan in summary.get("scans", []):
                if scan.get("expression") is not None:
                    table.setdefault(scan["expression"], {"seen": scan.get("seen"), "count": 0, "chamfer_mm": {}})
        for expression, entry in table.items():
            values = [r[expression] for r in per_run if r.get(expression) is not None]
            if values:
                entry["chamfer_mm"][name] = statistics.fmean(values)
    first = _summary(bench_dir, names[0], f"seed-{config.seeds[0]}" if rows[names[0]]["kind"] == "imface" else NO_SEED)
    for expression, entry in table.items():
        entry["count"] = sum(1 for s in first.get("scans", []) if s.get("expression") == expression)
        if entry["chamfer_mm"]:
            entry["best"] = min(entry["chamfer_mm"], key=entry["chamfer_mm"].get)
    return {"methods": names, "expressions": dict(sorted(table.items()))}


def ablation_statements(config: BenchmarkConfig, bench_dir: Path) -> list[dict[str, Any]]:
    """For each ablated variant: in how many seeds it is worse than full (mean Chamfer over the
    same scans), and the per-seed difference's mean ± std in mm."""
    if "full" not in config.variants:
        return []
    out = []
    for variant in [v for v in ABLATION_ROWS if v != "full" and v in config.variants]:
        differences = []
        for seed in config.seeds:
            full = _chamfer_by_scan(bench_dir, "full", f"seed-{seed}")
            other = _chamfer_by_scan(bench_dir, variant, f"seed-{seed}")
            common = sorted(set(full) & set(other))
            if common:
                differences.append(float(np.mean([other[s] - full[s] for s in common])))
        if not differences:
            continue
        worse = sum(d > 0 for d in differences)
        mean = statistics.fmean(differences)
        std = statistics.stdev(differences) if len(differences) > 1 else None
        spread = f" ± {std:.3f}" if std is not None else ""
        relation = "worse" if mean > 0 else "better"
        out.append({"variant": variant, "worse_seeds": worse, "seeds": len(differences), "difference_mm": mean,
                    "difference_std_mm": std,
                    "statement": f"{variant} is worse than full in {worse} of {len(differences)} seeds; "
                                 f"on average {relation} by {abs(mean):.3f}{spread} mm"})
    return out


def identity_linearity(data_dir: Path) -> dict[str, Any] | None:
    """How linear the identities are: a PCA of the training identities' neutral registered meshes
    (all components), and the RMS residual (mm) of the held-out identities' neutral meshes projected
    onto it, against their RMS distance from the mean (the share of variance left unexplained)."""

    try:
        train = load_training_meshes(data_dir, "train")
        test = load_training_meshes(data_dir, "test")
    except ImfaceError:
        return None
    neutral_train = train.vertices[np.asarray(train.neutral)]
    neutral_test = test.vertices[np.asarray(test.neutral)]
    if len(neutral_train) < 3 or len(neutral_test) < 1:
        return None
    flat = neutral_train.reshape(len(neutral_train), -1).astype(np.float64)
    mean, components, _, _ = principal_components(flat, len(flat) - 1)
    offsets = neutral_test.reshape(len(neutral_test), -1).astype(np.float64) - mean
    residual = offsets - (offsets @ components.T) @ components
    vertex_count = neutral_test.shape[1]
    rms = float(np.sqrt((residual**2).sum() / (len(offsets) * vertex_count))) * MM_PER_UNIT
    spread = float(np.sqrt((offsets**2).sum() / (len(offsets) * vertex_count))) * MM_PER_UNIT
    return {"train_identities": int(len(neutral_train)), "heldout_identities": int(len(neutral_test)),
            "components": int(len(components)), "residual_rms_mm": rms, "heldout_rms_from_mean_mm": spread,
            "unexplained_variance": (rms / spread) ** 2 if spread > 0 else None}
