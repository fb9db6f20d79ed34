"""A fits folder: what ``imface fit`` and ``imface baseline fit`` write, and every verb reads.

Contract (``format_version`` 1), every file written atomically:

- ``DIR/fits.json``: ``{"format_version": 1, "model": "<path>", "method": "imface" | <baseline>,
  "same_identity": bool, "scans": [{"name", "folder", "neutral", "identity", "expression",
  "processed"}]}`` (``processed``: the processed scan folder the target came from, or null;
  ``method`` is absent in folders written before it existed and then means ``imface``).
- ``DIR/fits-part-<part>.json`` (e.g. ``fits-part-shard-0-of-4.json``): the same layout, written by
  one job of several that fit into one folder at once (``imface fit --shard``), so no two jobs
  write one file. The index of the folder is fits.json and every part merged by scan name
  (:func:`read_fits_index`; the newest file gives model, method and same_identity); a run
  without a part rewrites fits.json as that merge.
- ``DIR/<folder>/mesh.ply``: the fitted surface in model units (a baseline: its whole fitted
  mesh); ``mesh_raw.ply``: the same in the raw input's frame and unit, when there is one;
  ``mesh_cropped.ply`` (baselines): the fitted mesh cropped like the ground truth.
- ``DIR/<folder>/fit.json``: name, settings, losses or history, seconds, metrics, frames; its
  presence means the scan is done.
- ``DIR/<folder>/codes.safetensors`` (ImFace): ``id_code`` (d_id,), ``exp_code`` (d_exp,),
  ``neutral`` (1,) uint8, ``pose_rotation`` (3, 3) and ``pose_translation`` (3,), float32. The
  pose maps the input's points (model units, after the unit scale and the centring recorded in
  fit.json) into model space: ``p_model = R p + t``; identity when no pose was fitted.
- ``DIR/<folder>/loss_history.jsonl`` (ImFace): one JSON object of per-term losses per step.
- ``DIR/<folder>/target.ply``: for inputs without a processed scan (meshes, point sets), the
  input as fitted, in model space: what ``imface eval --fits DIR`` scores against without ``--data``.
- ``DIR/<folder>/preview.png`` and ``DIR/preview.png``: pictures (``--preview``).
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import safetensors.torch
import torch

from imface.errors import ImfaceError
from imface.io.atomic import atomic_path, write_json, write_text

FORMAT_VERSION = 1
FITS_NAME, FIT_NAME, CODES_NAME, HISTORY_NAME = "fits.json", "fit.json", "codes.safetensors", "loss_history.jsonl"
MESH_NAME, MESH_RAW_NAME, MESH_CROPPED_NAME, TARGET_NAME = "mesh.ply", "mesh_raw.ply", "mesh_cropped.ply", "target.ply"
PREVIEW_NAME = "preview.png"
FITS_PART_PREFIX = "fits-part-"
IMFACE_METHOD = "imface"
ENTRY_KEYS = ("name", "folder", "neutral", "identity", "expression", "processed")
CODE_TENSORS = ("id_code", "exp_code", "neutral", "pose_rotation", "pose_translation")


def fits_entry(name: str, folder: str, neutral: bool, identity: str | None, expression: str | None,
               processed: str | Path | None) -> dict[str, Any]:
    """One scan's entry of fits.json."""
    return {"name": name, "folder": folder, "neutral": bool(neutral), "identity": identity, "expression": expression,
            "processed": None if processed is None else str(processed)}


def write_codes(folder: Path, id_code: np.ndarray, exp_code: np.ndarray, neutral: bool,
                rotation: np.ndarray, translation: np.ndarray) -> None:
    """Write ``codes.safetensors`` (see the module docstring)."""
    tensors = {
        "id_code": torch.as_tensor(np.asarray(id_code, dtype=np.float32)).contiguous(),
        "exp_code": torch.as_tensor(np.asarray(exp_code, dtype=np.float32)).contiguous(),
        "neutral": torch.tensor([1 if neutral else 0], dtype=torch.uint8),
        "pose_rotation": torch.as_tensor(np.asarray(rotation, dtype=np.float32)).reshape(3, 3).contiguous(),
        "pose_translation": torch.as_tensor(np.asarray(translation, dtype=np.float32)).reshape(3).contiguous(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / CODES_NAME) as tmp:
        safetensors.torch.save_file(tensors, str(tmp), metadata={"format_version": str(FORMAT_VERSION)})


def read_codes(path: str | Path, *, require_pose: bool = True) -> dict[str, torch.Tensor]:
    """The tensors of a codes file (``path``: the file, or a scan folder holding ``codes.safetensors``).

    With ``require_pose`` False a file without the pose tensors (a hand-made codes file) reads
    with the identity pose. ImfaceError naming the file when it is missing or unreadable.
    """
    path = Path(path)
    path = path / CODES_NAME if path.is_dir() or path.suffix != ".safetensors" else path
    if not path.is_file():
        raise ImfaceError(path, "codes file not found")
    try:
        tensors = safetensors.torch.load_file(str(path))
    except Exception as err:  # safetensors has its own error types for corrupt files
        raise ImfaceError(path, f"not a readable safetensors file ({' '.join(str(err).split())})") from None
    if not require_pose:
        tensors.setdefault("pose_rotation", torch.eye(3))
        tensors.setdefault("pose_translation", torch.zeros(3))
    missing = sorted(set(CODE_TENSORS) - set(tensors))
    if missing:
        raise ImfaceError(path, f"missing tensors: {', '.join(missing)}")
    return tensors


@dataclass(frozen=True)
class FittedCodes:
    """One fitted scan as the fits folder records it: codes (float32, CPU), pose (model <- input
    frame, float64), its folder and the processed scan folder it was fitted to (or None)."""

    name: str
    folder: Path
    id_code: torch.Tensor
    exp_code: torch.Tensor
    neutral: bool
    pose_rotation: np.ndarray
    pose_translation: np.ndarray
    processed: Path | None


def fitted_codes(path: str | Path, name: str | None = None, processed: Path | None = None) -> FittedCodes:
    """A codes file (or a scan folder) as :class:`FittedCodes`; the pose is optional in the file."""
    path = Path(path)
    tensors = read_codes(path, require_pose=False)
    try:
        return FittedCodes(name or path.stem, path if path.is_dir() else path.parent,
                           tensors["id_code"].float().reshape(-1), tensors["exp_code"].float().reshape(-1),
                           bool(tensors["neutral"].reshape(-1)[0]),
                           tensors["pose_rotation"].double().numpy().reshape(3, 3),
                           tensors["pose_translation"].double().numpy().reshape(3), processed)
    except (RuntimeError, ValueError, IndexError) as err:  # wrong shapes
        raise ImfaceError(path, f"not a fitted-codes file with id_code, exp_code, neutral ({err})") from None


def fits_face(spec: str) -> tuple[Path, str] | None:
    """``(fits folder, scan)`` of a face named ``FITS_DIR:SCAN`` on the command line, when the
    folder exists; None for any other name (``IDENTITY``, ``IDENTITY+EXPRESSION``)."""
    folder, colon, scan = spec.rpartition(":")
    return (Path(folder), scan) if colon and Path(folder).is_dir() else None


def read_fitted_scans(fits_dir: str | Path, scans: Sequence[str] | None = None) -> list[FittedCodes]:
    """The fitted scans of a fits folder (all, or those named in ``scans``, in that order)."""
    fits_dir = Path(fits_dir)
    entries = {str(e["name"]): e for e in read_fits_index(fits_dir)["scans"]}
    loaded = []
    for name in (list(entries) if scans is None else list(scans)):
        if name not in entries:
            close = difflib.get_close_matches(name, list(entries), n=5, cutoff=0.0)
            raise ImfaceError(fits_dir / FITS_NAME, f"no fitted scan {name!r}; nearest: {', '.join(close) or '(none)'}")
        entry = entries[name]
        processed = Path(entry["processed"]) if entry.get("processed") else None
        if processed is not None and not processed.is_absolute() and (fits_dir / processed).is_dir():
            processed = fits_dir / processed  # a relative path is taken from the fits folder when it is there
        loaded.append(fitted_codes(fits_dir / str(entry.get("folder", name)), name, processed))
    return loaded


def has_codes(folder: str | Path) -> bool:
    return (Path(folder) / CODES_NAME).is_file()


def write_history(folder: Path, history: list[dict[str, float]]) -> None:
    write_text(folder / HISTORY_NAME, "".join(json.dumps(row) + "\n" for row in history))


def write_fit(folder: Path, record: dict[str, Any]) -> None:
    """Write ``<folder>/fit.json``: last of a scan's files, so its presence means the scan is done."""
    write_json(Path(folder) / FIT_NAME, record)


def read_fit(folder: str | Path) -> dict[str, Any] | None:
    """``<folder>/fit.json`` as a dict, or None when it does not exist or is unreadable."""
    path = Path(folder) / FIT_NAME
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def fits_part_name(part: str) -> str:
    """The file name of one job's part of the index (see the module docstring)."""
    if not part or "/" in part or "\\" in part:
        raise ImfaceError(None, f"an index part name is one plain word, got {part!r}")
    return f"{FITS_PART_PREFIX}{part}.json"


def write_fits_index(out_dir: Path, model_path: str, same_identity: bool, entries: list[dict[str, Any]],
                     method: str = IMFACE_METHOD, part: str | None = None) -> None:
    """Write ``fits.json`` merged with the folder's index and ``entries`` (by name); with ``part``,
    that job's own ``fits-part-<part>.json`` merged with only its own earlier entries, which no
    other job writes (jobs fitting one folder at once lose nothing)."""
    path = Path(out_dir) / (FITS_NAME if part is None else fits_part_name(part))
    if part is None:
        existing = read_fits_index(out_dir, missing_ok=True)
    else:
        existing = _read_index_file(path) if path.is_file() else None
    merged = {e["name"]: e for e in (existing or {}).get("scans", [])}
    merged.update({e["name"]: e for e in entries})
    write_json(path, {
        "format_version": FORMAT_VERSION,
        "model": str(model_path),
        "method": method,
        "same_identity": bool(same_identity),
        "scans": [merged[name] for name in sorted(merged)],
    })


def read_fits_index(out_dir: str | Path, missing_ok: bool = False) -> dict[str, Any] | None:
    """The folder's index: ``DIR/fits.json`` and its parts merged by scan name, each checked against
    the contract; ImfaceError naming the file when one is not (or, unless ``missing_ok``, when
    there is none)."""
    out_dir = Path(out_dir)
    files = [out_dir / FITS_NAME] if (out_dir / FITS_NAME).is_file() else []
    files += sorted(out_dir.glob(f"{FITS_PART_PREFIX}*.json"))
    if not files:
        if missing_ok:
            return None
        raise ImfaceError(out_dir / FITS_NAME, "missing: not a fits folder (run imface fit first)")
    indexes = [(path, _read_index_file(path)) for path in files]
    if len(indexes) == 1:
        return indexes[0][1]
    merged: dict[str, dict[str, Any]] = {}
    for _, index in indexes:
        merged.update({str(e["name"]): e for e in index["scans"]})
    newest = max(enumerate(indexes), key=lambda item: (_mtime(item[1][0]), item[0]))[1][1]  # ties: a part
    return {**newest, "scans": [merged[name] for name in sorted(merged)]}


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # replaced or removed by another job meanwhile
        return 0.0


def _read_index_file(path: Path) -> dict[str, Any]:
    """One index file checked against the contract."""
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ImfaceError(path, f"unreadable ({err})") from None
    if not isinstance(index, dict) or index.get("format_version") != FORMAT_VERSION:
        raise ImfaceError(path, f"expected format_version {FORMAT_VERSION}")
    scans = index.get("scans")
    if not isinstance(scans, list) or any(not isinstance(s, dict) or not set(ENTRY_KEYS) <= set(s) for s in scans):
        raise ImfaceError(path, f"every scan entry needs {', '.join(sorted(ENTRY_KEYS))}")
    index.setdefault("method", IMFACE_METHOD)
    return index
