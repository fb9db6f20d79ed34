"""The experiment folder: code tables, checkpoint names and the weights reader."""
from __future__ import annotations

import pytest
import torch

from imface.contracts.experiment import (CodeTables, checkpoint_path, checkpoint_step, is_experiment,
                                         latest_checkpoint, list_checkpoints, load_weights, read_code_tables,
                                         save_weights, write_code_tables)
from imface.errors import ImfaceError


class _Scan:
    def __init__(self, name: str, expression: str, neutral: bool) -> None:
        self.name, self.expression, self.neutral = name, expression, neutral


def test_code_tables_round_trip_and_rows(tmp_path):
    codes = CodeTables({"001": 0, "002": 1}, {"001/2_smile": 0}, "per_scan")
    write_code_tables(tmp_path, codes)
    assert read_code_tables(tmp_path) == codes
    assert codes.expression_row(_Scan("001/2_smile", "smile", False)) == 0
    assert codes.expression_row(_Scan("001/1_neutral", "neutral", True)) == 0  # suppressed: placeholder row
    assert codes.expression_row(_Scan("009/2_smile", "smile", False)) == -1  # not trained: refused on lookup
    (tmp_path / "codes.json").write_text('{"identities": {}}')
    with pytest.raises(ImfaceError, match="not a code table file"):
        read_code_tables(tmp_path)


def test_checkpoints_are_found_by_step_and_read_back(tmp_path):
    assert latest_checkpoint(tmp_path) is None and not is_experiment(tmp_path)
    for step in (20, 3, 100):
        save_weights(checkpoint_path(tmp_path, step), {"w": torch.full((2,), float(step))})
    (tmp_path / "config.yaml").write_text("{}\n")
    assert is_experiment(tmp_path)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [3, 20, 100]
    assert checkpoint_step(latest_checkpoint(tmp_path)) == 100
    assert load_weights(latest_checkpoint(tmp_path))["w"].tolist() == [100.0, 100.0]
    assert checkpoint_step(tmp_path / "other.safetensors") is None
    with pytest.raises(ImfaceError, match="checkpoint not found"):
        load_weights(tmp_path / "missing.safetensors")
