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
from imface.contracts.model import FULL_PRECISION, MODEL_FILES
from imface.io.hashing import sha256_file
from imface.model import ImFace
from imface.ops.sdf_grid import evaluate_grid
from imface.pretrained import NEUTRAL, export_model, gaussian_stats, load_pretrained
from imface.weights import DEFAULT_MODEL, SHIPPED


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


@pytest.fixture(scope="module")
def exported_fp16(trained_tiny, tmp_path_factory):
    _, exp_dir = trained_tiny
    return export_model(exp_dir, tmp_path_factory.mktemp("export") / "model-fp16", dtype="fp16")


def test_fp16_export_halves_the_weights_and_keeps_the_codes(exported, exported_fp16):
    full, half = (load_file(str(folder / "model.safetensors")) for folder in (exported, exported_fp16))
    assert json.loads((exported_fp16 / "model.json").read_text())["weights_dtype"] == "float16"
    assert json.loads((exported / "model.json").read_text())["weights_dtype"] == "float32"
    assert half["identity_codes.weight"].dtype == half["template_landmarks"].dtype == torch.float32
    assert torch.equal(half["expression_codes.weight"], full["expression_codes.weight"])
    assert half["landmark_ids"].dtype == torch.int64
    network = [key for key in full if key not in FULL_PRECISION and full[key].is_floating_point()]
    assert network and all(half[key].dtype == torch.float16 for key in network)
    ratio = (exported_fp16 / "model.safetensors").stat().st_size / (exported / "model.safetensors").stat().st_size
    assert 0.45 < ratio < 0.55
    # Checksums cover the stored (float16) bytes; the statistics are the same file either way.
    assert json.loads((exported_fp16 / "checksums.json").read_text())["files"]["model.safetensors"] == \
        sha256_file(exported_fp16 / "model.safetensors")
    assert sha256_file(exported_fp16 / "code_stats.safetensors") == sha256_file(exported / "code_stats.safetensors")


def test_fp16_model_loads_as_float32_and_decodes_the_same_sdf(exported, exported_fp16):
    full, half = load_pretrained(exported, "cpu"), load_pretrained(exported_fp16, "cpu")
    assert {p.dtype for p in half.model.parameters()} == {torch.float32}
    assert all(b.dtype in (torch.float32, torch.int64) for b in half.model.buffers())
    faces = [(sorted(full.codes.identities)[0], NEUTRAL), (sorted(full.codes.identities)[1], sorted(full.codes.expressions)[0])]
    for identity, expression in faces:
        id_code = full.identity_code(identity)
        exp_code, neutral = full.expression_code(expression)
        grids = [evaluate_grid(p.model.face_sdf(id_code, exp_code, neutral), 24) for p in (full, half)]
        inside = np.isfinite(grids[0])
        assert inside.sum() > 1000 and np.array_equal(inside, np.isfinite(grids[1]))
        # Measured on the tiny model: at most 2.6e-4 model units (0.026 mm); float16 keeps 11 bits.
        assert np.abs(grids[0][inside] - grids[1][inside]).max() < 1e-3


def test_an_unknown_dtype_is_refused_before_anything_is_written(trained_tiny, tmp_path):
    with pytest.raises(ImfaceError, match="--dtype must be one of fp32, fp16, got 'bf16'"):
        export_model(trained_tiny[1], tmp_path / "model", dtype="bf16")
    assert not (tmp_path / "model").exists()


def test_the_default_model_loads_when_no_path_is_given(exported, monkeypatch):
    monkeypatch.setitem(SHIPPED, DEFAULT_MODEL, exported)
    loaded = load_pretrained(device="cpu")
    assert loaded.path == exported and loaded.kind == "exported"
    model = ImFace.from_pretrained(device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.model.state_dict().values()))
