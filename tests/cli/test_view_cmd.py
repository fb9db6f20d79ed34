"""``imface view`` from the command line: localhost by default, the fits folder's model, one-line
errors, a progress line per refined mesh; viser and torch stay out of ``imface --help``."""
from __future__ import annotations

import subprocess
import sys

import pytest

from imface.viewer.server import Viewer
from tests.model_fixtures import make_fits
from tests.run_cli import run_cli


@pytest.fixture
def started(monkeypatch):
    """Viewers the command starts; serve_forever draws the first face and returns (as after Ctrl-C)."""
    viewers = []

    def serve_forever(self):
        viewers.append(self)
        self.wait_idle(120)
        self.stop()

    monkeypatch.setattr(Viewer, "serve_forever", serve_forever)
    return viewers


def test_help_names_the_options(capsys):
    assert run_cli("view", "--help") == 0
    out = capsys.readouterr().out
    for name in ("--model", "--fits", "--data", "--host", "--port", "--resolution", "127.0.0.1"):
        assert name in out


def test_serves_on_localhost_by_default_and_prints_a_line_per_refined_mesh(trained_tiny, started, capsys):
    exp_dir = trained_tiny[1]
    assert run_cli("view", "--model", str(exp_dir), "--port", "0", "--resolution", "32", "--device", "cpu") == 0
    out = capsys.readouterr()
    viewer = started[0]
    assert viewer.host == "127.0.0.1" and viewer.pretrained.path == exp_dir
    assert "imface view: http://127.0.0.1:" in out.out and "Ctrl-C stops" in out.out
    assert "vertices at 32^3" in out.out and out.out.rstrip().endswith("imface view: stopped")
    assert "other machines" not in out.err


def test_another_interface_is_opt_in_and_said_so(trained_tiny, started, capsys):
    assert run_cli("view", "--model", str(trained_tiny[1]), "--host", "0.0.0.0", "--port", "0", "--resolution",
                   "24", "--no-progress", "--device", "cpu") == 0
    out = capsys.readouterr()
    assert started[0].host == "0.0.0.0" and "other machines can connect" in out.err
    assert "vertices at" not in out.out  # --no-progress


def test_with_fits_and_no_model_the_fits_folder_s_model(trained_tiny, started, tmp_path, capsys):
    from imface.pretrained import load_pretrained

    data, exp_dir = trained_tiny
    fits = make_fits(load_pretrained(exp_dir), data, tmp_path / "fits", scans=("001/1_neutral",), resolution=24)
    assert run_cli("view", "--fits", str(fits), "--data", str(data), "--port", "0", "--resolution", "24",
                   "--no-progress", "--device", "cpu") == 0
    viewer = started[0]
    assert viewer.pretrained.path == exp_dir and viewer.fits is not None and viewer.fits.names == ["001/1_neutral"]


def test_bad_folders_are_one_line(trained_tiny, started, tmp_path, capsys):
    assert run_cli("view", "--model", str(trained_tiny[1]), "--data", str(tmp_path), "--port", "0") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "processed dataset" in err and len(err.splitlines()) == 1
    assert run_cli("view", "--model", str(tmp_path / "nothing"), "--port", "0") == 2
    assert started == []


def test_the_command_imports_neither_viser_nor_torch():
    code = ("import sys, imface.cli.main as m; m._register(); import imface.cli.view_cmd; "
            "print(sorted(n for n in ('viser', 'torch') if n in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
