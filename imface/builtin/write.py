"""Write the built-in face data as a raw scanner-style dataset (``imface data bfm|ict --out DIR``).

Layout::

    DIR/dataset.json                                  root marker and settings (no source numbers)
    DIR/NOTICE.txt                                    the source's licence notice, where it asks for one (ICT)
    DIR/<id>/<k>_<expression>.obj                     raw scan: cropped, posed, noisy, with holes (mm)
    DIR/<id>/<k>_<expression>.lmk.txt                 68 x 3 iBUG landmarks, mm, same frame as the scan
    DIR/<id>/<k>_<expression>.registered.ply          clean mesh in the source's topology, same frame

``<id>`` is the 1-based identity number zero-padded to 3 digits; ``k`` is FaceScape's
1-based expression number. Every scan gets its own random rigid pose (up to 15 degrees
about each axis, a few cm of offset). Files are written atomically and existing scans
are skipped, so an interrupted run can be resumed.
"""
from __future__ import annotations

import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import trimesh

from imface.builtin.registry import load_source
from imface.frame import NOSE_TIP_POSITION_MM
from imface.builtin.generator import EXPRESSIONS, FaceGenerator, GeneratorSettings, expression_index
from imface.errors import ImfaceError
from imface.io.atomic import atomic_path, write_json, write_text
from imface.ops.normals import vertex_normals
from imface.threads import init_worker_process

LAYOUT = "imface-builtin"
FORMAT_VERSION = 1
MAX_POSE_DEG = 15.0
POSE_OFFSET_MM = 30.0
#: Raw scans keep the surface within this distance of the point 40 mm behind the nose tip.
SCAN_RADIUS_MM = 125.0
#: Holes stay at least this far from every landmark.
HOLE_LANDMARK_CLEARANCE_MM = 12.0


@dataclass(frozen=True)
class ScanOptions:
    noise_mm: float = 0.05  #: Gaussian noise along the normals
    holes: int = 3  #: disc-shaped holes per scan, away from landmarks
    hole_radius_mm: tuple[float, float] = (3.0, 8.0)
    scan_radius_mm: float = SCAN_RADIUS_MM


@dataclass(frozen=True)
class DatasetSummary:
    out: Path
    identities: int
    expressions: int
    written: int
    skipped: int
    seconds: float


def identity_name(index: int, count: int) -> str:
    """Folder name of 0-based identity ``index``: ``001``, ``002``, ..."""
    return str(index + 1).zfill(max(3, len(str(count))))


def scan_stem(expression: str) -> str:
    return f"{expression_index(expression)}_{expression}"


def parse_expressions(spec: str | Iterable[str] | None) -> list[str]:
    """``"all"``/None -> all 20; else a comma list (or iterable) of names, validated, in FaceScape order."""
    if spec is None or spec == "all":
        return list(EXPRESSIONS)
    names = [n.strip() for n in (spec.split(",") if isinstance(spec, str) else spec) if n.strip()]
    unknown = [n for n in names if n not in EXPRESSIONS]
    if unknown or not names:
        raise ImfaceError(None, f"unknown expression(s) {', '.join(unknown) or '(none given)'}; "
                                f"choose from: all, {', '.join(EXPRESSIONS)}")
    return [e for e in EXPRESSIONS if e in names]


def random_pose(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (3, 3) with up to MAX_POSE_DEG about each axis and offset (3,) mm."""
    ax, ay, az = np.deg2rad(rng.uniform(-MAX_POSE_DEG, MAX_POSE_DEG, 3))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx, rng.normal(0.0, POSE_OFFSET_MM, 3)


def raw_scan(vertices: np.ndarray, faces: np.ndarray, landmark_ids: np.ndarray, nose_tip_id: int,
             options: ScanOptions, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Turn a registered mesh (V, 3) mm into a raw scan: crop, holes, normal noise, shuffled order.

    Returns (vertices (V', 3) float64, faces (F', 3) int64). Before any pose.
    """
    centre = vertices[nose_tip_id] - np.array([0.0, 0.0, NOSE_TIP_POSITION_MM[2]])
    keep = np.linalg.norm(vertices - centre, axis=1) <= options.scan_radius_mm
    landmarks = vertices[landmark_ids]
    if options.holes > 0:
        clear = np.linalg.norm(vertices[:, None] - landmarks[None], axis=2).min(1) > HOLE_LANDMARK_CLEARANCE_MM
        candidates = np.nonzero(clear & keep)[0]
        hole_centres = vertices[rng.choice(candidates, size=options.holes, replace=False)]
        radii = rng.uniform(*options.hole_radius_mm, options.holes)
        # A hole keeps its radius smaller than its centre's clearance, so landmarks stay on the surface.
        in_hole = (np.linalg.norm(vertices[:, None] - hole_centres[None], axis=2) < radii[None]).any(1)
        keep &= ~in_hole
    face_ok = keep[faces].all(1)
    used = np.unique(faces[face_ok])
    noisy = vertices.astype(np.float64)
    if options.noise_mm > 0:
        noisy = noisy + vertex_normals(noisy, faces, weighting="area") * rng.normal(0.0, options.noise_mm, (len(noisy), 1))
    order = rng.permutation(len(used))  # scanners do not share vertex order with any model
    new_index = np.full(len(vertices), -1, dtype=np.int64)
    new_index[used[order]] = np.arange(len(used))
    return noisy[used[order]], new_index[faces[face_ok]]


def _export(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    with atomic_path(path) as tmp:
        mesh.export(tmp)


def write_scan(generator: FaceGenerator, folder: Path, identity: int, expression: str, options: ScanOptions) -> bool:
    """Write one scan's three files into ``folder``; False if they all exist already."""
    stem = scan_stem(expression)
    paths = [folder / f"{stem}.obj", folder / f"{stem}.lmk.txt", folder / f"{stem}.registered.ply"]
    if all(p.is_file() for p in paths):
        return False
    source = generator.source
    registered = generator.registered(identity, expression).astype(np.float64)
    rng = np.random.default_rng(np.random.SeedSequence([generator.settings.seed, identity,
                                                        expression_index(expression), 0, 3]))
    rotation, offset = random_pose(rng)
    scan_v, scan_f = raw_scan(registered, source.faces, source.landmark_ids, source.nose_tip_id, options, rng)
    pose = lambda p: p @ rotation.T + offset  # noqa: E731
    _export(paths[0], pose(scan_v), scan_f)
    with atomic_path(paths[1]) as tmp:
        np.savetxt(tmp, pose(registered[source.landmark_ids]), fmt="%.4f")
    _export(paths[2], pose(registered), source.faces)
    return True


def _write_identity(args: tuple) -> tuple[int, int]:
    out, identity, count, expressions, settings, options, (name, cache, source_path) = args
    generator = FaceGenerator(load_source(name, cache, source_path), settings, cache_size=1)
    folder = out / identity_name(identity, count)
    written = sum(write_scan(generator, folder, identity, e, options) for e in expressions)
    return written, len(expressions) - written


def _check_marker(out: Path, marker: dict) -> None:
    path = out / "dataset.json"
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ImfaceError(path, f"unreadable dataset marker: {err}") from err
    keys = ("layout", "seed", "generator", "source")
    same = {**{k: old.get(k) for k in keys}, "source": old.get("source", "bfm")} == {k: marker[k] for k in keys}
    if not same:
        raise ImfaceError(path, "this folder holds built-in data made with other settings; use a new --out folder")
    if old.get("source_hashes") != marker["source_hashes"]:
        raise ImfaceError(path, "this folder holds built-in data made from another copy of the source data "
                          f"({old.get('source_hashes')}); use a new --out folder")


def write_dataset(out: Path, identities: int = 12, expressions: str | Iterable[str] | None = "all", seed: int = 0,
                  options: ScanOptions | None = None, workers: int = 1, settings: GeneratorSettings | None = None,
                  cache: Path | None = None, progress: Callable[[int], None] | None = None, source: str = "bfm",
                  source_path: Path | None = None) -> DatasetSummary:
    """Write ``identities`` x ``expressions`` scans under ``out`` (resumable); see the module docstring.

    ``source`` names the face source (:mod:`imface.builtin.registry`); ``source_path`` is a local copy
    of its files instead of the download.

    ``workers`` > 1 spreads identities over a process pool. ``progress`` is called with the
    number of scans finished after each identity.
    """
    if identities < 1:
        raise ImfaceError(out, "need at least one identity")
    start = time.perf_counter()
    names = parse_expressions(expressions)
    options = options or ScanOptions()
    settings = GeneratorSettings(**{**asdict(settings or GeneratorSettings()), "seed": seed})
    face_source = load_source(source, cache, source_path)  # download / verify once, before any worker starts
    out = Path(out)
    generator_info = {**asdict(settings), **asdict(options), "max_pose_deg": MAX_POSE_DEG,
                      "pose_offset_mm": POSE_OFFSET_MM}
    generator_info["hole_radius_mm"] = list(options.hole_radius_mm)
    generator_info.pop("seed")
    marker = {"layout": LAYOUT, "format_version": FORMAT_VERSION, "source": source, "units": "mm", "seed": seed,
              "identities": [identity_name(i, identities) for i in range(identities)], "expressions": names,
              "expression_numbers": {e: expression_index(e) for e in names},
              "files": {"scan": "<id>/<k>_<expression>.obj", "landmarks": "<id>/<k>_<expression>.lmk.txt",
                        "registered": "<id>/<k>_<expression>.registered.ply"},
              "landmarks": "68 iBUG points, 0-based order, mm", "generator": generator_info,
              "source_hashes": face_source.provenance()}
    _check_marker(out, marker)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "dataset.json", marker)
    notice = getattr(face_source, "notice", None)
    if notice:
        write_text(out / "NOTICE.txt", notice)
    spec = (source, cache, source_path)
    jobs = [(out, i, identities, names, settings, options, spec) for i in range(identities)]
    written = skipped = 0
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=init_worker_process) as pool:
            for w, s in pool.map(_write_identity, jobs):
                written, skipped = written + w, skipped + s
                if progress:
                    progress(written + skipped)
    else:
        for job in jobs:
            w, s = _write_identity(job)
            written, skipped = written + w, skipped + s
            if progress:
                progress(written + skipped)
    return DatasetSummary(out, identities, len(names), written, skipped, time.perf_counter() - start)


__all__ = ["write_dataset", "write_scan", "raw_scan", "random_pose", "parse_expressions", "identity_name",
           "scan_stem", "ScanOptions", "DatasetSummary"]
