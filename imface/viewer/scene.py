"""What the viewer draws in the browser's 3D scene: the face, a target surface, landmarks.

Meshes travel as binary glTF (GLB) with per-vertex colours and smooth normals, double-sided
(a face is an open sheet). Model units, y up, the face looking down +z.
"""
from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from imface.ops.normals import vertex_normals
from imface.viewer.colors import TARGET_COLOR, Target

#: Scene node names.
FACE_NODE, TARGET_NODE, LANDMARK_NODE = "/face", "/target", "/landmarks"
#: Landmark sets: name -> (label, RGB 0-255).
LANDMARK_STYLE = {"observed": ("l: observed (Landmark-Net eta)", (230, 40, 40)),
                  "canonical": ("l': canonical (eta')", (40, 190, 60)),
                  "template": ("l'': template", (40, 90, 230))}
LANDMARK_SIZE = 0.035
TARGET_POINT_SIZE, TARGET_POINTS = 0.005, 12000
#: Target points: magenta, a colour no colour mode uses for the face (RGB 0-255).
TARGET_POINT_COLOR = (225, 60, 200)
#: What the scene shows: the face, its target, or both (the target see-through) -> how the target is drawn.
TARGET_MODES = {"face": "hidden", "target": "alone", "face + target": "overlay"}
SHOW_MODES = tuple(TARGET_MODES)
#: Directional lights: (name, intensity, position; each shines from there toward the origin).
LIGHTS = (("key", 1.3, (-1.5, 2.0, 3.0)), ("fill", 0.3, (2.0, 0.3, 2.0)))
ENVIRONMENT_LIGHT = 0.2
_FLOAT, _UINT32 = 5126, 5125


def srgb_to_linear(colors: np.ndarray) -> np.ndarray:
    """sRGB colours in [0, 1] (imface's, as pictures show them) -> linear RGB, what glTF vertex colours
    hold: the browser converts back to sRGB when it draws, so the colours on screen are imface's."""
    c = np.clip(np.asarray(colors, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def glb_bytes(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray) -> bytes:
    """A GLB file of one triangle mesh: vertices (V, 3), faces (F, 3), sRGB colours (V, 3) or (3,) in
    [0, 1]; smooth vertex normals, a double-sided matte material."""
    positions = np.ascontiguousarray(vertices, dtype=np.float32).reshape(-1, 3)
    normals = np.ascontiguousarray(vertex_normals(positions, np.asarray(faces)), dtype=np.float32)
    rgb = np.ascontiguousarray(np.broadcast_to(srgb_to_linear(colors), positions.shape), dtype=np.float32)
    indices = np.ascontiguousarray(faces, dtype=np.uint32).reshape(-1)
    parts = [positions.tobytes(), normals.tobytes(), rgb.tobytes(), indices.tobytes()]
    offsets = np.cumsum([0] + [len(p) for p in parts])[:-1]
    views = [{"buffer": 0, "byteOffset": int(o), "byteLength": len(p)} for o, p in zip(offsets, parts)]
    count = len(positions)
    accessors = [
        {"bufferView": 0, "componentType": _FLOAT, "count": count, "type": "VEC3",
         "min": positions.min(axis=0).tolist() if count else [0, 0, 0],
         "max": positions.max(axis=0).tolist() if count else [0, 0, 0]},
        {"bufferView": 1, "componentType": _FLOAT, "count": count, "type": "VEC3"},
        {"bufferView": 2, "componentType": _FLOAT, "count": count, "type": "VEC3"},
        {"bufferView": 3, "componentType": _UINT32, "count": len(indices), "type": "SCALAR"},
    ]
    material = {"pbrMetallicRoughness": {"baseColorFactor": [1.0, 1.0, 1.0, 1.0], "metallicFactor": 0.0,
                                         "roughnessFactor": 0.75}, "doubleSided": True}
    document = {
        "asset": {"version": "2.0", "generator": "imface view"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "NORMAL": 1, "COLOR_0": 2}, "indices": 3,
                                    "material": 0, "mode": 4}]}],
        "materials": [material], "accessors": accessors, "bufferViews": views,
        "buffers": [{"byteLength": int(sum(len(p) for p in parts))}],
    }
    text = json.dumps(document, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    binary = b"".join(parts)
    binary += b"\0" * (-len(binary) % 4)
    chunks = struct.pack("<I4s", len(text), b"JSON") + text + struct.pack("<I4s", len(binary), b"BIN\0") + binary
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks


class SceneView:
    """The scene of a viser server (shared by every browser tab) and what it shows now."""

    def __init__(self, scene: Any) -> None:
        self.scene = scene
        self.face_shown: tuple[str, int] | None = None  # (key, resolution) of the face mesh on screen
        self.target_shown: str | None = None
        self._handles: dict[str, Any] = {}

    def setup(self, initial_camera: Any) -> None:
        """Y up, a front view of the face, and studio lighting: a key light from the upper left
        and a weak fill (the shape of a face shows in its shading; flat ambient light hides it)."""
        self.scene.set_up_direction("+y")
        self.scene.configure_default_lights(enabled=False, cast_shadow=False)
        self.scene.configure_environment_map("studio", environment_intensity=ENVIRONMENT_LIGHT)
        for name, intensity, position in LIGHTS:
            self.scene.add_light_directional(f"/lights/{name}", intensity=intensity, position=position)
        initial_camera.position = (0.0, 0.05, 3.6)
        initial_camera.look_at = (0.0, 0.0, 0.0)
        initial_camera.up = (0.0, 1.0, 0.0)
        initial_camera.fov = 0.7

    def show_face(self, key: str, resolution: int, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray,
                  visible: bool = True) -> None:
        self._handles[FACE_NODE] = self.scene.add_glb(FACE_NODE, glb_bytes(vertices, faces, colors), visible=visible)
        self.face_shown = (key, resolution)

    def set_face_visible(self, visible: bool) -> None:
        handle = self._handles.get(FACE_NODE)
        if handle is not None:
            handle.visible = visible

    def show_target(self, target: Target | None, mode: str) -> None:
        """The target in ``mode``: hidden | alone (an opaque mesh) | overlay (its points over the face)."""
        if target is None or mode == "hidden":
            self._remove(TARGET_NODE)
            self.target_shown = None
            return
        color = np.asarray(TARGET_COLOR)
        if target.faces is None or len(target.faces) == 0 or mode == "overlay":
            # Over the face the target is drawn as points: two see-through surfaces that nearly
            # coincide (a good fit) flicker into each other.
            points = np.asarray(target.vertices, dtype=np.float32)
            if len(points) > TARGET_POINTS:  # a fixed subset: enough to see the target, the face still visible
                points = points[np.random.default_rng(0).choice(len(points), TARGET_POINTS, replace=False)]
            handle = self.scene.add_point_cloud(TARGET_NODE, points, colors=TARGET_POINT_COLOR,
                                                point_size=TARGET_POINT_SIZE, point_shape="circle")
        else:
            handle = self.scene.add_glb(TARGET_NODE, glb_bytes(target.vertices, target.faces, color))
        self._handles[TARGET_NODE] = handle
        self.target_shown = f"{target.key}:{mode}"

    def show_landmarks(self, sets: dict[str, np.ndarray | None]) -> None:
        """Landmark point sets by name (:data:`LANDMARK_STYLE`); the ones left out or None are removed."""
        for name, (_, rgb) in LANDMARK_STYLE.items():
            node = f"{LANDMARK_NODE}/{name}"
            points = sets.get(name)
            if points is None:
                self._remove(node)
            else:
                self._handles[node] = self.scene.add_point_cloud(
                    node, np.asarray(points, dtype=np.float32).reshape(-1, 3), colors=rgb, point_size=LANDMARK_SIZE,
                    point_shape="circle")

    def _remove(self, node: str) -> None:
        handle = self._handles.pop(node, None)
        if handle is not None:
            handle.remove()
