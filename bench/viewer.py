"""The viewer's speed (``imface view``): from a code change to a mesh on screen, coarse and refined.

Starts the viewer's server (no browser needed: "on screen" is the mesh handed to the web
server as a GLB, coloured) and changes the code as a user does:

- **jump**: ``--faces`` random faces, one at a time, each left to refine (nothing cached);
  per face the time to its coarse mesh (``--coarse``, 64^3) and to its refined one
  (``--resolution``), the latter including the ``--settle`` wait for the slider to rest;
- **drag**: the first identity slider dragged through ``--drag-steps`` positions, one every
  ``--drag-interval`` seconds, then released: how many coarse meshes were drawn during the drag
  and how long after the release the last position was drawn coarse and refined.

The last line is the headline, with the goals of issue 29 (coarse < 0.5 s, refined < 5 s).
``--screenshot PNG`` instead takes a picture of the viewer in headless Chromium (Debian's
``chromium``, ``make browser``), as in docs/viewer.md.

    OMP_NUM_THREADS=2 python -m bench.viewer [--model ict] [--threads 2] [--faces 5]
    python -m bench.viewer --screenshot docs/viewer/viewer.png [--color template] [--random SEED]
        [--fits FITS --fit SCAN --show "face + target"]
"""
from __future__ import annotations

import argparse
import base64
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository root

from imface.pretrained import load_pretrained  # noqa: E402
from imface.threads import set_threads  # noqa: E402
from imface.viewer.server import Viewer  # noqa: E402
from imface.viewer.worker import COARSE_RESOLUTION, SETTLE_SECONDS  # noqa: E402

COARSE_GOAL, REFINED_GOAL = 0.5, 5.0


class HeadlessChromium:
    """Debian's ``chromium`` without a display, driven over the Chrome DevTools Protocol (no
    selenium, no downloaded browser). WebGL runs on SwiftShader (software)."""

    def __init__(self, executable: str = "chromium", size: tuple[int, int] = (1280, 800), timeout: float = 30.0) -> None:
        from websockets.sync.client import connect  # installed with viser

        path = shutil.which(executable)
        if path is None:
            raise RuntimeError(f"{executable} is not installed (make browser: apt-get install -y chromium)")
        self.size = size
        self.profile = Path(tempfile.mkdtemp(prefix="imface-chromium-"))
        self.process = subprocess.Popen(
            [path, "--headless=new", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
             f"--window-size={size[0]},{size[1]}", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as answer:
            page = next(t for t in json.load(answer) if t["type"] == "page")
        self.socket = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=timeout)
        self._id = 0
        self.send("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1,
                  mobile=False)

    def send(self, method: str, **params: Any) -> dict:
        """One DevTools command; its result (events in between are skipped)."""
        self._id += 1
        self.socket.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0) -> None:
        """Poll a JavaScript condition until it holds."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:g} s for {expression}")
            time.sleep(0.2)

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def sliders(self) -> list[dict]:
        """The page's slider thumbs: centre x, y and value, top to bottom."""
        return self.evaluate("""[...document.querySelectorAll('[role=slider]')].map(e => {
            const r = e.getBoundingClientRect();
            return {x: r.x + r.width / 2, y: r.y + r.height / 2, value: e.getAttribute('aria-valuenow')};
        })""")

    def click(self, x: float, y: float) -> None:
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def press(self, key: str, code: int, times: int = 1, pause: float = 0.15) -> None:
        """Key strokes to the focused element (e.g. "ArrowRight", 39), ``pause`` seconds apart: at a
        typist's pace. (Strokes a few ms apart can leave viser's page and server on different slider
        values: its client sends at most one GUI update per 50 ms.)"""
        for _ in range(times):
            for kind in ("keyDown", "keyUp"):
                self.send("Input.dispatchKeyEvent", type=kind, key=key, code=key, windowsVirtualKeyCode=code)
            time.sleep(pause)

    def drag(self, start: tuple[float, float], end: tuple[float, float], steps: int = 10, pause: float = 0.05) -> None:
        """Press at ``start``, move to ``end`` in ``steps``, release: a slider dragged by the mouse."""
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=start[0], y=start[1])
        self.send("Input.dispatchMouseEvent", type="mousePressed", x=start[0], y=start[1], button="left", clickCount=1)
        for i in range(1, steps + 1):
            x = start[0] + (end[0] - start[0]) * i / steps
            y = start[1] + (end[1] - start[1]) * i / steps
            self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y, button="left", buttons=1)
            time.sleep(pause)
        self.send("Input.dispatchMouseEvent", type="mouseReleased", x=end[0], y=end[1], button="left", clickCount=1)

    def button(self, label: str) -> None:
        """Click the page's button ``label`` (also one in a folded folder)."""
        found = self.evaluate("(() => { const b = [...document.querySelectorAll('button')].find("
                              f"b => b.innerText.trim() === {json.dumps(label)}); if (b) b.click(); return !!b; }})()")
        if not found:
            raise RuntimeError(f"no button {label!r} on the page")

    def downloads_to(self, folder: Path) -> None:
        """Save the page's downloads in ``folder`` without asking."""
        folder.mkdir(parents=True, exist_ok=True)
        self.send("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(folder))

    def screenshot(self) -> bytes:
        """The page as PNG bytes."""
        return base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        if getattr(self, "socket", None) is not None:
            self.socket.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


#: Hides viser's notice that WebGL runs in software (true in headless Chromium, not for users).
HIDE_NOTICES = "document.querySelectorAll('.mantine-Notification-root').forEach(e => e.remove()); true"
REFINED = "document.body.innerText.includes('(refined)')"


def take_screenshot(viewer: Viewer, path: Path, size: tuple[int, int] = (1280, 800)) -> Path:
    """A picture of the viewer's page in headless Chromium, once the face is refined."""
    browser = HeadlessChromium(size=size)
    try:
        browser.open(viewer.url)
        browser.wait_for(REFINED)
        time.sleep(2.0)  # the GLB is decoded and drawn after the panel updates
        browser.evaluate(HIDE_NOTICES)
        time.sleep(0.5)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(browser.screenshot())
    finally:
        browser.close()
    return path


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s" if values else "n/a"


def jumps(viewer: Viewer, faces: int, seed: int) -> tuple[list[float], list[float], list[float]]:
    """Random faces one after the other: times to coarse and refined, and the extraction alone."""
    coarse, refined, extraction = [], [], []
    for i in range(faces):
        number = viewer.show(viewer.space.state_of(viewer.library.random(seed + i)))
        viewer.wait_idle()
        timing = viewer.timings.get(number, {})
        if "final" not in timing or viewer.shown is None:
            print(f"face {i + 1}: not drawn ({viewer.message})")
            continue
        coarse += [timing["coarse"]] if "coarse" in timing else []
        refined.append(timing["final"])
        extraction.append(viewer.shown.drawn.mesh.seconds)
        print(f"face {i + 1}: coarse {timing.get('coarse', float('nan')):.2f} s, refined {timing['final']:.2f} s "
              f"({len(viewer.shown.drawn.mesh.vertices):,} vertices)")
    return coarse, refined, extraction


def drag(viewer: Viewer, steps: int, interval: float) -> dict[str, float]:
    """The first identity slider from -1.5 to +1.5 sigma, one position every ``interval`` seconds."""
    start = viewer.space.mean_state()
    numbers = []
    for i in range(steps):
        value = -1.5 + 3.0 * i / max(steps - 1, 1)
        numbers.append(viewer.show(start.with_coordinate("identity", 0, value)))
        time.sleep(interval)
    viewer.wait_idle()
    drawn = sum("coarse" in viewer.timings.get(n, {}) for n in numbers)
    last = viewer.timings.get(numbers[-1], {})
    return {"drawn": drawn, "coarse": last.get("coarse", float("nan")), "final": last.get("final", float("nan"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Model folder or shipped name (default: the shipped model).")
    parser.add_argument("--resolution", type=int, default=128, help="Refined mesh resolution.")
    parser.add_argument("--coarse", type=int, default=COARSE_RESOLUTION, help="Coarse mesh resolution.")
    parser.add_argument("--settle", type=float, default=SETTLE_SECONDS, help="Rest before refining (s).")
    parser.add_argument("--faces", type=int, default=5, help="Random faces for the jump test.")
    parser.add_argument("--drag-steps", type=int, default=20, help="Slider positions in the drag test (0: skip).")
    parser.add_argument("--drag-interval", type=float, default=0.05, help="Seconds between drag positions.")
    parser.add_argument("--threads", type=int, default=None, help="Torch/BLAS threads (default: all cores).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--screenshot", type=Path, default=None, help="Take a PNG of the page instead.")
    parser.add_argument("--color", default="plain", help="Colour mode of the screenshot.")
    parser.add_argument("--random", type=int, default=None, help="Screenshot a random face of this seed "
                        "(default: the mean face).")
    parser.add_argument("--fits", type=Path, default=None, help="A fits folder for the viewer.")
    parser.add_argument("--fit", default=None, help="Screenshot this fitted scan of --fits.")
    parser.add_argument("--show", default="face", help="What the screenshot shows: face | target | face + target.")
    parser.add_argument("--error-max", type=float, default=5.0, help="Top of the error colour scale (mm).")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    pretrained = load_pretrained(args.model, device="cpu")
    viewer = Viewer(pretrained, fits=args.fits, port=0, resolution=args.resolution, coarse_resolution=args.coarse,
                    settle_seconds=args.settle).start()
    try:
        viewer.wait_idle()
        if args.screenshot is not None:
            if args.random is not None:
                viewer.show(viewer.space.state_of(viewer.library.random(args.random)))
            if args.fit is not None:
                viewer.controls.fit.value = args.fit  # as if chosen in the panel
            viewer.set_display(color=args.color, show=args.show, error_max_mm=args.error_max)
            viewer.wait_idle()
            print(f"screenshot: {take_screenshot(viewer, args.screenshot)}")
            return 0
        print(f"model: {pretrained.path}; coarse {viewer.extractor.coarse_resolution}^3, refined "
              f"{viewer.extractor.resolution}^3, rest {args.settle:g} s, threads {args.threads or 'all'}")
        coarse, refined, extraction = jumps(viewer, args.faces, args.seed)
        print(f"jump: median coarse {_median(coarse)}, refined {_median(refined)} "
              f"(the refined extraction alone {_median(extraction)})")
        if args.drag_steps > 0:
            dragged = drag(viewer, args.drag_steps, args.drag_interval)
            print(f"drag: {args.drag_steps} positions in {args.drag_steps * args.drag_interval:.1f} s, "
                  f"{dragged['drawn']} drawn coarse; after the release: coarse {dragged['coarse']:.2f} s, "
                  f"refined {dragged['final']:.2f} s")
        print(f"viewer: coarse {_median(coarse)} (goal < {COARSE_GOAL:g} s), refined {_median(refined)} "
              f"(goal < {REFINED_GOAL:g} s) at {viewer.extractor.resolution}^3")
    finally:
        viewer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
