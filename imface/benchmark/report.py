"""The benchmark's numbers (``results.json``) and ``report.md``: Table 1 and Table 2 analogs, the
paper's goals checked, figures, timings, seeds and the machine."""
from __future__ import annotations

import json
import os
import platform
import statistics
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from imface.benchmark.analysis import ablation_statements, identity_linearity, per_expression
from imface.benchmark.curves import collect_curves
from imface.benchmark.methods import correspondence_model, methods
from imface.benchmark.validation import read_chosen
from imface.config.benchmark import ABLATION_ROWS, BenchmarkConfig
from imface.contracts.benchmark import CORRESPONDENCE_NAME, FITTED_NAME, NO_SEED, TRAINED_NAME, BenchmarkFolder
from imface.contracts.dataset import read_manifest
from imface.contracts.fits import FIT_NAME
from imface.eval.evaluate import SUMMARY_NAME
from imface.io.atomic import write_text
from imface.threads import get_threads
from imface.training.trainer import git_commit

#: Metrics carried from each run's eval summary (mean over its scans).
METRICS = ("chamfer_mm", "fscore@1mm", "fscore@2.5mm", "fscore@5mm", "normal_consistency",
           "footprint_chamfer_mm", "footprint_fscore@1mm")
#: The paper's Table 1 ratio ImFace / linear 3DMM Chamfer (0.625 / 0.971), and its F-score goal.
GOAL_CHAMFER_RATIO = 0.64
GOAL_FSCORE_1MM = 91.0


def _mean_std(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values)}


def machine(device: str) -> dict[str, Any]:

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "threads": get_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "device": device,
            "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None, "git_commit": git_commit()}


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _method_result(method: dict[str, Any], bench_dir: Path) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    for run, (recon_dir, _) in method["runs"].items():
        summary = _read(BenchmarkFolder(bench_dir).evaluation(method["name"], run) / SUMMARY_NAME) or {}
        row: dict[str, Any] = {
            "scored": summary.get("num_scored", 0), "failed": summary.get("failed", []),
            **{key: (summary.get("overall", {}).get(key) or {}).get("mean") for key in METRICS},
            "seen_unseen": {label: (stats.get("chamfer_mm") or {}).get("mean")
                            for label, stats in summary.get("seen_unseen", {}).items()},
        }
        if method["kind"] == "imface":
            trained = _read(bench_dir / "imface" / method["name"] / run / TRAINED_NAME) or {}
            fitted = _read(Path(recon_dir) / FITTED_NAME) or {}
            row.update(train_seconds=trained.get("seconds"), train_steps=trained.get("steps"),
                       fit_seconds_per_scan=fitted.get("seconds_per_scan"))
        else:
            fits = [_read(path) for path in Path(recon_dir).rglob(FIT_NAME)]
            seconds = [f["fit_seconds"] for f in fits if f]
            row.update(fit_seconds_per_scan=statistics.fmean(seconds) if seconds else None)
        runs[run] = row
    scored = [r for r in runs.values() if r["scored"]]
    return {
        "name": method["name"], "kind": method["kind"], "latent_size": method["latent_size"],
        "condition": method.get("condition"), "vertices": method.get("vertices"),
        "seeds": [r for r in runs if r != NO_SEED], "runs": runs,
        **{key: _mean_std([r[key] for r in scored if r[key] is not None]) for key in METRICS},
        "seen_chamfer_mm": _mean_std([r["seen_unseen"]["seen"] for r in scored if r["seen_unseen"].get("seen") is not None]),
        "unseen_chamfer_mm": _mean_std([r["seen_unseen"]["unseen"] for r in scored
                                        if r["seen_unseen"].get("unseen") is not None]),
        "fit_seconds_per_scan": _mean_std([r["fit_seconds_per_scan"] for r in runs.values()
                                           if r.get("fit_seconds_per_scan") is not None]),
        "train_seconds": _mean_std([r["train_seconds"] for r in runs.values() if r.get("train_seconds") is not None]),
    }


def check_goals(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's goals, each {"goal", "value", "met" (None: cannot be judged), "note"}."""
    goals = []
    full = rows.get("full")
    chamfer = (full or {}).get("chamfer_mm", {}).get("mean")
    pca = sorted((r["latent_size"], name) for name, r in rows.items()
                 if r["kind"] == "baseline" and name.startswith("pca") and r["chamfer_mm"]["mean"] is not None)
    pairs = [(variant, name) for variant in ("full", "full-2x64") if variant in rows
             and rows[variant]["chamfer_mm"]["mean"] is not None
             for size, name in pca if size == rows[variant]["latent_size"]]
    if not pairs and full and chamfer is not None and pca:
        pairs = [("full", min(pca, key=lambda p: abs(p[0] - full["latent_size"]))[1])]
    if pairs:
        variant, name = pairs[0]
        ratio = rows[variant]["chamfer_mm"]["mean"] / rows[name]["chamfer_mm"]["mean"]
        equal = rows[variant]["latent_size"] == rows[name]["latent_size"]
        note = (f"equal latent size {rows[name]['latent_size']}" if equal else
                f"no PCA of size {rows[variant]['latent_size']} (too few training scans); nearest is {name}")
        goals.append({"goal": f"ImFace Chamfer <= {GOAL_CHAMFER_RATIO} x linear PCA's",
                      "value": f"{ratio:.3f} ({variant} / {name})", "met": ratio <= GOAL_CHAMFER_RATIO, "note": note})
    paper = [(name, r) for name, r in rows.items() if r["kind"] == "baseline" and r.get("condition") == "paper"
             and r["chamfer_mm"]["mean"] is not None]
    if full and chamfer is not None and paper:
        name, row = paper[0]
        ratio = chamfer / row["chamfer_mm"]["mean"]
        goals.append({"goal": f"ImFace Chamfer <= {GOAL_CHAMFER_RATIO} x the paper-condition linear model's",
                      "value": f"{ratio:.3f} (full / {name})", "met": ratio <= GOAL_CHAMFER_RATIO,
                      "note": f"latent sizes {full['latent_size']} and {row['latent_size']}"})
    if full and full["fscore@1mm"]["mean"] is not None:
        value = full["fscore@1mm"]["mean"]
        goals.append({"goal": f"ImFace F-score@1mm >= {GOAL_FSCORE_1MM:g}", "value": f"{value:.2f}",
                      "met": value >= GOAL_FSCORE_1MM, "note": ""})
    order = [rows.get(name, {}).get("chamfer_mm", {}).get("mean") for name in ("full", "no-extend", "no-blend", "no-dist")]
    if all(v is not None for v in order):
        full_c, extend_c, blend_c, dist_c = order
        met = full_c < extend_c < min(blend_c, dist_c)
        goals.append({"goal": "ablation order: full < no-extend < no-blend, no-dist (Chamfer)",
                      "value": f"{full_c:.3f} / {extend_c:.3f} / {blend_c:.3f} / {dist_c:.3f}", "met": met, "note": ""})
    return goals


def collect_results(config: BenchmarkConfig, data_dir: Path, bench_dir: Path, scans: list[str],
                    timings: dict[str, float], device: str) -> dict[str, Any]:
    """Every number of the report, as plain JSON."""
    manifest = read_manifest(data_dir)

    rows = {m["name"]: _method_result(m, bench_dir) for m in methods(config, bench_dir)}
    correspondence = _read(BenchmarkFolder(bench_dir).correspondence / CORRESPONDENCE_NAME)
    baselines_index = _read(BenchmarkFolder(bench_dir).baselines_index) or {}
    return {
        "preset": config.preset, "config": config.to_dict(), "data": str(data_dir.resolve()),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "split": {"train_scans": len(manifest.train), "train_identities": len({manifest.scan(n).identity for n in manifest.train}),
                  "test_scans_available": len(manifest.test), "test_identities": list(manifest.test_identities),
                  # the split's held-out names that the data actually has
                  "held_out_expressions": [e for e in manifest.test_expressions
                                           if any(scan.expression == e for scan in manifest.scans)]},
        "scans": scans, "methods": rows, "goals": check_goals(rows), "curves": collect_curves(config, bench_dir),
        "baseline_notes": baselines_index.get("notes", {}),
        "validation": read_chosen(bench_dir), "per_expression": per_expression(config, bench_dir, rows),
        "ablation_statements": ablation_statements(config, bench_dir), "identity_linearity": identity_linearity(data_dir),
        "correspondence": None if correspondence is None else {
            "model": "/".join(map(str, correspondence_model(config))),
            "landmark_transfer_error": correspondence.get("landmark_transfer_error"),
            "dense_correspondence_error": correspondence.get("dense_correspondence_error"),
            "metric_pairs": correspondence.get("metric_pairs")},
        "timings": timings, "machine": machine(device),
    }


def _fmt(stats: dict[str, Any], digits: int = 3) -> str:
    if not stats or stats.get("mean") is None:
        return "n/a"
    text = f"{stats['mean']:.{digits}f}"
    return text + (f" ± {stats['std']:.{digits}f}" if stats.get("std") is not None else "")


def _table(rows: list[dict[str, Any]], with_times: bool) -> list[str]:
    head = ("| method | latent size | Chamfer mm ↓ | F@1mm ↑ | F@2.5mm ↑ | NC ↑ | Chamfer seen / unseen expr. | "
            "footprint Chamfer mm ↓ | footprint F@1mm ↑ |")
    rule = "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    if with_times:
        head += " fit s/scan | train s |"
        rule += "---:|---:|"
    lines = [head, rule]
    for r in rows:
        line = (f"| {r['name']} | {r['latent_size']} | {_fmt(r['chamfer_mm'])} | {_fmt(r['fscore@1mm'], 2)} | "
                f"{_fmt(r['fscore@2.5mm'], 2)} | {_fmt(r['normal_consistency'])} | "
                f"{_fmt(r['seen_chamfer_mm'])} / {_fmt(r['unseen_chamfer_mm'])} | "
                f"{_fmt(r['footprint_chamfer_mm'])} | {_fmt(r['footprint_fscore@1mm'], 2)} |")
        if with_times:
            line += f" {_fmt(r['fit_seconds_per_scan'], 1)} | {_fmt(r['train_seconds'], 0)} |"
        lines.append(line)
    return lines


def _curves_section(results: dict[str, Any]) -> list[str]:
    curves = results.get("curves")
    if not curves:
        return []
    steps = curves["steps"]
    seeds = curves.get("seeds")
    lines = ["## Learning curves", "",
             "Each variant scored (same scans, same protocol) at these points of its training budget"
             + (f", seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))} (the final column can differ "
                "from Table 1's mean over all seeds)" if seeds else "") + ". "
             "Trend: the held-out Chamfer's relative change over the last segment (falling: more than 2% "
             "lower); probe: the same verdict on the training-scan probe (`curves.jsonl`, training scans "
             "decoded with their own codes, second half of the run), one per seed.", "",
             "| variant | " + " | ".join(f"step {s:,}" for s in steps) + " | train s (last) | trend | probe |",
             "|---|" + "---:|" * len(steps) + "---:|---|---|"]
    for name, row in curves["variants"].items():
        cells = [_fmt({"mean": m, "std": d}) for m, d in zip(row["chamfer_mm"], row["chamfer_std"])]
        seconds = row["train_seconds"][-1]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {'n/a' if seconds is None else f'{seconds:.0f}'} | "
                     f"{'**still falling**' if row['trend'] == 'falling' else row['trend']} | "
                     f"{', '.join(row['probe_trends'])} |")
    lines += ["", "![learning curves](figures/learning_curves.png)", ""]
    return lines


def report_text(results: dict[str, Any]) -> str:
    config, rows, split = results["config"], results["methods"], results["split"]
    seeds = ", ".join(map(str, config["seeds"]))
    baselines = sorted((r for r in rows.values() if r["kind"] == "baseline"), key=lambda r: (r["name"][:3], r["latent_size"]))
    oracle = [r for r in baselines if r.get("condition") != "paper"]
    paper = [r for r in baselines if r.get("condition") == "paper"]
    table1 = [rows[n] for n in ("i3dmm-like", "full-2x64", "full") if n in rows]
    table2 = [rows[n] for n in ABLATION_ROWS if n in rows]
    machine_info = results["machine"]
    lines = [
        f"# imface benchmark ({results['preset']} preset)", "",
        f"Data: `{results['data']}`: {split['train_scans']} training scans of {split['train_identities']} identities; "
        f"{len(results['scans'])} of the {split['test_scans_available']} scans of the held-out identities "
        f"({', '.join(split['test_identities'])}) fitted and scored; held-out expressions: "
        f"{', '.join(split['held_out_expressions']) or 'none'}.", "",
        f"Protocol (`imface eval`): every reconstruction is cropped like its ground truth (Sec. 3.5), "
        f"{config['eval_points']:,} points are sampled on each surface, aligned by 20 ICP iterations, then the "
        "symmetric Chamfer distance (mm), F-scores (%) and normal consistency are computed. Values are the mean over "
        f"the scans; with several seeds, mean ± std over seeds ({seeds}). ImFace variants are each trained for "
        f"{config['train_steps']:,} steps from the `{config['train_preset']}` training preset and fitted with "
        f"{config['fit_steps']} steps (network frozen, no landmark terms, Eq. 17), meshes at {config['fit_resolution']}³; "
        "the baselines are fitted by regularised non-rigid ICP to the same scans.", "",
        "## Table 1 analog: ImFace against the baselines", "",
        "Two kinds of baseline, each labelled. **Oracle registration**: built at full resolution from the "
        "generator's own registered training meshes, which are in exact correspondence with the test scans; no "
        "real data gives a linear model that. **Paper conditions**: the FLAME-like model (identity, expression, "
        "jaw) on a topology decimated to FLAME's resolution, fitted to the full-resolution scans, as the paper "
        "fits FLAME; its training meshes are still exactly registered. Footprint columns count only the "
        "reconstruction points whose frontal projection falls on the ground truth. Fit s/scan: ImFace fits "
        "run in the benchmark's process (all its threads); baseline fits run side by side on one-thread "
        "processes, so theirs is one thread's time.", "",
        *_table([{**r, "name": f"{r['name']} (oracle registration)"} for r in oracle]
                + [{**r, "name": f"{r['name']} (paper conditions, {r.get('vertices') or '?'} vertices)"} for r in paper]
                + table1, with_times=True), "",
    ]
    if results["baseline_notes"]:
        lines += ["Baseline notes: " + "; ".join(f"{k}: {v}" for k, v in results["baseline_notes"].items()), ""]
    if table2:
        lines += ["## Table 2 analog: ablations", "", *_table(table2, with_times=False), ""]
        lines += [f"- {a['statement']}." for a in results.get("ablation_statements") or []] + [""]
    lines += _analysis_sections(results)
    lines += ["## The paper's goals", "", "| goal | value | met |", "|---|---|---|"]
    for goal in results["goals"]:
        met = "n/a" if goal["met"] is None else ("yes" if goal["met"] else "**no**")
        lines.append(f"| {goal['goal']} | {goal['value']}{' (' + goal['note'] + ')' if goal['note'] else ''} | {met} |")
    if not results["goals"]:
        lines.append("| (not enough methods ran to judge them) | | |")
    lines += ["", "The goals are meant for the `long` preset; a shorter preset trains each network for a small "
              "fraction of the paper's 1,500 epochs, and the paper's claims are about converged models.", ""]
    lines += _curves_section(results)
    lines += ["## Figures", "", "Fig. 4 analog: ground truth, ImFace and baselines with their errors "
              "(distance to the ground truth, before ICP):", "", "![fig4](figures/fig4_reconstructions.png)", ""]
    corr = results["correspondence"]
    if corr:
        def stat(value: dict | None) -> str:
            return "n/a" if not value else f"mean {value['mean_mm']:.2f} mm, median {value['median_mm']:.2f} mm"

        lines += [f"Fig. 5 analog: template-space correspondence of the `{corr['model']}` model's fits; colours of the "
                  "first scan carried to other identities and expressions. Over all "
                  f"{corr['metric_pairs']} ordered pairs: landmark transfer error {stat(corr['landmark_transfer_error'])}; "
                  f"dense (registered-vertex) error {stat(corr['dense_correspondence_error'])}.", "",
                  "![fig5](correspondence/correspondence.png)", ""]
    lines += ["## Time, seeds and machine", "", "| stage | seconds |", "|---|---:|",
              *[f"| {stage} | {seconds:.1f} |" for stage, seconds in results["timings"].items()],
              f"| **total** | **{sum(results['timings'].values()):.1f}** |", "",
              f"Seeds: {seeds}. Machine: {machine_info['platform']} ({machine_info['processor']}), "
              f"{machine_info['cpu_count']} CPUs, {machine_info['threads']} threads, device {machine_info['device']}"
              f"{' (' + machine_info['gpu'] + ')' if machine_info['gpu'] else ''}, Python {machine_info['python']}, "
              f"torch {machine_info['torch']}, imface commit {machine_info['git_commit'] or 'unknown'}; "
              f"written {results['created']}.", "",
              "Every number above is in `results.json`; per-scan scores in `eval/<method>/<seed>/`.", ""]
    return "\n".join(lines)


def _analysis_sections(results: dict[str, Any]) -> list[str]:
    """Per-expression breakdown, identity linearity and the validation-chosen settings."""
    lines: list[str] = []
    breakdown = results.get("per_expression") or {}
    if breakdown.get("expressions"):
        names = breakdown["methods"]
        lines += ["## Where each method wins: Chamfer (mm) per expression", "",
                  "ImFace full (mean over seeds) against the PCA of its latent size and the paper-condition baseline; "
                  "unseen: an expression held out of training.", "",
                  "| expression | seen | scans | " + " | ".join(names) + " | best |",
                  "|---|---|---:|" + "---:|" * len(names) + "---|"]
        for expression, entry in breakdown["expressions"].items():
            cells = [_fmt({"mean": entry["chamfer_mm"].get(n)}) for n in names]
            seen = {True: "seen", False: "unseen"}.get(entry.get("seen"), "?")
            lines.append(f"| {expression} | {seen} | {entry['count']} | " + " | ".join(cells) + f" | {entry.get('best', '')} |")
        lines.append("")
    linear = results.get("identity_linearity")
    if linear:
        share = linear["unexplained_variance"]
        lines += ["## How linear the identities are", "",
                  f"A PCA of the {linear['train_identities']} training identities' neutral registered meshes "
                  f"({linear['components']} components) leaves a residual of {linear['residual_rms_mm']:.2f} mm RMS on "
                  f"the {linear['heldout_identities']} held-out identities' neutral meshes, against "
                  f"{linear['heldout_rms_from_mean_mm']:.2f} mm RMS from the mean: "
                  f"{'n/a' if share is None else f'{100 * share:.1f}%'} of their identity variance is outside the "
                  "training identities' span. The built-in identities come from a 40-dimensional linear model, so "
                  "this share falls toward zero as training identities approach 40 and beyond.", ""]
    chosen = results.get("validation")
    if chosen:
        grid = ", ".join(f"{v:g}" for v in chosen["grid"])
        lines += ["## Settings chosen on the validation split", "",
                  f"Baseline regularisation chosen from {{{grid}}} by mean Chamfer on {len(chosen['scans'])} training "
                  f"scans of the validation identities {', '.join(chosen['identities'])} (training identities, never "
                  "test scans), with every baseline rebuilt without those identities. ImFace's fit settings were "
                  "chosen on validation identities too: the free-space samples with `experiments/recipe_curves.py` on a "
                  "separate tuning dataset (other people), the code lr with `experiments/fit_settings.py` on models "
                  "trained without these validation identities (docs/lab/2026-12-03-training-recipe.md).", "",
                  "| baseline | " + " | ".join(f"λ={v:g}" for v in chosen["grid"]) + " | chosen |",
                  "|---|" + "---:|" * len(chosen["grid"]) + "---:|"]
        for name, scores in chosen["chamfer_mm"].items():
            lines.append(f"| {name} | " + " | ".join(f"{scores[f'{v:g}']:.3f}" for v in chosen["grid"])
                         + f" | {chosen['chosen'][name]:g} |")
        lines.append("")
    return lines


def write_report(results: dict[str, Any], bench_dir: Path) -> Path:
    path = BenchmarkFolder(bench_dir).report
    write_text(path, report_text(results))
    return path
