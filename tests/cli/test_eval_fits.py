"""``imface eval --fits`` without --data on fits of raw inputs: the footprint figures per scan, the
mm columns, the line for scans in an arbitrary unit, the contact sheet's labels."""
from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from imface.cli.eval_cmd import eval_
from tests.eval.test_evaluate import make_raw_fits


def test_eval_of_raw_fits_prints_both_directions_and_keeps_units_apart(tmp_path):
    fits = make_raw_fits(tmp_path)
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command("eval")(eval_)
    app.command("unused")(lambda: None)  # two commands so typer keeps the verb
    result = CliRunner().invoke(app, ["eval", "--fits", str(fits), "--metric-points", "3000"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    heading = next(line for line in result.output.splitlines() if line.startswith("group"))
    assert "input->fit mm" in heading and "fit->input mm" in heading and "Chamfer footprint mm" not in heading
    assert "1 scan(s) in an arbitrary unit: their distances are in input units" in result.output
    assert "2 of 2 scan(s) scored" in result.output and (fits / "eval" / "sheet.png").is_file()
    saved = json.loads((fits / "eval" / "face_any.json").read_text())["metrics"]
    assert saved["distance_unit"] == "input units" and saved["input_to_fit_mm"] < 0.1  # 0.2 mm = 0.05 input units
    overall = next(line for line in result.output.splitlines() if line.startswith("overall"))
    assert "0.200 / 0.200" in overall  # the mm scan alone: its 0.2 mm both ways
