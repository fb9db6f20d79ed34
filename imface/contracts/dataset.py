"""A processed dataset (``imface preprocess --out D``): ``manifest.json`` and one folder per scan.

Each scan folder (``D/<path>/``, see :mod:`imface.preprocess.scan` for how it is made) holds
``mesh.ply`` (the pseudo-watertight face, model units), ``registered.ply`` (when the source has a
registered mesh in one shared topology), ``landmarks.json`` (``ibug68`` (68, 3) or ``five``
(5, 3), model units), ``meta.json`` (frames, unit, source hashes; written last: a folder without
it is incomplete), the training samples ``surface_points.npy``, ``surface_normals.npy``,
``space_points.npy``, ``space_sdf.npy``, ``space_grad.npy`` (and optionally ``near_*.npy``), and
``preview.png``.

``manifest.json``: the scans, their labels and the train/test split.

Format (``format_version`` 1)::

    {"format_version": 1,
     "scans": [{"name": "001/1_neutral", "identity": "001", "expression": "neutral",
                "neutral": true, "path": "001/1_neutral"}, ...],      # path: relative to the root
     "identities": [...], "expressions": [...],
     "split": {"train": [names], "test": [names], "held_out_expression": [names],
               "test_identities": [...], "test_expressions": [...], "seed": 0}}

``train`` holds scans of training identities with a training expression; ``test``
holds every scan of the held-out identities (paper Sec. 4: unseen people, all
expressions); ``held_out_expression`` holds the training identities' scans of the
held-out expressions (unseen expressions of seen people).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from imface.errors import ImfaceError
from imface.frame import FIVE_LANDMARK_IDS
from imface.io.atomic import write_json

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT_VERSION = 1
# One processed scan's files.
MESH_NAME = "mesh.ply"
REGISTERED_NAME = "registered.ply"
LANDMARKS_NAME = "landmarks.json"
META_NAME = "meta.json"
PREVIEW_NAME = "preview.png"
NUM_LANDMARKS = 68
#: The training samples of a processed scan, one ``<stem>.npy`` each.
POINT_FILES = ("surface_points", "surface_normals", "space_points", "space_sdf", "space_grad")
#: Optional near-surface SDF samples (``imface preprocess --near-surface``), read as extra space samples.
NEAR_FILES = ("near_points", "near_sdf", "near_grad")
SPLIT_LISTS = ("train", "test", "held_out_expression")


@dataclass(frozen=True)
class ManifestScan:
    """One processed scan. ``path`` is relative to the dataset root (POSIX separators)."""

    name: str
    identity: str
    expression: str
    neutral: bool
    path: str


@dataclass(frozen=True)
class Manifest:
    """A validated manifest. ``root`` is the absolute dataset folder."""

    root: Path
    scans: tuple[ManifestScan, ...]
    train: tuple[str, ...]
    test: tuple[str, ...]
    held_out_expression: tuple[str, ...] = ()
    test_identities: tuple[str, ...] = ()
    test_expressions: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)

    @property
    def identities(self) -> list[str]:
        return sorted({s.identity for s in self.scans})

    @property
    def expressions(self) -> list[str]:
        return sorted({s.expression for s in self.scans})

    @cached_property
    def by_name(self) -> dict[str, ManifestScan]:
        return {item.name: item for item in self.scans}

    def scan(self, name: str) -> ManifestScan:
        return self.by_name[name]

    def folder(self, scan: ManifestScan | str) -> Path:
        """Absolute folder of a scan (checked to lie inside the root when read)."""
        item = self.scan(scan) if isinstance(scan, str) else scan
        return self.root / item.path

    def split_of(self, name: str) -> str:
        for split in SPLIT_LISTS:
            if name in getattr(self, split):
                return split
        return "unused"


def make_split(
    scans: list[ManifestScan], test_identities: list[str], test_expressions: list[str]
) -> dict[str, list[str]]:
    """Names per split list (see module docstring); scans are taken in the given order."""
    held_ids, held_expr = set(test_identities), set(test_expressions)
    split: dict[str, list[str]] = {key: [] for key in SPLIT_LISTS}
    for scan in scans:
        if scan.identity in held_ids:
            split["test"].append(scan.name)
        elif scan.expression in held_expr:
            split["held_out_expression"].append(scan.name)
        else:
            split["train"].append(scan.name)
    return split


def write_manifest(
    root: str | os.PathLike,
    scans: list[ManifestScan],
    test_identities: list[str],
    test_expressions: list[str],
    extra: dict | None = None,
) -> Path:
    """Write ``<root>/manifest.json`` atomically (scans sorted by name); returns its path.

    ``extra`` is stored under ``"extra"`` (e.g. the preprocessing settings).
    """
    scans = sorted(scans, key=lambda s: s.name)
    document = {
        "format_version": MANIFEST_FORMAT_VERSION,
        "scans": [
            {"name": s.name, "identity": s.identity, "expression": s.expression, "neutral": s.neutral, "path": s.path}
            for s in scans
        ],
        "identities": sorted({s.identity for s in scans}),
        "expressions": sorted({s.expression for s in scans}),
        "neutral": {s.name: s.neutral for s in scans},
        "split": {
            **make_split(scans, test_identities, test_expressions),
            "test_identities": sorted(test_identities),
            "test_expressions": sorted(test_expressions),
        },
        "extra": extra or {},
    }
    path = Path(root) / MANIFEST_NAME
    write_json(path, document)
    return path


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read and validate a manifest (``path``: the file or its dataset folder).

    Refuses: unknown format_version, missing keys, duplicate names, scan paths that are
    absolute or leave the root (after resolving ``..`` and symlinks), split lists that
    name unknown scans or share a scan.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise ImfaceError(path, "manifest not found; is this a processed dataset (imface preprocess)?")
    root = path.parent.resolve()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        raise ImfaceError(path, f"cannot read manifest ({err})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("scans"), list):
        raise ImfaceError(path, "manifest must be an object with a 'scans' list")
    if raw.get("format_version") != MANIFEST_FORMAT_VERSION:
        raise ImfaceError(path, f"unsupported format_version {raw.get('format_version')!r}")
    scans, names = [], set()
    for number, entry in enumerate(raw["scans"], start=1):
        try:
            scan = ManifestScan(
                name=str(entry["name"]), identity=str(entry["identity"]), expression=str(entry["expression"]),
                neutral=bool(entry["neutral"]), path=str(entry["path"]),
            )
        except (KeyError, TypeError):
            raise ImfaceError(path, f"scan entry {number} lacks name/identity/expression/neutral/path") from None
        if scan.name in names:
            raise ImfaceError(path, f"scan name {scan.name!r} appears twice")
        names.add(scan.name)
        folder = (root / scan.path).resolve()
        if Path(scan.path).is_absolute() or not folder.is_relative_to(root) or folder == root:
            raise ImfaceError(path, f"scan {scan.name!r}: path {scan.path!r} leaves the dataset folder")
        scans.append(scan)
    split = raw.get("split") or {}
    if not isinstance(split, dict):
        raise ImfaceError(path, "'split' must be an object")
    lists = {key: tuple(str(n) for n in split.get(key, [])) for key in SPLIT_LISTS}
    seen: dict[str, str] = {}
    for key, members in lists.items():
        for name in members:
            if name not in names:
                raise ImfaceError(path, f"split '{key}' names scan {name!r}, which is not in 'scans'")
            if name in seen:
                raise ImfaceError(path, f"scan {name!r} is in both '{seen[name]}' and '{key}'")
            seen[name] = key
    return Manifest(
        root=root, scans=tuple(scans), train=lists["train"], test=lists["test"],
        held_out_expression=lists["held_out_expression"],
        test_identities=tuple(str(i) for i in split.get("test_identities", [])),
        test_expressions=tuple(str(e) for e in split.get("test_expressions", [])),
        extra=raw.get("extra") or {},
    )


def read_scan_landmarks(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """A scan's landmarks as ((68,3) float32 model units, (68,) bool mask).

    With ``ibug68`` every row is given; with only ``five`` the rows 36,45,30,48,54 are given
    and the rest are zero."""
    path = Path(folder) / LANDMARKS_NAME
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ImfaceError(path, "missing (every processed scan needs landmarks.json)") from None
    except json.JSONDecodeError as err:
        raise ImfaceError(path, f"not valid JSON ({err})") from None
    points = np.zeros((NUM_LANDMARKS, 3), np.float32)
    mask = np.zeros(NUM_LANDMARKS, bool)
    if raw.get("ibug68") is not None:
        arr = np.asarray(raw["ibug68"], np.float32)
        if arr.shape != (NUM_LANDMARKS, 3):
            raise ImfaceError(path, f"ibug68 has shape {arr.shape}, expected (68, 3)")
        points[:], mask[:] = arr, True
    elif raw.get("five") is not None:
        arr = np.asarray(raw["five"], np.float32)
        if arr.shape != (5, 3):
            raise ImfaceError(path, f"five has shape {arr.shape}, expected (5, 3)")
        ids = list(FIVE_LANDMARK_IDS)
        points[ids], mask[ids] = arr, True
    else:
        raise ImfaceError(path, "neither 'ibug68' nor 'five' landmarks are given")
    if not np.isfinite(points).all():
        raise ImfaceError(path, "landmarks contain NaN or inf")
    return points, mask
