"""The scene: meshes as GLB (read back by trimesh), what is shown, landmarks and targets."""
from __future__ import annotations

import io
import json
import struct

import numpy as np
import trimesh

from imface.viewer.colors import Target
from imface.viewer.scene import (FACE_NODE, LANDMARK_NODE, TARGET_NODE, TARGET_POINTS, SceneView, glb_bytes,
                                  srgb_to_linear)


def _document(data: bytes) -> dict:
    magic, version, length = struct.unpack("<4sII", data[:12])
    assert (magic, version, length) == (b"glTF", 2, len(data))
    size, kind = struct.unpack("<I4s", data[12:20])
    assert kind == b"JSON" and size % 4 == 0
    return json.loads(data[20:20 + size])


def _accessor(data: bytes, index: int, dtype) -> np.ndarray:
    """Accessor ``index`` of a GLB's binary chunk as a flat array."""
    document = _document(data)
    size = struct.unpack("<I", data[12:16])[0]
    binary = data[20 + size + 8:]
    view = document["bufferViews"][document["accessors"][index]["bufferView"]]
    return np.frombuffer(binary[view["byteOffset"]:view["byteOffset"] + view["byteLength"]], dtype=dtype)


def test_glb_holds_the_mesh_its_colours_and_normals():
    sphere = trimesh.creation.icosphere(subdivisions=2)
    colors = np.random.default_rng(0).uniform(size=(len(sphere.vertices), 3))
    data = glb_bytes(sphere.vertices, sphere.faces, colors)
    document = _document(data)
    primitive = document["meshes"][0]["primitives"][0]
    assert set(primitive["attributes"]) == {"POSITION", "NORMAL", "COLOR_0"}
    assert document["materials"][0]["doubleSided"] is True
    assert document["accessors"][3]["count"] == sphere.faces.size
    loaded = trimesh.load(io.BytesIO(data), file_type="glb", force="mesh", process=False)
    assert np.allclose(loaded.vertices, sphere.vertices, atol=1e-6)
    assert np.array_equal(loaded.faces, sphere.faces)
    assert np.allclose(_accessor(data, 2, np.float32).reshape(-1, 3), srgb_to_linear(colors), atol=1e-6)
    normals = _accessor(data, 1, np.float32).reshape(-1, 3)
    assert np.allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
    assert np.all(np.sum(normals * sphere.vertices, axis=1) > 0.9)  # outward on a sphere


class FakeHandle:
    def __init__(self, scene, name):
        self.scene, self.name, self.visible = scene, name, True

    def remove(self):
        self.scene.nodes.pop(self.name, None)


class FakeScene:
    """Records the nodes a SceneView adds, as viser's scene would hold them."""

    def __init__(self):
        self.nodes = {}
        self.up = None

    def _add(self, name, kind, **props):
        handle = FakeHandle(self, name)
        self.nodes[name] = (kind, props, handle)
        return handle

    def add_glb(self, name, data, visible=True):
        handle = self._add(name, "glb", data=data)
        handle.visible = visible
        return handle

    def add_point_cloud(self, name, points, colors, **props):
        return self._add(name, "points", points=points, colors=colors, **props)

    def set_up_direction(self, direction):
        self.up = direction

    def configure_default_lights(self, enabled, cast_shadow):
        self.default_lights = enabled

    def configure_environment_map(self, hdri, environment_intensity):
        self.environment = (hdri, environment_intensity)

    def add_light_directional(self, name, intensity, position):
        return self._add(name, "light", intensity=intensity, position=position)


class FakeCamera:
    pass


def test_srgb_colours_become_linear_for_gltf():
    assert np.allclose(srgb_to_linear(np.array([0.0, 1.0, 0.5, 0.02])), [0.0, 1.0, 0.21404, 0.02 / 12.92], atol=1e-5)
    assert np.allclose(srgb_to_linear(np.array([-0.5, 2.0])), [0.0, 1.0])


def test_the_scene_shows_the_face_the_target_and_landmarks():
    scene = FakeScene()
    view = SceneView(scene)
    camera = FakeCamera()
    view.setup(camera)
    assert scene.up == "+y" and camera.position[2] > 2
    assert scene.default_lights is False and scene.environment[1] < 1  # shading from the key light, not ambient
    key = scene.nodes["/lights/key"][1]
    assert key["position"][0] < 0 and key["position"][1] > 0 and key["position"][2] > 0  # upper left, in front
    sphere = trimesh.creation.icosphere(subdivisions=1)
    view.show_face("k1", 64, sphere.vertices, sphere.faces, np.full((len(sphere.vertices), 3), 0.5))
    assert view.face_shown == ("k1", 64) and scene.nodes[FACE_NODE][0] == "glb"
    view.set_face_visible(False)
    assert scene.nodes[FACE_NODE][2].visible is False
    target = Target("t", "a target", sphere.vertices, sphere.faces)
    view.show_target(target, "alone")
    assert view.target_shown == "t:alone" and scene.nodes[TARGET_NODE][0] == "glb"
    view.show_target(target, "overlay")  # over the face: its points, no second surface to flicker with it
    assert view.target_shown == "t:overlay" and scene.nodes[TARGET_NODE][0] == "points"
    view.show_target(Target("p", "points", sphere.vertices, None), "alone")
    assert scene.nodes[TARGET_NODE][0] == "points"
    many = Target("m", "many points", np.random.default_rng(0).uniform(size=(TARGET_POINTS + 500, 3)), None)
    view.show_target(many, "alone")
    assert len(scene.nodes[TARGET_NODE][1]["points"]) == TARGET_POINTS
    view.show_target(target, "hidden")
    assert TARGET_NODE not in scene.nodes and view.target_shown is None
    view.show_landmarks({"observed": np.zeros((5, 3)), "template": np.ones((5, 3))})
    assert {f"{LANDMARK_NODE}/observed", f"{LANDMARK_NODE}/template"} <= set(scene.nodes)
    view.show_landmarks({"observed": np.zeros((5, 3))})
    assert f"{LANDMARK_NODE}/template" not in scene.nodes and f"{LANDMARK_NODE}/observed" in scene.nodes
