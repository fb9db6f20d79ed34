"""Learning curves during training: how well the model fits a few training scans, on points
the optimiser never sees, and as a surface.

Every ``train.curve_every_steps`` steps the trainer calls :meth:`CurveProbe.measure`, which
for ``train.curve_scans`` training scans (decoded with their own, current codes) computes:

- on the scan's held-back samples (the last ``data.holdout_points`` rows of its surface and
  space arrays, which the loader never draws): the mean |f| on the surface and |f - s| in
  space (mm), the mean normal angle on the surface (degrees), and the mean Eikonal error
  | |grad f| - 1 |;
- the Chamfer distance and F-score@1mm of the decoded surface (marching cubes at
  ``train.curve_resolution``, cropped like the ground truth) against the scan, without ICP
  (the codes carry the pose), from exact point-to-mesh distances: samples of the decoded
  surface to the scan's ``mesh.ply``, and the scan's surface samples to the decoded surface.
  (Nearest-neighbour distances between two sets of 20k samples would add a floor of about
  0.7 mm from the sample spacing alone.) A scan folder without ``mesh.ply`` has no Chamfer.

Records go to ``curves.jsonl`` in the experiment folder (one JSON object per measurement,
with the step, the epoch and the training seconds so far) and to TensorBoard under
``curve/``. :func:`curve_trend` says whether a curve is still falling.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imface.contracts.dataset import MESH_NAME
from imface.dataset import CodeTables, FaceScanDataset, ScanRecord
from imface.frame import MM_PER_UNIT
from imface.io.mesh import read_mesh
from imface.io.plots import pyplot, save_figure
from imface.ops.ground_truth_crop import crop_like_ground_truth
from imface.ops.marching_cubes import EmptySurfaceError, extract_mesh
from imface.ops.metrics import fscore
from imface.ops.sdf_sampling import sample_surface, signed_distance
from imface.training.writer import CURVES_JSONL, read_jsonl

#: Held-back rows read per scan and array (all of them when fewer are held back).
PROBE_POINTS = 2048
#: Samples per mesh for the probe's Chamfer.
PROBE_MESH_POINTS = 20_000


def choose_probe_scans(scans: list[ScanRecord], count: int) -> list[int]:
    """Indices of ``count`` training scans: the first neutral one, then non-neutral scans evenly
    spaced over the (sorted) list, so the probe sees both kinds. Deterministic."""
    if count <= 0 or not scans:
        return []
    neutral = [i for i, s in enumerate(scans) if s.neutral]
    other = [i for i, s in enumerate(scans) if not s.neutral]
    chosen = neutral[:1]
    wanted = min(count - len(chosen), len(other))
    chosen += [other[(k * len(other)) // max(1, wanted)] for k in range(wanted)]
    if len(chosen) < count:  # too few non-neutral scans: top up with neutral ones
        chosen += [i for i in neutral[1:] if i not in chosen][: count - len(chosen)]
    return sorted(chosen)


@dataclass
class _ProbeScan:
    record: ScanRecord
    identity_row: int
    expression_row: int
    surface: torch.Tensor  # (n, 3) held-back surface points
    normals: torch.Tensor  # (n, 3)
    space: torch.Tensor  # (m, 3) held-back space points
    space_sdf: torch.Tensor  # (m,)
    truth: np.ndarray  # (PROBE_MESH_POINTS, 3) surface samples of the scan, model units
    mesh: tuple[np.ndarray, np.ndarray] | None  # the scan's mesh.ply (vertices, faces), if any


class CurveProbe:
    """Measures the learning-curve figures of a few training scans (see the module docstring)."""
    def __init__(self, dataset: FaceScanDataset, codes: CodeTables, count: int, resolution: int,
                 device: torch.device) -> None:
        self.resolution = int(resolution)
        self.device = device
        self.scans: list[_ProbeScan] = []
        for index in choose_probe_scans(dataset.scans, count):
            record = dataset.scans[index]
            held = dataset.held_back(index, PROBE_POINTS)
            self.scans.append(_ProbeScan(
                record, codes.identities[record.identity], codes.expression_row(record),
                *(torch.tensor(held[k], device=device) for k in ("surface_points", "surface_normals", "space_points", "space_sdf")),
                dataset.surface_sample(index, PROBE_MESH_POINTS), _read_mesh(record.folder)))

    @torch.no_grad()
    def measure(self, model: torch.nn.Module) -> dict[str, float]:
        """The probe's figures, averaged over its scans (keys: ``surface_sdf_mm``, ``space_sdf_mm``,
        ``normal_deg``, ``eikonal``, ``chamfer_mm``, ``fscore@1mm``, ``seconds``)."""
        started = time.perf_counter()
        module = getattr(model, "module", model)
        was_training = module.training
        module.eval()
        rows: list[dict[str, float]] = []
        try:
            for scan in self.scans:
                id_code = module.identity_codes.weight[scan.identity_row]
                exp_code = module.expression_codes.weight[scan.expression_row]
                neutral = torch.tensor([scan.record.neutral], device=self.device)
                points = torch.cat((scan.surface, scan.space))[None]
                out = module.evaluate(points, id_code[None], exp_code[None], neutral, with_gradients=True)
                n = len(scan.surface)
                sdf, grad = out.sdf[0], out.gradient[0]
                cosine = torch.nn.functional.cosine_similarity(grad[:n], scan.normals, dim=-1).clamp(-1, 1)
                row = {
                    "surface_sdf_mm": float(sdf[:n].abs().mean()) * MM_PER_UNIT,
                    "space_sdf_mm": float((sdf[n:] - scan.space_sdf).abs().mean()) * MM_PER_UNIT,
                    "normal_deg": float(torch.rad2deg(torch.acos(cosine)).mean()),
                    "eikonal": float((grad.norm(dim=-1) - 1).abs().mean()),
                }
                row.update({"chamfer_mm": math.nan, "fscore@1mm": math.nan})
                try:
                    mesh = extract_mesh(module.face_sdf(id_code, exp_code, scan.record.neutral),
                                        self.resolution, device=self.device)
                    vertices, faces = crop_like_ground_truth(mesh.vertices, mesh.faces)
                except (EmptySurfaceError, ValueError):  # no surface yet (early in training)
                    vertices = None
                if vertices is not None and scan.mesh is not None:
                    samples, _ = sample_surface(vertices, faces, len(scan.truth), np.random.default_rng(0))
                    rec_to_gt = np.abs(signed_distance(samples, *scan.mesh)[0]) * MM_PER_UNIT
                    gt_to_rec = np.abs(signed_distance(scan.truth, vertices, faces)[0]) * MM_PER_UNIT
                    row.update({"chamfer_mm": 0.5 * float(rec_to_gt.mean() + gt_to_rec.mean()),
                                "fscore@1mm": fscore(gt_to_rec, rec_to_gt, 1.0)})
                rows.append(row)
        finally:
            module.train(was_training)
        result = {key: float(np.mean([r[key] for r in rows])) for key in rows[0]} if rows else {}
        result["seconds"] = time.perf_counter() - started
        return result


def _read_mesh(folder: Path) -> tuple[np.ndarray, np.ndarray] | None:
    path = folder / MESH_NAME
    if not path.is_file():
        return None
    mesh = read_mesh(path)
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)


def curve_trend(steps: list[float], values: list[float], *, tail: float = 0.5, threshold: float = 0.02) -> str:
    """Whether a curve is still ``falling``, has ``flattened`` or is ``rising`` over its last
    ``tail`` fraction: the least-squares slope there, times that span, relative to the mean
    value there; below -``threshold`` is falling, above ``threshold`` rising. Curves with fewer
    than 3 finite points in the tail are ``too short``."""
    pairs = [(s, v) for s, v in zip(steps, values) if v is not None and math.isfinite(v)]
    if not pairs:
        return "too short"
    start = pairs[-1][0] - tail * (pairs[-1][0] - pairs[0][0])
    window = [(s, v) for s, v in pairs if s >= start]
    if len(window) < 3:
        return "too short"
    x, y = np.array(window, dtype=float).T
    slope = np.polyfit(x, y, 1)[0]
    change = slope * (x[-1] - x[0]) / max(abs(float(y.mean())), 1e-12)
    if change < -threshold:
        return "falling"
    return "rising" if change > threshold else "flattened"


def curve_record(step: int, epoch: int, train_seconds: float, figures: dict[str, Any]) -> dict[str, Any]:
    """One ``curves.jsonl`` line."""
    return {"step": step, "epoch": epoch, "train_seconds": round(train_seconds, 3), **figures}


def read_curves(exp_dir: str | Path) -> list[dict[str, Any]]:
    return read_jsonl(Path(exp_dir) / CURVES_JSONL)


#: The learning-curve picture of an experiment folder.
CURVES_PNG = "learning_curves.png"


def plot_learning_curves(records: list[dict[str, Any]], png_path: str | Path) -> bool:
    """The probe's figures against the step: Chamfer (with its trend), SDF errors, normal angle and
    Eikonal error. False when there is nothing to plot."""
    if not records:
        return False
    plt = pyplot()

    steps = [r["step"] for r in records]

    def series(key: str) -> list[float]:
        return [float(r.get(key, math.nan)) for r in records]

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), dpi=100)
    chamfer = series("chamfer_mm")
    axes[0].plot(steps, chamfer, marker=".")
    axes[0].set(ylabel="Chamfer (mm)", title=f"training scans, own codes: {curve_trend(steps, chamfer)}")
    finite = [c for c in chamfer if math.isfinite(c)]
    if finite:
        axes[0].set_ylim(0, min(max(finite), 4 * finite[-1]) * 1.05)
    for key, label in (("surface_sdf_mm", "|f| on the surface"), ("space_sdf_mm", "|f - s| in space")):
        axes[1].plot(steps, series(key), marker=".", label=label)
    axes[1].set(ylabel="mm", yscale="log", title="held-back samples")
    axes[2].plot(steps, series("normal_deg"), marker=".", label="normal angle (deg)")
    twin = axes[2].twinx()
    twin.plot(steps, series("eikonal"), color="tab:red", marker=".", label="| |grad f| - 1 |")
    twin.set_ylabel("Eikonal error", color="tab:red")
    axes[2].set(ylabel="degrees", title="normals and Eikonal")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, png_path)
    return True
