"""The experiment folder written by ``imface train`` (DeepSDF-style: the folder is the contract).

- ``config.yaml``: the :class:`imface.config.experiment.ExperimentConfig`;
- ``codes.json``: the name -> row code tables (:class:`CodeTables`);
- ``run.json``: the data it was trained on and the run's provenance;
- ``checkpoints/step-XXXXXXXX.safetensors``: the model's ``state_dict`` (code tables included),
  written atomically; ``checkpoints/resume.pt``: what exact resumption needs besides the weights
  (:mod:`imface.training.checkpoint`, read with ``weights_only=True``);
- ``logs/``: losses, learning curves and TensorBoard events (:mod:`imface.training.writer`).

Nothing here is unpickled: weights are safetensors, metadata JSON/YAML.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from imface.errors import ImfaceError
from imface.io.atomic import atomic_path, write_json

CONFIG_NAME = "config.yaml"
CODES_NAME = "codes.json"
RUN_NAME = "run.json"
CHECKPOINT_DIR = "checkpoints"
RESUME_NAME = "resume.pt"
_STEP_FILE = re.compile(r"^step-(\d{8,})\.safetensors$")
EXPRESSION_EMBEDDINGS = ("per_scan", "per_name")


@dataclass(frozen=True)
class CodeTables:
    """Name -> row mappings of the identity and expression code tables (saved as codes.json)."""

    identities: dict[str, int]
    expressions: dict[str, int]
    expression_embedding: str
    # False for the joint (no-dist) model, which has no neutral suppression: there
    # neutral scans use an expression code like any other scan.
    neutral_suppression: bool = True

    def expression_key(self, scan: Any) -> str:
        """The expression table key of a scan (anything with ``name`` and ``expression``): its
        name (per_scan) or its expression (per_name)."""
        return scan.name if self.expression_embedding == "per_scan" else scan.expression

    def expression_row(self, scan: Any) -> int:
        # With neutral suppression neutral scans use no expression code; row 0 is a placeholder.
        # Scans outside the table (test split) get -1, which an embedding lookup refuses loudly.
        if scan.neutral and self.neutral_suppression:
            return 0
        return self.expressions.get(self.expression_key(scan), -1)

    @property
    def num_identities(self) -> int:
        return max(1, len(self.identities))

    @property
    def num_expressions(self) -> int:
        # At least one row so the embedding exists even for an all-neutral training set.
        return max(1, len(self.expressions))

    def to_json(self) -> dict[str, Any]:
        return {
            "identities": dict(self.identities),
            "expressions": dict(self.expressions),
            "expression_embedding": self.expression_embedding,
            "neutral_suppression": self.neutral_suppression,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "CodeTables":
        return cls(
            {str(k): int(v) for k, v in obj["identities"].items()},
            {str(k): int(v) for k, v in obj["expressions"].items()},
            str(obj["expression_embedding"]),
            bool(obj.get("neutral_suppression", True)),
        )


def read_json(path: Path) -> Any:
    """A JSON file of a contract; ImfaceError naming the file when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ImfaceError(path, "missing") from None
    except (OSError, ValueError) as err:
        raise ImfaceError(path, f"unreadable JSON ({err})") from None


def read_code_tables(path: str | Path) -> CodeTables:
    """``codes.json`` of an experiment or model folder (``path`` is the file or its folder)."""
    path = Path(path)
    path = path / CODES_NAME if path.is_dir() else path
    try:
        return CodeTables.from_json(read_json(path))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ImfaceError(path, "not a code table file (identities, expressions, expression_embedding)") from None


def write_code_tables(folder: str | Path, codes: CodeTables) -> Path:
    path = Path(folder) / CODES_NAME
    write_json(path, codes.to_json())
    return path


def is_experiment(folder: str | Path) -> bool:
    """True for a folder holding an experiment (config.yaml and a checkpoints/ folder)."""
    folder = Path(folder)
    return (folder / CONFIG_NAME).is_file() and (folder / CHECKPOINT_DIR).is_dir()


def checkpoint_path(exp_dir: str | Path, step: int) -> Path:
    return Path(exp_dir) / CHECKPOINT_DIR / f"step-{int(step):08d}.safetensors"


def checkpoint_step(path: str | Path) -> int | None:
    """The training step of a weights checkpoint's file name, or None for another name."""
    match = _STEP_FILE.match(Path(path).name)
    return int(match.group(1)) if match else None


def resume_path(exp_dir: str | Path) -> Path:
    return Path(exp_dir) / CHECKPOINT_DIR / RESUME_NAME


def list_checkpoints(exp_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every weights checkpoint, oldest first."""
    folder = Path(exp_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name))]
    return sorted(found)


def latest_checkpoint(exp_dir: str | Path) -> Path | None:
    found = list_checkpoints(exp_dir)
    return found[-1][1] if found else None


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies of the model's tensors (a DDP wrapper is looked through)."""
    module = getattr(model, "module", model)
    # Clones: safetensors refuses tensors that share storage, and the copy must not change as training goes on.
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in module.state_dict().items()}


def save_weights(path: str | Path, state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write a state dict as safetensors, atomically."""
    with atomic_path(path) as tmp:
        safetensors.torch.save_file(state, str(tmp), metadata=metadata)


def load_weights(path: str | Path, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ImfaceError(path, "checkpoint not found")
    try:
        return safetensors.torch.load_file(str(path), device=str(device))
    except Exception as err:  # safetensors raises its own error types for truncated/corrupt files
        raise ImfaceError(path, f"not a readable safetensors checkpoint ({' '.join(str(err).split())})") from None
