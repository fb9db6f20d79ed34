"""Training logs: TensorBoard scalars and SDF slice images, ``logs/losses.jsonl``, loss-curve PNG.

Only rank 0 writes; on other ranks :class:`RunWriter` is created with ``enabled=False``
and every method does nothing.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imface.io.plots import pyplot, save_figure
from imface.io.atomic import write_text

LOG_DIR = "logs"
LOSSES_NAME = "losses.jsonl"
EVENTS_NAME = "events.jsonl"
CURVES_NAME = "loss_curves.png"
#: Learning curves (imface.training.curves), in the experiment folder itself.
CURVES_JSONL = "curves.jsonl"


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Records of a JSON-lines file; a torn last line (killed mid-write) is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def truncate_jsonl(path: str | Path, last_step: int) -> None:
    """Drop records after ``last_step`` (written after the checkpoint a run resumes from)."""
    path = Path(path)
    if path.is_file():
        kept = [r for r in read_jsonl(path) if int(r.get("step", 0)) <= last_step]
        write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


class RunWriter:
    """Per-step records (JSON lines, flushed each step) and TensorBoard events under ``<exp_dir>/logs``."""

    def __init__(self, exp_dir: str | Path, *, enabled: bool = True, start_step: int = 0) -> None:
        self.enabled = enabled
        self.log_dir = Path(exp_dir) / LOG_DIR
        self._tb = None
        self.curves_path = Path(exp_dir) / CURVES_JSONL
        self._losses = self._events = self._curves = None
        if not enabled:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for path in (self.log_dir / LOSSES_NAME, self.log_dir / EVENTS_NAME, self.curves_path):
            truncate_jsonl(path, start_step)
        from torch.utils.tensorboard import SummaryWriter  # imported late: it pulls in tensorboard

        # purge_step hides events a killed run wrote after the checkpoint we resume from.
        self._tb = SummaryWriter(str(self.log_dir), purge_step=start_step if start_step > 0 else None)
        self._losses = open(self.log_dir / LOSSES_NAME, "a", encoding="utf-8")
        self._events = open(self.log_dir / EVENTS_NAME, "a", encoding="utf-8")
        self._curves = open(self.curves_path, "a", encoding="utf-8")

    def log_step(self, step: int, epoch: int, losses: dict[str, float], lrs: dict[str, float],
                 grad_norm: float, seconds: float) -> None:
        if not self.enabled:
            return
        record = {"step": step, "epoch": epoch, **{f"loss/{k}": v for k, v in losses.items()},
                  **{f"lr/{k}": v for k, v in lrs.items()}, "grad_norm": grad_norm, "seconds": seconds}
        self._losses.write(json.dumps(record) + "\n")
        self._losses.flush()
        for key, value in record.items():
            if key not in ("step",):
                self._tb.add_scalar(key, value, step)

    def log_event(self, step: int, kind: str, message: str, **extra: Any) -> None:
        if not self.enabled:
            return
        self._events.write(json.dumps({"step": step, "kind": kind, "message": message, **extra}) + "\n")
        self._events.flush()
        self._tb.add_text(f"events/{kind}", message, step)

    def log_curve(self, record: dict[str, Any]) -> None:
        """One learning-curve measurement (``step`` plus figures) to curves.jsonl and TensorBoard ``curve/*``."""
        if not self.enabled:
            return
        self._curves.write(json.dumps(record) + "\n")
        self._curves.flush()
        for key, value in record.items():
            if key not in ("step", "epoch") and isinstance(value, (int, float)):
                self._tb.add_scalar(f"curve/{key}", value, record["step"])

    def log_image(self, tag: str, image: np.ndarray, step: int) -> None:
        """image: (3,H,W) float in [0,1]."""
        if self.enabled:
            self._tb.add_image(tag, image, step, dataformats="CHW")

    def flush(self) -> None:
        if self.enabled:
            self._tb.flush()

    def close(self) -> None:
        if self.enabled:
            self._tb.close()
            self._losses.close()
            self._events.close()
            self._curves.close()
            self.enabled = False


def _colourise(sdf: np.ndarray, clip: float) -> np.ndarray:
    """(H,W) SDF -> (3,H,W) RGB: blue inside, red outside, black on the zero level set."""
    # here, not at the top: matplotlib is heavy and only slices need it
    from matplotlib import colormaps

    rgb = colormaps["RdBu_r"](np.clip(sdf / clip, -1.0, 1.0) * 0.5 + 0.5)[..., :3]
    band = np.abs(sdf) < clip * 0.03
    rgb[band] = 0.0
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)


@torch.no_grad()
def sdf_slice_image(model: torch.nn.Module, id_code: torch.Tensor, exp_code: torch.Tensor, neutral: bool,
                    *, resolution: int = 96, z_plane: float = 0.2, clip: float = 0.2) -> np.ndarray:
    """Two SDF slices of one face side by side: the profile plane x=0 (horizontal axis z, toward
    the viewer to the right) and the frontal plane z=``z_plane`` (horizontal axis x).

    id_code: (d_id,), exp_code: (d_exp,) on the model's device. Both planes span [-1,1]^2
    model units with y up. Returns (3, resolution, 2*resolution) float in [0,1].
    """
    module = getattr(model, "module", model)
    device = id_code.device
    axis = torch.linspace(-1.0, 1.0, resolution, device=device)
    vert, horiz = torch.meshgrid(axis.flip(0), axis, indexing="ij")  # row 0 at the top (y = +1)
    zeros = torch.zeros_like(vert)
    profile = torch.stack([zeros, vert, horiz], dim=-1).reshape(1, -1, 3)
    frontal = torch.stack([horiz, vert, torch.full_like(vert, z_plane)], dim=-1).reshape(1, -1, 3)
    points = torch.cat([profile, frontal], dim=1)
    was_training = module.training
    module.eval()
    try:
        sdf = module.sdf(points, id_code[None], exp_code[None], torch.tensor([neutral], device=device))
    finally:
        module.train(was_training)
    sdf = sdf.reshape(2, resolution, resolution).float().cpu().numpy()
    return np.concatenate([_colourise(sdf[0], clip), _colourise(sdf[1], clip)], axis=2)


def plot_loss_curves(losses_jsonl: str | Path, png_path: str | Path) -> bool:
    """Plot every ``loss/*`` term against the step (log scale) into a PNG; False if nothing was logged."""
    records = read_jsonl(losses_jsonl)
    if not records:
        return False
    plt = pyplot()

    steps = np.array([r["step"] for r in records])
    terms = sorted({k for r in records for k in r if k.startswith("loss/")}, key=lambda k: (k != "loss/total", k))
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    for term in terms:
        values = np.array([r.get(term, np.nan) for r in records], dtype=float)
        values = np.where(values > 0, values, np.nan)  # log axis: zero/disabled terms are left out
        if np.isfinite(values).any():
            ax.plot(steps, values, label=term.removeprefix("loss/"), linewidth=2.0 if term == "loss/total" else 1.0)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("weighted loss")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, png_path)
    return True
