"""``imface data ict`` on the synthetic ICT-FaceKit stand-in (tests/builtin/ict_standin.py), given by --source."""
from __future__ import annotations

import json

import pytest
import trimesh
from typer.testing import CliRunner

from imface.builtin.ict import FACE_VERTICES, ICT_REPOSITORY
from imface.cli.data_cmd import app
from tests.builtin.ict_standin import standin_archive
from tests.run_cli import run_cli


@pytest.fixture
def archive(tmp_path_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("IMFACE_CACHE", str(tmp_path / "cache"))  # never the user's cache
    return standin_archive(tmp_path_factory.getbasetemp(), "tar.gz")


def test_data_ict_writes_scans_marker_and_notice(archive, tmp_path):
    out = tmp_path / "ict"
    args = ["ict", "--source", str(archive), "--out", str(out), "--identities", "2", "--expressions", "neutral,smile"]
    runner = CliRunner()
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4 scans written, 0 already there" in result.output
    for ident in ("001", "002"):
        for stem in ("1_neutral", "2_smile"):
            for suffix in (".obj", ".lmk.txt", ".registered.ply"):
                assert (out / ident / f"{stem}{suffix}").is_file()
    registered = trimesh.load(out / "001" / "2_smile.registered.ply", process=False)
    assert registered.vertices.shape == (FACE_VERTICES, 3)
    marker = json.loads((out / "dataset.json").read_text())
    assert marker["source"] == "ict" and marker["expressions"] == ["neutral", "smile"]
    assert marker["source_hashes"] == {f"{ICT_REPOSITORY} (local copy)": str(archive.resolve())}
    assert "USC Institute for Creative Technologies" in (out / "NOTICE.txt").read_text()
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "0 scans written, 4 already there" in again.output


def test_data_ict_report(archive):
    result = CliRunner().invoke(app, ["ict", "--source", str(archive), "--report", "--report-identities", "2",
                                      "--report-heldout", "1"])
    assert result.exit_code == 0, result.output
    assert "2 training / 1 held-out" in result.output
    rows = [line.split() for line in result.output.splitlines() if line.strip()[:1].isdigit()]
    assert [int(r[0]) for r in rows] == [0, 32, 64, 128, 256]
    assert float(rows[0][1]) > 0.1 and all(float(r[1]) >= 0.0 for r in rows)


def test_a_missing_source_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("IMFACE_CACHE", str(tmp_path / "cache"))
    missing = tmp_path / "no-such-ict.tar.gz"
    code = run_cli("data", "ict", "--source", str(missing), "--out", str(tmp_path / "out"), "--identities", "1",
                   "--no-progress")
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.splitlines() == [f"error: {missing}: no such file or folder"]
    assert not (tmp_path / "out").exists()


def test_data_commands_come_from_the_registry_with_the_same_options():
    """One command per registered source; the same options, --source only where a local copy exists."""
    import typer.main

    from imface.builtin.registry import SOURCES

    group = typer.main.get_command(app)
    assert sorted(group.commands) == sorted(SOURCES)
    names = {name: {p.name for p in group.commands[name].params} for name in SOURCES}
    assert names["ict"] - names["bfm"] == {"source"} and names["bfm"] <= names["ict"]
    assert group.commands["ict"].help == SOURCES["ict"].summary
