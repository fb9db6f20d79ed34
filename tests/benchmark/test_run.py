"""imface benchmark: scan choice, variant configs, a tiny end-to-end run on the built-in data, and the
baseline verbs on the same data (the goals: test_report.py; the presets: tests/config/test_benchmark.py)."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from imface.benchmark import benchmark_preset, choose_test_scans, run_benchmark
from imface.benchmark.run import variant_experiment
from imface.config.benchmark import VARIANTS, load_benchmark_config
from imface.contracts.dataset import read_manifest
from imface.errors import ImfaceError
from tests.run_cli import run_cli
from tests.synthetic_processed import write_builtin_processed


def _manifest(identities=("a", "b"), expressions=("neutral", "smile", "jaw_left", "anger", "eye_closed"),
              held_out=("jaw_left", "eye_closed")):
    scans = {f"{i}/{n}_{e}": SimpleNamespace(identity=i, expression=e) for i in identities
             for n, e in enumerate(expressions, 1)}
    return SimpleNamespace(test=tuple(scans), scan=lambda name: scans[name], test_expressions=tuple(held_out),
                           root="data")


def test_choose_test_scans_spreads_identities_and_keeps_seen_and_unseen():
    manifest = _manifest()
    for count in (2, 4, 6):
        chosen = choose_test_scans(manifest, count)
        assert len(chosen) == len(set(chosen)) == count
        identities = [manifest.scan(n).identity for n in chosen]
        assert identities[:2] == ["a", "b"]  # identities take turns
        assert abs(identities.count("a") - identities.count("b")) <= 1
        held = {manifest.scan(n).expression in manifest.test_expressions for n in chosen}
        assert held == {True, False}, chosen
        assert chosen == choose_test_scans(manifest, count)  # deterministic
    assert sorted(choose_test_scans(manifest, 0)) == sorted(manifest.test)
    assert len(choose_test_scans(manifest, 99)) == 10


def test_choose_test_scans_refuses_an_empty_test_split():
    with pytest.raises(ImfaceError, match="test split is empty"):
        choose_test_scans(SimpleNamespace(test=(), root="data"), 4)


def test_variant_configs_switch_the_ablations_and_share_the_budget():
    config = benchmark_preset("cpu")
    full = variant_experiment(config, "full", 3)
    assert (full.model.deformation, full.model.blend, full.model.expression_embedding) == ("disentangled", True, "per_scan")
    assert full.train.seed == 3 and full.train.max_steps == config.train_steps and full.train.max_minutes == 0
    i3dmm = variant_experiment(config, "i3dmm-like", 0)
    assert (i3dmm.model.deformation, i3dmm.model.blend, i3dmm.model.expression_embedding) == ("joint", False, "per_name")
    small = variant_experiment(config, "full-2x64", 0)
    assert small.model.id_code_dim == small.model.exp_code_dim == 64
    config.train_overrides = ["train.lr=0.003"]
    assert variant_experiment(config, "no-blend", 0).train.lr == pytest.approx(0.003)
    assert set(config.variants) <= set(VARIANTS)


@pytest.fixture(scope="module")
def builtin_data(tmp_path_factory, bfm):
    return write_builtin_processed(tmp_path_factory.mktemp("bench"), identities=4,
                                   expressions="neutral,smile,mouth_stretch,jaw_left", surface_samples=8000,
                                   space_samples=2000, near_surface_samples=2000, test_identities=1)


def test_tiny_benchmark_end_to_end_and_resume(builtin_data, tmp_path):
    config = benchmark_preset("tiny")
    config.train_steps = 10
    report = run_benchmark(builtin_data, tmp_path / "bench", config, progress=False)
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    methods = results["methods"]
    assert set(config.variants) <= set(methods) and {"pca2", "pca4", "bilinear", "flame_like"} <= set(methods)
    for name, row in methods.items():
        assert row["chamfer_mm"]["mean"] is not None and row["chamfer_mm"]["mean"] > 0, name
        assert 0 <= row["fscore@1mm"]["mean"] <= 100, name
        run = next(iter(row["runs"].values()))
        assert run["scored"] == 2 and not run["failed"], name
    assert results["correspondence"]["landmark_transfer_error"]["mean_mm"] > 0
    assert len(results["goals"]) == 4  # PCA ratio, paper-condition ratio, F-score, ablation order
    # paper conditions: the FLAME-like model on a decimated topology, labelled as such
    paper = methods["flame_like_300"]
    assert paper["condition"] == "paper" and 250 <= paper["vertices"] <= 350
    assert methods["pca2"]["condition"] == "oracle"
    for name, row in methods.items():  # footprint-restricted metrics beside the authors' protocol
        assert row["footprint_chamfer_mm"]["mean"] > 0 and 0 <= row["footprint_fscore@1mm"]["mean"] <= 100, name
    # settings chosen on validation identities (training identities only)
    chosen = results["validation"]
    manifest = read_manifest(builtin_data)
    assert not set(chosen["identities"]) & set(manifest.test_identities)
    assert all(manifest.scan(s).identity in chosen["identities"] and s in manifest.train for s in chosen["scans"])
    assert set(chosen["chosen"]) == {n for n, r in methods.items() if r["kind"] == "baseline"}
    assert all(v in config.regularisation_grid for v in chosen["chosen"].values())
    fit = json.loads(next((tmp_path / "bench" / "fits" / "baselines" / "pca2").rglob("fit.json")).read_text())
    assert fit["history"]  # fitted with the chosen value (the fit itself is checked in tests/baselines)
    assert results["per_expression"]["methods"][0] == "full" and results["per_expression"]["expressions"]
    assert [a["variant"] for a in results["ablation_statements"]] == ["no-dist", "no-blend", "no-extend"]
    assert "of 1 seeds" in results["ablation_statements"][0]["statement"]
    assert results["identity_linearity"]["heldout_identities"] == 1
    text = report.read_text()
    for needle in ("(oracle registration)", "(paper conditions, ", "footprint Chamfer", "Where each method wins",
                   "Settings chosen on the validation split"):
        assert needle in text
    for needle in ("Table 1 analog", "Table 2 analog", "figures/fig4_reconstructions.png",
                   "correspondence/correspondence.png", "Seeds: 0", "torch"):
        assert needle in text
    assert (tmp_path / "bench" / "figures" / "fig4_reconstructions.png").stat().st_size > 10_000
    assert (tmp_path / "bench" / "correspondence" / "correspondence.png").is_file()
    # learning curves: every variant scored at half its budget too, with the same scans and protocol
    curves = results["curves"]
    assert curves["steps"] == [5, 10]
    for name in config.variants:
        row = curves["variants"][name]
        assert all(c is not None and c > 0 for c in row["chamfer_mm"]), name
        assert row["train_seconds"][0] < row["train_seconds"][1]
        assert row["trend"] in ("falling", "flattened", "rising")
        assert (tmp_path / "bench" / "fits" / "imface" / name / "seed-0" / "step-5" / "fitted.json").is_file()
    assert "## Learning curves" in text and "figures/learning_curves.png" in text
    assert (tmp_path / "bench" / "figures" / "learning_curves.png").stat().st_size > 10_000
    segments = json.loads((tmp_path / "bench" / "imface" / "full" / "seed-0" / "trained.json").read_text())["segments"]
    assert [s["step"] for s in segments] == [5, 10]

    # a second run resumes: nothing is trained, fitted or scored again
    marker = tmp_path / "bench" / "imface" / "full" / "seed-0" / "trained.json"
    summary = tmp_path / "bench" / "eval" / "pca2" / "seed-none" / "summary.json"
    stamps = (marker.stat().st_mtime_ns, summary.stat().st_mtime_ns)
    run_benchmark(builtin_data, tmp_path / "bench", config, progress=False)
    assert (marker.stat().st_mtime_ns, summary.stat().st_mtime_ns) == stamps
    assert load_benchmark_config(tmp_path / "bench" / "benchmark.yaml").to_dict() == config.to_dict()

    other = benchmark_preset("tiny")
    other.train_steps = 11
    with pytest.raises(ImfaceError, match="another config"):
        run_benchmark(builtin_data, tmp_path / "bench", other, progress=False)


def test_baseline_cli_builds_fits_and_scores(builtin_data, tmp_path, capsys):
    models = tmp_path / "models"
    assert run_cli("baseline", "build", "--data", str(builtin_data), "--out", str(models), "--pca-sizes", "3,500",
                "--bilinear", "none", "--flame", "2,2") == 0
    out = capsys.readouterr().out
    assert "built pca3" in out and "note pca500: skipped" in out and "bilinear" not in out
    scan = read_manifest(builtin_data).test[0]
    assert run_cli("baseline", "fit", "--model", str(models / "pca3"), "--data", str(builtin_data), "--out",
                str(tmp_path / "fits"), "--scans", scan, "--points", "2000") == 0
    assert (tmp_path / "fits" / scan / "mesh.ply").is_file()
    index = json.loads((tmp_path / "fits" / "fits.json").read_text())  # a fits folder like imface fit's
    assert index["method"] == "pca3" and [entry["name"] for entry in index["scans"]] == [scan]
    assert run_cli("eval", "--fits", str(tmp_path / "fits"), "--points", "5000") == 0
    summary = json.loads((tmp_path / "fits" / "eval" / "summary.json").read_text())
    assert summary["num_scored"] == 1 and summary["overall"]["chamfer_mm"]["mean"] < 5.0

    assert run_cli("baseline", "fit", "--model", str(models / "pca3"), "--data", str(builtin_data), "--out",
                str(tmp_path / "fits"), "--scans", "nobody/1_neutral") == 2
    assert "no scan(s) named nobody/1_neutral" in capsys.readouterr().err
    assert run_cli("baseline", "build", "--data", str(builtin_data), "--out", str(tmp_path / "m2"), "--pca-sizes", "3,x") == 2
    assert "--pca-sizes expects comma-separated integers, got '3,x'" in capsys.readouterr().err
    assert run_cli("benchmark", "--data", str(builtin_data), "--exp-dir", str(tmp_path / "b"), "--seeds", "0,one") == 2
    assert "--seeds expects comma-separated integers" in capsys.readouterr().err
    assert run_cli("benchmark", "--data", str(builtin_data), "--exp-dir", str(tmp_path / "b"), "--preset", "huge") == 2
    assert "unknown benchmark preset 'huge'" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
