"""bench/model_check.py: the rebuilt model's held-out Chamfer against the card's, within its tolerance."""
from __future__ import annotations

import json

from bench.model_check import main


def _files(tmp_path, got: float, want: float = 0.5, tolerance: float = 0.05):
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"overall": {"count": 3, "chamfer_mm": {"mean": got}}}))
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"heldout_ict": {"chamfer_mm_mean": want, "tolerance_mm": tolerance}}))
    return ["--eval", str(summary), "--card", str(card)]


def test_within_noise_passes_and_beyond_fails(tmp_path, capsys):
    assert main(_files(tmp_path, 0.54)) == 0
    assert "within noise" in capsys.readouterr().out
    assert main(_files(tmp_path, 0.40)) == 0  # better than the card is fine
    assert main(_files(tmp_path, 0.56)) == 1


def test_unreadable_files_name_the_file(tmp_path, capsys):
    args = _files(tmp_path, 0.5)
    (tmp_path / "summary.json").write_text("{")
    assert main(args) == 2
    assert "summary.json" in capsys.readouterr().err
    (tmp_path / "summary.json").write_text(json.dumps({"overall": {"chamfer_mm": {"mean": 0.5}}}))
    (tmp_path / "card.json").write_text("{}")
    assert main(args) == 2
    assert "card.json" in capsys.readouterr().err
