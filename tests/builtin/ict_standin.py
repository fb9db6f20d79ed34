"""A synthetic stand-in for ICT-FaceKit's ``FaceXModel/`` folder, made by test code (no ICT data).

It has ICT's layout and sizes where the reader looks: ``generic_neutral_mesh.obj`` with all
26,719 vertices (centimetres, ``v``, ``vt`` and ``f v/vt`` lines), whose first 6,706 vertex ids
and first 6,560 polygons (quads, and a few quads split into triangles) are a face-shaped height
field with two eye holes and a mouth slit, followed by a back-of-head shell; ICT's 68 landmark
ids sit on the grid vertices nearest :data:`imface.frame.CANONICAL_LANDMARKS_MM` (the eye and
inner-lip ones on the rims of their holes). ``identity000.obj`` ... ``identity099.obj`` and one
OBJ per ARKit name in ``vertex_indices.json`` are the neutral plus smooth displacements; to keep
the stand-in small (about 25 MB) they hold only the face area's vertices, which is all the
reader parses. The jaw shapes move the face below the mouth as one piece. With these sizes the
reader runs with ICT's own FACE_VERTICES, FACE_POLYGONS, LANDMARK_IDS and IDENTITY_MODES (nothing
is monkeypatched). The face is in the canonical frame (nose tip at z = 40 mm), not ICT's.
"""
from __future__ import annotations

import json
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.interpolate import RBFInterpolator

from imface.builtin import ict
from imface.frame import CANONICAL_LANDMARKS_MM

#: ICT's 53 ARKit expression shapes, in vertex_indices.json's order.
EXPRESSION_NAMES = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R", "cheekPuff_L",
    "cheekPuff_R", "cheekSquint_L", "cheekSquint_R", "eyeBlink_L", "eyeBlink_R", "eyeLookDown_L", "eyeLookDown_R",
    "eyeLookIn_L", "eyeLookIn_R", "eyeLookOut_L", "eyeLookOut_R", "eyeLookUp_L", "eyeLookUp_R", "eyeSquint_L",
    "eyeSquint_R", "eyeWide_L", "eyeWide_R", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimple_L", "mouthDimple_R", "mouthFrown_L", "mouthFrown_R", "mouthFunnel", "mouthLeft", "mouthLowerDown_L",
    "mouthLowerDown_R", "mouthPress_L", "mouthPress_R", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmile_L", "mouthSmile_R", "mouthStretch_L",
    "mouthStretch_R", "mouthUpperUp_L", "mouthUpperUp_R", "noseSneer_L", "noseSneer_R")
#: The folder the archives hold, as GitHub's archive of a commit holds ``ICT-FaceKit-<commit>/``.
CLONE_NAME = "ICT-FaceKit-standin"
#: The jaw shapes: the face below the mouth moves as one piece by this vector, mm.
JAW_MOTION_MM = {"jawOpen": (0.0, -14.0, -5.0), "jawLeft": (6.0, 0.0, 0.0), "jawRight": (-6.0, 0.0, 0.0),
                 "jawForward": (0.0, 0.0, 5.0)}
_DX, _DY = 2.0, 31.3 / 15  # grid spacing, mm: row -15 runs through the mouth slit
_COLUMNS, _ROWS = range(-38, 39), range(-46, 44)
_EYE_SEMI_AXES = (11.0, 2.6)  # mm, about the mean of each eye's six landmarks
_MOUTH_ROW, _MOUTH_HALF_COLUMNS = -15, 10
_TAIL_GRID = 141  # the back-of-head shell: 141 x 141 of the 20,013 vertex ids past the face area


@dataclass(frozen=True)
class StandinFace:
    """The stand-in's neutral face area in ICT's vertex order: positions mm and polygons (0-based ids)."""

    vertices_mm: np.ndarray  #: (FACE_VERTICES, 3) float64
    polygons: list[list[int]]  #: FACE_POLYGONS quads and triangles, counter-clockwise seen from the front
    eye_rims: tuple[np.ndarray, np.ndarray]  #: vertex ids on the right (x < 0) and left eye hole's rims
    mouth_rim: np.ndarray  #: vertex ids on the mouth slit's rim


def _height_field(points_xy: np.ndarray) -> np.ndarray:
    """z (mm) of a face: a thin-plate spline through the canonical landmarks and a few anchors."""
    lmk = CANONICAL_LANDMARKS_MM
    anchors = [(x, y, z) for x, y, z in [(0, 85, 8), (-35, 80, -8), (35, 80, -8), (-60, 75, -45), (60, 75, -45),
                                         (0, 68, 12), (-25, 66, 6), (25, 66, 6), (0, 45, 17),
                                         (-40, 10, -2), (40, 10, -2), (-30, -10, 2), (30, -10, 2),
                                         (-80, 60, -85), (80, 60, -85), (-80, -20, -80), (80, -20, -80),
                                         (-70, -80, -75), (70, -80, -75), (-40, -95, -50), (40, -95, -50),
                                         (0, -97, -15), (0, -88, -4), (0, 5, 39.3), (0, -5, 35)]]
    known = np.concatenate([lmk, np.array(anchors, dtype=np.float64)])
    spline = RBFInterpolator(known[:, :2], known[:, 2], kernel="thin_plate_spline", smoothing=0.5)
    tip = np.sum((points_xy - lmk[30, :2]) ** 2, axis=1)
    return spline(points_xy) + 1.0 * np.exp(-tip / (2 * 2.0 ** 2))  # the nose tip is the frontmost point


def _grid() -> tuple[dict[tuple[int, int], np.ndarray], list[tuple[int, int]], list[np.ndarray]]:
    """Grid vertices by (column, row) without the holes, their quads (lower-left corners), eye centres."""
    lmk = CANONICAL_LANDMARKS_MM
    eyes = [lmk[36:42, :2].mean(0), lmk[42:48, :2].mean(0)]
    keep = {}
    for c in _COLUMNS:
        for r in _ROWS:
            x, y = c * _DX, r * _DY
            in_eye = any(((x - e[0]) / _EYE_SEMI_AXES[0]) ** 2 + ((y - e[1]) / _EYE_SEMI_AXES[1]) ** 2 < 1
                         for e in eyes)
            in_mouth = r == _MOUTH_ROW and abs(c) <= _MOUTH_HALF_COLUMNS
            if not (in_eye or in_mouth):
                keep[(c, r)] = np.array([x, y])
    quads = [(c, r) for c in _COLUMNS[:-1] for r in _ROWS[:-1]
             if all(k in keep for k in ((c, r), (c + 1, r), (c + 1, r + 1), (c, r + 1)))]
    return keep, quads, eyes


def _corners(c: int, r: int) -> list[tuple[int, int]]:
    return [(c, r), (c + 1, r), (c + 1, r + 1), (c, r + 1)]


def _trim(quads: list[tuple[int, int]], target: int) -> list[tuple[int, int]]:
    """Drop bottom-left rim quads until ``target`` grid vertices carry a quad (one vertex per quad)."""
    quads = sorted(quads, key=lambda q: (q[1], q[0]))
    used = {v for q in quads for v in _corners(*q)}
    count = {v: 0 for v in used}
    for q in quads:
        for v in _corners(*q):
            count[v] += 1
    while len(used) > target:
        for index, q in enumerate(quads):
            lone = [v for v in _corners(*q) if count[v] == 1]
            if len(lone) == 1:  # a rim corner: dropping the quad frees exactly that vertex
                break
        else:  # pragma: no cover - the grid always has such a corner
            raise AssertionError("no rim corner left to trim")
        for v in _corners(*quads.pop(index)):
            count[v] -= 1
        used.discard(lone[0])
    return quads


def _rim(keep: dict, quads: list[tuple[int, int]], inside) -> list[tuple[int, int]]:
    """Grid vertices of a hole's rim: used by a quad and next to a removed vertex for which ``inside`` holds."""
    used = {v for q in quads for v in _corners(*q)}
    out = []
    for (c, r) in used:
        around = [(c + i, r + j) for i in (-1, 0, 1) for j in (-1, 0, 1)]
        if any(v not in keep and inside(v) for v in around):
            out.append((c, r))
    return out


@lru_cache(maxsize=1)
def standin_face() -> StandinFace:
    """The stand-in's face area (built once per process, about a second)."""
    keep, quads, eyes = _grid()
    quads = _trim(quads, ict.FACE_VERTICES)
    if len(quads) > ict.FACE_POLYGONS:
        raise AssertionError(f"the grid has {len(quads)} quads, more than ICT's {ict.FACE_POLYGONS} polygons")
    used = sorted({v for q in quads for v in _corners(*q)}, key=lambda v: (v[1], v[0]))
    xy = np.array([keep[v] for v in used])
    points = np.column_stack([xy, _height_field(xy)])
    slot = {v: k for k, v in enumerate(used)}

    def near_eye(v, e):
        return abs(v[0] * _DX - e[0]) < 2 * _EYE_SEMI_AXES[0] and abs(v[1] * _DY - e[1]) < 4 * _EYE_SEMI_AXES[1]

    eye_rims = [[slot[v] for v in _rim(keep, quads, lambda v, e=e: near_eye(v, e))] for e in eyes]
    mouth_rim = [slot[v] for v in _rim(keep, quads, lambda v: v[1] == _MOUTH_ROW and abs(v[0]) <= 12)]
    # Landmarks: nearest free vertex, the eye and inner-lip ones among their hole's rim.
    taken: set[int] = set()
    landmark_slot = []
    for k, target in enumerate(CANONICAL_LANDMARKS_MM):
        pool = (eye_rims[0] if 36 <= k < 42 else eye_rims[1] if 42 <= k < 48 else
                mouth_rim if k >= 60 else range(len(used)))
        pool = [s for s in pool if s not in taken]
        best = pool[int(np.argmin(np.linalg.norm(points[pool, :2] - target[:2], axis=1)))]
        taken.add(best)
        landmark_slot.append(best)
    # ICT's ids: the landmark ids where ICT has them, the other ids in row order.
    ids = np.full(len(used), -1, dtype=np.int64)
    ids[landmark_slot] = ict.LANDMARK_IDS
    ids[ids < 0] = sorted(set(range(ict.FACE_VERTICES)) - set(ict.LANDMARK_IDS))
    vertices = np.empty_like(points)
    vertices[ids] = points
    polygons = [[int(ids[slot[v]]) for v in _corners(*q)] for q in quads]
    split = len(polygons) - (ict.FACE_POLYGONS - len(polygons))  # the last quads become triangles: 6,560 in all
    polygons = polygons[:split] + [t for a, b, c, d in polygons[split:] for t in ([a, b, c], [a, c, d])]
    return StandinFace(vertices_mm=vertices, polygons=polygons,
                       eye_rims=tuple(ids[np.array(rim)] for rim in eye_rims), mouth_rim=ids[np.array(mouth_rim)])


def _tail() -> tuple[np.ndarray, list[list[int]]]:
    """The back of the head: ids FACE_VERTICES.., a shell of quads behind the face, in mm."""
    count = ict.TOTAL_VERTICES - ict.FACE_VERTICES
    u, v = np.meshgrid(np.linspace(-1.2, 1.2, _TAIL_GRID), np.linspace(-1.0, 1.0, _TAIL_GRID), indexing="ij")
    shell = np.stack([80 * np.sin(u), 100 * v, -90 - 70 * np.cos(u)], axis=-1).reshape(-1, 3)
    points = np.concatenate([shell, np.tile([0.0, 0.0, -90.0], (count - len(shell), 1))])
    base = ict.FACE_VERTICES
    polygons = [[base + i * _TAIL_GRID + j, base + (i + 1) * _TAIL_GRID + j, base + (i + 1) * _TAIL_GRID + j + 1,
                 base + i * _TAIL_GRID + j + 1] for i in range(_TAIL_GRID - 1) for j in range(_TAIL_GRID - 1)]
    return points, polygons


def _smooth_field(points: np.ndarray, seed: int, rms_mm: float) -> np.ndarray:
    """A smooth random displacement (V, 3) mm: a few plane waves of 50-150 mm."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(6, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    phases = points @ (directions.T * (2 * np.pi / rng.uniform(50.0, 150.0, 6))) + rng.uniform(0, 2 * np.pi, 6)
    field = np.cos(phases) @ rng.normal(size=(6, 3))
    return field * rms_mm / np.sqrt((field ** 2).sum(1).mean())


def shape_displacement(name: str, vertices_mm: np.ndarray) -> np.ndarray:
    """The stand-in's displacement (V, 3) mm of the shape ``name`` (identity000 ... or an ARKit name)."""
    if name.startswith("identity"):
        k = int(name[len("identity"):])
        return _smooth_field(vertices_mm, 1000 + k, 3.0 / (1.0 + k / 10.0))
    lmk = vertices_mm[list(ict.LANDMARK_IDS)]
    below = np.clip((lmk[62, 1] - 1.0 - vertices_mm[:, 1]) / 6.0, 0.0, 1.0)  # the jaw: the lower lip and down
    if name in JAW_MOTION_MM:
        return below[:, None] * np.array(JAW_MOTION_MM[name])
    # Anything else: a smooth bump around a landmark region, on the named side.
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    region = {"brow": range(17, 27), "cheek": range(1, 16), "eye": range(36, 48), "nose": range(31, 36)}
    ids = next((list(r) for key, r in region.items() if name.startswith(key)), list(range(48, 68)))
    centre = lmk[ids].mean(0) + rng.uniform(-8.0, 8.0, 3)  # each shape its own place and size
    if name.endswith(("_L", "_R")):  # a _L / _R pair mirrors one bump
        centre = lmk[ids].mean(0) + np.random.default_rng(zlib.crc32(name[:-2].encode())).uniform(-8.0, 8.0, 3)
        centre[0] = abs(centre[0]) + 10.0 if name.endswith("_L") else -abs(centre[0]) - 10.0
    sigma = rng.uniform(10.0, 20.0)
    weight = np.exp(-np.sum((vertices_mm - centre) ** 2, axis=1) / (2 * sigma ** 2))
    return weight[:, None] * rng.uniform(-4.0, 4.0, 3)


def _obj(vertices_cm: np.ndarray, polygons: list[list[int]] | None = None, uv: bool = False) -> str:
    """OBJ text in ICT's style: a comment header, ``v`` lines and, for the neutral, ``vt`` and ``f v/vt``."""
    lines = ["# ICT FaceKit stand-in (synthetic, made by imface's tests)", "mtllib ICTFaceModelMaterial.mtl"]
    text = "\n".join(lines) + "\n" + ("v %.4f %.4f %.4f\n" * len(vertices_cm)) % tuple(vertices_cm.ravel())
    if uv:
        uvs = np.column_stack([np.linspace(0, 1, len(vertices_cm)), np.linspace(1, 0, len(vertices_cm))])
        text += ("vt %.5f %.5f\n" * len(uvs)) % tuple(uvs.ravel())
    if polygons is not None:
        text += "usemtl M_Face\n"
        text += "".join("f " + " ".join(f"{i + 1}/{i + 1}" for i in p) + "\n" for p in polygons)
    return text


def write_standin(root: Path, skip: tuple[str, ...] = ()) -> Path:
    """Write the stand-in clone ``root`` (``root/FaceXModel/...``) and return ``root``.

    ``skip`` leaves out those files (e.g. ``"identity042.obj"``), for the reader's error paths.
    """
    face = standin_face()
    folder = Path(root) / ict.MODEL_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    tail, tail_polygons = _tail()
    files = {ict.INDEX_FILE: json.dumps({"expressions": list(EXPRESSION_NAMES), "incompatibilities": []}),
             "ICTFaceModelMaterial.mtl": "newmtl M_Face\nKd 0.8 0.8 0.8\n",
             ict.NEUTRAL_FILE: _obj(np.concatenate([face.vertices_mm, tail]) / ict.MM_PER_ICT_UNIT,
                                    face.polygons + tail_polygons, uv=True)}
    for name in [f"identity{k:03d}" for k in range(ict.IDENTITY_MODES)] + list(EXPRESSION_NAMES):
        if f"{name}.obj" not in skip:
            shape = face.vertices_mm + shape_displacement(name, face.vertices_mm)
            files[f"{name}.obj"] = _obj(shape / ict.MM_PER_ICT_UNIT)
    for name, text in files.items():
        if name not in skip:
            (folder / name).write_text(text)
    (Path(root) / "README.md").write_text("ICT-FaceKit stand-in for imface's tests\n")
    return Path(root)


def make_archive(root: Path, kind: str = "tar.gz") -> Path:
    """``root`` (a clone) as ``<root>.tar.gz`` or ``<root>.zip`` beside it, its files under ``<root name>/``."""
    root = Path(root)
    target = root.parent / f"{root.name}.{kind}"
    files = sorted(p for p in root.rglob("*") if p.is_file())
    if kind == "tar.gz":
        with tarfile.open(target, "w:gz", compresslevel=1) as archive:
            archive.add(root, arcname=root.name)
    elif kind == "zip":
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            for path in files:
                archive.write(path, f"{root.name}/{path.relative_to(root).as_posix()}")
    else:
        raise ValueError(f"unknown archive kind {kind!r}")
    return target


def standin_clone(base: Path) -> Path:
    """The stand-in clone under ``base`` (a session's temporary folder), written once and then reused."""
    root = Path(base) / "ict-standin" / CLONE_NAME
    done = root.parent / "complete"
    if not done.is_file():
        write_standin(root)
        make_archive(root, "tar.gz")
        make_archive(root, "zip")
        done.write_text("ok\n")
    return root


def standin_archive(base: Path, kind: str = "tar.gz") -> Path:
    """The stand-in clone's archive (``tar.gz`` or ``zip``) under ``base``, written once and then reused."""
    root = standin_clone(base)
    return root.parent / f"{root.name}.{kind}"
