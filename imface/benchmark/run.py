"""``imface benchmark``: train ImFace and its ablations, build and fit the baselines, fit the
held-out scans, score everything with the authors' protocol, and write ``report.md``.

The benchmark folder (``--out``) is the contract, laid out as :mod:`imface.contracts.benchmark`
describes; every stage skips work already done, so an interrupted run resumes where it stopped.
Before any stage the pre-flight (:mod:`imface.benchmark.preflight`) checks what every stage needs;
:func:`dry_run_benchmark` also runs every stage, small, in a temporary folder.
"""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from imface.baselines import build_baselines, fit_baseline
from imface.baselines.fitting import BaselineFitSettings
from imface.baselines.io import write_baseline_index
from imface.benchmark.curves import curve_steps, evaluate_intermediate, fit_intermediate, write_curve_figure
from imface.benchmark.figures import write_fig4
from imface.benchmark.methods import baseline_names, correspondence_model, methods, variant_experiment
from imface.benchmark.parallel import run_calls
from imface.benchmark.preflight import Preflight, check_benchmark, dry_run_config
from imface.benchmark.report import collect_results, write_report
from imface.benchmark.validation import choose_regularisation, read_chosen
from imface.config.benchmark import BenchmarkConfig, load_benchmark_config, save_benchmark_config
from imface.contracts.benchmark import (CORRESPONDENCE_NAME, CURVES_FIGURE_NAME, FIG4_NAME, FITTED_NAME, TRAINED_NAME,
                                        BenchmarkFolder)
from imface.contracts.dataset import Manifest, read_manifest
from imface.contracts.experiment import CONFIG_NAME as EXPERIMENT_CONFIG_NAME
from imface.contracts.fits import FIT_NAME
from imface.correspondence import run_correspondence
from imface.devices import resolve_device
from imface.errors import ImfaceError
from imface.eval.evaluate import SUMMARY_NAME, evaluate_folder
from imface.fitting.run import fit
from imface.io.atomic import write_json
from imface.pretrained import load_pretrained
from imface.threads import get_threads
from imface.training.trainer import train


def choose_test_scans(manifest: Manifest, count: int) -> list[str]:
    """``count`` scans of the held-out identities (0: all), spread over identities and expressions.

    Identities take turns; within an identity the picks are evenly spaced over its scans
    (sorted by name), and each identity's picks start at a different place so that the
    chosen expressions differ between identities. Held-out expressions are kept in when
    the split has them. Deterministic.
    """
    test = sorted(manifest.test)
    if not test:
        raise ImfaceError(manifest.root, "the test split is empty: preprocess with --test-identities >= 1")
    if count <= 0 or count >= len(test):
        return test
    by_identity: dict[str, list[str]] = {}
    for name in test:
        by_identity.setdefault(manifest.scan(name).identity, []).append(name)
    identities = sorted(by_identity)
    per_identity = [count // len(identities) + (i < count % len(identities)) for i in range(len(identities))]
    picked: list[list[str]] = []
    for turn, (identity, take) in enumerate(zip(identities, per_identity)):
        names = by_identity[identity]
        take = min(take, len(names))
        if take:
            offset = turn * len(names) // (take * len(identities))
            picked.append([names[(offset + i * len(names) // take) % len(names)] for i in range(take)])
    held_out = set(manifest.test_expressions)
    for unseen in (True, False):  # keep both unseen and seen expressions in the sample
        if count >= 2 and all((manifest.scan(n).expression in held_out) != unseen for picks in picked for n in picks):
            last = picked[-1]  # its last pick is swapped for one of the missing kind
            candidates = [n for n in by_identity[manifest.scan(last[-1]).identity]
                          if (manifest.scan(n).expression in held_out) == unseen]
            if candidates:
                last[-1] = candidates[0]
    # identities take turns, so that the first few scans (the figures' rows) span identities
    return [picks[i] for i in range(max(map(len, picked))) for picks in picked if i < len(picks)]


class Timings:
    """Seconds per stage, kept in ``timings.json`` across resumed runs (a skipped stage keeps
    the time it took when it ran). ``name_failures``: any exception in a stage becomes one
    ImfaceError line that names the stage (the dry run's report)."""

    def __init__(self, path: Path, name_failures: bool = False) -> None:
        self.path = path
        self.name_failures = name_failures
        self.seconds: dict[str, float] = json.loads(path.read_text()) if path.is_file() else {}

    def run(self, stage: str, work: Callable[[], bool], progress: bool) -> None:
        """Run ``work`` (returns True when it did anything) and record its time if it did."""
        if progress:
            print(f"[benchmark] {stage} ...", flush=True)
        started = time.perf_counter()
        try:
            did_work = work()
        except Exception as err:
            if not self.name_failures:
                raise
            text = str(err) if isinstance(err, ImfaceError) else f"{type(err).__name__}: {err}"
            raise ImfaceError(None, f"stage '{stage}' failed: {text}") from err
        if did_work or stage not in self.seconds:
            self.seconds[stage] = time.perf_counter() - started
            write_json(self.path, self.seconds)
        if progress:
            state = "done" if did_work else "already done"
            print(f"[benchmark] {stage}: {state} ({self.seconds[stage]:.1f} s)", flush=True)


def _prepare(bench_dir: Path, config: BenchmarkConfig, data_dir: Path) -> None:
    config_path = BenchmarkFolder(bench_dir).config
    if config_path.is_file():
        saved, wanted = load_benchmark_config(config_path).to_dict(), config.to_dict()
        if saved != wanted:
            changed = sorted(k for k, v in wanted.items() if saved.get(k) != v)
            raise ImfaceError(bench_dir, f"holds a benchmark with another config (differs in {', '.join(changed)}); "
                                         "use a new --exp-dir")
    bench_dir.mkdir(parents=True, exist_ok=True)
    save_benchmark_config(config, config_path)
    write_json(BenchmarkFolder(bench_dir).data, {"data": str(data_dir.resolve())})


def _train_variants(config: BenchmarkConfig, data_dir: Path, bench_dir: Path, device: str, progress: bool) -> bool:
    """Train every variant and seed in segments ending at the learning curves' steps (exact resume
    in between); ``trained.json`` records the training seconds at the end of each segment."""

    did = False
    for variant in config.variants:
        for seed in config.seeds:
            exp_dir = BenchmarkFolder(bench_dir).experiment(variant, seed)
            marker = exp_dir / TRAINED_NAME
            record = json.loads(marker.read_text()) if marker.is_file() else {}
            if record.get("steps") == config.train_steps:
                continue
            did = True
            if progress:
                print(f"[benchmark] train {variant} seed {seed}: {config.train_steps} steps", flush=True)
            segments = [s for s in record.get("segments", []) if s["step"] < config.train_steps]
            for stop in curve_steps(config):
                if any(s["step"] == stop for s in segments):
                    continue
                experiment = variant_experiment(config, variant, seed)
                experiment.train.max_steps = stop
                result = train(experiment, data_dir, exp_dir, resume=(exp_dir / EXPERIMENT_CONFIG_NAME).is_file(),
                               device=device, progress=progress)
                if result.stopped not in ("finished", "max_steps"):
                    raise ImfaceError(exp_dir, f"training stopped early ({result.stopped}); run the benchmark again to resume")
                seconds = (segments[-1]["seconds"] if segments else 0.0) + result.seconds
                segments.append({"step": result.step, "seconds": seconds})
                record = {"steps": result.step, "seconds": seconds, "stopped": result.stopped,
                          "losses": result.losses, "segments": segments}
                write_json(marker, record if result.step == config.train_steps else {**record, "steps": None})
    return did


def _fit_variants(config: BenchmarkConfig, data_dir: Path, bench_dir: Path, scans: list[str], device: str) -> bool:
    did = False
    for variant in config.variants:
        for seed in config.seeds:
            fits_dir = BenchmarkFolder(bench_dir).imface_fits(variant, seed)
            marker = fits_dir / FITTED_NAME
            if marker.is_file() and json.loads(marker.read_text()).get("scans") == scans:
                continue
            did = True
            started = time.perf_counter()
            results = fit(BenchmarkFolder(bench_dir).experiment(variant, seed), data_dir, fits_dir, split="test",
                          scans=scans, steps=config.fit_steps, points=config.fit_points,
                          space_points=config.fit_space_points, lr=config.fit_lr,
                          resolution=config.fit_resolution, seed=seed, landmarks=False, device=device,
                          metrics_points=0)  # the evaluate stage scores them with the full protocol
            seconds = time.perf_counter() - started
            write_json(marker, {"scans": scans, "seconds": seconds, "seconds_per_scan": seconds / len(scans),
                                "optimise_seconds": sorted({r.seconds for r in results})})
    return did


def _baselines(config: BenchmarkConfig, data_dir: Path, bench_dir: Path) -> bool:
    if BenchmarkFolder(bench_dir).baselines_index.is_file():
        return False
    build_baselines(data_dir, BenchmarkFolder(bench_dir).baselines, pca_sizes=tuple(config.pca_sizes),
                    bilinear=tuple(config.bilinear_ranks), flame=tuple(config.flame_ranks),
                    paper_resolution=config.paper_resolution)
    return True


def _fit_baselines(config: BenchmarkConfig, data_dir: Path, bench_dir: Path, scans: list[str], workers: int) -> bool:
    """Fit every baseline to the test scans with the regularisation chosen on the validation split."""
    manifest = read_manifest(data_dir)
    folder = BenchmarkFolder(bench_dir)
    chosen = (read_chosen(bench_dir) or {}).get("chosen", {})
    calls = []
    for name, entry in baseline_names(bench_dir).items():
        settings = BaselineFitSettings(regularisation=chosen[name]) if name in chosen else BaselineFitSettings()
        for scan in scans:
            out = folder.baseline_fits(name) / scan
            if not (out / FIT_NAME).is_file():
                calls.append((fit_baseline, {"model_path": folder.baselines / entry["path"],
                                             "scan_dir": manifest.folder(scan), "out_dir": out, "settings": settings,
                                             "points": config.baseline_fit_points, "seed": 0}))
    run_calls(calls, workers)
    for name, entry in baseline_names(bench_dir).items():  # each baseline's fits folder gets its fits.json
        write_baseline_index(folder.baseline_fits(name), folder.baselines / entry["path"], manifest, scans)
    return bool(calls)


def _evaluate(config: BenchmarkConfig, data_dir: Path, bench_dir: Path, scans: list[str], workers: int) -> bool:
    calls = []
    for method in methods(config, bench_dir):
        for run, (recon_dir, recon_name) in method["runs"].items():
            out = BenchmarkFolder(bench_dir).evaluation(method["name"], run)
            summary = out / SUMMARY_NAME
            if summary.is_file():
                saved = json.loads(summary.read_text())
                if sorted(r["name"] for r in saved["scans"]) == sorted(scans):
                    continue
            calls.append((evaluate_folder, {"recon_dir": recon_dir, "out_dir": out, "data_dir": data_dir,
                                            "recon_name": recon_name, "num_points": config.eval_points, "seed": 0}))
    run_calls(calls, workers)
    return bool(calls)


def _correspondence(config: BenchmarkConfig, bench_dir: Path, scans: list[str], device: str) -> bool:
    folder = BenchmarkFolder(bench_dir)
    out = folder.correspondence
    if (out / CORRESPONDENCE_NAME).is_file() or len(scans) < 2:
        return False
    variant, seed = correspondence_model(config)
    pretrained = load_pretrained(folder.experiment(variant, seed), device)
    pairs = [(scans[0], other) for other in scans[1:]][: max(1, config.correspondence_pairs)]
    run_correspondence(pretrained, folder.imface_fits(variant, seed), out, pairs,
                       metric_pairs="all", sheet_pairs=config.correspondence_pairs)
    return True


def run_benchmark(data_dir: str | Path, bench_dir: str | Path, config: BenchmarkConfig, *, device: str = "auto",
                  progress: bool = True, workers: int | None = None) -> Path:
    """Run (or resume) every stage into ``bench_dir``; returns the path of ``report.md``.

    The pre-flight (:func:`imface.benchmark.preflight.check_benchmark`) runs first: a problem
    any stage would meet stops the run with one ImfaceError line before any training.
    ``workers``: one-thread processes for the baseline fits and the scoring (default: the
    thread count of :func:`imface.threads.set_threads`); results do not depend on it.
    """
    data_dir, bench_dir = Path(data_dir), Path(bench_dir)
    checked = check_benchmark(data_dir, bench_dir, config, device)
    if progress:
        print(f"[benchmark] pre-flight: {checked.summary()}", flush=True)
    timings = Timings(BenchmarkFolder(bench_dir).timings)
    return _run_stages(data_dir, bench_dir, config, device, progress, workers, timings)


@dataclass
class DryRun:
    """A dry run that worked: the real run's pre-flight, the small config every stage ran with, seconds."""

    preflight: Preflight
    config: BenchmarkConfig
    seconds: float

    def summary(self, real: BenchmarkConfig) -> str:
        dry = self.config
        return (f"dry run: the benchmark path works; every stage ran ({len(dry.variants)} variants x "
                f"{dry.train_steps} steps, {dry.test_scans} test scan(s)) in {self.seconds:.0f} s in a temporary "
                f"folder, now removed. The real run: {len(real.variants)} variants x {len(real.seeds)} seed(s) x "
                f"{real.train_steps:,} steps, {self.preflight.test_scans} test scans, about "
                f"{self.preflight.planned_bytes / 1e9:.1f} GB to write")


def dry_run_benchmark(data_dir: str | Path, bench_dir: str | Path, config: BenchmarkConfig, *, device: str = "auto",
                      progress: bool = True, workers: int | None = None) -> DryRun:
    """The pre-flight of the real run into ``bench_dir`` (which is not written), then every stage
    with :func:`imface.benchmark.preflight.dry_run_config`'s small config in a temporary folder
    (under ``TMPDIR``), removed afterwards. The first stage that fails raises one ImfaceError line
    that names it."""
    data_dir = Path(data_dir)
    checked = check_benchmark(data_dir, bench_dir, config, device)
    if progress:
        print(f"[benchmark] pre-flight: {checked.summary()}", flush=True)
    dry = dry_run_config(config, checked.test_split)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="imface-benchmark-dry-run-") as tmp:
        folder = Path(tmp) / "benchmark"
        check_benchmark(data_dir, folder, dry, device)  # the small run's own disk need, in TMPDIR
        timings = Timings(BenchmarkFolder(folder).timings, name_failures=True)
        try:
            _run_stages(data_dir, folder, dry, device, progress, workers, timings)
        except ImfaceError as err:
            raise ImfaceError(err.path, f"dry run: {err.problem}") from err
        except Exception as err:  # outside the stages: the results or the report
            raise ImfaceError(None, f"dry run: collecting the results or writing the report failed: "
                                    f"{type(err).__name__}: {err}") from err
    return DryRun(checked, dry, time.perf_counter() - started)


def _run_stages(data_dir: Path, bench_dir: Path, config: BenchmarkConfig, device: str, progress: bool,
                workers: int | None, timings: Timings) -> Path:
    """Every stage in order (each skips work already done); returns the path of ``report.md``."""
    workers = get_threads() if workers is None else max(1, int(workers))
    manifest = read_manifest(data_dir)
    device = str(resolve_device(device))
    _prepare(bench_dir, config, data_dir)
    scans = choose_test_scans(manifest, config.test_scans)
    timings.run("train ImFace variants", lambda: _train_variants(config, data_dir, bench_dir, device, progress), progress)
    timings.run("fit ImFace variants", lambda: _fit_variants(config, data_dir, bench_dir, scans, device), progress)
    timings.run("build baselines", lambda: _baselines(config, data_dir, bench_dir), progress)
    timings.run("validation: choose baseline settings", lambda: choose_regularisation(config, data_dir, bench_dir, workers),
                progress)
    timings.run("fit baselines", lambda: _fit_baselines(config, data_dir, bench_dir, scans, workers), progress)
    timings.run("evaluate", lambda: _evaluate(config, data_dir, bench_dir, scans, workers), progress)
    timings.run("correspondence", lambda: _correspondence(config, bench_dir, scans, device), progress)
    timings.run("learning curves: fit", lambda: fit_intermediate(config, data_dir, bench_dir, scans, device), progress)
    timings.run("learning curves: evaluate", lambda: evaluate_intermediate(config, data_dir, bench_dir, scans, workers), progress)
    figures = BenchmarkFolder(bench_dir).figures
    results = collect_results(config, data_dir, bench_dir, scans, timings.seconds, device)

    def pictures() -> bool:
        write_fig4(config, data_dir, bench_dir, scans[: config.figure_scans], figures / FIG4_NAME)
        baselines = {name: row["chamfer_mm"]["mean"] for name, row in results["methods"].items()
                     if row["kind"] == "baseline" and row["chamfer_mm"]["mean"] is not None}
        write_curve_figure(results["curves"], baselines, figures / CURVES_FIGURE_NAME)
        return True

    timings.run("figures", pictures, progress)
    results["timings"] = timings.seconds
    write_json(BenchmarkFolder(bench_dir).results, results)
    report = write_report(results, bench_dir)
    if progress:
        print(f"[benchmark] report: {report}", flush=True)
    return report

