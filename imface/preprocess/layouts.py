"""Input layouts: find the raw scans of a dataset and describe each as a :class:`ScanSource`.

Three layouts are understood:

- ``builtin``: the folder written by ``imface data bfm`` (``dataset.json`` with
  ``"layout": "imface-builtin"``): ``<id>/<k>_<expr>.obj`` + ``.lmk.txt`` + ``.registered.ply``.
- ``facescape``: FaceScape TU models, ``<id>/models_reg/<k>_<expr>.obj`` or
  ``<id>/<k>_<expr>.obj``, with landmarks from one vertex-index file shared by all meshes:
  ``--landmark-indices``, or the package's ids of the TU topology told from the first mesh's
  vertex count (:mod:`imface.preprocess.facescape`). Each TU model is also the scan's
  registered mesh (every TU model has the same topology).
- ``list``: a ``.csv`` or ``.json`` list with ``mesh, landmarks, identity, expression``
  (optional ``registered``, ``name``); relative paths resolve against the list's folder,
  and every path must stay inside that folder.
"""
from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from imface.errors import ImfaceError
from imface.preprocess.facescape import FACESCAPE_EXPRESSIONS, detect_tu_topology

NEUTRAL_EXPRESSION = "neutral"
LAYOUTS = ("builtin", "facescape", "list")
_SCAN_STEM = re.compile(r"^(\d+)_([A-Za-z0-9_\-]+)$")
_NAME_OK = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True)
class ScanSource:
    """One raw scan to preprocess.

    name: unique ``<identity>/<scan-stem>``; the output goes to ``OUT/<name>/``.
    landmarks_path: coordinates file, or None when ``landmark_indices_path`` picks
    landmark vertices out of the (fixed-topology) mesh.
    """

    name: str
    identity: str
    expression: str
    mesh_path: Path
    landmarks_path: Path | None
    landmark_indices_path: Path | None = None
    registered_path: Path | None = None

    @property
    def neutral(self) -> bool:
        return self.expression == NEUTRAL_EXPRESSION

    @property
    def stem(self) -> str:
        return self.name.split("/", 1)[1]


def _check_name_part(value: str, what: str, where: Path) -> str:
    value = str(value).strip()
    if not value or not _NAME_OK.match(value) or value in (".", ".."):
        raise ImfaceError(where, f"{what} {value!r} must be a non-empty name of letters, digits, '_', '-' or '.'")
    return value


def _parse_stem(stem: str) -> tuple[int, str] | None:
    match = _SCAN_STEM.match(stem)
    return (int(match.group(1)), match.group(2)) if match else None


def detect_layout(path: str | os.PathLike) -> str:
    """Guess the layout of ``path``: ``list`` for a .csv/.json file, ``builtin`` when
    ``dataset.json`` says so, ``facescape`` for folders of ``<k>_<expr>.obj``."""
    root = Path(path)
    if root.is_file():
        if root.suffix.lower() in (".csv", ".json"):
            return "list"
        raise ImfaceError(root, "input must be a dataset folder or a .csv/.json scan list")
    if not root.is_dir():
        raise ImfaceError(root, "input not found")
    info = root / "dataset.json"
    if info.is_file():
        try:
            layout = json.loads(info.read_text(encoding="utf-8")).get("layout")
        except (ValueError, AttributeError, OSError) as err:
            raise ImfaceError(info, f"cannot read dataset description ({err})") from None
        if layout == "imface-builtin":
            return "builtin"
    for list_name in ("scans.csv", "scans.json"):
        if (root / list_name).is_file():
            return "list"
    if any(_parse_stem(p.stem) for p in root.glob("*/*.obj")) or any(
        _parse_stem(p.stem) for p in root.glob("*/models_reg/*.obj")
    ):
        return "facescape"
    raise ImfaceError(root, "cannot tell the dataset layout; pass --layout facescape|builtin|list")


def _builtin_scans(root: Path) -> list[ScanSource]:
    scans = []
    for mesh in sorted(root.glob("*/*.obj")):
        parsed = _parse_stem(mesh.stem)
        if parsed is None:
            continue
        identity = _check_name_part(mesh.parent.name, "identity", mesh)
        registered = mesh.with_name(mesh.stem + ".registered.ply")
        scans.append(ScanSource(
            name=f"{identity}/{mesh.stem}", identity=identity, expression=parsed[1], mesh_path=mesh,
            landmarks_path=mesh.with_name(mesh.stem + ".lmk.txt"),
            registered_path=registered if registered.is_file() else None,
        ))
    return scans


def _facescape_scans(root: Path, landmark_indices: Path | None) -> list[ScanSource]:
    """TU models; without ``landmark_indices``, the ids of the TU topology of the first mesh
    (one topology per release: a mesh of another gets implausible landmarks, refused per scan)."""
    meshes = [(mesh, parsed) for mesh in sorted(list(root.glob("*/models_reg/*.obj")) + list(root.glob("*/*.obj")))
              if (parsed := _parse_stem(mesh.stem)) is not None]
    if not meshes:
        return []
    indices = Path(landmark_indices) if landmark_indices else detect_tu_topology(meshes[0][0]).landmark_ids_path
    scans = []
    for mesh, (number, label) in meshes:
        id_dir = mesh.parent.parent if mesh.parent.name == "models_reg" else mesh.parent
        identity = _check_name_part(id_dir.name, "identity", mesh)
        scans.append(ScanSource(
            name=f"{identity}/{mesh.stem}", identity=identity, expression=FACESCAPE_EXPRESSIONS.get(number, label),
            mesh_path=mesh, landmarks_path=None, landmark_indices_path=indices, registered_path=mesh,
        ))
    return scans


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _list_rows(list_path: Path) -> list[dict]:
    try:
        text = list_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ImfaceError(list_path, f"cannot read scan list ({err})") from None
    if list_path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as err:
            raise ImfaceError(list_path, f"invalid JSON ({err})") from None
        rows = data.get("scans") if isinstance(data, dict) else data
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ImfaceError(list_path, "JSON scan list must be a list of objects (or {\"scans\": [...]})")
        return rows
    return list(csv.DictReader(text.splitlines()))


def _list_scans(list_path: Path, landmark_indices: Path | None) -> list[ScanSource]:
    root = list_path.parent.resolve()
    rows = _list_rows(list_path)
    if not rows:
        raise ImfaceError(list_path, "scan list is empty")

    def resolve(value: object, row_no: int, key: str) -> Path:
        raw = Path(str(value).strip())
        full = (raw if raw.is_absolute() else root / raw).resolve()
        if not _inside(full, root):
            raise ImfaceError(list_path, f"row {row_no}: {key} path {str(value)!r} escapes the dataset root {root}")
        return full

    scans, seen = [], {}
    for row_no, row in enumerate(rows, start=1):
        row = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
        needed = ("mesh", "identity", "expression") + (() if landmark_indices else ("landmarks",))
        missing = [key for key in needed if not str(row.get(key) or "").strip()]
        if missing:
            raise ImfaceError(list_path, f"row {row_no}: missing {', '.join(missing)}")
        identity = _check_name_part(row["identity"], "identity", list_path)
        expression = _check_name_part(row["expression"], "expression", list_path)
        mesh = resolve(row["mesh"], row_no, "mesh")
        stem = _check_name_part(row.get("name") or mesh.stem, "name", list_path)
        name = f"{identity}/{stem}"
        if name in seen:
            raise ImfaceError(list_path, f"rows {seen[name]} and {row_no}: duplicate scan name {name!r}")
        seen[name] = row_no
        landmarks = resolve(row["landmarks"], row_no, "landmarks") if str(row.get("landmarks") or "").strip() else None
        registered = (
            resolve(row["registered"], row_no, "registered") if str(row.get("registered") or "").strip() else None
        )
        scans.append(ScanSource(
            name=name, identity=identity, expression=expression, mesh_path=mesh, landmarks_path=landmarks,
            landmark_indices_path=None if landmarks else Path(landmark_indices), registered_path=registered,
        ))
    return scans


def discover_scans(
    path: str | os.PathLike, layout: str | None = None, landmark_indices: str | os.PathLike | None = None
) -> list[ScanSource]:
    """List the scans of a dataset, sorted by name (names are unique).

    path: dataset folder or .csv/.json list; layout: one of :data:`LAYOUTS` or None
    to detect; landmark_indices: vertex-index file for fixed-topology meshes
    (FaceScape; also used by list rows without a ``landmarks`` entry).
    """
    source = Path(path)
    layout = layout or detect_layout(source)
    if layout not in LAYOUTS:
        raise ImfaceError(source, f"unknown layout {layout!r} (expected one of {', '.join(LAYOUTS)})")
    indices = Path(landmark_indices) if landmark_indices else None
    if layout == "list":
        if source.is_dir():
            candidates = [source / "scans.csv", source / "scans.json"]
            found = [c for c in candidates if c.is_file()]
            if not found:
                raise ImfaceError(source, "list layout needs a .csv/.json file (or scans.csv in the folder)")
            source = found[0]
        scans = _list_scans(source, indices)
    elif not source.is_dir():
        raise ImfaceError(source, f"the {layout} layout needs a dataset folder")
    elif layout == "builtin":
        scans = _builtin_scans(source)
    else:
        scans = _facescape_scans(source, indices)
    if not scans:
        raise ImfaceError(source, f"no scans found ({layout} layout)")
    duplicates = sorted(n for n, count in Counter(s.name for s in scans).items() if count > 1)
    if duplicates:
        raise ImfaceError(source, f"duplicate scan names: {', '.join(duplicates[:5])}")
    return sorted(scans, key=lambda s: s.name)
