"""The viewer's control panel (viser GUI): latent sliders, training faces, interpolation and
transfer, fits, display and export. Every control calls :class:`imface.viewer.server.Viewer`;
the panel holds no state of its own beyond what it shows.

The controls are the server's, shared by every tab: moving a slider in one tab moves it in the
others. Downloads go to the tab that asked.
"""
from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from imface.errors import ImfaceError
from imface.generate import Face, interpolate_faces, transfer_face
from imface.io.mesh import WRITE_FORMATS
from imface.pretrained import NEUTRAL
from imface.viewer.codes import FaceState
from imface.viewer.colors import BLEND_WEIGHTS, COLOR_MODES
from imface.viewer.export import file_name, mesh_bytes, png_bytes
from imface.viewer.scene import LANDMARK_STYLE, SHOW_MODES

NONE = "—"
#: Slider range in standard deviations, and its step.
SIGMA_RANGE, SIGMA_STEP = 3.0, 0.05
#: Faces the interpolation slider steps through (both ends included): t in steps of 0.05.
INTERPOLATION_STEPS = 21
SCREENSHOT_TIMEOUT = 30.0


class Controls:
    """The GUI of one viewer (``viewer``: the :class:`imface.viewer.server.Viewer` it drives;
    ``gui``: its viser server's ``gui``)."""

    def __init__(self, viewer: Any, gui: Any) -> None:
        self.viewer, self.gui = viewer, gui
        self._syncing = threading.local()
        self.face_a: Face | None = None
        self.face_b: Face | None = None
        self._random_seed = 0
        self.status_text = gui.add_markdown("starting…")
        self._latent()
        self._training()
        self._mix()
        if viewer.fits is not None:
            self._fits()
        self._display()
        self._export()

    # ----- building ---------------------------------------------------------------------------------

    def _latent(self) -> None:
        space = self.viewer.space
        self.random_button = self.gui.add_button("Random face")
        self.random_button.on_click(self._guarded(lambda _: self.random()))
        self.reset_button = self.gui.add_button("Reset")
        self.reset_button.on_click(self._guarded(lambda _: self.reset()))
        with self.gui.add_folder("Identity"):
            self.gui.add_markdown("Principal directions of the training identity codes, in standard deviations.")
            self.id_sliders = [self._slider(f"identity {i + 1}", "identity", i) for i in range(space.identity.count)]
        with self.gui.add_folder("Expression"):
            self.neutral = self.gui.add_checkbox("neutral (no expression code)", initial_value=True)
            self.neutral.on_update(self._guarded(lambda _: self.viewer.edit(
                lambda state: replace(state, neutral=bool(self.neutral.value)))))
            self.exp_sliders = [self._slider(f"expression {i + 1}", "expression", i)
                                for i in range(space.expression.count)]

    def _slider(self, label: str, kind: str, index: int) -> Any:
        slider = self.gui.add_slider(label, min=-SIGMA_RANGE, max=SIGMA_RANGE, step=SIGMA_STEP, initial_value=0.0)
        slider.on_update(self._guarded(lambda _: self.viewer.edit(
            lambda state: state.with_coordinate(kind, index, float(slider.value)))))
        return slider

    def _training(self) -> None:
        library = self.viewer.library
        with self.gui.add_folder("Training faces", expand_by_default=False):
            self.identity = self.gui.add_dropdown("identity", [NONE, *library.identities], initial_value=NONE)
            self.expression = self.gui.add_dropdown("expression", [NONE, *library.expressions], initial_value=NONE)
            self.identity.on_update(self._guarded(lambda _: self.pick_identity(str(self.identity.value))))
            self.expression.on_update(self._guarded(lambda _: self.pick_expression(str(self.expression.value))))
            if library.manifest is not None:
                self.gui.add_markdown("With --data, the training scan is the target (colour mode error, Show).")

    def _mix(self) -> None:
        with self.gui.add_folder("Interpolate / transfer", expand_by_default=False):
            self.mix_text = self.gui.add_markdown("A: —, B: —")
            self.set_a = self.gui.add_button("A = current face")
            self.set_a.on_click(self._guarded(lambda _: self.remember("a")))
            self.set_b = self.gui.add_button("B = current face")
            self.set_b.on_click(self._guarded(lambda _: self.remember("b")))
            self.blend = self.gui.add_slider("A → B", min=0.0, max=1.0, step=1.0 / (INTERPOLATION_STEPS - 1),
                                             initial_value=0.0)
            self.blend.on_update(self._guarded(lambda _: self.interpolate(float(self.blend.value))))
            self.transfer_button = self.gui.add_button("A's identity + B's expression")
            self.transfer_button.on_click(self._guarded(lambda _: self.transfer()))

    def _fits(self) -> None:
        fits = self.viewer.fits
        assert fits is not None
        with self.gui.add_folder("Fits"):
            self.fit = self.gui.add_dropdown("fitted scan", [NONE, *fits.names], initial_value=NONE)
            self.fit.on_update(self._guarded(lambda _: self.pick_fit(str(self.fit.value))))
            self.fit_text = self.gui.add_markdown(f"{len(fits.names)} fitted scan(s) in {fits.folder}")

    def _display(self) -> None:
        with self.gui.add_folder("Display"):
            self.color = self.gui.add_dropdown("colour", list(COLOR_MODES), initial_value="plain")
            self.color.on_update(self._guarded(lambda _: self.viewer.set_display(color=str(self.color.value))))
            self.blend_field = self.gui.add_dropdown("blend field", list(BLEND_WEIGHTS), initial_value="template")
            self.blend_field.on_update(self._guarded(
                lambda _: self.viewer.set_display(blend_field=str(self.blend_field.value))))
            self.blend_contrast = self.gui.add_slider("blend contrast", min=1.0, max=16.0, step=1.0,
                                                      initial_value=float(self.viewer.display.blend_contrast),
                                                      hint="1: the blend weights as they are; higher: each point "
                                                           "in the colour of the field that owns it")
            self.blend_contrast.on_update(self._guarded(
                lambda _: self.viewer.set_display(blend_contrast=float(self.blend_contrast.value))))
            self.error_max = self.gui.add_slider("error scale (mm)", min=0.5, max=20.0, step=0.5,
                                                 initial_value=float(self.viewer.display.error_max_mm))
            self.error_max.on_update(self._guarded(
                lambda _: self.viewer.set_display(error_max_mm=float(self.error_max.value))))
            self.show_mode = self.gui.add_dropdown("show", list(SHOW_MODES), initial_value="face")
            self.show_mode.on_update(self._guarded(lambda _: self.viewer.set_display(show=str(self.show_mode.value))))
            self.landmarks = {}
            for name, (label, _) in LANDMARK_STYLE.items():
                box = self.gui.add_checkbox(label, initial_value=False)
                box.on_update(self._guarded(lambda _: self.viewer.set_display(landmarks=frozenset(
                    n for n, b in self.landmarks.items() if b.value))))
                self.landmarks[name] = box

    def _export(self) -> None:
        with self.gui.add_folder("Export", expand_by_default=False):
            self.export_format = self.gui.add_dropdown("format", list(WRITE_FORMATS), initial_value="ply")
            self.export_unit = self.gui.add_dropdown("unit", ["model", "mm"], initial_value="model")
            self.download_mesh = self.gui.add_button("Download mesh")
            self.download_mesh.on_click(self._guarded(lambda event: self.send_mesh(event.client)))
            self.download_png = self.gui.add_button("Download screenshot (PNG)")
            self.download_png.on_click(self._guarded(lambda event: self.send_screenshot(event.client)))

    # ----- actions (also the Python API of the panel) ------------------------------------------------

    def random(self) -> int:
        self._random_seed += 1
        face = self.viewer.library.random(self._random_seed)
        self._clear_choices()
        return self.viewer.show(self.viewer.space.state_of(face), target=None)

    def reset(self) -> int:
        self._clear_choices()
        return self.viewer.show(self.viewer.space.mean_state(), target=None)

    def pick_identity(self, name: str) -> int | None:
        if name == NONE:
            return None
        id_code = self.viewer.pretrained.identity_code(name)
        expression = self._expression_name(self.viewer.state)
        return self.viewer.edit(lambda state: state.with_identity(self.viewer.space, id_code, name),
                                *self._scan_target(name, expression))

    def pick_expression(self, key: str) -> int | None:
        if key == NONE:
            return None
        exp_code, neutral = self.viewer.pretrained.expression_code(key)
        return self.viewer.edit(lambda state: state.with_expression(self.viewer.space, exp_code, neutral, key),
                                *self._scan_target(str(self.identity.value), key))

    def pick_fit(self, name: str) -> int | None:
        fits = self.viewer.fits
        if name == NONE or fits is None:
            return None
        target, note = fits.target(name)
        self.fit_text.content = fits.metrics_text(name)
        self._clear_choices(keep_fit=True)
        return self.viewer.show(self.viewer.space.state_of(fits.face(name), label=f"fit {name}"), target, note)

    def remember(self, which: str) -> None:
        face = self.viewer.state.face(self.viewer.space, self.viewer.pretrained.device)
        if which == "a":
            self.face_a = face
        else:
            self.face_b = face
        self.mix_text.content = (f"A: {self.face_a.name if self.face_a else '—'}, "
                                 f"B: {self.face_b.name if self.face_b else '—'}")

    def interpolate(self, t: float) -> int | None:
        if self.face_a is None or self.face_b is None:
            self.viewer.report("set A and B first (A = current face, B = current face)")
            return None
        index = int(round(t * (INTERPOLATION_STEPS - 1)))
        face = interpolate_faces(self.face_a, self.face_b, INTERPOLATION_STEPS)[index]
        label = f"{self.face_a.name} → {self.face_b.name}, t = {index / (INTERPOLATION_STEPS - 1):.2f}"
        return self.viewer.show(self.viewer.space.state_of(face, label=label), target=None)

    def transfer(self) -> int | None:
        if self.face_a is None or self.face_b is None:
            self.viewer.report("set A and B first (A = current face, B = current face)")
            return None
        face = transfer_face(self.face_a, self.face_b)
        label = f"{self.face_a.name}'s identity, {self.face_b.name}'s expression"
        return self.viewer.show(self.viewer.space.state_of(face, label=label), target=None)

    def send_mesh(self, client: Any) -> None:
        shown = self.viewer.shown
        if shown is None or client is None:
            return
        colors = None if self.viewer.display.color == "plain" else np.asarray(shown.painted.colors)
        fmt, unit = str(self.export_format.value), str(self.export_unit.value)
        data = mesh_bytes(shown.drawn.mesh.vertices, shown.drawn.mesh.faces, colors, fmt=fmt, unit=unit)
        client.send_file_download(file_name(self.viewer.state.label, fmt), data, save_immediately=True)

    def send_screenshot(self, client: Any) -> None:
        if client is None:
            return
        height, width = client.camera.image_height, client.camera.image_width
        image = client.get_render(height=height, width=width, transport_format="png", timeout=SCREENSHOT_TIMEOUT)
        client.send_file_download(file_name(self.viewer.state.label, "png"), png_bytes(image), save_immediately=True)

    # ----- keeping the panel in step ----------------------------------------------------------------

    def sync(self, state: FaceState) -> None:
        """Move the sliders to ``state`` without drawing again (called by the viewer)."""
        self._syncing.active = True
        try:
            for sliders, coords in ((self.id_sliders, state.id_coords), (self.exp_sliders, state.exp_coords)):
                for slider, value in zip(sliders, coords):
                    # A slider already within half a step is left alone: re-sending the value a tab is
                    # dragging would pull its thumb back while the user moves it.
                    if abs(float(slider.value) - float(value)) > SIGMA_STEP / 2:
                        slider.value = round(float(np.clip(round(value / SIGMA_STEP) * SIGMA_STEP, -SIGMA_RANGE,
                                                           SIGMA_RANGE)), 6)
            self.neutral.value = bool(state.neutral)
        finally:
            self._syncing.active = False

    def status(self, text: str) -> None:
        self.status_text.content = text

    def _clear_choices(self, keep_fit: bool = False) -> None:
        self._syncing.active = True
        try:
            self.identity.value = NONE
            self.expression.value = NONE
            if not keep_fit and self.viewer.fits is not None:
                self.fit.value = NONE
        finally:
            self._syncing.active = False

    def _expression_name(self, state: FaceState) -> str:
        chosen = str(self.expression.value)
        return chosen if chosen != NONE else (NEUTRAL if state.neutral else NONE)

    def _scan_target(self, identity: str, expression: str) -> tuple[Any, str]:
        library = self.viewer.library
        if library.manifest is None or NONE in (identity, expression):
            return None, ""
        scan = library.training_scan(identity, expression)
        if scan is None:
            return None, f"--data has no scan of {identity} with {expression}"
        try:
            return library.scan_target(scan), f"target: training scan {scan.name}"
        except ImfaceError as err:
            return None, f"target not read: {err}"

    def _guarded(self, action: Callable[[Any], Any]) -> Callable[[Any], None]:
        """A callback that ignores the updates :meth:`sync` makes and shows a user error in the status."""
        def callback(event: Any) -> None:
            if getattr(self._syncing, "active", False):
                return
            try:
                action(event)
            except ImfaceError as err:
                self.viewer.report(str(err))

        return callback
