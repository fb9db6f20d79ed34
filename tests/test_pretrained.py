"""Portable models: export, checksums, loading either folder kind, code statistics, bad inputs."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from imface.training import checkpoint as ckpt
from imface.errors import ImfaceError
from imface.contracts.model import MODEL_FILES
from imface.io.hashing import sha256_file
from imface.pretrained import export_model, gaussian_stats, load_pretrained


@pytest.fixture(scope="module")
def exported(trained_tiny, tmp_path_factory):
    _, exp_dir = trained_tiny
    return export_model(exp_dir, tmp_path_factory.mktemp("export") / "model")


def _rewrite_checksums(folder) -> None:
    sums = json.loads((folder / "checksums.json").read_text())
    sums["files"] = {name: sha256_file(folder / name) for name in sums["files"]}
    (folder / "checksums.json").write_text(json.dumps(sums))


def test_export_writes_every_file_with_checksums(exported, trained_tiny):
    _, exp_dir = trained_tiny
    for name in (*MODEL_FILES, "checksums.json"):
        assert (exported / name).is_file(), name
    sums = json.loads((exported / "checksums.json").read_text())["files"]
    assert all(sums[name] == sha256_file(exported / name) for name in MODEL_FILES)
    info = json.loads((exported / "model.json").read_text())
    codes = json.loads((exp_dir / "codes.json").read_text())
    assert info["format_version"] == 1 and info["num_identities"] == len(codes["identities"])
    assert info["num_expressions"] == len(codes["expressions"]) and info["torch_version"] == torch.__version__
    assert json.loads((exported / "codes.json").read_text()) == codes
    weights = load_file(str(exported / "model.safetensors"))
    source = load_file(str(ckpt.latest_checkpoint(exp_dir)))
    assert weights.keys() == source.keys() and all(torch.equal(weights[k], source[k]) for k in source)
    landmarks = np.asarray(json.loads((exported / "template_landmarks.json").read_text())["template_landmarks"])
    assert landmarks.shape == (68, 3) and np.allclose(landmarks, source["template_landmarks"].numpy())


def test_exported_and_experiment_folders_load_the_same_model(exported, trained_tiny):
    _, exp_dir = trained_tiny
    a, b = load_pretrained(exported), load_pretrained(exp_dir)
    assert (a.kind, b.kind) == ("exported", "experiment")
    assert not a.model.training and not any(p.requires_grad for p in a.model.parameters())
    points = torch.rand(1, 50, 3) - 0.5
    args = (a.model.identity_codes.weight[:1], a.model.expression_codes.weight[:1], torch.tensor([False]))
    assert torch.equal(a.model.sdf(points, *args), b.model.sdf(points, *args))
    for field in ("id_mean", "id_cov", "exp_mean", "exp_cov"):
        assert np.allclose(getattr(a.code_stats, field), getattr(b.code_stats, field))


def test_code_stats_match_numpy_over_the_right_rows(exported):
    loaded = load_pretrained(exported)
    ids = loaded.model.identity_codes.weight.double().numpy()
    exps = loaded.model.expression_codes.weight.double().numpy()
    stats = loaded.code_stats
    assert stats.id_count == len(loaded.codes.identities) and stats.exp_count == len(loaded.codes.expressions)
    assert np.allclose(stats.id_mean, ids.mean(0)) and np.allclose(stats.id_cov, np.cov(ids, rowvar=False))
    rows = sorted(loaded.codes.expressions.values())
    assert np.allclose(stats.exp_mean, exps[rows].mean(0)) and np.allclose(stats.exp_cov, np.cov(exps[rows], rowvar=False))


def test_gaussian_stats_single_row_has_zero_covariance():
    mean, cov = gaussian_stats(np.array([[1.0, 2.0]]))
    assert np.allclose(mean, [1.0, 2.0]) and np.allclose(cov, 0.0)


def test_corrupted_weights_are_refused_in_one_line(exported, tmp_path):
    copy = shutil.copytree(exported, tmp_path / "model")
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ImfaceError, match="checksum") as err:
        load_pretrained(copy)
    assert "\n" not in str(err.value) and "model.safetensors" in str(err.value)


def test_model_of_another_config_is_refused(exported, tmp_path):
    copy = shutil.copytree(exported, tmp_path / "model")
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["model"]["local_hidden"] = 2 * config["model"]["local_hidden"]
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    _rewrite_checksums(copy)
    with pytest.raises(ImfaceError, match="does not fit") as err:
        load_pretrained(copy)
    assert "\n" not in str(err.value)


def test_missing_and_non_model_folders(tmp_path):
    with pytest.raises(ImfaceError, match="no such model folder"):
        load_pretrained(tmp_path / "nothing")
    with pytest.raises(ImfaceError, match="not a model folder"):
        load_pretrained(tmp_path)


def test_missing_file_and_unknown_format(exported, tmp_path):
    copy = shutil.copytree(exported, tmp_path / "model")
    (copy / "code_stats.safetensors").unlink()
    with pytest.raises(ImfaceError, match="missing"):
        load_pretrained(copy)
    info = json.loads((copy / "model.json").read_text())
    (copy / "model.json").write_text(json.dumps({**info, "format_version": 99}))
    with pytest.raises(ImfaceError, match="unsupported model format"):
        load_pretrained(copy)


def test_export_refuses_a_foreign_folder_and_replaces_an_export(exported, trained_tiny, tmp_path):
    _, exp_dir = trained_tiny
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ImfaceError, match="choose a new --out"):
        export_model(exp_dir, tmp_path / "busy")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    copy = shutil.copytree(exported, tmp_path / "again")
    export_model(exp_dir, copy)
    load_pretrained(copy)
    with pytest.raises(ImfaceError, match="not an experiment folder"):
        export_model(tmp_path / "busy", tmp_path / "out")


def test_names_resolve_and_unknown_names_list_the_nearest(exported):
    loaded = load_pretrained(exported)
    name = sorted(loaded.codes.identities)[0]
    row = loaded.codes.identities[name]
    assert torch.equal(loaded.identity_code(name), loaded.model.identity_codes.weight[row])
    key = sorted(loaded.codes.expressions)[0]
    code, neutral = loaded.expression_code(key)
    assert not neutral and torch.equal(code, loaded.model.expression_codes.weight[loaded.codes.expressions[key]])
    assert loaded.expression_code("neutral")[1] is True
    with pytest.raises(ImfaceError, match=f"unknown identity '{name}x'; nearest known: {name}"):
        loaded.identity_code(name + "x")
    with pytest.raises(ImfaceError, match="unknown expression"):
        loaded.expression_code("no-such-expression")
