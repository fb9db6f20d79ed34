"""bench/viewer.py on the tiny model with tiny settings: it prints each figure and the headline."""
from __future__ import annotations

import re

from bench.viewer import main


def test_prints_coarse_and_refined_times(trained_tiny, capsys):
    assert main(["--model", str(trained_tiny[1]), "--resolution", "32", "--coarse", "16", "--faces", "2",
                 "--drag-steps", "3", "--drag-interval", "0.01", "--settle", "0.05", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("\nface ") + out.startswith("face ") == 2
    assert re.search(r"^jump: median coarse \d+\.\d\d s, refined \d+\.\d\d s", out, re.M)
    assert re.search(r"^drag: 3 positions in .*, [1-3] drawn coarse; after the release: coarse \d+\.\d\d s, "
                     r"refined \d+\.\d\d s", out, re.M)
    headline = out.strip().splitlines()[-1]
    assert re.fullmatch(r"viewer: coarse \d+\.\d\d s \(goal < 0\.5 s\), refined \d+\.\d\d s \(goal < 5 s\) at 32\^3",
                        headline), headline
