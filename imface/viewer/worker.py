"""Mesh extraction off the UI thread: coarse while a slider moves, full resolution once it stops.

One worker thread serves the newest request only. A request first draws the face at
``coarse_resolution`` (64^3 by default, itself coarse to fine from 32^3); if no newer request
arrives within ``settle_seconds`` it is refined at ``resolution``. A newer request cancels the
extraction under way at its next batch of SDF points, so a dragged slider never waits for a
position it has already left. Meshes come from and go to a :class:`MeshCache` by code.
"""
from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from imface.errors import ImfaceError
from imface.generate import Face, face_sdf
from imface.ops.marching_cubes import EmptySurfaceError, extract_mesh
from imface.pretrained import Pretrained
from imface.viewer.cache import FaceMesh, MeshCache
from imface.viewer.codes import face_key

COARSE_RESOLUTION = 64
#: How long a slider must rest before the face is refined (seconds).
SETTLE_SECONDS = 0.3


class Cancelled(Exception):
    """A newer request (or stop) arrived while extracting."""


@dataclass(frozen=True)
class Drawn:
    """A mesh for the screen: the request ``number`` it answers, its face, the mesh, ``final``
    (the full resolution, or the only one), ``cached`` (no extraction needed) and ``requested_at``
    (``time.perf_counter()`` when the request was made)."""

    number: int
    face: Face
    mesh: FaceMesh
    final: bool
    cached: bool
    requested_at: float


def chunk_size_for(device: torch.device) -> int:
    """Points per network call: small batches are faster on a CPU, large ones on a GPU."""
    return 65536 if device.type == "cuda" else 4096


def extract_face(pretrained: Pretrained, face: Face, resolution: int,
                 cancelled: Callable[[], bool] = lambda: False) -> FaceMesh:
    """The face's mesh at ``resolution`` (coarse to fine marching cubes, as ``imface extract``),
    raising :class:`Cancelled` at the first batch of points after ``cancelled()`` turns true and
    ImfaceError when the code gives no surface."""
    sdf = face_sdf(pretrained, face)

    def guarded(points: torch.Tensor) -> torch.Tensor:
        if cancelled():
            raise Cancelled()
        return sdf(points)

    start = time.perf_counter()
    try:
        mesh = extract_mesh(guarded, resolution, device=pretrained.device, chunk_size=chunk_size_for(pretrained.device))
    except EmptySurfaceError as err:
        raise ImfaceError(pretrained.path, f"the model gives no surface for this code ({err})") from None
    return FaceMesh(face_key(face), resolution, np.asarray(mesh.vertices, dtype=np.float32),
                    np.asarray(mesh.faces, dtype=np.int32), time.perf_counter() - start,
                    int(mesh.metadata.get("points_evaluated", 0)))


class Extractor:
    """The extraction thread. ``on_drawn(drawn)`` and ``on_error(number, message)`` run on it.

    :meth:`request` returns at once with the request's number; :meth:`wait_idle` blocks until
    every request so far is answered.
    """

    def __init__(self, pretrained: Pretrained, on_drawn: Callable[[Drawn], None],
                 on_error: Callable[[int, str], None], *, resolution: int = 128,
                 coarse_resolution: int = COARSE_RESOLUTION, settle_seconds: float = SETTLE_SECONDS,
                 cache: MeshCache | None = None) -> None:
        self.pretrained = pretrained
        self.resolution = int(resolution)
        self.coarse_resolution = min(int(coarse_resolution), self.resolution)
        self.settle_seconds = float(settle_seconds)
        self.cache = cache or MeshCache()
        self._on_drawn, self._on_error = on_drawn, on_error
        self._cond = threading.Condition()
        self._latest = 0
        self._pending: tuple[int, Face, float] | None = None
        self._active: int | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="imface-view-extract", daemon=True)
        #: Extractions stopped part-way by a newer request (counted for tests and the bench).
        self.cancelled = 0

    def start(self) -> "Extractor":
        self._thread.start()
        return self

    def request(self, face: Face) -> int:
        """Draw ``face`` (replacing any request not yet served); returns the request's number."""
        with self._cond:
            self._latest += 1
            self._pending = (self._latest, face, time.perf_counter())
            self._cond.notify_all()
            return self._latest

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no request is pending or being served; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending is not None or self._active is not None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel the work under way and end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _stale(self, number: int) -> bool:
        return self._stopping or self._latest != number

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                number, face, requested_at = self._pending  # type: ignore[misc]
                self._pending, self._active = None, number
            try:
                self._serve(number, face, requested_at)
            except Cancelled:
                self.cancelled += 1
            except ImfaceError as err:
                self._on_error(number, err.problem)
            except Exception as err:  # a bug must not kill the thread: report it and serve the next request
                traceback.print_exc()
                self._on_error(number, f"{type(err).__name__}: {err}")
            finally:
                with self._cond:
                    self._active = None
                    self._cond.notify_all()

    def _serve(self, number: int, face: Face, requested_at: float) -> None:
        key = face_key(face)
        fine = self.cache.get(key, self.resolution)
        if fine is not None:
            self._on_drawn(Drawn(number, face, fine, True, True, requested_at))
            return
        if self.coarse_resolution < self.resolution:
            coarse = self.cache.get(key, self.coarse_resolution)
            cached = coarse is not None
            if coarse is None:
                coarse = self.cache.put(self._extract(number, face, self.coarse_resolution))
            self._on_drawn(Drawn(number, face, coarse, False, cached, requested_at))
            with self._cond:  # refine only once the slider rests
                self._cond.wait_for(lambda: self._stale(number), self.settle_seconds)
            if self._stale(number):
                return
        fine = self.cache.put(self._extract(number, face, self.resolution))
        self._on_drawn(Drawn(number, face, fine, True, False, requested_at))

    def _extract(self, number: int, face: Face, resolution: int) -> FaceMesh:
        with torch.no_grad():
            return extract_face(self.pretrained, face, resolution, lambda: self._stale(number))
