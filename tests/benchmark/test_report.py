"""The benchmark's goals: ImFace against the PCA of equal latent size, and the ablation order."""
from __future__ import annotations

from imface.benchmark.report import check_goals


def _row(kind, latent, chamfer, fscore=50.0):
    return {"kind": kind, "latent_size": latent, "chamfer_mm": {"mean": chamfer}, "fscore@1mm": {"mean": fscore}}


def test_goals_compare_at_equal_latent_size_and_check_the_ablation_order():
    rows = {"pca128": _row("baseline", 128, 0.8), "pca256": _row("baseline", 256, 0.9),
            "full": _row("imface", 256, 0.54, 92.0), "no-extend": _row("imface", 256, 0.6),
            "no-blend": _row("imface", 256, 0.7), "no-dist": _row("imface", 256, 0.65)}
    goals = {g["goal"].split()[1]: g for g in check_goals(rows)}
    assert goals["Chamfer"]["met"] and "pca256" in goals["Chamfer"]["value"] and goals["Chamfer"]["note"] == "equal latent size 256"
    assert goals["F-score@1mm"]["met"]
    assert next(g for g in check_goals(rows) if g["goal"].startswith("ablation"))["met"]
    rows["no-extend"] = _row("imface", 256, 0.8)  # worse than no-blend: order broken
    rows.pop("pca256")  # no PCA of equal size: the nearest is used and named
    goals = check_goals(rows)
    chamfer = next(g for g in goals if "Chamfer <=" in g["goal"])
    assert not chamfer["met"] and "pca128" in chamfer["note"]
    assert not next(g for g in goals if g["goal"].startswith("ablation"))["met"]
    rows["full-2x64"] = _row("imface", 128, 0.5)  # the 2x64 model has an equal-size PCA: it is preferred
    chamfer = next(g for g in check_goals(rows) if "Chamfer <=" in g["goal"])
    assert chamfer["met"] and "full-2x64 / pca128" in chamfer["value"] and chamfer["note"] == "equal latent size 128"
