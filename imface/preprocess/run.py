"""The batch runner of ``imface preprocess``: every scan of a dataset, resumable, sharded,
in a process pool; then ``manifest.json`` with the train/test split (:mod:`imface.preprocess.split`).

A failing scan never stops the batch: its error is recorded as one ``path: reason``
line in the summary and the other scans go on.
"""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from imface.contracts.dataset import ManifestScan, make_split, write_manifest
from imface.errors import ImfaceError
from imface.preprocess.layouts import ScanSource, discover_scans
from imface.preprocess.scan import (FORMAT_VERSION, META_NAME, STAGES, PreprocessConfig, ScanResult, preprocess_scan,
                                    scan_output_dir, source_hashes)
from imface.preprocess.split import SplitPlan, apply_split, choose_test_identities
from imface.threads import init_worker_process

__all__ = [
    "PreprocessConfig", "PreprocessSummary", "ScanResult", "choose_test_identities", "default_align",
    "preprocess_dataset", "is_complete", "preprocess_scan", "shard_scans",
]


@dataclass
class PreprocessSummary:
    """What a batch did. ``results`` follow the sorted scan order of this shard; ``notes``: one
    line each about the dataset as a whole (where the landmark ids came from, the split)."""
    results: list[ScanResult]
    manifest_path: Path | None
    seconds: float
    manifest_counts: dict[str, int]
    notes: list[str] = field(default_factory=list)

    def _with(self, status: str) -> list[ScanResult]:
        return [r for r in self.results if r.status == status]

    @property
    def done(self) -> list[ScanResult]:
        return self._with("done")

    @property
    def skipped(self) -> list[ScanResult]:
        return self._with("skipped")

    @property
    def failed(self) -> list[ScanResult]:
        return self._with("failed")

    @property
    def ok(self) -> bool:
        return not self.failed

    def seconds_per_scan(self) -> float:
        """Mean wall seconds of a processed (not skipped) scan, 0 when none ran."""
        done = self.done
        return sum(r.seconds for r in done) / len(done) if done else 0.0

    def stage_means(self) -> dict[str, float]:
        done = self.done
        return {s: sum(r.timings.get(s, 0.0) for r in done) / len(done) for s in STAGES} if done else {}

    def format(self) -> str:
        """A human-readable report: counts, timings, one line per failure, the manifest."""
        lines = [
            f"preprocess: {len(self.results)} scans: {len(self.done)} done, {len(self.skipped)} skipped, "
            f"{len(self.failed)} failed in {self.seconds:.1f} s; {self.seconds_per_scan():.2f} s per scan"
        ]
        lines.extend(f"  {note}" for note in self.notes)
        if self.done:
            lines.append("  stage means (s): " + ", ".join(f"{k} {v:.3f}" for k, v in self.stage_means().items()))
        if self.failed:
            lines.append("failed:")
            lines.extend(f"  {r.error}" for r in self.failed)
        if self.manifest_path is not None:
            counts = self.manifest_counts
            lines.append(
                f"manifest: {self.manifest_path} ({counts.get('scans', 0)} scans: {counts.get('train', 0)} train, "
                f"{counts.get('test', 0)} test, {counts.get('held_out_expression', 0)} held-out expression)"
            )
        return "\n".join(lines)


def shard_scans(scans: list[ScanSource], shard: tuple[int, int] | None) -> list[ScanSource]:
    """The ``i``-th of ``n`` interleaved parts of the name-sorted scans (every scan in exactly one part)."""
    ordered = sorted(scans, key=lambda s: s.name)
    if shard is None:
        return ordered
    index, count = shard
    return ordered[index::count]


def default_align(layout: str | None) -> str:
    """The alignment a layout needs: ``none`` for FaceScape TU models (already in one shared,
    canonical-facing frame, so a Kabsch fit would only add per-expression tilts), else ``landmarks``."""
    return "none" if layout == "facescape" else "landmarks"


def is_complete(scan: ScanSource, out_dir: str | os.PathLike, config: PreprocessConfig) -> bool:
    """True when the scan's folder holds a meta.json whose source hashes and settings match."""
    out = scan_output_dir(out_dir, scan)
    try:
        meta = json.loads((out / META_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if meta.get("format_version") != FORMAT_VERSION or meta.get("settings") != config.output_settings():
        return False
    if config.preview and not (out / "preview.png").is_file():
        return False
    return meta.get("source", {}).get("sha256") == source_hashes(scan)


def config_to_dict(config: PreprocessConfig) -> dict:
    """JSON-ready copy of a config (paths as strings)."""
    data = asdict(config)
    data["landmark_indices"] = None if config.landmark_indices is None else str(config.landmark_indices)
    data["test_expressions"] = list(config.test_expressions)
    data["eye_distance_range_mm"] = list(config.eye_distance_range_mm)
    data["shard"] = None if config.shard is None else list(config.shard)
    return data


def _run_one(scan: ScanSource, out_dir: Path, config: PreprocessConfig) -> ScanResult:
    """Skip a complete scan, else process it; any error becomes a ``failed`` result."""
    started = time.perf_counter()
    try:
        if not config.force and is_complete(scan, out_dir, config):
            return ScanResult(scan.name, "skipped", scan_output_dir(out_dir, scan))
        return preprocess_scan(scan, out_dir, config)
    except ImfaceError as err:
        message = str(err) if err.path else f"{scan.mesh_path}: {err}"
    except Exception as err:  # a bug or a library failure on odd data: report it, keep the batch going
        message = f"{scan.mesh_path}: internal error ({type(err).__name__}: {' '.join(str(err).split())})"
    # Outputs of an earlier run no longer match this source: mark them incomplete (out of the manifest).
    (scan_output_dir(out_dir, scan) / META_NAME).unlink(missing_ok=True)
    return ScanResult(scan.name, "failed", None, message, {}, time.perf_counter() - started)


def _completed_scans(scans: list[ScanSource], out_dir: Path, config: PreprocessConfig) -> list[ManifestScan]:
    """Scans whose meta.json exists with the current settings (done by this or another shard)."""
    settings = config.output_settings()
    complete = []
    for scan in scans:
        folder = scan_output_dir(out_dir, scan)
        try:
            meta = json.loads((folder / META_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if meta.get("scan") == scan.name and meta.get("settings") == settings:
            complete.append(ManifestScan(
                scan.name, scan.identity, scan.expression, scan.neutral, folder.relative_to(out_dir).as_posix()
            ))
    return complete


def _select_scans(source: Path, config: PreprocessConfig,
                  split: SplitPlan | None) -> tuple[list[ScanSource], list[str], list[str], list[str]]:
    """The dataset's scans to process (all, or those ``split`` keeps), the test identities and
    expressions, and notes for the summary."""
    scans = discover_scans(source, config.layout, config.landmark_indices)
    notes = []
    id_files = {s.landmark_indices_path for s in scans if s.landmarks_path is None}
    if config.landmark_indices is None and len(id_files) == 1:
        notes.append(f"landmark ids: {id_files.pop()} (the package's, for this FaceScape TU topology)")
    if split is None:
        test_identities = choose_test_identities([s.identity for s in scans], config.test_identities, config.seed)
        return scans, test_identities, list(config.test_expressions), notes
    if config.test_identities is not None:
        raise ImfaceError(None, "give the test identities once: --split-from or --test-identities, not both")
    applied = apply_split(split, scans)
    test_expressions = list(config.test_expressions) if applied.test_expressions is None else applied.test_expressions
    return applied.scans, applied.test_identities, test_expressions, notes + applied.notes


def _run_scans(scans: list[ScanSource], out_dir: Path, config: PreprocessConfig, progress: bool) -> dict[str, ScanResult]:
    """Each scan's result, by name: in this process, or in a pool of ``config.workers``."""
    results: dict[str, ScanResult] = {}
    bar = tqdm(total=len(scans), desc="preprocess", unit="scan", disable=not progress)
    if config.workers == 1:
        for scan in scans:
            results[scan.name] = _run_one(scan, out_dir, config)
            bar.update(1)
    else:
        # spawn: a fresh interpreter per worker, safe with threaded libraries (torch, embree) loaded.
        with ProcessPoolExecutor(config.workers, mp_context=get_context("spawn"), initializer=init_worker_process) as pool:
            futures = {pool.submit(_run_one, scan, out_dir, config): scan for scan in scans}
            for future in as_completed(futures):
                scan = futures[future]
                try:
                    results[scan.name] = future.result()
                except Exception as err:  # the worker died (e.g. killed for memory)
                    results[scan.name] = ScanResult(
                        scan.name, "failed", None, f"{scan.mesh_path}: worker failed ({type(err).__name__}: {err})"
                    )
                bar.update(1)
    bar.close()
    return results


def preprocess_dataset(
    source: str | os.PathLike, out_dir: str | os.PathLike, config: PreprocessConfig | None = None,
    progress: bool = True, split: SplitPlan | None = None,
) -> PreprocessSummary:
    """Preprocess every scan of ``source`` (dataset folder or .csv/.json list) into ``out_dir``.

    Scans already complete (meta.json with matching source SHA-256 and settings) are
    skipped; ``config.shard`` selects a part of the scans; ``config.workers`` > 1 runs
    a process pool with one thread per worker. ``split`` (``--split-from``) fixes the test
    identities (and maybe expressions) and which scans are processed at all; without it,
    ``config.test_identities`` chooses them. Writes ``out_dir/manifest.json`` over all
    complete scans of the dataset (including other shards' work). Raises
    :class:`ImfaceError` only for problems with the dataset as a whole.
    """
    config = config or PreprocessConfig()
    started = time.perf_counter()
    source, out_dir = Path(source), Path(out_dir)
    all_scans, test_identities, test_expressions, notes = _select_scans(source, config, split)
    source_root = (source.parent if source.is_file() else source).resolve()
    if out_dir.resolve() == source_root:
        raise ImfaceError(out_dir, "output folder is the input dataset folder; choose another --out")
    scans = shard_scans(all_scans, config.shard)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = _run_scans(scans, out_dir, config, progress)

    completed = _completed_scans(all_scans, out_dir, config)
    manifest_path, counts = None, {}
    if completed:
        manifest_path = write_manifest(
            out_dir, completed, test_identities, test_expressions,
            extra={"preprocess": config_to_dict(config), "source": str(source.resolve()),
                   "dataset_scans": len(all_scans), **({} if split is None else {"split_from": split.source})},
        )
        split_lists = make_split(completed, test_identities, test_expressions)
        counts = {"scans": len(completed), **{key: len(names) for key, names in split_lists.items()}}
    return PreprocessSummary(
        [results[s.name] for s in scans], manifest_path, time.perf_counter() - started, counts, notes
    )
