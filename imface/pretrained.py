"""Portable trained models: export an experiment to a self-contained folder, load either kind.

An exported model folder holds:

- ``config.yaml``: the experiment config (model architecture included);
- ``model.safetensors``: every model tensor (code tables and the ``template_landmarks`` buffer);
- ``code_stats.safetensors``: mean and covariance of the training codes (identity rows; the
  expression rows, which belong to non-neutral scans only) for sampling new faces;
- ``template_landmarks.json``: the (68, 3) template landmarks l'' in model units;
- ``codes.json``: the name -> row code tables (see :class:`imface.dataset.CodeTables`);
- ``model.json``: format version, table sizes, source experiment and checkpoint, versions;
- ``checksums.json``: SHA-256 of every other file, checked on every load.

Nothing is unpickled: weights are safetensors, metadata JSON/YAML (``yaml.safe_load``).
"""
from __future__ import annotations

import datetime as _dt
import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch

from imface.dataset import CodeTables
from imface.training import checkpoint as ckpt
from imface.config.experiment import ExperimentConfig, load_config, save_config
from imface.errors import ImfaceError
from imface.io.atomic import atomic_path, write_json
from imface.io.hashing import sha256_file

FORMAT_VERSION = 1
CONFIG_NAME, WEIGHTS_NAME, STATS_NAME = "config.yaml", "model.safetensors", "code_stats.safetensors"
LANDMARKS_NAME, CODES_NAME, INFO_NAME, CHECKSUMS_NAME = "template_landmarks.json", "codes.json", "model.json", "checksums.json"
MODEL_FILES = (CONFIG_NAME, WEIGHTS_NAME, STATS_NAME, LANDMARKS_NAME, CODES_NAME, INFO_NAME)
NEUTRAL = "neutral"  # the expression name that selects neutral suppression (no expression code)


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
    ids = state["identity_codes.weight"].double().numpy()
    exps = state["expression_codes.weight"].double().numpy()
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

    model: Any
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


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ImfaceError(path, "missing") from None
    except (OSError, ValueError) as err:
        raise ImfaceError(path, f"unreadable JSON ({err})") from None


def _read_codes(path: Path) -> CodeTables:
    try:
        return CodeTables.from_json(_read_json(path))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ImfaceError(path, "not a code table file (identities, expressions, expression_embedding)") from None


def _imface_version() -> str:
    import imface

    return imface.__version__


def export_model(exp_dir: str | Path, out_dir: str | Path, checkpoint: str | Path | None = None) -> Path:
    """Write the self-contained model folder ``out_dir`` from an experiment folder.

    exp_dir: a training experiment (config.yaml, codes.json, checkpoints/); checkpoint: a
    weights file (default: the experiment's latest). ``out_dir`` must be new, empty or an
    earlier export (its files are replaced). Every file is written atomically, the
    checksums last. Returns ``out_dir``.
    """
    exp_dir, out_dir = Path(exp_dir), Path(out_dir)
    if not (exp_dir / CONFIG_NAME).is_file():
        raise ImfaceError(exp_dir, "not an experiment folder (no config.yaml)")
    weights_path = Path(checkpoint) if checkpoint is not None else ckpt.latest_checkpoint(exp_dir)
    if weights_path is None:
        raise ImfaceError(exp_dir, "holds no checkpoint (checkpoints/step-*.safetensors); train first")
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / INFO_NAME).is_file())):
        raise ImfaceError(out_dir, "exists and is not an empty folder or an exported model; choose a new --out")
    # Load through the model so a checkpoint that does not fit its config is refused here, not later.
    loaded = _load_experiment(exp_dir, weights_path, "cpu")
    state = ckpt.model_state(loaded.model)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CHECKSUMS_NAME).unlink(missing_ok=True)  # an interrupted re-export must not look valid
    save_config(loaded.experiment, out_dir / CONFIG_NAME)
    ckpt.save_weights(out_dir / WEIGHTS_NAME, state, {"format": "imface-model-1"})
    with atomic_path(out_dir / STATS_NAME) as tmp:
        safetensors.torch.save_file(loaded.code_stats.to_tensors(), str(tmp))
    write_json(out_dir / LANDMARKS_NAME, {"units": "model (1 = 100 mm)",
                                          "template_landmarks": state["template_landmarks"].tolist()})
    write_json(out_dir / CODES_NAME, loaded.codes.to_json())
    match = re.match(r"^step-(\d+)\.safetensors$", weights_path.name)
    write_json(out_dir / INFO_NAME, {
        "format_version": FORMAT_VERSION,
        "num_identities": int(state["identity_codes.weight"].shape[0]),
        "num_expressions": int(state["expression_codes.weight"].shape[0]),
        "id_code_dim": loaded.experiment.model.id_code_dim,
        "exp_code_dim": loaded.experiment.model.exp_code_dim,
        "source_experiment": str(exp_dir.resolve()),
        "source_checkpoint": str(weights_path.resolve()),
        "source_step": int(match.group(1)) if match else None,
        "torch_version": torch.__version__,
        "imface_version": _imface_version(),
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    })
    write_json(out_dir / CHECKSUMS_NAME, {"algorithm": "sha256",
                                          "files": {name: sha256_file(out_dir / name) for name in MODEL_FILES}})
    return out_dir


def verify_checksums(model_dir: str | Path) -> None:
    """Raise ImfaceError unless every file listed in checksums.json exists and matches."""
    model_dir = Path(model_dir)
    listed = _read_json(model_dir / CHECKSUMS_NAME)
    files = listed.get("files") if isinstance(listed, dict) else None
    if not isinstance(files, dict) or set(MODEL_FILES) - set(files):
        raise ImfaceError(model_dir / CHECKSUMS_NAME, f"must list the SHA-256 of {', '.join(MODEL_FILES)}")
    for name, expected in files.items():
        path = model_dir / str(name)
        if Path(str(name)).name != str(name) or not path.is_file():
            raise ImfaceError(path, "missing from the model folder (re-export the model)")
        if sha256_file(path) != expected:
            raise ImfaceError(path, "checksum mismatch: the file is corrupted or was modified (re-export the model)")


def _build_model(config: ExperimentConfig, state: dict[str, torch.Tensor], codes: CodeTables, source: Path) -> Any:
    from imface.model import ImFace

    if "template_landmarks" not in state or "identity_codes.weight" not in state:
        raise ImfaceError(source, "is not an ImFace weights file (no template_landmarks / identity_codes)")
    rows = (state["identity_codes.weight"].shape[0], state["expression_codes.weight"].shape[0]) \
        if "expression_codes.weight" in state else (codes.num_identities, codes.num_expressions)
    if rows != (codes.num_identities, codes.num_expressions):
        raise ImfaceError(source, f"code tables have {rows[0]} identity / {rows[1]} expression rows but codes.json "
                          f"names {codes.num_identities} / {codes.num_expressions}")
    model = ImFace(config.model, rows[0], rows[1], state["template_landmarks"].float())
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ImfaceError(source, "does not fit the model its config.yaml describes (another architecture?): "
                          f"{' '.join(str(err).split())[:300]}") from None
    model.eval()
    model.requires_grad_(False)
    return model


def _resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ImfaceError(None, "--device cuda was asked for but no CUDA device is available")
    return device


def _load_experiment(exp_dir: Path, weights: Path | None, device: str | torch.device) -> Pretrained:
    config = load_config(exp_dir / CONFIG_NAME)
    codes = _read_codes(exp_dir / CODES_NAME)
    weights = weights or ckpt.latest_checkpoint(exp_dir)
    if weights is None:
        raise ImfaceError(exp_dir, "holds no checkpoint (checkpoints/step-*.safetensors); train first")
    state = ckpt.load_weights(weights)
    model = _build_model(config, state, codes, weights).to(_resolve_device(device))
    return Pretrained(model, config, codes, compute_code_stats(state, codes), exp_dir, "experiment")


def load_pretrained(path: str | Path, device: str | torch.device = "cpu", *, weights: str | Path | None = None) -> Pretrained:
    """Load an exported model folder (checksums verified) or an experiment folder (its latest
    checkpoint, or the checkpoint file ``weights``; code statistics computed on the fly).
    device: cpu | cuda | auto.

    The model comes back in eval mode with ``requires_grad`` off everywhere.
    """
    path = Path(path)
    if not path.is_dir():
        raise ImfaceError(path, "no such model folder (give an exported model or an experiment folder)")
    if not (path / INFO_NAME).is_file():
        if (path / CONFIG_NAME).is_file() and (path / ckpt.CHECKPOINT_DIR).is_dir():
            return _load_experiment(path, None if weights is None else Path(weights), device)
        raise ImfaceError(path, "not a model folder: expected model.json (an exported model) or config.yaml and "
                          "checkpoints/ (an experiment)")
    if weights is not None:
        raise ImfaceError(path, "an exported model holds one set of weights; weights= is for experiment folders")
    info = _read_json(path / INFO_NAME)
    if not isinstance(info, dict) or info.get("format_version") != FORMAT_VERSION:
        raise ImfaceError(path / INFO_NAME, f"unsupported model format {info.get('format_version') if isinstance(info, dict) else None!r} "
                          f"(this imface reads format {FORMAT_VERSION})")
    verify_checksums(path)
    config = load_config(path / CONFIG_NAME)
    codes = _read_codes(path / CODES_NAME)
    state = ckpt.load_weights(path / WEIGHTS_NAME)
    model = _build_model(config, state, codes, path / WEIGHTS_NAME).to(_resolve_device(device))
    try:
        stats = CodeStats.from_tensors(safetensors.torch.load_file(str(path / STATS_NAME)))
    except Exception as err:  # safetensors raises its own error types; a missing key is a KeyError
        raise ImfaceError(path / STATS_NAME, f"not a code statistics file ({' '.join(str(err).split())[:200]})") from None
    return Pretrained(model, config, codes, stats, path, "exported")
