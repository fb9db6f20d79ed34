"""imface benchmark's pre-flight and --dry-run: what a later stage would need is refused in one line
before any training, good data passes, the disk plan adds up, and a dry run runs every stage in a
temporary folder (the full dry run is slow; a failing one is not)."""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections import namedtuple

import pytest
import torch
import trimesh

import imface.benchmark.run as benchmark_run
from imface.benchmark import benchmark_preset, preflight, run_benchmark
from imface.benchmark.curves import curve_steps
from imface.benchmark.preflight import (DRY_RUN_STEPS, DRY_RUN_TEST_SCANS, check_benchmark, dry_run_config,
                                        planned_bytes)
from imface.benchmark.run import dry_run_benchmark
from imface.contracts.dataset import REGISTERED_NAME, read_manifest
from imface.errors import ImfaceError
from imface.io.mesh import read_mesh, write_mesh
from tests.model_fixtures import add_registered_meshes
from tests.synthetic_processed import write_builtin_processed, write_synthetic_dataset


def _spheres(root, registered: bool = True, **kwargs):
    """Sphere scans (exact SDF samples) with, by default, registered meshes in one topology."""
    options = {"num_identities": 5, "test_identities": 1, **kwargs}
    data = write_synthetic_dataset(root, **options)
    if registered:
        add_registered_meshes(data, [scan.name for scan in read_manifest(data).scans])
    return data


def _cli(*args: str) -> int:
    from imface.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--threads", "1", *args])
    return int(exit_info.value.code or 0)


def _refused_in_one_line(data, bench, capsys) -> str:
    """Run ``imface benchmark --preset paper --dry-run``; assert one error line, quickly, before any
    training, with nothing written; returns the line."""
    started = time.perf_counter()
    assert _cli("benchmark", "--data", str(data), "--out", str(bench), "--preset", "paper", "--dry-run") == 2
    seconds = time.perf_counter() - started
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "train" not in captured.out
    assert not bench.exists()  # no benchmark folder, no experiment folder
    assert seconds < 30, seconds
    return lines[0]


def test_dry_run_without_registered_meshes_stops_in_one_line(tmp_path, capsys):
    data = _spheres(tmp_path / "data", registered=False)
    line = _refused_in_one_line(data, tmp_path / "bench", capsys)
    assert REGISTERED_NAME in line and "missing" in line and "12 of 12 training scans" in line


def test_dry_run_with_an_empty_test_split_stops_in_one_line(tmp_path, capsys):
    data = _spheres(tmp_path / "data", test_identities=0)
    line = _refused_in_one_line(data, tmp_path / "bench", capsys)
    assert "test split is empty" in line


def test_run_benchmark_checks_before_it_writes(tmp_path):
    data = _spheres(tmp_path / "data", registered=False)
    with pytest.raises(ImfaceError, match="registered"):
        run_benchmark(data, tmp_path / "bench", benchmark_preset("tiny"), progress=False)
    assert not (tmp_path / "bench").exists()


def test_preflight_passes_on_good_data_and_writes_nothing(tmp_path):
    data = _spheres(tmp_path / "data")
    state = torch.get_rng_state()
    for name in ("tiny", "cpu"):  # the paper preset plans gigabytes of checkpoints: not on a CI disk
        checked = check_benchmark(data, tmp_path / "bench", benchmark_preset(name), device="cpu")
        assert (checked.train_scans, checked.test_split, checked.registered_vertices) == (12, 3, 642)
        assert checked.test_scans == (2 if name == "tiny" else 3)
        assert checked.validation_identities and checked.device == "cpu"
        assert set(checked.parameters) == set(benchmark_preset(name).variants)
        assert all(size > 0 for size in checked.planned.values()) and checked.free_bytes > checked.planned_bytes
        assert "12 training scans" in checked.summary()
    assert torch.equal(torch.get_rng_state(), state)  # counting parameters leaves the global RNG alone
    assert not (tmp_path / "bench").exists()


def test_preflight_refuses_registered_meshes_of_another_topology(tmp_path):
    data = _spheres(tmp_path / "data")
    manifest = read_manifest(data)
    last = manifest.folder(manifest.train[-1]) / REGISTERED_NAME
    mesh = read_mesh(last)
    write_mesh(last, mesh.vertices, mesh.faces[:, [0, 2, 1]])  # same counts, other triangles
    with pytest.raises(ImfaceError, match="triangles differ") as err:
        check_benchmark(data, tmp_path / "bench", benchmark_preset("tiny"))
    assert err.value.path == str(last)
    other = manifest.folder(manifest.train[1]) / REGISTERED_NAME
    sphere = trimesh.creation.icosphere(subdivisions=2)
    write_mesh(other, sphere.vertices, sphere.faces)
    with pytest.raises(ImfaceError, match="162 vertices .* one topology") as err:
        check_benchmark(data, tmp_path / "bench", benchmark_preset("tiny"))
    assert err.value.path == str(other)


def test_preflight_refuses_an_incomplete_test_scan(tmp_path):
    data = _spheres(tmp_path / "data")
    manifest = read_manifest(data)
    (manifest.folder(manifest.test[0]) / "mesh.ply").unlink()
    with pytest.raises(ImfaceError, match="incomplete"):
        check_benchmark(data, tmp_path / "bench", benchmark_preset("tiny"))


def test_preflight_refuses_data_the_validation_or_the_baselines_cannot_use(tmp_path):
    few = _spheres(tmp_path / "few", num_identities=3)  # 2 training identities
    with pytest.raises(ImfaceError, match="validation split needs at least 3"):
        check_benchmark(few, tmp_path / "bench", benchmark_preset("tiny"))
    no_neutral = _spheres(tmp_path / "no_neutral", expressions=("smile", "jaw_open"))
    with pytest.raises(ImfaceError, match="FLAME-like baseline needs neutral scans"):
        check_benchmark(no_neutral, tmp_path / "bench", benchmark_preset("tiny"))


def test_preflight_refuses_a_disk_too_small(tmp_path, monkeypatch):
    data = _spheres(tmp_path / "data")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(ImfaceError, match=r"to write \(checkpoints and logs .*\) but 1.0 kB free") as err:
        check_benchmark(data, tmp_path / "bench" / "deeper", benchmark_preset("tiny"))
    assert err.value.path == str(tmp_path.resolve())  # the nearest folder that exists


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal of CUDA where there is none")
def test_preflight_refuses_a_device_that_is_not_there(tmp_path):
    data = _spheres(tmp_path / "data")
    with pytest.raises(ImfaceError, match="no CUDA device"):
        check_benchmark(data, tmp_path / "bench", benchmark_preset("tiny"), device="cuda")


def test_planned_bytes_counts_every_kept_checkpoint():
    config = benchmark_preset("tiny")
    config.variants, config.seeds, config.train_steps, config.curve_fractions = ["full"], [0, 1], 100, [0.25, 0.5]
    config.train_overrides = ["train.checkpoint_every_steps=40", "train.image_every_steps=50"]
    plan = planned_bytes(config, {"full": 1000}, test_scans=3, train_scans=20, vertices=500)
    kept = {40, 80} | set(curve_steps(config))  # 25, 50, 100
    per_run = len(kept) * 4 * 1000 + 8 * 1000 + 100 * preflight.LOG_BYTES_PER_STEP + 2 * preflight.IMAGE_BYTES_PER_LOGGING
    assert plan["checkpoints and logs"] == 2 * per_run
    mesh = 3.0 * (config.fit_resolution - 1) ** 2 * preflight.PLY_BYTES_PER_VERTEX
    assert plan["ImFace fits"] == int(1 * (2 + 2 * 2) * 3 * mesh)  # 2 seeds, each also at 2 curve steps
    bigger = planned_bytes(config, {"full": 1000}, test_scans=6, train_scans=20, vertices=1000)
    assert bigger["baseline fits"] > 2 * plan["baseline fits"] and bigger["baselines"] > plan["baselines"]


def test_dry_run_config_is_small_and_leaves_the_config_alone():
    config = benchmark_preset("paper")
    before = config.to_dict()
    dry = dry_run_config(config, test_split=5)
    assert config.to_dict() == before
    assert dry.variants == config.variants and dry.seeds == config.seeds[:1]
    assert dry.train_steps == DRY_RUN_STEPS and dry.test_scans == DRY_RUN_TEST_SCANS
    assert (dry.fit_resolution, dry.pca_sizes, dry.train_preset) == (config.fit_resolution, config.pca_sizes, "paper")
    assert len(dry.regularisation_grid) == dry.validation_scans == dry.validation_identities == 1
    assert "train.checkpoint_every_steps=2" in dry.train_overrides and "train.curve_every_steps=2" in dry.train_overrides
    assert dry_run_config(config, test_split=1).test_scans == 1
    tiny = dry_run_config(benchmark_preset("tiny"), test_split=5)  # no curve probe in tiny: none added
    assert not any("curve_every_steps" in item for item in tiny.train_overrides)


def test_dry_run_names_the_stage_that_fails_and_leaves_nothing(tmp_path, monkeypatch):
    data = _spheres(tmp_path / "data")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory.\nTried to allocate 60 GiB")

    monkeypatch.setattr("imface.benchmark.run._train_variants", out_of_memory)
    with pytest.raises(ImfaceError) as err:
        dry_run_benchmark(data, tmp_path / "bench", benchmark_preset("tiny"), device="cpu", progress=False)
    assert str(err.value) == ("dry run: stage 'train ImFace variants' failed: RuntimeError: CUDA out of memory. "
                              "Tried to allocate 60 GiB")
    assert not list((tmp_path / "tmp").glob("imface-benchmark-dry-run-*")) and not (tmp_path / "bench").exists()


@pytest.mark.slow
def test_dry_run_runs_every_stage_in_a_temporary_folder(tmp_path, monkeypatch, bfm, capsys):
    data = write_builtin_processed(tmp_path / "built", identities=4, expressions="neutral,smile,mouth_stretch,jaw_left",
                                   surface_samples=8000, space_samples=2000, near_surface_samples=2000,
                                   test_identities=1)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    seen = {}
    write_report = benchmark_run.write_report

    def keep_results(results, bench_dir):  # what the dry run scored, before its folder goes
        seen["results"] = json.loads(json.dumps(results, default=str))
        seen["pictures"] = {str(p.relative_to(bench_dir)) for p in bench_dir.rglob("*.png")}
        return write_report(results, bench_dir)

    monkeypatch.setattr(benchmark_run, "write_report", keep_results)
    assert _cli("benchmark", "--data", str(data), "--out", str(tmp_path / "bench"), "--preset", "tiny",
                "--dry-run", "--no-progress") == 0
    out = capsys.readouterr().out
    assert "dry run: the benchmark path works" in out and "5 variants x 4 steps, 2 test scan(s)" in out
    assert "The real run: 5 variants x 1 seed(s) x 30 steps" in out
    methods = seen["results"]["methods"]
    assert set(benchmark_preset("tiny").variants) <= set(methods) and {"bilinear", "flame_like"} <= set(methods)
    assert all(row["chamfer_mm"]["mean"] is not None for row in methods.values())
    assert seen["results"]["correspondence"]["landmark_transfer_error"]["mean_mm"] > 0
    assert {"figures/fig4_reconstructions.png", "figures/learning_curves.png",
            "correspondence/correspondence.png"} <= seen["pictures"]
    assert not list((tmp_path / "tmp").glob("imface-benchmark-dry-run-*")) and not (tmp_path / "bench").exists()
