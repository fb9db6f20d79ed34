"""The training dataset over a processed folder: manifest, code tables, memory-mapped scans.

A processed dataset (written by ``imface preprocess``) is a folder with ``manifest.json``
and one sub-folder per scan holding ``surface_points.npy`` (Ns,3), ``surface_normals.npy``
(Ns,3), ``space_points.npy`` (Nq,3), ``space_sdf.npy`` (Nq,), ``space_grad.npy`` (Nq,3)
and ``landmarks.json``, and optionally ``near_points.npy`` / ``near_sdf.npy`` / ``near_grad.npy``
(near-surface SDF samples). All coordinates are model units (1 unit = 100 mm).

FaceScape-scale data (thousands of scans x several MB) does not fit in memory, so the
point arrays are opened with ``np.load(mmap_mode="r")`` and only the sampled rows are read.
Landmarks are tiny and are read once, up front.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import BatchSampler, Dataset, DistributedSampler

from imface.contracts.dataset import (MANIFEST_NAME, NEAR_FILES, NUM_LANDMARKS, POINT_FILES, read_manifest,
                                     read_scan_landmarks)
from imface.contracts.experiment import EXPRESSION_EMBEDDINGS, CodeTables
from imface.errors import ImfaceError
from imface.frame import CANONICAL_LANDMARKS_MM, MM_PER_UNIT


@dataclass(frozen=True)
class ScanRecord:
    """One scan of the manifest. ``folder`` is absolute and checked to lie inside the dataset root."""

    name: str
    identity: str
    expression: str
    neutral: bool
    folder: Path


@dataclass(frozen=True)
class ScanIndex:
    """The manifest as the trainer needs it: scans by name, the split, and the manifest's SHA-256."""

    root: Path
    scans: dict[str, ScanRecord]
    train: tuple[str, ...]
    test: tuple[str, ...]
    sha256: str


def load_scan_index(data_dir: str | Path) -> ScanIndex:
    """Read and validate ``<data_dir>/manifest.json`` (via :func:`imface.contracts.dataset.read_manifest`,
    which refuses scan paths that are absolute or escape the dataset folder)."""
    manifest = read_manifest(data_dir)
    digest = hashlib.sha256((manifest.root / MANIFEST_NAME).read_bytes()).hexdigest()
    scans = {
        s.name: ScanRecord(s.name, s.identity, s.expression, s.neutral, (manifest.root / s.path).resolve())
        for s in manifest.scans
    }
    return ScanIndex(manifest.root, scans, manifest.train, manifest.test, digest)


def build_code_tables(
    manifest: ScanIndex, expression_embedding: str = "per_scan", neutral_suppression: bool = True
) -> CodeTables:
    """Rows for the train split: one per identity; one per non-neutral scan (``per_scan``,
    the paper's improved embedding learning) or one per expression name (``per_name``).
    Without ``neutral_suppression`` (the joint no-dist model) neutral scans get rows too.
    Keys are sorted so the mapping does not depend on manifest order."""
    if expression_embedding not in EXPRESSION_EMBEDDINGS:
        raise ImfaceError(None, f"expression_embedding must be one of {EXPRESSION_EMBEDDINGS}, got {expression_embedding!r}")
    train = [manifest.scans[n] for n in manifest.train]
    identities = sorted({s.identity for s in train})
    key = (lambda s: s.name) if expression_embedding == "per_scan" else (lambda s: s.expression)
    expressions = sorted({key(s) for s in train if not (s.neutral and neutral_suppression)})
    return CodeTables(
        {name: row for row, name in enumerate(identities)},
        {name: row for row, name in enumerate(expressions)},
        expression_embedding,
        neutral_suppression,
    )


def template_landmarks(landmarks: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The template landmarks l'': the per-row mean over the training neutral scans.

    landmarks: (S,68,3) model units; masks: (S,68) bool. Each row is averaged over the
    scans that give it, so datasets with only 5 landmarks on some scans still get a mean
    of the rows they do have; rows no scan gives fall back to the canonical iBUG layout
    (``CANONICAL_LANDMARKS_MM``, already in the processed frame) so the result is always
    a full (68,3). Returns (68,3) float32.
    """
    canonical = (CANONICAL_LANDMARKS_MM / MM_PER_UNIT).astype(np.float32)
    weights = masks.astype(np.float64)[..., None]
    counts = weights.sum(axis=0)
    mean = (landmarks * weights).sum(axis=0) / np.maximum(counts, 1.0)
    return np.where(counts > 0, mean, canonical).astype(np.float32)


class FaceScanDataset(Dataset):
    """The train (or test) scans of a processed dataset; item ``i`` is one scan with random point subsets.

    The point subsets of item ``i`` in epoch ``e`` depend only on ``(seed, e, i)``, never on
    the worker or rank that reads it, so runs are reproducible and a batch split over DDP
    ranks reads exactly the points one process would. Index it with ``(epoch, i)`` (what the
    trainer's batch sampler yields, so persistent workers need no epoch updates) or with
    ``i`` after :meth:`set_epoch`.

    Per scan and item: ``surface_points_per_scan`` surface samples, ``space_points_per_scan``
    uniform space samples and ``near_points_per_scan`` near-surface samples (which need the
    ``near_*.npy`` files; they are appended to the space samples, since both carry signed
    distances and gradients). The last ``holdout_points`` rows of every surface and space
    array are never drawn: the learning-curve probe measures on them (:meth:`held_back`).

    Item dict (per scan, collated to the training batch of the contract):
    surface_points/surface_normals (Ns,3), space_points (Nq+Nn,3), space_sdf (Nq+Nn,), space_grad
    (Nq+Nn,3) float32; landmarks (68,3) and landmarks_mask (68,); neutral_landmarks (68,3) and
    neutral_landmarks_mask (68,) of the same identity's neutral scan; identity_index,
    expression_index int64 scalars; neutral bool scalar.
    """

    def __init__(
        self,
        manifest: ScanIndex,
        codes: CodeTables,
        *,
        split: str = "train",
        surface_points_per_scan: int,
        space_points_per_scan: int,
        near_points_per_scan: int = 0,
        holdout_points: int = 0,
        seed: int = 0,
    ) -> None:
        if split not in ("train", "test"):
            raise ImfaceError(None, f"split must be 'train' or 'test', got {split!r}")
        names = manifest.train if split == "train" else manifest.test
        if not names:
            raise ImfaceError(manifest.root / MANIFEST_NAME, f"the {split} split holds no scans")
        self.scans = [manifest.scans[n] for n in names]
        self.codes = codes
        self.surface_points_per_scan = int(surface_points_per_scan)
        self.space_points_per_scan = int(space_points_per_scan)
        self.near_points_per_scan = int(near_points_per_scan)
        self.holdout_points = int(holdout_points)
        if min(self.surface_points_per_scan, self.space_points_per_scan, self.near_points_per_scan, self.holdout_points) < 0:
            raise ImfaceError(None, "points per scan and held-back points must be >= 0")
        self.files = POINT_FILES + (NEAR_FILES if self.near_points_per_scan else ())
        self.seed = int(seed)
        self.epoch = 0
        lms = [read_scan_landmarks(s.folder) for s in self.scans]
        self.landmarks = np.stack([p for p, _ in lms])
        self.landmarks_mask = np.stack([m for _, m in lms])
        self.neutral_landmarks, self.neutral_landmarks_mask = self._neutral_landmarks(manifest)
        for scan in self.scans:
            for stem in self.files:
                if not (scan.folder / f"{stem}.npy").is_file():
                    hint = (" (data.near_points_per_scan > 0 reads near-surface samples: re-run imface preprocess, "
                            "which writes them by default, or train with --set data.near_points_per_scan=0)"
                            if stem in NEAR_FILES else "")
                    raise ImfaceError(scan.folder / f"{stem}.npy", f"missing from the processed scan{hint}")

    def _neutral_landmarks(self, manifest: ScanIndex) -> tuple[np.ndarray, np.ndarray]:
        # The neutral scan of each identity (first by name, from any split); identities without
        # one get an all-False mask so the landmark term simply skips them.
        neutral_of: dict[str, ScanRecord] = {}
        for name in sorted(manifest.scans):
            scan = manifest.scans[name]
            if scan.neutral and scan.identity not in neutral_of:
                neutral_of[scan.identity] = scan
        cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        points, masks = [], []
        for scan in self.scans:
            ref = neutral_of.get(scan.identity)
            if ref is None:
                p, m = np.zeros((NUM_LANDMARKS, 3), np.float32), np.zeros(NUM_LANDMARKS, bool)
            else:
                if ref.name not in cache:
                    cache[ref.name] = read_scan_landmarks(ref.folder)
                p, m = cache[ref.name]
            points.append(p)
            masks.append(m)
        return np.stack(points), np.stack(masks)

    def neutral_template(self) -> np.ndarray:
        """Template landmarks l'' (68,3) from this split's neutral scans (see :func:`template_landmarks`)."""
        rows = [i for i, s in enumerate(self.scans) if s.neutral]
        if not rows:  # no neutral scan at all: average every scan rather than fail
            rows = list(range(len(self.scans)))
        return template_landmarks(self.landmarks[rows], self.landmarks_mask[rows])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.scans)


    @staticmethod
    def _rows(rng: np.random.Generator, available: int, wanted: int) -> np.ndarray:
        # Sorted rows keep the memory-mapped reads local; with fewer rows than wanted, repeat some.
        rows = rng.choice(available, size=wanted, replace=wanted > available)
        return np.sort(rows)

    def _arrays(self, index: int) -> dict[str, np.ndarray]:
        """The scan's point arrays, memory-mapped, with their row counts checked per group."""
        folder = self.scans[index].folder
        arrays = {stem: np.load(folder / f"{stem}.npy", mmap_mode="r", allow_pickle=False) for stem in self.files}
        for group in ("surface", "space", "near"):
            stems = [s for s in self.files if s.startswith(group)]
            for stem in stems:
                expected = len(arrays[stems[0]])
                if len(arrays[stem]) != expected or len(arrays[stem]) == 0:
                    raise ImfaceError(folder / f"{stem}.npy", f"has {len(arrays[stem])} rows, expected {expected} > 0")
        return arrays

    def _trainable(self, folder: Path, stem: str, rows: int) -> int:
        """Rows the loader may draw from: all but the held-back tail (at least one row is kept)."""
        if rows <= self.holdout_points:
            raise ImfaceError(folder / f"{stem}.npy", f"has {rows} rows, not more than the {self.holdout_points} "
                              "held back for the learning curves (lower data.holdout_points)")
        return rows - self.holdout_points

    def held_back(self, index: int, count: int) -> dict[str, np.ndarray]:
        """Up to ``count`` of scan ``index``'s held-back rows of each of its surface and space
        arrays (float32), rows the loader never draws."""
        arrays = self._arrays(index)
        take = min(count, self.holdout_points)
        return {stem: np.asarray(arrays[stem][len(arrays[stem]) - take:], np.float32) for stem in POINT_FILES}

    def surface_sample(self, index: int, count: int) -> np.ndarray:
        """Up to ``count`` of scan ``index``'s surface samples, evenly strided over all its rows
        (area-uniform on its mesh): (n, 3) float64 model units."""
        points = self._arrays(index)["surface_points"]
        stride = max(1, len(points) // max(1, count))
        return np.asarray(points[::stride][:count], np.float64)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        """``key``: a scan index (drawn as in the current epoch) or ``(epoch, scan index)``."""
        epoch, index = (self.epoch, key) if isinstance(key, (int, np.integer)) else (int(key[0]), int(key[1]))
        scan = self.scans[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        arrays = self._arrays(index)
        surface_rows = self._rows(rng, self._trainable(scan.folder, "surface_points", len(arrays["surface_points"])),
                                  self.surface_points_per_scan)
        space_rows = self._rows(rng, self._trainable(scan.folder, "space_points", len(arrays["space_points"])),
                                self.space_points_per_scan)
        item = {
            stem: torch.from_numpy(np.asarray(arrays[stem][surface_rows if stem.startswith("surface") else space_rows], np.float32))
            for stem in POINT_FILES
        }
        if self.near_points_per_scan:
            near_rows = self._rows(rng, len(arrays["near_points"]), self.near_points_per_scan)
            for near, space in zip(NEAR_FILES, ("space_points", "space_sdf", "space_grad")):
                extra = torch.from_numpy(np.asarray(arrays[near][near_rows], np.float32))
                item[space] = torch.cat((item[space], extra))
        item.update(
            landmarks=torch.from_numpy(self.landmarks[index]),
            landmarks_mask=torch.from_numpy(self.landmarks_mask[index]),
            neutral_landmarks=torch.from_numpy(self.neutral_landmarks[index]),
            neutral_landmarks_mask=torch.from_numpy(self.neutral_landmarks_mask[index]),
            identity_index=torch.tensor(self.codes.identities.get(scan.identity, -1), dtype=torch.int64),
            expression_index=torch.tensor(self.codes.expression_row(scan), dtype=torch.int64),
            neutral=torch.tensor(scan.neutral, dtype=torch.bool),
        )
        return item


class EpochBatchSampler:
    """This rank's batches from global step ``start`` to ``stop``, epoch after epoch (a batch sampler).

    ``sampler`` is a ``DistributedSampler`` (shuffled per epoch from its seed; with one
    process, num_replicas=1), ``per_rank`` the scans per batch on this rank.

    Each index comes out as ``(epoch, scan index)`` so the dataset draws that epoch's points
    even in persistent DataLoader workers; starting inside an epoch skips its first batches
    without reading them (exact resume).
    """

    def __init__(self, sampler: DistributedSampler, per_rank: int, start: int, stop: int) -> None:
        self.sampler, self.per_rank, self.start, self.stop = sampler, per_rank, start, stop
        self.steps_per_epoch = len(BatchSampler(sampler, per_rank, drop_last=True))

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start
        while step < self.stop:
            epoch, offset = divmod(step, self.steps_per_epoch)
            self.sampler.set_epoch(epoch)
            for number, batch in enumerate(BatchSampler(self.sampler, self.per_rank, drop_last=True)):
                if number < offset:
                    continue
                yield [(epoch, index) for index in batch]
                step += 1
                if step >= self.stop:
                    return

    def __len__(self) -> int:
        return max(0, self.stop - self.start)
