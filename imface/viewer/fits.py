"""A fits folder in the viewer: each fitted scan's codes, its target surface and its metrics.

The target is what ``imface eval`` scores the fit against: the processed scan the fit names
(``processed`` in fits.json), else the scan of the same name in ``--data``, else the fit's own
input as fitted (``<scan>/target.ply``). Processed meshes are moved into model space by the
fit's pose, as ``imface extract --color error`` does. Metrics are those of ``fit.json`` and,
when ``imface eval`` has run, of ``<fits>/eval/<scan>.json``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from imface.contracts.dataset import MESH_NAME as SCAN_MESH_NAME
from imface.contracts.fits import FITS_NAME, IMFACE_METHOD, TARGET_NAME, read_fit, read_fits_index
from imface.correspondence import FittedScan, load_fits
from imface.errors import ImfaceError
from imface.fitting.inputs import read_input_geometry
from imface.generate import Face, check_face
from imface.io.mesh import read_mesh
from imface.pretrained import Pretrained
from imface.viewer.colors import Target
from imface.viewer.library import Library, Roots

#: Metrics shown for a fit, in this order: key -> label.
SHOWN_METRICS = {"chamfer_mm": "Chamfer (mm)", "input_to_fit_mm": "input → fit (mm)",
                 "fit_to_input_mm": "fit → input (mm)", "fscore@1mm": "F-score @1 mm (%)",
                 "fscore@2.5mm": "F-score @2.5 mm (%)", "normal_consistency": "normal consistency",
                 "footprint_chamfer_mm": "Chamfer on the scan's footprint (mm)"}


class FitsFolder:
    """The fitted scans of ``folder`` (an ImFace fits folder made with this model)."""

    def __init__(self, pretrained: Pretrained, folder: Path, library: Library, roots: Roots) -> None:
        self.folder, self.library, self.roots = Path(folder), library, roots
        index = read_fits_index(roots.check(self.folder))
        if index["method"] != IMFACE_METHOD:
            raise ImfaceError(self.folder / FITS_NAME, f"holds {index['method']} fits; imface view shows ImFace fits "
                              "(codes it can decode)")
        self.scans: dict[str, FittedScan] = {scan.name: scan for scan in load_fits(self.folder, device=pretrained.device)}
        for scan in self.scans.values():
            check_face(pretrained, scan.face)  # fits of another model: refused here, not on first click
        self._targets: dict[str, Target | None] = {}
        self._notes: dict[str, str] = {}

    @property
    def names(self) -> list[str]:
        return list(self.scans)

    def face(self, name: str) -> Face:
        return self.scans[name].face

    def target(self, name: str) -> tuple[Target | None, str]:
        """The scan's target in model space (or None) and a line saying where it came from (or why none)."""
        if name not in self._targets:
            try:
                self._targets[name], self._notes[name] = self._read_target(self.scans[name])
            except ImfaceError as err:
                self._targets[name], self._notes[name] = None, f"target not read: {err}"
        return self._targets[name], self._notes[name]

    def _read_target(self, scan: FittedScan) -> tuple[Target | None, str]:
        processed = scan.processed
        if processed is None or not self.roots.allows(processed):
            processed = self.library.data_scan_folder(scan.name)
        if processed is not None and (processed / SCAN_MESH_NAME).is_file():
            mesh = read_mesh(self.roots.check(processed / SCAN_MESH_NAME))
            return (Target(f"fit:{scan.name}", f"the scan of {scan.name}", scan.to_model_space(mesh.vertices), mesh.faces),
                    f"target: {processed / SCAN_MESH_NAME}")
        own = scan.folder / TARGET_NAME
        if own.is_file():
            points, _, faces = read_input_geometry(self.roots.check(own))
            return Target(f"fit:{scan.name}", f"the input of {scan.name}", points, faces), f"target: {own}"
        if scan.processed is not None:
            return None, (f"no target: its processed scan {scan.processed} is outside the folders given; "
                          "pass --data with its dataset")
        return None, "no target: the fit names no processed scan and has no target.ply"

    def metrics(self, name: str) -> dict[str, Any]:
        """``{"fit": fit.json's metrics or None, "eval": eval/<scan>.json's metrics or None}``."""
        scan = self.scans[name]
        fit = read_fit(self.roots.check(scan.folder)) or {}
        evaluated = None
        path = self.folder / "eval" / f"{name}.json"
        if self.roots.allows(path) and path.is_file():
            try:
                evaluated = json.loads(path.read_text()).get("metrics")
            except (OSError, ValueError, AttributeError):
                evaluated = None
        return {"fit": fit.get("metrics"), "eval": evaluated}

    def metrics_text(self, name: str) -> str:
        """The scan's metrics as Markdown lines."""
        found = self.metrics(name)
        lines = []
        for source, label in (("eval", "imface eval"), ("fit", "imface fit's quick check")):
            values = found[source]
            if not values:
                continue
            parts = [f"{title} **{values[key]:.3f}**" for key, title in SHOWN_METRICS.items()
                     if isinstance(values.get(key), (int, float))]
            if parts:
                lines.append(f"{label}: " + ", ".join(parts))
        return "\n\n".join(lines) or "no metrics recorded (run imface eval --fits on this folder)"

