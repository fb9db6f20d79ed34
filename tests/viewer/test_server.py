"""The viewer's server, in the default suite and without a browser: it serves the page and the
websocket on 127.0.0.1, a code changed through the Python API redraws the mesh, several tabs
and reloads are served, Ctrl-C stops it cleanly."""
from __future__ import annotations

import _thread
import signal
import socket
import threading
import time
import urllib.request

import numpy as np
import pytest
import viser
from websockets.sync.client import connect

from imface.viewer.codes import face_key
from imface.viewer.scene import LANDMARK_NODE
from imface.errors import ImfaceError
from imface.viewer.server import LOCALHOST, Viewer, check_host


@pytest.fixture
def viewer(tiny):
    viewer = Viewer(tiny, port=0, resolution=40, coarse_resolution=24, settle_seconds=0.05).start()
    assert viewer.wait_idle(120)
    yield viewer
    viewer.stop()


def _port(viewer: Viewer) -> int:
    return int(viewer.url.rstrip("/").rsplit(":", 1)[1])


def _tab(viewer: Viewer):
    """A websocket as the page opens it (viser's protocol version as subprotocol)."""
    return connect(viewer.url.replace("http", "ws"), subprotocols=[f"viser-v{viser.__version__}"], open_timeout=10)


def test_the_page_is_served_and_a_code_change_redraws_the_mesh(viewer):
    assert viewer.url.startswith(f"http://{LOCALHOST}:")
    page = urllib.request.urlopen(viewer.url, timeout=10).read()
    assert page.lstrip().lower().startswith(b"<!doctype html")
    with _tab(viewer) as tab:
        assert len(tab.recv(timeout=10)) > 0  # the scene and panel, replayed to the new tab
        before = viewer.scene.face_shown
        state = viewer.state.with_coordinate("identity", 0, 2.0)
        number = viewer.show(state)
        assert viewer.wait_idle(120)
        after = viewer.scene.face_shown
        assert after == (face_key(state.face(viewer.space)), 40) and after != before
        assert set(viewer.timings[number]) == {"coarse", "final"}
        assert viewer.shown.drawn.final and "40³ (refined)" in viewer.describe()
        assert len(tab.recv(timeout=10)) > 0  # the new mesh went out


def test_several_tabs_and_a_reload(viewer):
    first, second = _tab(viewer), _tab(viewer)
    try:
        first.recv(timeout=10)
        second.recv(timeout=10)
        first.close()  # a tab closed (or reloading)
        viewer.show(viewer.state.with_coordinate("identity", 0, -1.0))
        assert viewer.wait_idle(120)
        assert len(second.recv(timeout=10)) > 0  # the other tab still gets updates
        with _tab(viewer) as reloaded:
            assert len(reloaded.recv(timeout=10)) > 0
    finally:
        second.close()


def test_display_changes_redraw_from_the_cache(viewer):
    key = viewer.scene.face_shown
    viewer.set_display(color="template", landmarks=frozenset({"observed", "canonical", "template"}))
    assert viewer.wait_idle(120)
    assert viewer.shown.drawn.cached and viewer.scene.face_shown == key
    assert "template-space" in viewer.describe()
    assert {f"{LANDMARK_NODE}/{name}" for name in ("observed", "canonical", "template")} <= set(viewer.scene._handles)
    viewer.set_display(show="target")  # no target: the face is hidden, nothing else
    assert viewer.wait_idle(120) and viewer.scene.target_shown is None
    with pytest.raises(ValueError):
        viewer.set_display(color="rainbow")
    with pytest.raises(ValueError):
        viewer.set_display(show="everything")


def test_stop_closes_the_port_and_can_be_called_twice(tiny):
    viewer = Viewer(tiny, port=0, resolution=32, coarse_resolution=16).start()
    port = _port(viewer)
    viewer.stop()
    viewer.stop()
    with socket.socket() as probe:
        assert probe.connect_ex((LOCALHOST, port)) != 0
    assert not viewer.extractor._thread.is_alive()


def test_ctrl_c_stops_serve_forever_cleanly(tiny):
    # interrupt_main does nothing unless Python's own SIGINT handler is installed: an earlier test
    # (or the runner) may have left another one, so install it for this test.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    viewer = Viewer(tiny, port=0, resolution=32, coarse_resolution=16).start()
    port = _port(viewer)
    timer = threading.Timer(0.5, _thread.interrupt_main)  # what Ctrl-C does: KeyboardInterrupt in the main thread
    watchdog = threading.Timer(30.0, viewer.stop)  # a failure, not a hang, if the interrupt never comes
    try:
        timer.start()
        watchdog.start()
        started = time.monotonic()
        viewer.serve_forever()  # returns instead of raising
        elapsed = time.monotonic() - started
    finally:
        watchdog.cancel()
        timer.join()
        signal.signal(signal.SIGINT, previous)
    assert elapsed < 20.0, "serve_forever ended by the watchdog, not by Ctrl-C"
    with socket.socket() as probe:
        assert probe.connect_ex((LOCALHOST, port)) != 0


def test_a_connection_closed_before_its_handshake_is_not_an_error(viewer, caplog):
    with socket.create_connection((LOCALHOST, _port(viewer))):
        pass  # a port probe, or a tab closed while connecting
    with _tab(viewer) as tab:  # the server goes on
        assert len(tab.recv(timeout=10)) > 0
    assert not [r for r in caplog.records if "handshake" in r.getMessage()]


def test_an_address_this_machine_cannot_serve_on_is_one_line(tiny):
    for host in ("999.1.1.1", "192.0.2.1"):  # not an address; a documentation address no interface has
        viewer = Viewer(tiny, host=host, port=0)
        with pytest.raises(ImfaceError, match=f"--host '{host}'"):
            viewer.start()
        viewer.stop()
    check_host(LOCALHOST)


def test_two_controls_moved_at_once_both_count(viewer):
    """Two tabs dragging two sliders: each change is made on the state the other left."""
    def drag(index: int) -> None:
        for value in np.linspace(0.1, 1.0, 10):
            viewer.edit(lambda state: state.with_coordinate("identity", index, float(value)))

    threads = [threading.Thread(target=drag, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert np.allclose(viewer.state.id_coords[:2], [1.0, 1.0])
    assert viewer.wait_idle(120)
