"""Dense correspondence through template space (paper Sec. 4.2), and its ground-truth errors.

Every fitted scan's surface points are mapped through ExpNet and IDNet into template space
(p'' = I(E(p))); two points of different scans correspond when they are nearest neighbours
there. Ground truth measures, in mm: *landmark transfer* (scan A's landmarks carried to scan
B, against B's own landmarks) and, where registered meshes with one shared vertex order
exist, *dense correspondence* error (A's registered vertex i carried to B, against B's
registered vertex i).

Fits folder contract (written by ``imface fit``): ``fits.json`` and per scan
``<scan>/codes.safetensors`` (id_code, exp_code, neutral, pose_rotation, pose_translation:
the pose maps the input/processed points into model space) and ``<scan>/mesh.ply``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree

from imface.contracts.dataset import read_scan_landmarks
from imface.contracts.fits import FITS_NAME, MESH_NAME, FittedCodes, read_fitted_scans
from imface.errors import ImfaceError
from imface.frame import MM_PER_UNIT
from imface.generate import Face, evaluate_at, safe_name, template_colors, write_mesh_sheet
from imface.io.atomic import save_npy, write_json
from imface.io.mesh import read_mesh, write_mesh
from imface.pretrained import Pretrained

#: Registered vertices farther than this from the origin (model units) are outside the face region.
FACE_REGION_RADIUS = 1.0
#: Extra points sampled on B's fitted mesh (besides its vertices) for landmark transfer.
TRANSFER_SAMPLES = 20000


@dataclass(frozen=True)
class FittedScan(FittedCodes):
    """One scan of a fits folder (:class:`imface.contracts.fits.FittedCodes`, codes on the model's
    device) with what correspondence needs: its face, fitted mesh and input-to-model transform."""

    @property
    def face(self) -> Face:
        return Face(self.name, self.id_code, self.exp_code, self.neutral)

    @property
    def mesh_path(self) -> Path:
        return self.folder / MESH_NAME

    def to_model_space(self, points: np.ndarray) -> np.ndarray:
        """Input-frame points (N, 3) -> model space (N, 3): R p + t."""
        return np.asarray(points, dtype=np.float64) @ self.pose_rotation.T + self.pose_translation


def load_fits(fits_dir: str | Path, scans: Sequence[str] | None = None, device: torch.device | str = "cpu") -> list[FittedScan]:
    """Fitted scans of a fits folder (all, or those named in ``scans``, in that order), codes on ``device``."""
    return [FittedScan(f.name, f.folder, f.id_code.to(device), f.exp_code.to(device), f.neutral, f.pose_rotation,
                       f.pose_translation, f.processed) for f in read_fitted_scans(fits_dir, scans)]


def to_template_space(pretrained: Pretrained, face: Face, points: np.ndarray) -> np.ndarray:
    """Model-space points (N, 3) of a face -> template space p'' (N, 3), model units."""
    return evaluate_at(pretrained, points, face)["template_points"].astype(np.float64)


def match_points(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest target point for every source point: indices (Ns,) int64 into target (Nt, 3)
    and the distances (Ns,) in the points' units."""
    distances, indices = cKDTree(np.asarray(target, dtype=np.float64)).query(np.asarray(source, dtype=np.float64))
    return indices.astype(np.int64), distances


def transfer_points(pretrained: Pretrained, a: Face, points_a: np.ndarray, b: Face, points_b: np.ndarray) -> np.ndarray:
    """Carry points of face A (Na, 3) to face B: for each, the point of ``points_b`` (Nb, 3)
    nearest in template space. Returns (Na, 3) model units."""
    indices, _ = match_points(to_template_space(pretrained, a, points_a), to_template_space(pretrained, b, points_b))
    return np.asarray(points_b)[indices]


def dense_samples(vertices: np.ndarray, faces: np.ndarray, count: int = TRANSFER_SAMPLES, seed: int = 0) -> np.ndarray:
    """A mesh's vertices plus ``count`` area-uniform surface samples (reproducible), (V + count, 3)."""
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    samples, _ = trimesh.sample.sample_surface(mesh, count, seed=seed)
    return np.concatenate([np.asarray(vertices, dtype=np.float64), samples])


class GroundTruth:
    """A fitted scan's ground truth mapped to template space once, for many pairs (lazy).

    landmarks: (68, 3) model space, mask (68,), template (68, 3); samples: B-side surface
    points (fitted mesh vertices + samples) in model and template space; registered: vertices
    (V, 3) model space, face-region indices (M,), their template points (M, 3).
    """

    def __init__(self, pretrained: Pretrained, scan: FittedScan) -> None:
        self.pretrained, self.scan = pretrained, scan
        self._cache: dict[str, tuple] = {}

    def has_landmarks(self) -> bool:
        return self.scan.processed is not None and (self.scan.processed / "landmarks.json").is_file()

    def has_registered(self) -> bool:
        return self.scan.processed is not None and (self.scan.processed / "registered.ply").is_file()

    def landmarks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if "landmarks" not in self._cache:
            if not self.has_landmarks():
                raise ImfaceError(self.scan.folder, "no processed scan folder with landmarks.json")
            points, mask = read_scan_landmarks(self.scan.processed)  # type: ignore[arg-type]
            model = self.scan.to_model_space(points)
            self._cache["landmarks"] = (model, mask, to_template_space(self.pretrained, self.scan.face, model))
        return self._cache["landmarks"]  # type: ignore[return-value]

    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        if "samples" not in self._cache:
            mesh = read_mesh(self.scan.mesh_path)
            points = dense_samples(mesh.vertices, mesh.faces)
            self._cache["samples"] = (points, to_template_space(self.pretrained, self.scan.face, points))
        return self._cache["samples"]  # type: ignore[return-value]

    def tree(self, kind: str) -> cKDTree:
        """KD-tree over the template points of ``samples`` or ``registered`` (built once)."""
        key = f"tree-{kind}"
        if key not in self._cache:
            self._cache[key] = (cKDTree(self.samples()[1] if kind == "samples" else self.registered()[2]),)
        return self._cache[key][0]

    def registered(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if "registered" not in self._cache:
            if not self.has_registered():
                raise ImfaceError(self.scan.folder, "no processed scan folder with registered.ply")
            model = self.scan.to_model_space(read_mesh(self.scan.processed / "registered.ply").vertices)  # type: ignore[operator]
            region = registered_face_vertices(model)
            self._cache["registered"] = (model, region, to_template_space(self.pretrained, self.scan.face, model[region]))
        return self._cache["registered"]  # type: ignore[return-value]


def landmark_transfer_errors(a: GroundTruth, b: GroundTruth) -> np.ndarray:
    """Distances (L,) in mm between A's landmarks carried to B through template space (nearest
    of B's dense surface samples) and B's own landmarks, over the landmarks both scans give."""
    _, mask_a, template_a = a.landmarks()
    landmarks_b, mask_b, _ = b.landmarks()
    both = mask_a & mask_b
    points_b, _ = b.samples()
    _, indices = b.tree("samples").query(template_a[both])
    return np.linalg.norm(points_b[indices] - landmarks_b[both], axis=1) * MM_PER_UNIT


def dense_correspondence_errors(a: GroundTruth, b: GroundTruth) -> np.ndarray:
    """For A's registered vertices i in the face region (within 1 unit of the origin): the
    distance (M,) in mm between B's registered vertex matched in template space and B's vertex i
    (registered meshes share one vertex order)."""
    vertices_a, region_a, template_a = a.registered()
    vertices_b, region_b, _ = b.registered()
    if len(vertices_a) != len(vertices_b):
        raise ImfaceError(b.scan.processed, f"registered meshes differ in vertex count ({len(vertices_a)} vs {len(vertices_b)})")
    _, matched = b.tree("registered").query(template_a)
    return np.linalg.norm(vertices_b[region_b[matched]] - vertices_b[region_a], axis=1) * MM_PER_UNIT


def registered_face_vertices(vertices: np.ndarray, radius: float = FACE_REGION_RADIUS) -> np.ndarray:
    """Indices (M,) of registered vertices (V, 3) within ``radius`` of the origin (the face region)."""
    return np.flatnonzero(np.linalg.norm(vertices, axis=1) <= radius)


def _stats(values: list[np.ndarray]) -> dict | None:
    if not values:
        return None
    joined = np.concatenate(values)
    return {"mean_mm": float(joined.mean()), "median_mm": float(np.median(joined)), "count": int(len(joined)),
            "pairs": len(values)}


def parse_pairs(text: str | None, names: Sequence[str]) -> list[tuple[str, str]]:
    """``"a:b,c:d"`` -> [(a, b), (c, d)]; None: the first scan with each other scan."""
    if not text:
        return [(names[0], other) for other in names[1:]] if len(names) > 1 else [(names[0], names[0])]
    pairs = []
    for item in text.split(","):
        a, sep, b = item.strip().partition(":")
        if not sep or not a or not b:
            raise ImfaceError(None, f"--pairs entries must look like scanA:scanB, got {item!r}")
        pairs.append((a, b))
    return pairs


def run_correspondence(
    pretrained: Pretrained,
    fits_dir: str | Path,
    out_dir: str | Path,
    pairs: Sequence[tuple[str, str]] | None = None,
    *,
    metric_pairs: str = "all",
    render: bool = True,
    sheet_pairs: int = 12,
) -> dict:
    """Correspondences between fitted scans, written under ``out_dir``, and their ground-truth errors.

    For each pair (a, b) (default: the first scan with each other one),
    ``out_dir/pairs/<a>__<b>/``: ``matches.npy`` (Va,) int64 index of b's matched mesh vertex
    for every vertex of a's fitted mesh, ``distances.npy`` (Va,) float32 template-space
    distance (model units), ``a.ply`` (a coloured by template coordinates), ``b.ply`` (b
    coloured by carrying a's colours through the correspondence), ``pair.json``; and
    ``out_dir/correspondence.png``. Metrics (landmark transfer, dense registered-vertex error)
    over all ordered pairs of distinct scans (``metric_pairs="all"``) or only ``pairs``
    ("listed"), in ``out_dir/correspondence.json``, which is also returned. The contact sheet
    shows the first ``sheet_pairs`` pairs.
    """
    fits_dir, out_dir = Path(fits_dir), Path(out_dir)
    scans = {s.name: s for s in load_fits(fits_dir, device=pretrained.device)}
    if not scans:
        raise ImfaceError(fits_dir / FITS_NAME, "lists no fitted scans")
    pairs = list(pairs) if pairs else parse_pairs(None, list(scans))
    missing = [n for pair in pairs for n in pair if n not in scans]
    if missing:
        load_fits(fits_dir, missing)  # raises with the nearest names
    meshes = {name: read_mesh(scans[name].mesh_path) for name in {n for pair in pairs for n in pair}}
    template = {name: to_template_space(pretrained, scans[name].face, mesh.vertices) for name, mesh in meshes.items()}
    pair_records, pictures = [], []
    for a, b in pairs:
        matches, distances = match_points(template[a], template[b])
        backward, _ = match_points(template[b], template[a])
        colors_a = template_colors(template[a])
        folder = out_dir / "pairs" / f"{safe_name(a)}__{safe_name(b)}"
        folder.mkdir(parents=True, exist_ok=True)
        save_npy(folder / "matches.npy", matches)
        save_npy(folder / "distances.npy", distances.astype(np.float32))
        write_mesh(folder / "a.ply", meshes[a].vertices, meshes[a].faces, colors_a)
        write_mesh(folder / "b.ply", meshes[b].vertices, meshes[b].faces, colors_a[backward])
        record = {"a": a, "b": b, "folder": str(folder.relative_to(out_dir)), "vertices_a": len(matches),
                  "vertices_b": len(backward), "mean_template_distance": float(distances.mean())}
        write_json(folder / "pair.json", record)
        pair_records.append(record)
        if len(pictures) < 2 * sheet_pairs:
            pictures += [(a, meshes[a].vertices, meshes[a].faces, colors_a),
                         (b, meshes[b].vertices, meshes[b].faces, colors_a[backward])]
    metrics = correspondence_metrics(pretrained, scans, pairs if metric_pairs == "listed" else None)
    summary = {"model": str(pretrained.path), "fits": str(fits_dir), "pairs": pair_records, **metrics}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "correspondence.json", summary)
    if render and pictures:
        write_mesh_sheet(out_dir / "correspondence.png", pictures, columns=2, title="template-space correspondence",
                    row_labels=[f"{a}\n-> {b}" for a, b in pairs[:len(pictures) // 2]],
                    col_labels=["A: template-space\nRGB", "B: A's colours\ncarried over"])
    return summary


def correspondence_metrics(
    pretrained: Pretrained, scans: dict[str, FittedScan], pairs: Sequence[tuple[str, str]] | None = None
) -> dict:
    """Landmark transfer and dense correspondence errors (mean/median mm) over ``pairs``
    (default: every ordered pair of distinct scans); a measure is None when no pair has its
    ground truth (processed landmarks.json / registered.ply)."""
    if pairs is None:
        pairs = [(a, b) for a in scans for b in scans if a != b]
    truth = {name: GroundTruth(pretrained, scan) for name, scan in scans.items()}
    landmark_errors, dense_errors, per_pair = [], [], []
    for a, b in pairs:
        ta, tb = truth[a], truth[b]
        record: dict = {"a": a, "b": b, "landmark_mean_mm": None, "dense_mean_mm": None}
        if ta.has_landmarks() and tb.has_landmarks():
            landmark_errors.append(landmark_transfer_errors(ta, tb))
            record["landmark_mean_mm"] = float(landmark_errors[-1].mean())
        if ta.has_registered() and tb.has_registered():
            dense_errors.append(dense_correspondence_errors(ta, tb))
            record["dense_mean_mm"] = float(dense_errors[-1].mean())
        per_pair.append(record)
    return {"landmark_transfer_error": _stats(landmark_errors), "dense_correspondence_error": _stats(dense_errors),
            "metric_pairs": len(pairs), "per_pair_metrics": per_pair}
