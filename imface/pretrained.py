"""Portable trained models: export an experiment to a self-contained folder, load either kind.

The exported folder is the contract of :mod:`imface.contracts.model`; an experiment folder that of
:mod:`imface.contracts.experiment`. Loading imports neither the training nor the data code.
Nothing is unpickled: weights are safetensors, metadata JSON/YAML (``yaml.safe_load``).
"""
from __future__ import annotations

import datetime as _dt
import difflib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from imface.config.experiment import ExperimentConfig, load_config
from imface.contracts.experiment import (CODES_NAME, CONFIG_NAME, CodeTables, checkpoint_step, is_experiment,
                                         latest_checkpoint, load_weights, model_state, read_code_tables)
from imface.contracts.model import (WEIGHTS_NAME, CodeStats, check_weight_dtype, is_model_folder, read_model_folder,
                                    verify_checksums, write_model_folder)
from imface.devices import resolve_device
from imface.errors import ImfaceError
from imface.model import ImFace
from imface.version import __version__
from imface.weights import resolve_model

NEUTRAL = "neutral"  # the expression name that selects neutral suppression (no expression code)

__all__ = ["CodeStats", "NEUTRAL", "Pretrained", "compute_code_stats", "export_model", "gaussian_stats",
           "load_pretrained", "verify_checksums"]


def gaussian_stats(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and unbiased covariance (d, d) of code rows (n, d); zero covariance for n < 2."""
    rows = np.asarray(rows, dtype=np.float64)
    mean = rows.mean(axis=0) if len(rows) else np.zeros(rows.shape[1])
    if len(rows) < 2:
        return mean, np.zeros((rows.shape[1], rows.shape[1]))
    centred = rows - mean
    return mean, centred.T @ centred / (len(rows) - 1)


def compute_code_stats(state: dict[str, torch.Tensor], codes: CodeTables) -> CodeStats:
    """Statistics of the identity rows named in ``codes`` and of its expression rows (all of
    them belong to non-neutral scans: neutral scans have no expression row)."""
    ids = state["identity_codes.weight"].double().cpu().numpy()
    exps = state["expression_codes.weight"].double().cpu().numpy()
    id_rows = ids[sorted(codes.identities.values())] if codes.identities else ids
    exp_rows = exps[sorted(codes.expressions.values())] if codes.expressions else exps[:0]
    id_mean, id_cov = gaussian_stats(id_rows)
    exp_mean, exp_cov = gaussian_stats(exp_rows) if len(exp_rows) else (np.zeros(exps.shape[1]), np.zeros((exps.shape[1],) * 2))
    return CodeStats(id_mean, id_cov, exp_mean, exp_cov, len(id_rows), len(exp_rows))


@dataclass
class Pretrained:
    """A loaded model: ``model`` (ImFace, eval mode, no gradients), its ``experiment`` config,
    code tables ``codes``, code statistics ``code_stats`` and the folder ``path`` it came from
    (``kind``: "exported" or "experiment")."""

    model: ImFace
    experiment: ExperimentConfig
    codes: CodeTables
    code_stats: CodeStats
    path: Path
    kind: str = "exported"

    @property
    def device(self) -> torch.device:
        return self.model.template_landmarks.device

    def identity_code(self, name: str) -> torch.Tensor:
        """The trained z_id (d_id,) of a training identity; unknown names list the nearest ones."""
        row = _lookup(self.path, "identity", name, self.codes.identities)
        return self.model.identity_codes.weight[row].detach().clone()

    def expression_code(self, name: str) -> tuple[torch.Tensor, bool]:
        """(z_exp (d_exp,), neutral) for an expression key of codes.json, or ``"neutral"``
        (a zero code with neutral suppression)."""
        if name == NEUTRAL and NEUTRAL not in self.codes.expressions:
            return torch.zeros(self.experiment.model.exp_code_dim, device=self.device), True
        row = _lookup(self.path, "expression", name, {**self.codes.expressions, NEUTRAL: -1})
        return self.model.expression_codes.weight[row].detach().clone(), False


def _lookup(path: Path, what: str, name: str, table: dict[str, int]) -> int:
    if name in table:
        return table[name]
    close = difflib.get_close_matches(name, list(table), n=5, cutoff=0.0)
    raise ImfaceError(path / CODES_NAME, f"unknown {what} {name!r}; nearest known: {', '.join(close) or '(none)'}")


def _build_model(config: ExperimentConfig, state: dict[str, torch.Tensor], codes: CodeTables, source: Path) -> ImFace:
    """The model of ``state``, refused when its code tables do not match ``codes``."""
    model = ImFace.from_state(config.model, state, source)
    rows = (model.identity_codes.num_embeddings, model.expression_codes.num_embeddings)
    if rows != (codes.num_identities, codes.num_expressions):
        raise ImfaceError(source, f"code tables have {rows[0]} identity / {rows[1]} expression rows but codes.json "
                          f"names {codes.num_identities} / {codes.num_expressions}")
    return model


def _load_experiment(exp_dir: Path, weights: Path | None, device: str | torch.device) -> Pretrained:
    config = load_config(exp_dir / CONFIG_NAME)
    codes = read_code_tables(exp_dir / CODES_NAME)
    weights = weights or latest_checkpoint(exp_dir)
    if weights is None:
        raise ImfaceError(exp_dir, "holds no checkpoint (checkpoints/step-*.safetensors); train first")
    state = load_weights(weights)
    model = _build_model(config, state, codes, weights).to(resolve_device(device))
    return Pretrained(model, config, codes, compute_code_stats(state, codes), exp_dir, "experiment")


def export_model(exp_dir: str | Path, out_dir: str | Path, checkpoint: str | Path | None = None, *,
                 dtype: str = "fp32") -> Path:
    """Write the self-contained model folder ``out_dir`` from an experiment folder.

    exp_dir: a training experiment (config.yaml, codes.json, checkpoints/); checkpoint: a
    weights file (default: the experiment's latest). ``out_dir`` must be new, empty or an
    earlier export (its files are replaced). dtype: fp32 | fp16, how the network weights are
    stored (fp16 halves the file; the codes, template landmarks and code statistics keep full
    precision, and loading casts back to float32). Every file is written atomically, the
    checksums last. Returns ``out_dir``.
    """
    exp_dir, out_dir = Path(exp_dir), Path(out_dir)
    check_weight_dtype(dtype)
    if not (exp_dir / CONFIG_NAME).is_file():
        raise ImfaceError(exp_dir, "not an experiment folder (no config.yaml)")
    weights_path = Path(checkpoint) if checkpoint is not None else latest_checkpoint(exp_dir)
    if weights_path is None:
        raise ImfaceError(exp_dir, "holds no checkpoint (checkpoints/step-*.safetensors); train first")
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not is_model_folder(out_dir))):
        raise ImfaceError(out_dir, "exists and is not an empty folder or an exported model; choose a new --out")
    # Load through the model so a checkpoint that does not fit its config is refused here, not later.
    loaded = _load_experiment(exp_dir, weights_path, "cpu")
    state = model_state(loaded.model)
    return write_model_folder(out_dir, loaded.experiment, state, loaded.codes, loaded.code_stats, {
        "num_identities": int(state["identity_codes.weight"].shape[0]),
        "num_expressions": int(state["expression_codes.weight"].shape[0]),
        "id_code_dim": loaded.experiment.model.id_code_dim,
        "exp_code_dim": loaded.experiment.model.exp_code_dim,
        "source_experiment": exp_dir.resolve().name,  # names, not paths: a model folder is shared
        "source_checkpoint": weights_path.name,
        "source_step": checkpoint_step(weights_path),
        "torch_version": torch.__version__,
        "imface_version": __version__,
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }, dtype=dtype)


def load_pretrained(path: str | os.PathLike | None = None, device: str | torch.device = "auto", *,
                    weights: str | Path | None = None) -> Pretrained:
    """Load an exported model folder (checksums verified) or an experiment folder (its latest
    checkpoint, or the checkpoint file ``weights``; code statistics computed on the fly).
    path: a folder, a shipped model's name, or None for the model shipped with imface
    (:func:`imface.weights.resolve_model`). device: auto (CUDA when available) | cpu | cuda.

    The model comes back in eval mode with ``requires_grad`` off everywhere.
    """
    path = resolve_model(path)
    if not is_model_folder(path):
        if is_experiment(path):
            return _load_experiment(path, None if weights is None else Path(weights), device)
        raise ImfaceError(path, "not a model folder: expected model.json (an exported model) or config.yaml and "
                          "checkpoints/ (an experiment)")
    if weights is not None:
        raise ImfaceError(path, "an exported model holds one set of weights; weights= is for experiment folders")
    folder = read_model_folder(path)
    model = _build_model(folder.config, folder.state, folder.codes, path / WEIGHTS_NAME).to(resolve_device(device))
    return Pretrained(model, folder.config, folder.codes, folder.code_stats, path, "exported")
