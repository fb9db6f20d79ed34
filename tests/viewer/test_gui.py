"""The control panel on a running viewer: sliders both ways, training faces, random and reset,
interpolation and transfer through imface.generate, fits, downloads."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from imface.errors import ImfaceError
from imface.generate import interpolate_faces, transfer_face
from imface.viewer.codes import face_key
from imface.viewer.gui import INTERPOLATION_STEPS, NONE, SIGMA_STEP
from imface.viewer.server import Viewer
from tests.model_fixtures import make_fits

FIT_SCANS = ("001/1_neutral", "002/2_smile")


@pytest.fixture(scope="module")
def viewer(tiny, trained_tiny, tmp_path_factory):
    data = trained_tiny[0]
    fits = make_fits(tiny, data, tmp_path_factory.mktemp("gui") / "fits", scans=FIT_SCANS, resolution=24)
    viewer = Viewer(tiny, fits=fits, data=data, port=0, resolution=40, coarse_resolution=24,
                    settle_seconds=0.0).start()
    assert viewer.wait_idle(120)
    yield viewer
    viewer.stop()


def _face(viewer):
    return viewer.state.face(viewer.space)


def test_one_slider_per_principal_direction_and_moving_one_redraws(viewer):
    controls = viewer.controls
    assert len(controls.id_sliders) == viewer.space.identity.count > 0
    assert len(controls.exp_sliders) == viewer.space.expression.count > 0
    controls.reset()
    controls.id_sliders[0].value = 1.5  # as a browser's drag sets it
    assert viewer.state.id_coords[0] == 1.5 and viewer.wait_idle(120)
    assert viewer.scene.face_shown[0] == face_key(_face(viewer))
    controls.exp_sliders[0].value = 0.5
    assert not viewer.state.neutral and controls.neutral.value is False
    controls.neutral.value = True
    assert viewer.state.neutral


def test_the_sliders_follow_a_face_shown_from_elsewhere_without_drawing_twice(viewer):
    before = viewer.extractor._latest
    state = viewer.space.mean_state().with_coordinate("identity", 0, 0.37)
    viewer.show(state)
    assert viewer.extractor._latest == before + 1  # moving the sliders did not request more faces
    assert np.isclose(viewer.controls.id_sliders[0].value, round(0.37 / SIGMA_STEP) * SIGMA_STEP)
    assert viewer.wait_idle(120)


def test_training_faces_by_name_with_their_scan_as_target(viewer, tiny):
    controls = viewer.controls
    controls.reset()
    controls.identity.value = "002"
    face = _face(viewer)
    assert torch.allclose(face.id_code, tiny.identity_code("002"), atol=1e-5) and face.neutral
    assert viewer.target is not None and viewer.target.key == "data:002/1_neutral"
    key = next(k for k in tiny.codes.expressions if k.startswith("002/"))
    controls.expression.value = key
    face = _face(viewer)
    assert torch.allclose(face.exp_code, tiny.expression_code(key)[0], atol=1e-5) and not face.neutral
    assert viewer.target.key == f"data:{key}"
    viewer.set_display(show="face + target", color="error")
    assert viewer.wait_idle(120)
    assert viewer.scene.target_shown == f"data:{key}:overlay" and viewer.shown.painted.errors is not None
    viewer.set_display(show="face", color="plain")
    controls.random()
    assert controls.identity.value == NONE and controls.expression.value == NONE and viewer.target is None
    assert viewer.wait_idle(120)


def test_random_faces_differ_and_reset_is_the_mean(viewer, tiny):
    controls = viewer.controls
    controls.random()
    first = _face(viewer)
    controls.random()
    second = _face(viewer)
    assert not torch.equal(first.id_code, second.id_code)
    controls.reset()
    assert np.allclose(_face(viewer).id_code.numpy(), tiny.code_stats.id_mean, atol=1e-6)
    assert viewer.wait_idle(120)


def test_interpolation_and_transfer_are_the_generate_module_s(viewer):
    controls = viewer.controls
    controls.face_a = controls.face_b = None
    controls.blend.value = 0.5
    assert "set A and B first" in viewer.describe()
    controls.identity.value = "001"
    controls.set_a.value = True  # a click on "A = current face"
    a = _face(viewer)
    assert controls.face_a is not None and torch.equal(controls.face_a.id_code, a.id_code)
    controls.identity.value = "002"
    controls.expression.value = next(k for k in viewer.pretrained.codes.expressions if k.startswith("002/"))
    controls.remember("b")
    b = _face(viewer)
    assert "A: 001 + neutral" in controls.mix_text.content
    controls.interpolate(0.5)
    expected = interpolate_faces(a, b, INTERPOLATION_STEPS)[INTERPOLATION_STEPS // 2]
    assert torch.allclose(_face(viewer).id_code, expected.id_code, atol=1e-5)
    assert torch.allclose(_face(viewer).exp_code, expected.exp_code, atol=1e-5)
    controls.transfer()
    expected = transfer_face(a, b)
    face = _face(viewer)
    assert torch.allclose(face.id_code, expected.id_code, atol=1e-5) and face.neutral == expected.neutral
    assert torch.allclose(face.exp_code, expected.exp_code, atol=1e-5)
    assert viewer.wait_idle(120)


def test_choosing_a_fit_shows_its_codes_target_and_metrics(viewer, tiny):
    controls = viewer.controls
    controls.fit.value = "002/2_smile"
    assert torch.allclose(_face(viewer).id_code, tiny.identity_code("002"), atol=1e-5)
    assert viewer.target is not None and viewer.target.key == "fit:002/2_smile"
    assert "no metrics recorded" in controls.fit_text.content
    assert viewer.state.label == "fit 002/2_smile"
    controls.reset()
    assert controls.fit.value == NONE
    assert viewer.wait_idle(120)


def test_errors_of_a_control_go_to_the_status_line(viewer):
    callback = viewer.controls._guarded(lambda event: viewer.controls.pick_identity("nobody"))
    callback(None)
    assert "unknown identity 'nobody'" in viewer.describe()


class FakeClient:
    def __init__(self, image=None):
        self.sent = []
        self.image = image
        self.camera = type("Camera", (), {"image_height": 30, "image_width": 40})()

    def send_file_download(self, name, data, save_immediately=False):
        self.sent.append((name, data))

    def get_render(self, height, width, transport_format, timeout):
        assert (height, width, transport_format) == (30, 40, "png")
        return self.image


def test_downloads_go_to_the_tab_that_asked(viewer):
    controls = viewer.controls
    controls.reset()
    viewer.set_display(color="template")
    assert viewer.wait_idle(120)
    client = FakeClient()
    controls.export_format.value = "ply"
    controls.send_mesh(client)
    name, data = client.sent[0]
    assert name == "mean-face.ply"
    mesh = trimesh.load(io.BytesIO(data), file_type="ply", process=False)
    assert len(mesh.vertices) == len(viewer.shown.drawn.mesh.vertices)
    assert np.ptp(mesh.visual.vertex_colors[:, :3].astype(float), axis=0).max() > 10  # the colour mode came along
    viewer.set_display(color="plain")
    assert viewer.wait_idle(120)
    image = np.zeros((30, 40, 4), np.uint8)
    image[5:20, 10:30] = (200, 100, 50, 255)
    client = FakeClient(image)
    controls.send_screenshot(client)
    name, data = client.sent[0]
    assert name == "mean-face.png" and np.array_equal(np.asarray(Image.open(io.BytesIO(data))), image)
    controls.send_mesh(None)  # an event without a client: nothing to send, no error


def test_a_fits_folder_is_optional(tiny):
    viewer = Viewer(tiny, port=0, resolution=24, coarse_resolution=16).start()
    try:
        assert not hasattr(viewer.controls, "fit") and viewer.controls.pick_fit("x") is None
        with pytest.raises(ImfaceError):
            viewer.controls.pick_identity("nobody")
    finally:
        viewer.stop()
