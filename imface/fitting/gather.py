"""Which scans the paths handed to ``imface fit`` name, which of them this job reads (a shard), and
the inputs it refuses on the way: :func:`gather_targets`.

Each path names scans (a processed dataset, a processed scan folder, a raw dataset with
landmarks, a mesh or point file, or a folder of them: :mod:`imface.fitting.inputs` reads each).
The names are listed first and checked for clashes; a shard keeps every ``n``-th of the sorted
names (or identities), so a job array splits one batch the same way in every job, before
any scan is read. With an :class:`InputReport`, an input that cannot be read is one line there
(:class:`InputProblem`, naming the file) and the others are read on: one bad scan does not
stop a batch. :func:`list_inputs` lists the scans without reading them (a batch reads each
when its turn comes, :func:`read_input`); :func:`gather_targets` reads them all.
"""
from __future__ import annotations

import functools
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from imface.contracts.dataset import read_manifest
from imface.errors import ImfaceError
from imface.fitting.inputs import POINT_SUFFIXES, FitTarget, file_target, processed_target
from imface.io.mesh import MESH_SUFFIXES
from imface.preprocess.layouts import detect_layout, discover_scans
from imface.preprocess.run import default_align, is_complete
from imface.preprocess.scan import PreprocessConfig, preprocess_scan, scan_output_dir


@dataclass(frozen=True)
class InputProblem:
    """An input that was not fitted: ``refused`` (an ImfaceError reading or aligning it: not a
    face, a bad file, a wrong shape) or ``failed`` (any other error, or one while fitting or
    writing it). ``message``: one line naming the file; ``error``: the exception itself."""

    name: str
    source: Path | None
    status: str  # refused | failed
    message: str
    error: BaseException | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, name: str, source: Path | None, error: Exception, fitting: bool = False) -> "InputProblem":
        """The problem an exception makes of one input; ``fitting``: raised while fitting or writing it."""
        text = " ".join(str(error).split())
        if isinstance(error, ImfaceError):
            message = text if error.path else f"{source}: {text}"
        else:  # a bug or a library failure on odd data: named, and the batch goes on
            message = f"{source}: internal error ({type(error).__name__}: {text})"
        status = "refused" if isinstance(error, ImfaceError) and not fitting else "failed"
        return cls(name, source, status, message, error)

    @property
    def line(self) -> str:
        """The one line a batch prints for it: ``refused: <file>: <reason>``."""
        return f"{self.status}: {self.message}"


@dataclass
class InputReport:
    """What :func:`gather_targets` found besides its targets: the inputs it refused (or failed to
    read), ``total`` scans named by the inputs before the shard, and ``raw`` whether any of them
    (in any shard) is a raw mesh, point set or raw scan (the fit's robust default depends on it).
    Callers add the inputs that fail later (alignment, fitting) to ``problems``."""

    problems: list[InputProblem] = field(default_factory=list)
    total: int = 0
    raw: bool = False

    def with_status(self, status: str) -> list[InputProblem]:
        return [p for p in self.problems if p.status == status]


def raise_problems(problems: list[InputProblem], total: int) -> None:
    """After a batch that wrote the other scans: raise the one problem's own error, or one
    ImfaceError line counting several (chained to the first); nothing when there are none."""
    if len(problems) == 1 and problems[0].error is not None:
        raise problems[0].error
    if problems:
        shown = "; ".join(p.message for p in problems[:3]) + ("; ..." if len(problems) > 3 else "")
        error = ImfaceError(None, f"{len(problems)} of {total} inputs not fitted (the others were written): {shown}")
        error.problems = problems
        raise error from problems[0].error


@dataclass(frozen=True)
class ScanInput:
    """One scan an input names, not yet read (:func:`read_input` reads it): its name (the fits
    folder's scan name), identity, source file or folder, and whether it is raw (not processed)."""

    name: str
    identity: str
    source: Path
    raw: bool
    load: Callable[[np.random.Generator], FitTarget]


def _dataset_candidates(root: Path, split: str, names: Sequence[str] | None, kind: str = "processed") -> list[ScanInput]:
    manifest = read_manifest(root)
    by_name = manifest.by_name
    if names:
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ImfaceError(root / "manifest.json", f"no scan named {', '.join(unknown[:5])}")
        chosen = list(names)
    else:
        chosen = {"train": list(manifest.train), "test": list(manifest.test), "all": sorted(by_name)}.get(split)
        if chosen is None:
            raise ImfaceError(None, f"--split must be train, test or all, got {split!r}")
        if not chosen:
            raise ImfaceError(root / "manifest.json", f"the {split} split is empty; pass --split or --scans")
    return [ScanInput(n, by_name[n].identity, manifest.folder(n), False, functools.partial(
        processed_target, manifest.folder(n), n, by_name[n].identity, by_name[n].expression, by_name[n].neutral,
        kind=kind)) for n in chosen]


def _raw_dataset_candidates(root: Path, work_dir: Path, unit: str, names: Sequence[str] | None) -> list[ScanInput]:
    """Raw scans with landmarks, each preprocessed into ``work_dir/_preprocessed`` when it is loaded."""
    scans = discover_scans(root)
    if names:
        scans = [s for s in scans if s.name in set(names)]
    # The alignment the layout needs, as imface preprocess chooses it (FaceScape TU models: none).
    config = PreprocessConfig(unit=None if unit in ("auto", "model") else unit, align=default_align(detect_layout(root)))
    out = work_dir / "_preprocessed"

    def load(scan, rng: np.random.Generator) -> FitTarget:
        if not is_complete(scan, out, config):
            preprocess_scan(scan, out, config)
        return processed_target(scan_output_dir(out, scan), scan.name, scan.identity, scan.expression, scan.neutral,
                                rng, kind="raw_landmarks")

    return [ScanInput(scan.name, scan.identity, scan.mesh_path, True, functools.partial(load, scan)) for scan in scans]


def _is_processed_scan(folder: Path) -> bool:
    return (folder / "surface_points.npy").is_file() and (folder / "space_points.npy").is_file()


def _path_candidates(path: Path, work_dir: Path, split: str, scans: Sequence[str] | None, unit: str, pose: str,
                     neutral: str) -> list[ScanInput]:
    """The scans one input path names (see the module docstring)."""
    if not path.exists():
        raise ImfaceError(path, "input not found")
    if path.is_dir() and (path / "manifest.json").is_file():
        return _dataset_candidates(path, split, scans)
    if path.is_dir() and _is_processed_scan(path):
        meta = {}
        try:
            meta = json.loads((path / "meta.json").read_text())
        except (OSError, ValueError):
            pass
        name, identity = f"{path.parent.name}/{path.name}", str(meta.get("identity", path.parent.name))
        expression = meta.get("expression") or "unknown"
        known = None if meta.get("expression") is None else expression == "neutral"
        flag = bool(meta.get("neutral", known if known is not None else neutral == "yes"))
        return [ScanInput(name, identity, path, False,
                           functools.partial(processed_target, path, name, identity, expression, flag))]
    if path.is_file() and path.suffix.lower() in (".csv", ".json"):
        return _raw_dataset_candidates(path, work_dir, unit, scans)
    if path.is_file():
        files = [(path, path.stem)]
    else:
        try:
            layout = detect_layout(path)
        except ImfaceError:
            layout = None
        # FaceScape-like folders need landmark vertex ids, which fit does not take: preprocess
        # them first, or they are fitted as landmark-free meshes below.
        if layout in ("builtin", "list"):
            return _raw_dataset_candidates(path, work_dir, unit, scans)
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in POINT_SUFFIXES + MESH_SUFFIXES
                       and "_preprocessed" not in p.parts)
        if not found:
            raise ImfaceError(path, "no processed dataset, raw dataset, meshes or point files found")
        files = [(file, file.relative_to(path).with_suffix("").as_posix()) for file in found]
        files = [(file, name) for file, name in files if not scans or name in scans]
    # identity as file_target names it: the first folder of a nested name
    return [ScanInput(name, name.split("/")[0], file, True,
                       lambda _, file=file, name=name: file_target(file, name, unit, pose, neutral))
            for file, name in files]


def list_inputs(inputs: str | Path | Sequence[str | Path], *, work_dir: Path, split: str = "test",
                scans: Sequence[str] | None = None, unit: str = "auto", pose: str = "auto",
                neutral: str = "auto", shard: tuple[int, int] | None = None, shard_by: str = "name",
                report: InputReport | None = None) -> list[ScanInput]:
    """Every scan the inputs name, in input order, not yet read (see the module docstring).

    shard ``(i, n)``: only part ``i`` (0-based) of ``n``: every ``n``-th of the sorted scan names
    (``shard_by="identity"``: of the sorted identities, so scans sharing an identity stay in one
    part). report: None raises the first bad input's ImfaceError; an :class:`InputReport`
    collects each input path that names no scan there. Errors of no one file (options, two
    inputs with one scan name) always raise.
    """
    paths = [Path(inputs)] if isinstance(inputs, (str, Path)) else [Path(p) for p in inputs]
    if not paths:
        raise ImfaceError(None, "no input given")
    if shard_by not in ("name", "identity"):
        raise ImfaceError(None, f"shard_by must be name or identity, got {shard_by!r}")
    if shard is not None and not 0 <= shard[0] < shard[1]:
        raise ImfaceError(None, f"shard {shard[0]}/{shard[1]}: expected i/n with 0 <= i < n")
    listed: list[ScanInput] = []
    for path in paths:
        try:
            listed += _path_candidates(path, work_dir, split, scans, unit, pose, neutral)
        except ImfaceError as err:
            if report is None or err.path is None:
                raise
            report.problems.append(InputProblem.of(path.as_posix(), path, err))
    duplicates = sorted(name for name, count in Counter(c.name for c in listed).items() if count > 1)
    if duplicates:
        raise ImfaceError(None, f"two inputs share the scan name(s) {', '.join(duplicates[:5])}")
    if not listed and not (report and report.problems):
        raise ImfaceError(paths[0], "no scans selected")
    if report is not None:
        report.total += len(listed)
        report.raw = report.raw or any(c.raw for c in listed)
    if shard is None:
        return listed
    keys = sorted({c.name if shard_by == "name" else c.identity for c in listed})
    chosen = set(keys[shard[0]::shard[1]])
    return [c for c in listed if (c.name if shard_by == "name" else c.identity) in chosen]


def read_input(scan: ScanInput, report: InputReport | None = None) -> FitTarget | None:
    """Read one listed scan (with its own rng, so a scan reads the same in any batch or shard).
    report: None raises its error; else a bad scan is one line there and None comes back.
    Errors of no one file (an option) always raise."""
    try:
        return scan.load(np.random.default_rng(0))
    except Exception as err:  # noqa: BLE001 - with a report, any error of one input is that input's
        if report is None or (isinstance(err, ImfaceError) and err.path is None):
            raise
        report.problems.append(InputProblem.of(scan.name, scan.source, err))
        return None


def gather_targets(inputs: str | Path | Sequence[str | Path], *, work_dir: Path, split: str = "test",
                   scans: Sequence[str] | None = None, unit: str = "auto", pose: str = "auto",
                   neutral: str = "auto", shard: tuple[int, int] | None = None, shard_by: str = "name",
                   report: InputReport | None = None) -> list[FitTarget]:
    """Every scan to fit, read, in input order: :func:`list_inputs` (the same arguments), then
    :func:`read_input` of each (part of a shard only: the others are never read)."""
    listed = list_inputs(inputs, work_dir=work_dir, split=split, scans=scans, unit=unit, pose=pose, neutral=neutral,
                         shard=shard, shard_by=shard_by, report=report)
    targets = (read_input(scan, report) for scan in listed)  # per-scan file work, not a hot path
    return [target for target in targets if target is not None]
