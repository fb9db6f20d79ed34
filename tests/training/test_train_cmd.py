"""``imface train``: options become the saved config; user errors are one line with exit code 2."""
from __future__ import annotations

import json

import pytest
import typer
import yaml

from imface.cli import main as cli_main
from imface.cli import train_cmd
from tests.synthetic_processed import write_synthetic_dataset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("faces"), num_identities=2,
                                   surface_points=128, space_points=128)


@pytest.fixture
def run(monkeypatch):
    """Call the real entry point (main) with train registered as the lead will register it."""
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    app.command("train")(train_cmd.train)
    app.command("noop")(lambda: None)  # keep typer in multi-command mode, as in main.py
    monkeypatch.setattr(cli_main, "app", app)
    monkeypatch.setattr(cli_main, "_register", lambda: None)

    def invoke(*args: str) -> int:
        try:
            cli_main.main(list(args))
        except SystemExit as done:
            return int(done.code or 0)
        return 0

    return invoke


def test_train_writes_the_config_from_the_options(data_dir, tmp_path, run, capsys):
    exp = tmp_path / "exp"
    code = run("train", "--data", str(data_dir), "--out", str(exp), "--preset", "tiny", "--max-steps", "2",
               "--device", "cpu", "--seed", "5", "--ablation", "no-extend", "--set", "train.lr=2e-3",
               "--set", "model.warp=translation", "--no-progress")
    assert code == 0
    saved = yaml.safe_load((exp / "config.yaml").read_text())
    assert saved["train"]["seed"] == 5 and saved["train"]["lr"] == 2e-3 and saved["train"]["max_steps"] == 2
    assert saved["model"]["warp"] == "translation" and saved["model"]["expression_embedding"] == "per_name"
    assert json.loads((exp / "codes.json").read_text())["expression_embedding"] == "per_name"
    out = capsys.readouterr().out
    assert "max_steps at step 2" in out and "--resume" in out
    # --resume without a preset continues from the folder's own config
    assert run("train", "--data", str(data_dir), "--out", str(exp), "--resume", "--max-steps", "3",
               "--device", "cpu", "--no-progress") == 0
    assert "at step 3" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (("--preset", "huge"), "unknown preset"),
    (("--set", "train.nope=1"), "unknown config field"),
    (("--ablation", "no-faces"), "unknown ablation"),
    (("--device", "tpu"), "--device"),
    (("--precision", "fp8"), "train.precision"),
    (("--precision", "fp16", "--device", "cpu"), "fp16 needs a CUDA device"),
])
def test_bad_options_are_one_line_errors(data_dir, tmp_path, run, capsys, args, message):
    code = run("train", "--data", str(data_dir), "--out", str(tmp_path / "exp"), "--no-progress", *args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err and err.startswith("error:")
    assert not (tmp_path / "exp").exists()


def test_missing_dataset_is_a_one_line_error(tmp_path, run, capsys):
    code = run("train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "exp"), "--preset", "tiny")
    err = capsys.readouterr().err.strip()
    assert code == 2 and "manifest" in err and "\n" not in err
