"""``imface view`` in a real browser (slow): the command on the tiny model, the page in headless
Chromium (Debian's ``chromium``, ``make browser``), a slider moved with the keyboard and the mouse
through the page's own controls; the server draws a new mesh, the screenshot is not blank and is
kept in the test's folder (viewer-before.png, viewer-after.png), the page's downloads (a PNG
rendered by the browser, the mesh as PLY) land in downloads/ there; Ctrl-C stops the command."""
from __future__ import annotations

import io
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from imface.io.mesh import read_mesh

pytestmark = pytest.mark.slow

FACE_LINE = re.compile(r"^face ([0-9a-f]{16}): ([\d,]+) vertices at 40\^3")


def _lines(process: subprocess.Popen) -> "queue.Queue[str]":
    """The command's output lines, read on a thread."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            lines.put(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return lines


def _next(lines: "queue.Queue[str]", pattern: re.Pattern | str, timeout: float, seen: list[str]) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"no line matching {pattern!r} within {timeout} s; output:\n" + "\n".join(seen))


def _canvas_pixels(png: bytes, width: int) -> np.ndarray:
    """The 3D view's pixels: the page left of the control panel."""
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    return image[:, : width - 420]


def test_a_slider_moved_in_chromium_changes_the_mesh(trained_tiny, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (Debian's package: make browser)")
    from bench.viewer import HIDE_NOTICES, REFINED, HeadlessChromium

    command = [sys.executable, "-m", "imface", "--threads", "1", "view", "--model", str(trained_tiny[1]),
               "--port", "0", "--resolution", "40", "--device", "cpu"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines, seen = _lines(server), []
    browser = None
    try:
        url = _next(lines, r"imface view: (http://127\.0\.0\.1:\d+/)", 120, seen).group(1)
        first = _next(lines, FACE_LINE, 120, seen).group(1)
        browser = HeadlessChromium(size=(1280, 800))
        browser.open(url)
        browser.wait_for(REFINED)
        time.sleep(2.0)
        browser.evaluate(HIDE_NOTICES)
        before = browser.screenshot()
        (tmp_path / "viewer-before.png").write_bytes(before)

        sliders = browser.sliders()
        assert len(sliders) >= 2 and sliders[0]["value"] == "0"
        browser.click(sliders[0]["x"], sliders[0]["y"])  # focus the first identity slider's thumb
        browser.press("ArrowRight", 39, times=10)  # ten steps of 0.05 sigma
        browser.wait_for("document.querySelectorAll('[role=slider]')[0].getAttribute('aria-valuenow') === '0.5'")
        moved = _next(lines, FACE_LINE, 120, seen).group(1)
        assert moved != first  # the server drew a new face

        second = sliders[1]
        browser.drag((second["x"], second["y"]), (second["x"] + 40, second["y"]))  # and a mouse drag
        browser.wait_for("document.querySelectorAll('[role=slider]')[1].getAttribute('aria-valuenow') !== '0'")
        dragged = _next(lines, FACE_LINE, 120, seen).group(1)
        assert dragged not in (first, moved)
        browser.wait_for(REFINED)
        time.sleep(2.0)
        after = browser.screenshot()
        (tmp_path / "viewer-after.png").write_bytes(after)

        downloads = tmp_path / "downloads"
        browser.downloads_to(downloads)
        browser.button("Download screenshot (PNG)")  # the browser renders it for the server, which sends it back
        browser.button("Download mesh")
        deadline = time.monotonic() + 60
        while len(list(downloads.glob("*.p*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)  # let the files finish
        png = np.asarray(Image.open(downloads / "mean-face-edited.png"))
        assert png.shape[2] == 4 and (png[..., 3] > 0).mean() > 0.01  # the face on a transparent background
        assert len(read_mesh(downloads / "mean-face-edited.ply").vertices) > 100

        pixels = _canvas_pixels(after, 1280)
        background = np.median(pixels.reshape(-1, 3), axis=0)
        drawn = np.abs(pixels.astype(int) - background).sum(axis=2) > 30
        assert drawn.mean() > 0.01, "the 3D view is blank"
        changed = np.abs(_canvas_pixels(before, 1280).astype(int) - pixels.astype(int)).sum(axis=2) > 30
        assert changed.mean() > 0.001, "the picture did not change with the mesh"
    finally:
        if browser is not None:
            browser.close()
        server.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    _next(lines, r"imface view: stopped", 10, seen)
    assert server.returncode == 0
