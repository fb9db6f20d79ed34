"""What the viewer can show besides the sliders: training faces by name, random faces, the scans
of a processed dataset (as targets), and the folders it may read.

The server reads only the folders it was given (the model, ``--fits`` and ``--data``): every
path it opens goes through :meth:`Roots.check`, and the browser never names a path, only
entries of the lists built here.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from imface.contracts.dataset import MANIFEST_NAME, Manifest, ManifestScan, read_manifest
from imface.contracts.dataset import MESH_NAME as SCAN_MESH_NAME
from imface.errors import ImfaceError
from imface.generate import Face, sample_faces
from imface.io.mesh import read_mesh
from imface.pretrained import NEUTRAL, Pretrained
from imface.viewer.colors import Target


class Roots:
    """The folders the viewer may read (resolved); :meth:`check` refuses any path outside them."""

    def __init__(self, folders: Iterable[str | os.PathLike | None]) -> None:
        self.folders = [Path(folder).resolve() for folder in folders if folder is not None]

    def allows(self, path: str | os.PathLike) -> bool:
        resolved = Path(path).resolve()
        return any(resolved == root or resolved.is_relative_to(root) for root in self.folders)

    def check(self, path: str | os.PathLike) -> Path:
        """``path`` resolved, or an ImfaceError when it lies outside every given folder."""
        if not self.allows(path):
            raise ImfaceError(path, "outside the folders given to imface view (--model, --fits, --data): not read")
        return Path(path).resolve()


class Library:
    """Named training faces of a model and, with a processed dataset, their scans as targets."""

    def __init__(self, pretrained: Pretrained, data: Path | None = None, roots: Roots | None = None) -> None:
        self.pretrained = pretrained
        self.roots = roots or Roots([pretrained.path, data])
        self.manifest: Manifest | None = None
        if data is not None:
            if not (Path(data) / MANIFEST_NAME).is_file():
                raise ImfaceError(data, f"no {MANIFEST_NAME}: --data must be a processed dataset (imface preprocess)")
            self.manifest = read_manifest(self.roots.check(data))
        self._targets: dict[str, Target] = {}

    @property
    def identities(self) -> list[str]:
        """Training identity names, sorted."""
        return sorted(self.pretrained.codes.identities)

    @property
    def expressions(self) -> list[str]:
        """``neutral`` (neutral suppression, when the model has it) and the expression keys, sorted."""
        keys = sorted(self.pretrained.codes.expressions)
        return ([NEUTRAL] if self.pretrained.codes.neutral_suppression and NEUTRAL not in keys else []) + keys

    def random(self, seed: int) -> Face:
        """A face drawn from the code statistics (:func:`imface.generate.sample_faces`), seed ``seed``."""
        face = sample_faces(self.pretrained.code_stats, 1, seed=seed, device=self.pretrained.device)[0]
        return Face(f"random (seed {seed})", face.id_code, face.exp_code, face.neutral)

    def training_scan(self, identity: str, expression: str) -> ManifestScan | None:
        """The dataset's scan of a training identity with an expression key (``neutral``: its
        neutral scan), or None without --data or when the dataset has no such scan."""
        if self.manifest is None:
            return None
        for scan in self.manifest.scans:
            if scan.identity != identity:
                continue
            if expression == NEUTRAL and scan.neutral:
                return scan
            if expression != NEUTRAL and expression == self.pretrained.codes.expression_key(scan):
                return scan
        return None

    def scan_target(self, scan: ManifestScan) -> Target:
        """A processed scan's mesh (model units) as a target, read once."""
        assert self.manifest is not None
        key = f"data:{scan.name}"
        if key not in self._targets:
            mesh = read_mesh(self.roots.check(self.manifest.folder(scan) / SCAN_MESH_NAME))
            self._targets[key] = Target(key, f"scan {scan.name}", mesh.vertices, mesh.faces)
        return self._targets[key]

    def data_scan_folder(self, name: str) -> Path | None:
        """The folder of scan ``name`` of --data (by the manifest, else ``DATA/<name>``, as
        ``imface eval --data`` finds ground truths), or None without --data or outside it."""
        if self.manifest is None:
            return None
        scan = self.manifest.by_name.get(name)
        folder = self.manifest.folder(scan) if scan is not None else self.manifest.root / name
        return folder if self.roots.allows(folder) and folder.is_dir() else None
