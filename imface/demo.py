"""``imface demo``: the main job end to end on the built-in data, with per-stage timing.

Stages: build built-in face scans -> preprocess (paper Sec. 3.5) -> check-data ->
train -> report (``report.md`` with pictures). Every stage is resumable: a second run
over the same folder skips the work that is already complete.
"""
from __future__ import annotations

import json
import platform
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from imface.builtin.write import write_dataset
from imface.config.experiment import preset
from imface.contracts.dataset import MESH_NAME as SCAN_MESH_NAME
from imface.contracts.dataset import read_manifest
from imface.contracts.experiment import CONFIG_NAME
from imface.contracts.fits import MESH_NAME as FIT_MESH_NAME
from imface.errors import ImfaceError
from imface.fitting.preview import preview_row, write_preview_sheet
from imface.fitting.run import fit
from imface.io.atomic import write_text
from imface.io.mesh import read_mesh
from imface.ops.contact_sheet import contact_sheet, save_png
from imface.ops.render import render_mesh
from imface.preprocess.check import check_dataset
from imface.preprocess.run import preprocess_dataset
from imface.preprocess.scan import PreprocessConfig
from imface.threads import get_threads
from imface.training.curves import CURVES_PNG
from imface.training.trainer import train
from imface.training.writer import CURVES_NAME


@dataclass
class DemoConfig:
    """What the demo builds; defaults fit in the 15-minute budget on 2 CPU cores."""
    out: Path = Path("demo_out")
    identities: int = 10
    expressions: str = "all"
    seed: int = 0
    surface_samples: int = 100_000
    space_samples: int = 15_000
    train_preset: str = "cpu"
    train_minutes: float = 5.0
    fit_scans: int = 4
    fit_expressions: tuple[str, ...] = ("neutral", "smile", "mouth_stretch", "jaw_left")
    fit_steps: int = 200
    fit_resolution: int = 128
    workers: int | None = None  # None: the --threads count


@dataclass
class StageTimes:
    """Wall-clock seconds per stage, in the order they ran."""
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        print(f"[demo] {name} ...", flush=True)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - start
            print(f"[demo] {name}: {self.seconds[name]:.1f} s", flush=True)

    def table(self) -> str:
        rows = [f"| {name} | {sec:.1f} |" for name, sec in self.seconds.items()]
        total = sum(self.seconds.values())
        return "\n".join(["| stage | seconds |", "|---|---:|", *rows, f"| **total** | **{total:.1f}** |"])


def _load_processed(scan_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:

    mesh = read_mesh(scan_dir / SCAN_MESH_NAME)
    landmarks = json.loads((scan_dir / "landmarks.json").read_text())
    points = np.asarray(landmarks["ibug68"] or landmarks["five"], dtype=np.float64)
    return mesh.vertices, mesh.faces, points


def write_pictures(raw_dir: Path, data_dir: Path, out_dir: Path, max_rows: int = 6) -> dict[str, Path]:
    """Contact sheets of the built-in data: raw vs processed scans, one identity's
    expressions, every identity's neutral face. Returns the PNG paths by name."""

    manifest = read_manifest(data_dir)
    scans = sorted(manifest.scans, key=lambda s: s.name)
    size = (256, 256)
    pictures: dict[str, Path] = {}

    first_identity = scans[0].identity
    # FaceScape's order: the expression number that starts each scan's name (1_neutral, 2_smile, ...)
    own = sorted((s for s in scans if s.identity == first_identity),
                 key=lambda s: int(s.name.rsplit("/", 1)[-1].split("_", 1)[0]))
    shown = [s for s in own if s.expression in
             ("neutral", "smile", "mouth_stretch", "cheek_blowing", "eye_closed", "lip_puckerer")][:max_rows]
    rows, labels = [], []
    for scan in shown:
        folder = manifest.folder(scan.name)
        raw = read_mesh(raw_dir / f"{scan.name}.obj")
        raw_lmk = np.loadtxt(raw_dir / f"{scan.name}.lmk.txt")
        vertices, faces, points = _load_processed(folder)
        rows.append([
            render_mesh(raw.vertices, raw.faces, points=raw_lmk, size=size),
            render_mesh(vertices, faces, points=points, size=size),
            render_mesh(vertices, faces, points=points, size=size, view="side"),
        ])
        labels.append(scan.name)
    sheet = contact_sheet(rows, row_labels=labels, col_labels=["raw scan (scanner frame)", "processed: front", "processed: side"],
                          title="Built-in scans before and after preprocessing")
    pictures["raw_vs_processed"] = out_dir / "raw_vs_processed.png"
    save_png(pictures["raw_vs_processed"], sheet)

    cells = []
    for scan in own:
        vertices, faces, _ = _load_processed(manifest.folder(scan.name))
        cells.append((scan.expression, render_mesh(vertices, faces, size=(192, 192), view="three_quarter")))
    per_row = 5
    grid = [[img for _, img in cells[i:i + per_row]] for i in range(0, len(cells), per_row)]
    names = [[name for name, _ in cells[i:i + per_row]] for i in range(0, len(cells), per_row)]
    sheet = contact_sheet(grid, row_labels=[", ".join(n) for n in names],
                          title=f"Identity {first_identity}: processed expressions")
    pictures["expressions"] = out_dir / "expressions.png"
    save_png(pictures["expressions"], sheet)

    neutrals = [s for s in scans if s.neutral]
    images = [render_mesh(*_load_processed(manifest.folder(s.name))[:2], size=(192, 192), view="three_quarter")
              for s in neutrals]
    grid = [images[i:i + per_row] for i in range(0, len(images), per_row)]
    sheet = contact_sheet(grid, title="Neutral scan of every identity (processed)",
                          row_labels=[", ".join(s.identity for s in neutrals[i:i + per_row])
                                      for i in range(0, len(neutrals), per_row)])
    pictures["identities"] = out_dir / "identities.png"
    save_png(pictures["identities"], sheet)
    return pictures


def run_demo(config: DemoConfig) -> Path:
    """Run every stage into ``config.out``; returns the path of ``report.md``."""
    out = Path(config.out)
    raw_dir, data_dir, exp_dir, pictures_dir = out / "raw", out / "processed", out / "experiment", out / "pictures"
    workers = config.workers or get_threads()
    times = StageTimes()
    notes: list[str] = []

    with times.stage("data: built-in scans"):
        summary = write_dataset(raw_dir, identities=config.identities, expressions=config.expressions,
                                seed=config.seed, workers=workers)
        notes.append(f"Built-in data: {summary.identities} identities x {summary.expressions} expressions "
                     f"({summary.written} scans written, {summary.skipped} already there).")

    with times.stage("preprocess"):
        pre = preprocess_dataset(raw_dir, data_dir, PreprocessConfig(
            workers=workers, seed=config.seed, surface_samples=config.surface_samples,
            space_samples=config.space_samples), progress=True)
        print(pre.format(), flush=True)
        if not pre.ok:
            raise ImfaceError(data_dir, f"{len(pre.failed)} scans failed to preprocess (listed above)")
        stage_means = pre.stage_means()

    with times.stage("check-data"):
        report = check_dataset(data_dir, workers=workers)
        print(report.format(), flush=True)
        if not report.ok:
            raise ImfaceError(data_dir, f"check-data found {len(report.problems)} problems (listed above)")

    train_summary = _train_stage(config, data_dir, exp_dir, times)
    fit_summary = _fit_stage(config, data_dir, exp_dir, out / "fits", times) if train_summary else None

    with times.stage("pictures"):
        pictures = write_pictures(raw_dir, data_dir, pictures_dir)
        if fit_summary:
            pictures["fits"] = write_fit_grid(data_dir, out / "fits", fit_summary["scans"], pictures_dir / "fits.png")

    report_path = out / "report.md"
    write_text(report_path, _report_text(config, times, notes, stage_means, pre, report, pictures, train_summary,
                                         fit_summary, out))
    print(f"[demo] report: {report_path}", flush=True)
    print(times.table(), flush=True)
    return report_path


def _train_stage(config: DemoConfig, data_dir: Path, exp_dir: Path, times: StageTimes) -> dict | None:
    """Train the ``cpu`` preset for ``train_minutes`` (resumes a previous demo's run)."""
    if config.train_minutes <= 0:
        return None

    experiment = preset(config.train_preset)
    experiment.train.seed = config.seed
    experiment.train.max_minutes = config.train_minutes
    with times.stage(f"train ({config.train_preset} preset, {config.train_minutes:g} min)"):
        result = train(experiment, data_dir, exp_dir, resume=(exp_dir / CONFIG_NAME).exists(), device="auto")
    curves = exp_dir / CURVES_NAME
    summary = {
        "steps": result.step, "epochs": result.epoch, "stopped by": result.stopped,
        "seconds": f"{result.seconds:.0f}", "checkpoint": str(result.checkpoint),
        "last losses": ", ".join(f"{k} {v:.4g}" for k, v in result.losses.items()),
    }
    if curves.exists():
        summary["loss_curves"] = curves
    if (exp_dir / CURVES_PNG).exists():
        summary["learning_curves"] = exp_dir / CURVES_PNG
    return summary


def _fit_stage(config: DemoConfig, data_dir: Path, exp_dir: Path, fits_dir: Path, times: StageTimes) -> dict:
    """Fit held-out scans of the test identities (codes only, the network frozen), and
    extract their meshes; Chamfer / F-score against each scan's ground truth."""

    manifest = read_manifest(data_dir)
    test = sorted(manifest.test)
    wanted = [n for n in test if n.rsplit("/", 1)[-1].split("_", 1)[1] in config.fit_expressions]
    scans = (wanted or test)[: config.fit_scans]
    if fits_dir.exists():  # fits of the previous run's model: this run trained further
        shutil.rmtree(fits_dir)
    with times.stage(f"fit + extract ({len(scans)} held-out scans)"):
        results = fit(exp_dir, data_dir, fits_dir, split="test", scans=scans, steps=config.fit_steps,
                      resolution=config.fit_resolution, seed=config.seed, landmarks=False)
    rows = []
    for result in results:
        metrics = result.metrics or {}
        rows.append((result.name, metrics.get("chamfer_mm"), metrics.get("fscore@1mm"), result.seconds))
    return {"scans": [r.name for r in results], "rows": rows}


def write_fit_grid(data_dir: Path, fits_dir: Path, scans: list[str], png: Path) -> Path:
    """A PNG grid, one row per fitted scan: target | fit | fit coloured by its distance to the target
    (the rows of ``imface fit --preview``, front view only)."""

    manifest = read_manifest(data_dir)
    rows, labels = [], []
    for name in scans:
        target = read_mesh(manifest.folder(name) / SCAN_MESH_NAME)
        fitted = read_mesh(fits_dir / name / FIT_MESH_NAME)
        cells, median = preview_row(target.vertices, target.faces, fitted.vertices, fitted.faces, views=("front",))
        rows.append(cells)
        labels.append(f"{name}\nmedian {median:.2f} mm")
    return write_preview_sheet(png, rows, labels, "Held-out scans fitted by the demo model", views=("front",))


def _report_text(config, times, notes, stage_means, pre, check, pictures, train_summary, fit_summary,
                 out: Path) -> str:
    rel = {name: path.relative_to(out).as_posix() for name, path in pictures.items()}
    lines = [
        "# imface demo report", "",
        f"Machine: {platform.platform()}, Python {platform.python_version()}, {get_threads()} threads.", "",
        "## Stages", "", times.table(), "",
        "## Data", "", *notes, "",
        f"Preprocessing: {len(pre.done)} scans done, {len(pre.skipped)} skipped, {len(pre.failed)} failed; "
        f"{pre.seconds_per_scan():.2f} s per scan in one worker, {config.workers or get_threads()} workers in parallel.",
        "", "Mean seconds per stage of one scan:", "",
        "| stage | seconds |", "|---|---:|",
        *[f"| {k} | {v:.3f} |" for k, v in stage_means.items()], "",
        f"check-data: {check.scans} scans, {check.identities} identities, {check.train_scans} train / "
        f"{check.test_scans} test scans, {'no problems' if check.ok else f'{len(check.problems)} problems'}.", "",
        f"![raw vs processed]({rel['raw_vs_processed']})", "",
        f"![expressions]({rel['expressions']})", "",
        f"![identities]({rel['identities']})", "",
    ]
    if train_summary:
        lines += ["## Training", ""]
        lines += [f"- {key}: {value}" for key, value in train_summary.items() if key not in ("loss_curves", "learning_curves")]
        for key in ("loss_curves", "learning_curves"):
            if train_summary.get(key):
                lines += ["", f"![{key.replace('_', ' ')}]({Path(train_summary[key]).relative_to(out).as_posix()})"]
        lines.append("")
    if fit_summary:
        lines += ["## Fitting held-out scans", "",
                  "Codes fitted with the network frozen (Eq. 17), no landmark terms; metrics against the "
                  "scan's pseudo-watertight ground truth after ICP (Chamfer in mm, F-score at 1 mm in %).", "",
                  "| scan | Chamfer (mm) | F-score@1mm | seconds |", "|---|---:|---:|---:|"]
        for name, chamfer, fscore, seconds in fit_summary["rows"]:
            lines.append(f"| {name} | {_fmt(chamfer)} | {_fmt(fscore)} | {seconds:.1f} |")
        lines += ["", f"![fits]({rel['fits']})", ""]
    return "\n".join(lines)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
