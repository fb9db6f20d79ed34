"""The exported model folder (``imface export``): self-contained, checksummed, nothing pickled.

- ``config.yaml``: the experiment config (model architecture included);
- ``model.safetensors``: every model tensor (code tables and the ``template_landmarks`` buffer);
- ``code_stats.safetensors``: mean and covariance of the training codes (identity rows; the
  expression rows, which belong to non-neutral scans only) for sampling new faces;
- ``template_landmarks.json``: the (68, 3) template landmarks l'' in model units;
- ``codes.json``: the name -> row code tables (:class:`imface.contracts.experiment.CodeTables`);
- ``model.json``: format version, table sizes, ``weights_dtype`` (how model.safetensors stores the
  network: float32, or float16 from ``imface export --dtype fp16``; absent in older exports:
  float32), source experiment and checkpoint, versions;
- ``checksums.json``: SHA-256 of every other file, checked on every load.

Weights are safetensors, metadata JSON/YAML (``yaml.safe_load``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch

from imface.config.experiment import ExperimentConfig, load_config, save_config
from imface.contracts.experiment import (CODES_NAME, CONFIG_NAME, CodeTables, load_weights, read_code_tables, read_json,
                                         save_weights, write_code_tables)
from imface.errors import ImfaceError
from imface.io.atomic import atomic_path, write_json
from imface.io.hashing import sha256_file

FORMAT_VERSION = 1
WEIGHTS_NAME, STATS_NAME = "model.safetensors", "code_stats.safetensors"
LANDMARKS_NAME, INFO_NAME, CHECKSUMS_NAME = "template_landmarks.json", "model.json", "checksums.json"
MODEL_FILES = (CONFIG_NAME, WEIGHTS_NAME, STATS_NAME, LANDMARKS_NAME, CODES_NAME, INFO_NAME)
#: Storage precisions of the network weights: the ``--dtype`` spelling -> model.json's ``weights_dtype``.
WEIGHT_DTYPES = {"fp32": "float32", "fp16": "float16"}
#: Tensors kept in float32 whatever the storage precision: the codes (fitting and sampling start
#: from them and their statistics) and the template landmarks are a few KB; the network is the bulk.
FULL_PRECISION = ("identity_codes.weight", "expression_codes.weight", "template_landmarks")


@dataclass(frozen=True)
class CodeStats:
    """Gaussian statistics of the trained codes.

    id_mean (d_id,), id_cov (d_id, d_id); exp_mean (d_exp,), exp_cov (d_exp, d_exp) float64;
    id_count / exp_count: the number of code rows they were computed from (exp_count is 0
    when the training set had no non-neutral scan; mean and covariance are then zero).
    """

    id_mean: np.ndarray
    id_cov: np.ndarray
    exp_mean: np.ndarray
    exp_cov: np.ndarray
    id_count: int
    exp_count: int

    def to_tensors(self) -> dict[str, torch.Tensor]:
        arrays = {"id_mean": self.id_mean, "id_cov": self.id_cov, "exp_mean": self.exp_mean, "exp_cov": self.exp_cov}
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)) for k, v in arrays.items()}
        tensors["counts"] = torch.tensor([self.id_count, self.exp_count], dtype=torch.int64)
        return tensors

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> "CodeStats":
        counts = tensors["counts"].tolist()
        return cls(*(tensors[k].double().numpy() for k in ("id_mean", "id_cov", "exp_mean", "exp_cov")),
                   int(counts[0]), int(counts[1]))


@dataclass(frozen=True)
class ModelFolder:
    """What an exported model folder holds, read and checked (weights on the CPU)."""

    config: ExperimentConfig
    codes: CodeTables
    state: dict[str, torch.Tensor]
    code_stats: CodeStats
    info: dict[str, Any]


def is_model_folder(path: str | Path) -> bool:
    return (Path(path) / INFO_NAME).is_file()


def check_weight_dtype(dtype: str) -> str:
    """``dtype`` when it is a storage precision of ``WEIGHT_DTYPES``; an ImfaceError naming --dtype otherwise."""
    if dtype not in WEIGHT_DTYPES:
        raise ImfaceError(None, f"--dtype must be one of {', '.join(WEIGHT_DTYPES)}, got {dtype!r}")
    return dtype


def stored_state(state: dict[str, torch.Tensor], dtype: str) -> dict[str, torch.Tensor]:
    """``state`` as model.safetensors stores it: with ``dtype`` "fp16", the float32 network
    tensors in float16 (``FULL_PRECISION`` ones and integer buffers unchanged)."""
    if check_weight_dtype(dtype) == "fp32":
        return state
    stored = {}
    for key, tensor in state.items():
        if tensor.dtype == torch.float32 and key not in FULL_PRECISION:
            tensor = tensor.to(torch.float16)
            if not torch.isfinite(tensor).all():  # float16 tops out at 65504
                raise ImfaceError(None, f"weight {key} overflows float16 (largest magnitude "
                                  f"{state[key].abs().max().item():.4g}); export with --dtype fp32")
        stored[key] = tensor
    return stored


def write_model_folder(out_dir: str | Path, config: ExperimentConfig, state: dict[str, torch.Tensor],
                       codes: CodeTables, code_stats: CodeStats, info: dict[str, Any], dtype: str = "fp32") -> Path:
    """Write every file of the contract atomically, the checksums last (an interrupted write
    never looks valid). ``info`` goes into model.json beside ``format_version`` and
    ``weights_dtype``; ``dtype`` (fp32 | fp16): the storage precision of the network weights."""
    stored = stored_state(state, dtype)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CHECKSUMS_NAME).unlink(missing_ok=True)
    save_config(config, out_dir / CONFIG_NAME)
    save_weights(out_dir / WEIGHTS_NAME, stored, {"format": f"imface-model-{FORMAT_VERSION}"})
    with atomic_path(out_dir / STATS_NAME) as tmp:
        safetensors.torch.save_file(code_stats.to_tensors(), str(tmp))
    write_json(out_dir / LANDMARKS_NAME, {"units": "model (1 = 100 mm)",
                                          "template_landmarks": state["template_landmarks"].tolist()})
    write_code_tables(out_dir, codes)
    write_json(out_dir / INFO_NAME, {"format_version": FORMAT_VERSION, "weights_dtype": WEIGHT_DTYPES[dtype], **info})
    write_json(out_dir / CHECKSUMS_NAME, {"algorithm": "sha256",
                                          "files": {name: sha256_file(out_dir / name) for name in MODEL_FILES}})
    return out_dir


def verify_checksums(model_dir: str | Path) -> None:
    """Raise ImfaceError unless every file listed in checksums.json exists and matches."""
    model_dir = Path(model_dir)
    listed = read_json(model_dir / CHECKSUMS_NAME)
    files = listed.get("files") if isinstance(listed, dict) else None
    if not isinstance(files, dict) or set(MODEL_FILES) - set(files):
        raise ImfaceError(model_dir / CHECKSUMS_NAME, f"must list the SHA-256 of {', '.join(MODEL_FILES)}")
    for name, expected in files.items():
        path = model_dir / str(name)
        if Path(str(name)).name != str(name) or not path.is_file():
            raise ImfaceError(path, "missing from the model folder (re-export the model)")
        if sha256_file(path) != expected:
            raise ImfaceError(path, "checksum mismatch: the file is corrupted or was modified (re-export the model)")


def read_model_folder(path: str | Path) -> ModelFolder:
    """Read an exported model folder after checking its format version and checksums; weights
    stored in float16 come back as float32, so the model is the same whatever the storage."""
    path = Path(path)
    info = read_json(path / INFO_NAME)
    if not isinstance(info, dict) or info.get("format_version") != FORMAT_VERSION:
        found = info.get("format_version") if isinstance(info, dict) else None
        raise ImfaceError(path / INFO_NAME, f"unsupported model format {found!r} (this imface reads format {FORMAT_VERSION})")
    stored_as = info.get("weights_dtype", "float32")
    if stored_as not in WEIGHT_DTYPES.values():
        raise ImfaceError(path / INFO_NAME, f"unknown weights_dtype {stored_as!r} (expected "
                          f"{' or '.join(WEIGHT_DTYPES.values())})")
    verify_checksums(path)
    config = load_config(path / CONFIG_NAME)
    codes = read_code_tables(path / CODES_NAME)
    state = {key: tensor.float() if tensor.dtype == torch.float16 else tensor
             for key, tensor in load_weights(path / WEIGHTS_NAME).items()}
    try:
        stats = CodeStats.from_tensors(safetensors.torch.load_file(str(path / STATS_NAME)))
    except Exception as err:  # safetensors raises its own error types; a missing key is a KeyError
        raise ImfaceError(path / STATS_NAME, f"not a code statistics file ({' '.join(str(err).split())[:200]})") from None
    return ModelFolder(config, codes, state, stats, info)
