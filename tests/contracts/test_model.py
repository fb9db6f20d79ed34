"""The exported model folder: written whole, checksummed, and refused when anything changed."""
from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors.torch
import torch

from imface.config.experiment import preset
from imface.contracts.experiment import CodeTables
from imface.contracts.model import (CHECKSUMS_NAME, FULL_PRECISION, INFO_NAME, MODEL_FILES, WEIGHTS_NAME, CodeStats,
                                    is_model_folder, read_model_folder, stored_state, write_model_folder)
from imface.errors import ImfaceError


def _write(folder):
    stats = CodeStats(np.zeros(2), np.eye(2), np.ones(3), 2 * np.eye(3), 5, 7)
    state = {"template_landmarks": torch.zeros(68, 3), "identity_codes.weight": torch.ones(2, 2)}
    return write_model_folder(folder, preset("tiny"), state, CodeTables({"a": 0}, {}, "per_scan"), stats,
                              {"note": "test"})


def test_round_trip(tmp_path):
    folder = _write(tmp_path / "model")
    assert is_model_folder(folder) and all((folder / name).is_file() for name in MODEL_FILES)
    read = read_model_folder(folder)
    assert read.info["format_version"] == 1 and read.info["note"] == "test"
    assert read.code_stats.exp_count == 7 and np.array_equal(read.code_stats.exp_cov, 2 * np.eye(3))
    assert torch.equal(read.state["identity_codes.weight"], torch.ones(2, 2))
    assert read.codes.identities == {"a": 0}


def test_a_changed_file_or_format_is_refused(tmp_path):
    folder = _write(tmp_path / "model")
    (folder / "codes.json").write_text(json.dumps({"identities": {"b": 0}, "expressions": {},
                                                   "expression_embedding": "per_scan"}))
    with pytest.raises(ImfaceError, match="checksum mismatch"):
        read_model_folder(folder)
    folder = _write(tmp_path / "again")
    info = json.loads((folder / INFO_NAME).read_text())
    (folder / INFO_NAME).write_text(json.dumps({**info, "format_version": 9}))
    with pytest.raises(ImfaceError, match="unsupported model format 9"):
        read_model_folder(folder)
    (folder / CHECKSUMS_NAME).unlink()
    (folder / INFO_NAME).write_text(json.dumps(info))
    with pytest.raises(ImfaceError, match="missing"):
        read_model_folder(folder)


def test_fp16_storage_round_trips_to_float32(tmp_path):
    stats = CodeStats(np.zeros(2), np.eye(2), np.ones(3), 2 * np.eye(3), 5, 7)
    weight = torch.tensor([[0.1, -3.0], [1000.0, 1e-3]])
    state = {"template_landmarks": torch.full((68, 3), 0.1), "identity_codes.weight": torch.full((2, 2), 0.1),
             "landmark_ids": torch.arange(68), "net.weight": weight}
    folder = write_model_folder(tmp_path / "model", preset("tiny"), state, CodeTables({"a": 0}, {}, "per_scan"),
                                stats, {}, dtype="fp16")
    stored = safetensors.torch.load_file(str(folder / WEIGHTS_NAME))
    assert stored["net.weight"].dtype == torch.float16 and stored["landmark_ids"].dtype == torch.int64
    assert all(stored[key].dtype == torch.float32 for key in FULL_PRECISION if key in stored)
    read = read_model_folder(folder)
    assert read.info["weights_dtype"] == "float16" and read.state["net.weight"].dtype == torch.float32
    assert torch.allclose(read.state["net.weight"], weight, rtol=1e-3) and not torch.equal(read.state["net.weight"], weight)
    assert torch.equal(read.state["identity_codes.weight"], state["identity_codes.weight"])


def test_fp16_refuses_overflow_and_unknown_dtypes(tmp_path):
    with pytest.raises(ImfaceError, match="net.weight overflows float16"):
        stored_state({"net.weight": torch.tensor([1e5])}, "fp16")
    with pytest.raises(ImfaceError, match="--dtype must be one of fp32, fp16"):
        stored_state({}, "float16")
    folder = _write(tmp_path / "model")
    info = json.loads((folder / INFO_NAME).read_text())
    assert info["weights_dtype"] == "float32"
    (folder / INFO_NAME).write_text(json.dumps({**info, "weights_dtype": "int8"}))
    with pytest.raises(ImfaceError, match="unknown weights_dtype 'int8'"):
        read_model_folder(folder)
