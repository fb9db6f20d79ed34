"""The exported model folder: written whole, checksummed, and refused when anything changed."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from imface.config.experiment import preset
from imface.contracts.experiment import CodeTables
from imface.contracts.model import (CHECKSUMS_NAME, INFO_NAME, MODEL_FILES, CodeStats, is_model_folder,
                                    read_model_folder, write_model_folder)
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
