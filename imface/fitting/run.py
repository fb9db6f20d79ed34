"""``imface fit``: fit a trained model to new scans and write a fits folder (paper Eq. 17).

The inputs are listed (and sharded) by :mod:`imface.fitting.gather`; chunk by chunk they are read
(:mod:`imface.fitting.inputs`), aligned (:mod:`imface.fitting.align`), fitted by
:func:`imface.fitting.fitter.optimise`, and each scan's folder is written by
:mod:`imface.fitting.outputs`, then the index. Re-running skips scans already fitted with the
same settings, so a killed run resumes. A scan refused or failed is one line and the others go on.
"""
from __future__ import annotations

import functools
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from imface.config.fit import (DEFAULT_FIT_CODE_PRIOR, DEFAULT_FIT_EXP_CODE_PRIOR, DEFAULT_FIT_LR, DEFAULT_FIT_ROBUST_MM,
                               DEFAULT_FIT_SPACE_POINTS, DEFAULT_SCALE_SWEEP, FitSettings)
from imface.contracts.fits import CODES_NAME, PREVIEW_NAME, read_fit, read_fits_index, write_fits_index
from imface.devices import resolve_device
from imface.errors import ImfaceError
from imface.fitting import code_space
from imface.fitting.align import UPRIGHT, prepare_poses, rescale_target
from imface.fitting.fitter import optimise
from imface.fitting.gather import InputProblem, InputReport, ScanInput, list_inputs, raise_problems, read_input
from imface.fitting.inputs import FitTarget
from imface.fitting.outputs import ScanFit, index_entry, load_model, read_scan_fit, write_scan_outputs
from imface.fitting.preview import stack_previews
from imface.weights import model_label
from imface.fitting.scale_sweep import sweep_scales
from imface.frame import MM_PER_INPUT_UNIT, MM_PER_UNIT
from imface.generate import face_mesh


def _run_settings(settings: FitSettings, model_path: Path, same_identity: bool, options: dict) -> dict:
    return {**settings.to_dict(), "model": model_label(model_path), "same_identity": same_identity, **options}


def fit(model_or_path, inputs, out_dir, *, same_identity: bool = False, steps: int = 200, points: int = 2048,
        space_points: int = DEFAULT_FIT_SPACE_POINTS,
        lr: float = DEFAULT_FIT_LR, landmarks: bool = True, resolution: int = 128, split: str = "test",
        scans: list[str] | None = None, neutral: str = "auto", unit: str = "auto", pose: str = "auto",
        device: str = "auto", batch_size: int = 16, seed: int = 0, metrics_points: int = 50_000,
        preview: bool = False, progress: bool = False, robust_distance: float | None = None,
        code_prior: float = DEFAULT_FIT_CODE_PRIOR, exp_code_prior: float | None = DEFAULT_FIT_EXP_CODE_PRIOR,
        scale_lr: float = 0.0,
        code_basis: str = "diagonal",
        scale_sweep: int = DEFAULT_SCALE_SWEEP, shard: tuple[int, int] | None = None,
        report: InputReport | None = None, progress_bar: bool = False) -> list[ScanFit]:
    """Fit codes (and poses) to new scans and write the fits folder ``out_dir`` (see
    the fits contract, :mod:`imface.contracts.fits`). Re-running skips scans already fitted with the same settings.

    model_or_path: an experiment / exported model folder or a loaded model; inputs: a path or
    paths (see :mod:`imface.fitting.inputs`); same_identity: one z_id per identity;
    steps / points / space_points / lr: the schedule (points: surface samples per scan and step;
    space_points: free-space samples, or jittered surface points for surface-only input);
    neutral: auto | yes | no for scans whose neutrality is unknown; unit: auto | model | mm |
    cm | m for landmark-free input; pose: auto | fit | none; batch_size: scans per batch;
    metrics_points: samples for the quick metrics in each fit.json (0: none, e.g. when
    :func:`imface.eval.evaluate.evaluate_folder` scores the fits afterwards); preview: write each
    scan's ``preview.png`` (target | fit | error, front and side) and the sheet ``out_dir/preview.png``;
    robust_distance, code_prior, exp_code_prior, scale_lr, code_basis, scale_sweep: see :class:`FitSettings`;
    robust_distance None:
    ``DEFAULT_FIT_ROBUST_MM`` when any input is a raw mesh or point set, else 0 (processed scans).

    One bad scan does not stop the batch: an input refused (not a face, a bad file) or failed
    (an error fitting or writing it) is one line (:class:`InputProblem`) and the others are
    fitted and written. report: an :class:`InputReport` that collects those lines (the return
    value then holds the fitted and skipped scans); None raises after the batch: the one
    problem's own error, or one ImfaceError line counting them. Options and the model are
    checked before any work. shard ``(i, n)``: fit only part ``i`` of ``n`` of the sorted scans
    (of the identities with ``same_identity``), for a job array writing one folder; each job
    writes its own part of the index. progress: one line per scan on stdout; progress_bar: a
    bar over the scans on stderr; with either, each problem's line on stderr as it happens.
    """
    _check_options(steps=steps, points=points, space_points=space_points, resolution=resolution,
                   batch_size=batch_size, lr=lr, scale_lr=scale_lr, scale_sweep=scale_sweep,
                   robust_distance=robust_distance, code_basis=code_basis, shard=shard, unit=unit, pose=pose,
                   neutral=neutral)
    device = resolve_device(device)
    out_dir = Path(out_dir)
    loaded = load_model(model_or_path, device)
    model = loaded.model.to(device).eval().requires_grad_(False)
    problems = InputReport() if report is None else report
    known = len(problems.problems)
    listed = list_inputs(inputs, work_dir=out_dir, split=split, scans=scans, unit=unit, pose=pose, neutral=neutral,
                         shard=shard, shard_by="identity" if same_identity else "name", report=problems)
    if robust_distance is None:  # clutter and outliers come with raw input (in any shard), not with processed scans
        robust_distance = DEFAULT_FIT_ROBUST_MM / MM_PER_UNIT if problems.raw else 0.0
    settings = FitSettings(steps=steps, lr=lr, surface_points=points, space_points=space_points, landmarks=landmarks,
                           resolution=resolution, seed=seed, robust_distance=robust_distance, code_prior=code_prior,
                           exp_code_prior=exp_code_prior,
                           scale_lr=scale_lr, code_basis=code_basis, scale_sweep=scale_sweep)
    run = _run_settings(settings, loaded.path, same_identity, {"neutral": neutral, "unit": unit, "pose": pose})
    batch = _Batch(model, loaded, settings, run, out_dir, same_identity, metrics_points, preview, progress, device,
                   problems, None if shard is None else f"shard-{shard[0]}-of-{shard[1]}",
                   tqdm(total=len(listed), desc="fit", unit="scan", file=sys.stderr, disable=not progress_bar))
    for problem in problems.problems[known:]:
        batch.tell(problem)
    identities = {identity: i for i, identity in enumerate(sorted({t.identity for t in listed}))}
    group_of = {t.name: (identities[t.identity] if same_identity else i) for i, t in enumerate(listed)}
    done = {t.name for t in listed if (read_fit(out_dir / t.name) or {}).get("settings") == run
            and (out_dir / t.name / CODES_NAME).is_file()
            and (not preview or (out_dir / t.name / PREVIEW_NAME).is_file())}
    # Scans sharing a z_id are fitted together, so a group with any scan left is refitted whole.
    pending_groups = {group_of[t.name] for t in listed if t.name not in done}
    skipped = [t for t in listed if group_of[t.name] not in pending_groups]
    batch.skip(skipped)
    for chunk in _batches([t for t in listed if group_of[t.name] in pending_groups], group_of, batch_size):
        batch.fit_chunk(chunk, group_of, batch_size)
    batch.bar.close()
    batch.write_index(final=True)
    if preview:
        folders = [e["folder"] for e in (read_fits_index(out_dir, missing_ok=True) or {}).get("scans", [])]
        stack_previews([out_dir / f / PREVIEW_NAME for f in folders], out_dir / PREVIEW_NAME)  # every scan of the folder
    new = problems.problems[known:]
    if report is None:  # the other scans are written: now say what was not
        names = {t.name for t in listed}
        raise_problems(new, len(listed) + sum(p.name not in names for p in new))  # + inputs that named no scan
    return [batch.results[t.name] for t in listed if t.name in batch.results]


class _Batch:
    """One fit run's scans chunk by chunk: read, pose, scale sweep, fit, write, index; each
    scan's problem is recorded and the others go on."""

    def __init__(self, model, loaded, settings: FitSettings, run: dict, out_dir: Path, same_identity: bool,
                 metrics_points: int, preview: bool, progress: bool, device, report: InputReport,
                 part: str | None, bar) -> None:
        self.model, self.loaded, self.settings, self.run, self.out_dir = model, loaded, settings, run, out_dir
        self.same_identity, self.metrics_points, self.preview, self.progress = same_identity, metrics_points, preview, progress
        self.device, self.report, self.part, self.bar = device, report, part, bar
        self.results: dict[str, ScanFit] = {}
        self.entries: list[dict] = []
        self.mean_face = functools.cache(lambda: _mean_face_front(model, loaded.code_stats))

    def tell(self, problem: InputProblem) -> None:
        """Its line on stderr as it happens, when the run prints as it goes."""
        if self.progress or not self.bar.disable:
            tqdm.write(problem.line, file=sys.stderr)

    def _problem(self, target: FitTarget, error: Exception, fitting: bool) -> None:
        self.report.problems.append(InputProblem.of(target.name, target.source, error, fitting=fitting))
        self.tell(self.report.problems[-1])
        self.bar.update(1)

    def skip(self, skipped: list[ScanInput]) -> None:
        """Scans fitted by an earlier run: their results, and index entries for any the index lacks
        (a run killed between writing a scan and the index)."""
        indexed = {e["name"] for e in (read_fits_index(self.out_dir, missing_ok=True) or {}).get("scans", [])}
        for scan in skipped:
            self.results[scan.name] = read_scan_fit(self.out_dir, scan)  # reads only the name
            # an input gone since its fit is no problem of this run: its entry waits for the next
            target = None if scan.name in indexed else read_input(scan, InputReport())
            if target is not None:
                self.entries.append(index_entry(target))
            self.bar.update(1)

    def _read_and_pose(self, chunk: list[ScanInput]) -> list[FitTarget]:
        """The chunk's scans read, posed and cropped (refused ones left out)."""
        targets = []
        for scan in chunk:
            known = len(self.report.problems)
            target = read_input(scan, self.report)
            if target is None:
                self.tell(self.report.problems[known])
                self.bar.update(1)
                continue
            try:
                prepare_poses([target], self.mean_face)
            except Exception as err:  # noqa: BLE001 - an ImfaceError refuses it; anything else fails it
                self._problem(target, err, fitting=not isinstance(err, ImfaceError))
                continue
            targets.append(target)
        return targets

    def _sweep(self, targets: list[FitTarget], batch_size: int) -> list[FitTarget]:
        """The scale sweep of the targets whose scale was searched; the targets it failed on are left out."""
        swept = [t for t in targets if t.fit_scale]
        if not self.settings.scale_sweep or not swept:
            return targets
        sweep = functools.partial(sweep_scales, self.model, settings=self.settings, code_stats=self.loaded.code_stats,
                                  loss_weights=self.loaded.experiment.loss, template=self.mean_face(),
                                  device=self.device, batch_size=batch_size, optimise=optimise)
        try:
            sweep(swept)
            return targets
        except Exception:  # noqa: BLE001 - find the scan it failed on: each left alone
            failed = set()
            for target in swept:
                if "scale_sweep" in (target.alignment or {}):
                    continue  # swept before the error
                try:
                    sweep([target])
                except Exception as err:  # noqa: BLE001
                    self._problem(target, err, fitting=True)
                    failed.add(target.name)
            return [t for t in targets if t.name not in failed]

    def fit_chunk(self, chunk: list[ScanInput], group_of: dict[str, int], batch_size: int) -> None:
        """Read, pose, sweep, fit and write one chunk, then add it to the index."""
        targets = self._sweep(self._read_and_pose(chunk), batch_size)
        self._optimise(targets, group_of)
        self.write_index()

    def _optimise(self, targets: list[FitTarget], group_of: dict[str, int]) -> None:
        """Fit the targets together; when that fails, each group (one shared z_id) alone."""
        if not targets:
            return
        local = {g: i for i, g in enumerate(dict.fromkeys(group_of[t.name] for t in targets))}
        started = time.perf_counter()
        try:
            state, history = optimise(self.model, targets, self.settings, self.loaded.code_stats,
                                      self.loaded.experiment.loss, groups=[local[group_of[t.name]] for t in targets],
                                      device=self.device)
        except Exception as err:  # noqa: BLE001 - the scans are fitted apart: only the bad one fails
            if len(local) == 1:
                for target in targets:
                    self._problem(target, err, fitting=True)
                return
            for group in local:
                self._optimise([t for t in targets if group_of[t.name] == group], group_of)
            return
        seconds = time.perf_counter() - started
        for row, target in enumerate(targets):  # per-scan file output, not the optimisation
            try:
                if target.fit_scale and self.settings.scale_lr > 0:
                    rescale_target(target, float(state.scale[row]))
                codes = (state.id_codes[row], state.exp_codes[row])
                pose = (state.rotation[row].cpu().numpy(), state.translation[row].cpu().numpy())
                result = write_scan_outputs(self.model, target, codes, pose, history[:, row], self.settings, self.run,
                                            seconds, self.out_dir, self.metrics_points, self.preview)
            except Exception as err:  # noqa: BLE001 - one scan's output failing leaves the others
                self._problem(target, err, fitting=True)
                continue
            self.results[target.name] = result
            self.entries.append(index_entry(target))
            if self.progress:
                tqdm.write(_progress_line(target, result, seconds), file=sys.stdout)
            self.bar.update(1)

    def write_index(self, final: bool = False) -> None:
        """Add the new entries to the index (this shard's own part); at the end of a shard,
        fits.json becomes the merge of every part too, for readers of that file alone."""
        label = model_label(self.loaded.path)
        if self.entries:
            write_fits_index(self.out_dir, label, self.same_identity, self.entries, part=self.part)
            self.entries = []
        if final and self.part is not None and read_fits_index(self.out_dir, missing_ok=True) is not None:
            write_fits_index(self.out_dir, label, self.same_identity, [])


def _check_options(*, steps: int, points: int, space_points: int, resolution: int, batch_size: int, lr: float,
                   scale_lr: float, scale_sweep: int, robust_distance: float | None, code_basis: str,
                   shard: tuple[int, int] | None = None, unit: str = "auto", pose: str = "auto",
                   neutral: str = "auto") -> None:
    """One ImfaceError line for the first option out of its range, before the model loads."""
    for name, value, low in (("--steps", steps, 1), ("--points", points, 16), ("--space-points", space_points, 1),
                             ("--resolution", resolution, 16),
                             ("batch_size", batch_size, 1)):
        if value < low:
            raise ImfaceError(None, f"{name} must be >= {low}, got {value}")
    if not lr > 0:
        raise ImfaceError(None, f"--lr must be > 0, got {lr}")
    if not scale_lr >= 0:
        raise ImfaceError(None, f"--scale-lr must be >= 0, got {scale_lr}")
    if scale_sweep < 0 or scale_sweep in (1, 2):
        raise ImfaceError(None, f"--scale-sweep must be 0 (off) or >= 3 scales, got {scale_sweep}")
    if robust_distance is not None and not robust_distance >= 0:
        raise ImfaceError(None, f"--robust must be >= 0, got {robust_distance}")
    if code_basis not in code_space.CODE_BASES:
        raise ImfaceError(None, f"--code-basis must be one of {', '.join(code_space.CODE_BASES)}, got {code_basis!r}")
    if shard is not None and not 0 <= shard[0] < shard[1]:
        raise ImfaceError(None, f"--shard {shard[0]}/{shard[1]}: expected i/n with 0 <= i < n, e.g. 0/4")
    for name, value, choices in (("--unit", unit, ("auto", *MM_PER_INPUT_UNIT)), ("--pose", pose, ("auto", "fit", "none")),
                                 ("--neutral", neutral, ("auto", "yes", "no"))):
        if value not in choices:
            raise ImfaceError(None, f"{name} must be one of {' | '.join(choices)}, got {value!r}")
    if pose == "none" and unit == "auto":
        raise ImfaceError(None, "--pose none needs a given --unit (auto finds the scale together with the pose)")


def _mean_face_front(model: torch.nn.Module, code_stats: dict[str, torch.Tensor]) -> np.ndarray:
    """The mean face's front surface (M, 3), model units: the similarity search's template."""
    mesh = face_mesh(model, code_stats["id_mean"], code_stats["exp_mean"], True, resolution=64)
    vertices = np.asarray(mesh.vertices)
    front = (np.asarray(mesh.vertex_normals)[:, 2] > 0.0) & (np.linalg.norm(vertices, axis=1) <= 1.0)
    return vertices[front] if front.sum() >= 100 else vertices


def _batches(pending: list[FitTarget], group_of: dict[str, int], batch_size: int) -> list[list[FitTarget]]:
    """Pending scans in batches of at most ``batch_size``; the scans of one group (one shared z_id)
    stay in one batch."""
    chunks: list[list[FitTarget]] = []
    for group in sorted({group_of[t.name] for t in pending}):
        members = [t for t in pending if group_of[t.name] == group]
        if chunks and len(chunks[-1]) + len(members) <= batch_size:
            chunks[-1] += members
        else:
            chunks.append(members)
    return chunks


def metrics_text(metrics: dict | None) -> str:
    """A fit's figures against its input, for the line per scan: the one-way distances within the
    input's footprint where the fit has them (mm, or the input's unit when it is arbitrary),
    else the Chamfer distance; "" without metrics."""
    if not metrics:
        return ""
    if metrics.get("input_to_fit_mm") is not None and metrics.get("fit_to_input_mm") is not None:
        unit = metrics.get("distance_unit") or "mm"
        number = "{:.3f}" if unit == "mm" else "{:.4g}"
        return (f"  input→fit {number.format(metrics['input_to_fit_mm'])}, "
                f"fit→input {number.format(metrics['fit_to_input_mm'])} {unit}")
    if metrics.get("chamfer_mm") is None:
        return ""
    return f"  chamfer to the input {metrics['chamfer_mm']:.3f} mm"


def _progress_line(target: FitTarget, result: ScanFit, seconds: float) -> str:
    """The one line printed per fitted scan."""
    found = target.alignment
    aligned = "" if found is None else (
        f", {found['mm_per_input_unit']:.4g} mm per input unit ({found['unit']})"
        + ("" if found.get("size_vs_mean_face") is None else f", person {found['size_vs_mean_face']:.3f} x the mean face")
        + ("" if found.get("frame", UPRIGHT) == UPRIGHT else f", {found['frame']}")
        + f", alignment residual {found['residual_mm']:.2f} mm, coverage {100 * found['coverage']:.0f}%"
        + ("" if "scale_sweep" not in found else
           f", scale {found['scale_sweep']['chosen']:.3f} x the search's, chosen by "
           f"{len(found['scale_sweep']['factors'])} short fits"))
    return (f"{target.name}: {seconds:.1f} s  loss {result.losses.get('total', float('nan')):.4g}"
            + metrics_text(result.metrics) + aligned)
