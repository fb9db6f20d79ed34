"""Meshes the viewer has extracted, kept by code and resolution (least recently used first out).

Dragging a slider back over a position it has passed draws from here at once. Per-vertex fields
computed later for colouring (the model's intermediates, errors against a target) are kept on the
mesh they belong to, so switching colour modes back and forth costs nothing the second time.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

#: Meshes kept: a 128^3 face is about 1 MB here, a 64^3 one a quarter of that.
DEFAULT_CAPACITY = 96


@dataclass
class FaceMesh:
    """One extracted face: ``key`` (:func:`imface.viewer.codes.face_key`), the grid ``resolution``,
    vertices (V, 3) float32 model units, faces (F, 3) int32, the extraction's ``seconds`` and
    ``points_evaluated``; ``fields``: per-vertex arrays computed for it later, by name."""

    key: str
    resolution: int
    vertices: np.ndarray
    faces: np.ndarray
    seconds: float = 0.0
    points_evaluated: int = 0
    fields: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def field(self, name: str, compute: Callable[[], Any]) -> Any:
        """The per-vertex data ``name``, computed by ``compute()`` on first use and kept."""
        with self._lock:
            if name in self.fields:
                return self.fields[name]
        value = compute()
        with self._lock:
            return self.fields.setdefault(name, value)


class MeshCache:
    """A thread-safe LRU of :class:`FaceMesh` by (key, resolution), at most ``capacity`` meshes."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._meshes: OrderedDict[tuple[str, int], FaceMesh] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str, resolution: int) -> FaceMesh | None:
        with self._lock:
            mesh = self._meshes.get((key, resolution))
            if mesh is None:
                self.misses += 1
                return None
            self._meshes.move_to_end((key, resolution))
            self.hits += 1
            return mesh

    def put(self, mesh: FaceMesh) -> FaceMesh:
        with self._lock:
            self._meshes[(mesh.key, mesh.resolution)] = mesh
            self._meshes.move_to_end((mesh.key, mesh.resolution))
            while len(self._meshes) > self.capacity:
                self._meshes.popitem(last=False)
        return mesh

    def __len__(self) -> int:
        with self._lock:
            return len(self._meshes)

    def __contains__(self, item: tuple[str, int]) -> bool:
        with self._lock:
            return item in self._meshes
