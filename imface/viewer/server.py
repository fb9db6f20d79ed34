"""The viewer: a viser web server, the face on screen and the extraction worker behind it.

:class:`Viewer` is also the Python API (``imface view`` is a thin wrapper)::

    viewer = Viewer(load_pretrained(), port=0).start()      # port 0: any free port
    viewer.show(viewer.space.mean_state()); viewer.wait_idle()
    viewer.stop()

Every browser tab shares one scene and one set of controls; a reloaded tab gets the current
state back. Meshes are extracted on the worker thread (:mod:`imface.viewer.worker`) and painted
there (:mod:`imface.viewer.colors`), never on the server's threads.
"""
from __future__ import annotations

import contextlib
import io
import logging
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from imface.errors import ImfaceError
from imface.generate import face_landmarks
from imface.pretrained import Pretrained
from imface.viewer.codes import FaceState, LatentSpace
from imface.viewer.colors import BLEND_CONTRAST, COLOR_MODES, ERROR_MAX_MM, Painted, Target, paint
from imface.viewer.fits import FitsFolder
from imface.viewer.gui import Controls
from imface.viewer.library import Library, Roots
from imface.viewer.scene import SHOW_MODES, TARGET_MODES, SceneView
from imface.viewer.worker import COARSE_RESOLUTION, SETTLE_SECONDS, Drawn, Extractor

LOCALHOST = "127.0.0.1"
#: :meth:`Viewer.show`'s default target: keep the one shown.
KEEP = object()


def check_host(host: str) -> None:
    """ImfaceError unless this machine can serve on ``host`` (viser would wait forever)."""
    try:
        family, _, _, _, address = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as err:
        raise ImfaceError(None, f"--host {host!r} is not an address ({err})") from None
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address[0], 0))  # any port: only the interface is checked (a taken --port moves on)
        except OSError as err:
            raise ImfaceError(None, f"--host {host!r}: this machine cannot serve on it ({err.strerror})") from None


class _HandshakeFilter(logging.Filter):
    """Drops the websocket server's traceback for a connection closed before its handshake (a tab
    closed while it connected, a port probe): nothing went wrong in the viewer."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "opening handshake failed"


def _quiet_handshakes() -> None:
    logger = logging.getLogger("websockets.server")
    if not any(isinstance(f, _HandshakeFilter) for f in logger.filters):
        logger.addFilter(_HandshakeFilter())


@dataclass
class Display:
    """How the face is drawn: colour mode, blend field, top of the error scale, what is shown, landmarks."""

    color: str = "plain"
    blend_field: str = "template"
    blend_contrast: float = BLEND_CONTRAST
    error_max_mm: float = ERROR_MAX_MM
    show: str = "face"
    landmarks: frozenset[str] = field(default_factory=frozenset)


@dataclass
class Shown:
    """The last face drawn: the worker's :class:`Drawn` and its colours."""

    drawn: Drawn
    painted: Painted
    seconds: float


class Viewer:
    """``imface view``: serves the model (and optionally a fits folder and a dataset) on ``host:port``."""

    def __init__(self, pretrained: Pretrained, *, fits: Path | None = None, data: Path | None = None,
                 host: str = LOCALHOST, port: int = 8080, resolution: int = 128,
                 coarse_resolution: int = COARSE_RESOLUTION, settle_seconds: float = SETTLE_SECONDS,
                 log: Callable[[str], None] | None = None) -> None:
        self.pretrained, self.host, self.port, self.log = pretrained, host, int(port), log
        self.roots = Roots([pretrained.path, fits, data])
        self.library = Library(pretrained, data, self.roots)
        self.fits = None if fits is None else FitsFolder(pretrained, fits, self.library, self.roots)
        self.space = LatentSpace.from_stats(pretrained.code_stats)
        self.state: FaceState = self.space.mean_state()
        self.display = Display()
        self.target: Target | None = None
        self.target_note = ""
        self.shown: Shown | None = None
        self.message = ""
        #: Seconds from a request to its coarse and final meshes on screen, by request number.
        self.timings: dict[int, dict[str, float]] = {}
        self.extractor = Extractor(pretrained, self._drawn, self._failed, resolution=resolution,
                                   coarse_resolution=coarse_resolution, settle_seconds=settle_seconds)
        self._lock = threading.RLock()
        self._draw_lock = threading.Lock()
        self.server: Any = None
        self.scene: SceneView | None = None
        self.controls: Any = None
        self._stopped = threading.Event()

    # ----- life cycle ---------------------------------------------------------------------------

    def start(self) -> "Viewer":
        """Start the web server and the worker, and draw the mean face."""
        # viser (and its web server) load only when a viewer starts: `imface --help` stays quick
        import viser

        check_host(self.host)
        _quiet_handshakes()
        with contextlib.redirect_stdout(io.StringIO()):  # viser's own banner: the CLI prints the address itself
            self.server = viser.ViserServer(host=self.host, port=self.port, label="imface", verbose=False)
        self.server.gui.configure_theme(control_width="large", show_logo=False, dark_mode=False)
        self.scene = SceneView(self.server.scene)
        self.scene.setup(self.server.initial_camera)
        self.controls = Controls(self, self.server.gui)
        self.extractor.start()
        self.show(self.state)
        return self

    @property
    def url(self) -> str:
        """The address to open (the port the server really bound)."""
        port = self.server.get_port() if self.server is not None else self.port
        return f"http://{self.host}:{port}/"

    def stop(self) -> None:
        """Stop the worker and the server (idempotent)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.extractor.stop()
        if self.server is not None:
            with contextlib.redirect_stdout(io.StringIO()):  # and its "server stopped"
                self.server.stop()

    def serve_forever(self) -> None:
        """Block until Ctrl-C (or :meth:`stop` from another thread), then stop cleanly."""
        try:
            while not self._stopped.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every request so far is drawn; False on timeout."""
        return self.extractor.wait_idle(timeout)

    # ----- what is shown --------------------------------------------------------------------------

    def show(self, state: FaceState, target: Any = KEEP, note: str = "") -> int:
        """Draw ``state`` (the sliders follow). ``target``: the :class:`Target` to compare with from
        now on, or None (none); left out, the current one stays. Returns the request's number."""
        with self._lock:
            self.state = state
            if target is not KEEP:
                self.target, self.target_note = target, note
            if self.controls is not None:
                self.controls.sync(state)
            return self.extractor.request(state.face(self.space, self.pretrained.device))

    def edit(self, change: Callable[[FaceState], FaceState], target: Any = KEEP, note: str = "") -> int:
        """Draw ``change(current state)``, read and replaced at once: two controls moved together
        (two tabs) both count. ``target`` and ``note`` as in :meth:`show`."""
        with self._lock:
            return self.show(change(self.state), target, note)

    def set_display(self, **changes: Any) -> int:
        """Change how the face is drawn (fields of :class:`Display`) and redraw it."""
        with self._lock:
            if "color" in changes and changes["color"] not in COLOR_MODES:
                raise ValueError(f"colour mode must be one of {', '.join(COLOR_MODES)}")
            if "show" in changes and changes["show"] not in SHOW_MODES:
                raise ValueError(f"show must be one of {', '.join(SHOW_MODES)}")
            self.display = replace(self.display, **changes)
            return self.redraw()

    def redraw(self) -> int:
        """Draw the current state again (from the cache when it is there)."""
        return self.show(self.state)

    # ----- on the worker thread -------------------------------------------------------------------

    def _drawn(self, drawn: Drawn) -> None:
        with self._lock:
            display, target = self.display, self.target
        painted = paint(self.pretrained, drawn.mesh, drawn.face, display.color, blend_field=display.blend_field,
                        blend_contrast=display.blend_contrast, target=target, error_max_mm=display.error_max_mm)
        with self._draw_lock:
            if self.scene is not None:
                self.scene.show_face(drawn.mesh.key, drawn.mesh.resolution, drawn.mesh.vertices, drawn.mesh.faces,
                                     painted.colors, visible=display.show != "target")
                wanted = TARGET_MODES[display.show]
                if self.scene.target_shown != (None if target is None or wanted == "hidden" else f"{target.key}:{wanted}"):
                    self.scene.show_target(target, wanted)
                self.scene.show_landmarks(self._landmarks(drawn, display.landmarks))
            seconds = time.perf_counter() - drawn.requested_at
            self.shown = Shown(drawn, painted, seconds)
            self.message = ""
            self.timings.setdefault(drawn.number, {})["final" if drawn.final else "coarse"] = seconds
        if self.controls is not None:
            self.controls.status(self.describe())
        if drawn.final and self.log is not None and not drawn.cached:
            coarse = self.timings[drawn.number].get("coarse")
            coarse_text = "" if coarse is None else f" (coarse {self.extractor.coarse_resolution}^3: {coarse:.2f} s)"
            self.log(f"face {drawn.mesh.key}: {len(drawn.mesh.vertices):,} vertices at {drawn.mesh.resolution}^3, "
                     f"on screen {seconds:.2f} s after the change{coarse_text}")

    def _failed(self, number: int, message: str) -> None:
        self.report(message)

    def report(self, message: str) -> None:
        """Show a problem (one line) in the status panel until the next face is drawn."""
        self.message = message
        if self.controls is not None:
            self.controls.status(self.describe())

    def _landmarks(self, drawn: Drawn, wanted: frozenset[str]) -> dict[str, np.ndarray | None]:
        if not wanted:
            return {}
        observed, canonical = face_landmarks(self.pretrained, drawn.face)
        template = self.pretrained.model.template_five.detach().cpu().numpy()
        sets = {"observed": observed, "canonical": canonical, "template": template}
        return {name: points for name, points in sets.items() if name in wanted}

    def describe(self) -> str:
        """The status panel's Markdown: the face, its mesh, what the colours mean, the target, a problem."""
        lines = [f"**{self.state.label}**"]
        if self.shown is not None:
            mesh = self.shown.drawn.mesh
            kind = "refined" if self.shown.drawn.final else "coarse, refining when you stop"
            lines.append(f"{mesh.resolution}³ ({kind}): {len(mesh.vertices):,} vertices, "
                         f"{self.shown.seconds:.2f} s{' (cached)' if self.shown.drawn.cached else ''}")
            lines.append(self.shown.painted.note)
        if self.target_note:
            lines.append(self.target_note)
        if self.message:
            lines.append(f"⚠ {self.message}")
        return "\n\n".join(lines)
