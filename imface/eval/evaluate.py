"""``imface eval``: score a folder of reconstructions against their ground truths (paper Sec. 4).

Protocol per scan: read the reconstruction ``<recon_dir>/<scan>/<recon_name>`` and the
ground truth ``<processed>/mesh.ply``; crop the reconstruction like the ground truth
(:func:`imface.ops.ground_truth_crop.crop_like_ground_truth`, paper: "all faces are processed as
described in Sec. 3.5"); then :func:`imface.ops.metrics.evaluate_reconstruction` (area-
uniform samples, 20 point-to-point ICP iterations, Chamfer / F-score / normal
consistency in mm, and the same restricted to the ground truth's footprint). Outputs, all
written atomically::

    <out>/<scan>.json     metrics, scan labels, seen/unseen flag, file paths, settings
    <out>/summary.json    per-scan rows, failures, mean/median overall, per expression,
                          and for seen vs unseen (held-out) expressions

Scans come from ``<recon_dir>/fits.json`` (``imface fit`` output) or, without it, from
the sub-folders holding ``recon_name`` (ground truths then under ``<data_dir>/<scan>``). A fit
of a raw mesh or point set, with no processed scan and no ``data_dir``, is scored against its
own input as fitted (``<scan>/target.ply``, cropped to the model's sphere) the way ``imface fit``
scores it in fit.json (:func:`imface.fitting.outputs.footprint_metrics`): as fitted (no ICP, no
crop of the fit), within the input's footprint, both one-way distances (``input_to_fit_mm``,
``fit_to_input_mm``, their medians, ``footprint_share``), in mm or, for an input in an arbitrary
unit, in its own units (``distance_unit``; the unit is read from ``<scan>/fit.json``). The
summary pools millimetres only: scans in input units are counted apart (``in_input_units``).
A scan whose reconstruction or ground truth is missing or unusable is listed as failed
with a one-line reason; the others are still scored.
"""
from __future__ import annotations

import statistics
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from imface.contracts.dataset import MANIFEST_NAME, Manifest, read_manifest
from imface.contracts.dataset import MESH_NAME as GROUND_TRUTH_NAME
from imface.contracts.fits import MESH_NAME as RECONSTRUCTION_NAME
from imface.contracts.fits import TARGET_NAME, read_fit, read_fits_index
from imface.errors import ImfaceError
from imface.fitting.inputs import read_input_geometry
from imface.fitting.outputs import INPUT_UNITS, footprint_metrics
from imface.fitting.preview import SHEET_ROWS, preview_row, remove_pages_after, sheet_page, write_preview_sheet
from imface.io.atomic import write_json
from imface.io.mesh import read_mesh
from imface.ops.ground_truth_crop import crop_like_ground_truth
from imface.ops.metrics import evaluate_reconstruction

SUMMARY_NAME = "summary.json"
ICP_ITERATIONS = 20
#: Summary columns: key in ``ReconstructionMetrics.to_dict()`` (or a raw input's footprint
#: metrics) -> table heading. The table shows the columns some scan has.
SUMMARY_METRICS = {
    "chamfer_mm": "Chamfer mm",
    "input_to_fit_mm": "input->fit mm",
    "fit_to_input_mm": "fit->input mm",
    "fscore@1mm": "F@1mm",
    "fscore@2.5mm": "F@2.5mm",
    "fscore@5mm": "F@5mm",
    "normal_consistency": "NC",
    "footprint_chamfer_mm": "Chamfer footprint mm",
    "footprint_fscore@1mm": "F@1mm footprint",
}


@dataclass
class ScanJob:
    """One scan to score: where its files are and its labels (None when unknown)."""
    name: str
    reconstruction: Path
    ground_truth: Path | None
    identity: str | None
    expression: str | None
    seen: bool | None  # False: the expression is held out in the dataset's split


@dataclass
class ScanResult:
    """The outcome of one scan: ``metrics`` (ReconstructionMetrics.to_dict()) or ``error``."""
    name: str
    identity: str | None
    expression: str | None
    seen: bool | None
    reconstruction: str
    ground_truth: str | None
    metrics: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class EvalSummary:
    """All scans' results with mean/median statistics per group (see :func:`group_statistics`)."""
    out_dir: Path
    settings: dict[str, Any]
    results: list[ScanResult]
    overall: dict[str, Any] = field(default_factory=dict)
    per_expression: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen_unseen: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def scored(self) -> list[ScanResult]:
        return [r for r in self.results if r.metrics is not None]

    @property
    def failed(self) -> list[ScanResult]:
        return [r for r in self.results if r.metrics is None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "num_scans": len(self.results),
            "num_scored": len(self.scored),
            "overall": self.overall,
            "per_expression": self.per_expression,
            "seen_unseen": self.seen_unseen,
            "failed": [{"name": r.name, "reason": r.error} for r in self.failed],
            "scans": [asdict(r) for r in self.results],
        }

    def table(self) -> str:
        """A plain-text table: one row per group, mean / median of each summary metric."""
        rows = [("overall", self.overall)]
        rows += [(f"expression {name}", stats) for name, stats in self.per_expression.items()]
        rows += [(f"{name} expressions", stats) for name, stats in self.seen_unseen.items()]
        width = max(len(label) for label, _ in rows)
        keys = [key for key in SUMMARY_METRICS if any(key in stats for _, stats in rows)]
        heading = f"{'group':<{width}}  {'n':>4}" + "".join(f"  {SUMMARY_METRICS[key] + ' mean/med':>22}" for key in keys)
        lines = [heading]
        for label, stats in rows:
            cells = []
            for key in keys:
                values = stats.get(key)
                digits = 3 if key.endswith("_mm") or key == "normal_consistency" else 2
                text = "-" if values is None else f"{values['mean']:.{digits}f} / {values['median']:.{digits}f}"
                cells.append(f"  {text:>22}")
            lines.append(f"{label:<{width}}  {stats['count']:>4}" + "".join(cells))
        return "\n".join(lines)


def group_statistics(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"count": n, key: {"mean", "median"} for key in SUMMARY_METRICS}`` of per-scan metric dicts
    (keys are left out for an empty group). Distances (keys ending ``_mm``) pool millimetres only: a
    scan whose ``distance_unit`` is input units (an arbitrary unit) is left out of them and counted
    in ``in_input_units``."""
    stats: dict[str, Any] = {"count": len(metrics)}
    apart = sum(m.get("distance_unit") == INPUT_UNITS for m in metrics)
    if apart:
        stats["in_input_units"] = apart
    for key in SUMMARY_METRICS:
        values = [float(m[key]) for m in metrics if m.get(key) is not None
                  and not (key.endswith("_mm") and m.get("distance_unit") == INPUT_UNITS)]
        if values:
            stats[key] = {"mean": statistics.fmean(values), "median": statistics.median(values)}
    return stats


def _safe_name(name: str) -> bool:
    path = PurePosixPath(name)
    return bool(name) and not path.is_absolute() and ".." not in path.parts and "\\" not in name


def _manifest_near(processed: Path, cache: dict[Path, Manifest | None]) -> Manifest | None:
    """The manifest of the dataset holding a processed scan folder (``<root>/<identity>/<scan>``)."""
    for root in (processed.parent.parent, processed.parent):
        if root not in cache:
            cache[root] = read_manifest(root) if (root / MANIFEST_NAME).is_file() else None
        if cache[root] is not None:
            return cache[root]
    return None


def _seen(manifest: Manifest | None, expression: str | None) -> bool | None:
    if manifest is None or expression is None:
        return None
    return expression not in manifest.test_expressions


def _jobs_from_index(recon_dir: Path, index: dict[str, Any], data_dir: Path | None, recon_name: str) -> list[ScanJob]:
    data_manifest = read_manifest(data_dir) if data_dir is not None and (data_dir / MANIFEST_NAME).is_file() else None
    cache: dict[Path, Manifest | None] = {}
    jobs = []
    for entry in index["scans"]:
        name = str(entry["name"])
        processed = entry.get("processed")
        if processed is not None:
            processed = Path(processed) if Path(processed).is_absolute() else recon_dir / processed
            ground_truth = processed / GROUND_TRUTH_NAME
        elif data_dir is not None:
            ground_truth = data_dir / name / GROUND_TRUTH_NAME
        elif (recon_dir / str(entry["folder"]) / TARGET_NAME).is_file():
            ground_truth = recon_dir / str(entry["folder"]) / TARGET_NAME  # the fit's own input, as fitted
        else:
            ground_truth = None
        manifest = data_manifest or (_manifest_near(processed, cache) if processed is not None else None)
        expression = entry.get("expression")
        jobs.append(ScanJob(name, recon_dir / str(entry["folder"]) / recon_name, ground_truth,
                            entry.get("identity"), expression, _seen(manifest, expression)))
    return jobs


def _jobs_from_folders(recon_dir: Path, out_dir: Path, data_dir: Path | None, recon_name: str) -> list[ScanJob]:
    if data_dir is None:
        raise ImfaceError(recon_dir, "no fits.json here: pass --data (the processed dataset) to find the ground truths")
    out_dir = out_dir.resolve()
    folders = sorted(p.parent for p in recon_dir.rglob(recon_name)
                     if p.is_file() and out_dir not in p.resolve().parents and p.parent != recon_dir)
    manifest = read_manifest(data_dir) if (data_dir / MANIFEST_NAME).is_file() else None
    jobs = []
    for folder in folders:
        name = folder.relative_to(recon_dir).as_posix()
        scan = manifest.by_name.get(name) if manifest is not None else None
        ground_truth = (manifest.folder(scan) if scan is not None else data_dir / name) / GROUND_TRUTH_NAME
        identity = scan.identity if scan is not None else None
        expression = scan.expression if scan is not None else None
        jobs.append(ScanJob(name, folder / recon_name, ground_truth, identity, expression, _seen(manifest, expression)))
    return jobs


def _score(job: ScanJob, settings: dict[str, Any]) -> ScanResult:
    result = ScanResult(job.name, job.identity, job.expression, job.seen, str(job.reconstruction),
                        None if job.ground_truth is None else str(job.ground_truth))
    if not _safe_name(job.name):
        result.error = "scan name must be a relative path without '..'"
        return result
    if job.ground_truth is None:
        result.error = "no ground truth: the fit has no processed scan; pass --data"
        return result
    try:
        reconstruction = read_mesh(job.reconstruction)
        if job.ground_truth.name == TARGET_NAME:  # a fit's own input: a mesh or a point set

            gt_vertices, _, gt_faces = read_input_geometry(job.ground_truth)
        else:
            truth = read_mesh(job.ground_truth)
            gt_vertices, gt_faces = truth.vertices, truth.faces
    except ImfaceError as err:
        result.error = str(err)
        return result
    rec_vertices, rec_faces = reconstruction.vertices, reconstruction.faces
    if job.ground_truth.name == TARGET_NAME:  # as imface fit scores it: within the input's footprint
        try:
            frames = (read_fit(job.reconstruction.parent) or {}).get("frames")
            result.metrics = footprint_metrics(rec_vertices, rec_faces, gt_vertices, gt_faces, settings["num_points"],
                                               frames, seed=settings["seed"])
        except ValueError as err:  # a degenerate surface, too few points, unusable frames
            result.error = f"{job.reconstruction}: {err}".replace("\n", " ")
        return result
    try:
        if settings["crop"]:
            rec_vertices, rec_faces = crop_like_ground_truth(rec_vertices, rec_faces)
        metrics = evaluate_reconstruction(
            rec_vertices, rec_faces, gt_vertices, gt_faces,
            num_points=settings["num_points"], seed=settings["seed"], align=settings["align"],
            icp_iterations=settings["icp_iterations"], mm_per_unit=settings["mm_per_unit"],
        )
    except ValueError as err:  # nothing left after the crop, degenerate surface, ...
        result.error = f"{job.reconstruction}: {err}".replace("\n", " ")
        return result
    result.metrics = metrics.to_dict()
    return result


def evaluate_folder(
    recon_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    data_dir: str | Path | None = None,
    recon_name: str = RECONSTRUCTION_NAME,
    num_points: int = 250_000,
    seed: int = 0,
    crop: bool = True,
    workers: int = 1,
) -> EvalSummary:
    """Score every reconstruction in a fits folder (or a folder of ``<scan>/<recon_name>``).

    Args:
        recon_dir: fits folder (``fits.json``) or any folder laid out ``<scan>/<recon_name>``.
        out_dir: where per-scan JSONs and ``summary.json`` go (default ``<recon_dir>/eval``).
        data_dir: processed dataset root: ground truths ``<data_dir>/<scan>/mesh.ply`` when the
            fits do not name their processed scan, and its manifest for the seen/unseen split.
        recon_name: file name of each reconstruction (e.g. a baseline's ``fitted_full.ply``).
        num_points: surface samples per mesh; seed: sampling seed (same for every scan).
        crop: crop each reconstruction like its ground truth first (the authors' protocol).
        workers: scans scored at once (threads).

    Returns:
        EvalSummary (also written to ``<out_dir>/summary.json``).

    Raises:
        ImfaceError: no scans found, or no fits.json and no ``data_dir``.
    """
    recon_dir = Path(recon_dir)
    if not recon_dir.is_dir():
        raise ImfaceError(recon_dir, "not a folder")
    out = recon_dir / "eval" if out_dir is None else Path(out_dir)
    data = None if data_dir is None else Path(data_dir)
    if data is not None and not data.is_dir():
        raise ImfaceError(data, "not a folder")
    if num_points < 1 or workers < 1:
        raise ImfaceError(None, "num_points and workers must be >= 1")
    index = read_fits_index(recon_dir, missing_ok=True)
    jobs = (_jobs_from_index(recon_dir, index, data, recon_name) if index is not None
            else _jobs_from_folders(recon_dir, out, data, recon_name))
    if not jobs:
        raise ImfaceError(recon_dir, f"no scans to evaluate (no fits.json entries or sub-folders with {recon_name})")
    settings = {"num_points": int(num_points), "seed": int(seed), "crop": bool(crop), "align": "icp",
                "icp_iterations": ICP_ITERATIONS, "mm_per_unit": 100.0, "recon_name": recon_name}
    if workers == 1:
        results = [_score(job, settings) for job in jobs]
    else:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda job: _score(job, settings), jobs))
    for result in results:
        if result.metrics is not None:
            write_json(out / f"{result.name}.json", {**asdict(result), "settings": settings})
        elif _safe_name(result.name):  # a score left from an earlier run would contradict the summary
            (out / f"{result.name}.json").unlink(missing_ok=True)
    summary = EvalSummary(out, settings, results)
    scored = summary.scored
    summary.overall = group_statistics([r.metrics for r in scored])
    expressions = sorted({r.expression for r in scored if r.expression is not None})
    summary.per_expression = {e: group_statistics([r.metrics for r in scored if r.expression == e]) for e in expressions}
    for label, flag in (("seen", True), ("unseen", False)):
        group = [r.metrics for r in scored if r.seen is flag]
        if group:
            summary.seen_unseen[label] = group_statistics(group)
    write_json(out / SUMMARY_NAME, summary.to_dict())
    return summary


def write_eval_sheet(summary: EvalSummary) -> Path:
    """``<out_dir>/sheet.png``: one row per scored scan (target | reconstruction cropped like it |
    error; front and side), labelled with its Chamfer and median distance (a raw input's fit: its
    median fit-to-input distance within the footprint, in its unit). ``SHEET_ROWS`` scans a sheet:
    more go to ``sheet-2.png``, ... (pages of an earlier, larger run are removed)."""
    scored = summary.scored
    pages = [scored[start:start + SHEET_ROWS] for start in range(0, len(scored), SHEET_ROWS)] or [[]]
    for number, page in enumerate(pages, 1):
        rows, labels = [], []
        for result in page:
            target_vertices, _, target_faces = read_input_geometry(Path(result.ground_truth))
            recon = read_mesh(Path(result.reconstruction))
            cells, median = preview_row(target_vertices, target_faces, recon.vertices, recon.faces)
            rows.append(cells)
            metrics, unit = result.metrics, result.metrics.get("distance_unit", "mm")
            if "fit_to_input_median_mm" in metrics:
                median = metrics["fit_to_input_median_mm"]
            labels.append(f"{result.name}\nChamfer {_number(metrics['chamfer_mm'])} {unit}, "
                          f"median {_number(median)} {unit}")
        title = f"{len(scored)} scan(s) scored" + (f", sheet {number} of {len(pages)}" if len(pages) > 1 else "")
        write_preview_sheet(sheet_page(summary.out_dir / "sheet.png", number), rows, labels, title)
    remove_pages_after(summary.out_dir / "sheet.png", len(pages))
    return summary.out_dir / "sheet.png"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
