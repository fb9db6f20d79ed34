"""Checkpoints of an experiment folder: model weights in safetensors, resume state in a weights-only torch file.

The file names and the weights reader/writer are the experiment contract's
(:mod:`imface.contracts.experiment`); this module adds pruning, RNG state and ``resume.pt``.

Layout under ``<exp_dir>/checkpoints/``:

- ``step-XXXXXXXX.safetensors``: the model's ``state_dict`` (code tables included), written
  with ``safetensors.torch.save_file`` through an atomic temp file + rename.
- ``resume.pt``: what exact resumption needs besides the weights (optimiser, scheduler,
  RNG states, step, epoch, the step of the weights file it belongs to). Only tensors,
  dicts, lists, tuples, strings and numbers, so ``torch.load(weights_only=True)`` reads it.

The weights are written before ``resume.pt``, so a crash between the two leaves a resume
file that still points at complete weights.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

# The experiment contract's checkpoint names and weights I/O, also read through this module (``ckpt.*``).
from imface.contracts.experiment import (CHECKPOINT_DIR, checkpoint_path, latest_checkpoint, list_checkpoints,
                                         load_weights, model_state, resume_path, save_weights)
from imface.errors import ImfaceError
from imface.io.atomic import atomic_path


def load_model_weights(model: nn.Module, path: str | Path) -> None:
    """Load a weights checkpoint into ``model`` (strict: names and shapes must match)."""
    module = getattr(model, "module", model)
    state = load_weights(path, device="cpu")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ImfaceError(path, f"does not fit this model ({' '.join(str(err).split())[:300]})") from None


def prune_checkpoints(exp_dir: str | Path, keep: int, protect: int | None = None) -> None:
    """Delete all but the newest ``keep`` step checkpoints (``keep <= 0`` keeps everything);
    the checkpoint at step ``protect`` (the one resume.pt points at) always stays."""
    if keep <= 0:
        return
    found = list_checkpoints(exp_dir)
    for step, path in found[: max(0, len(found) - keep)]:
        if step != protect:
            path.unlink(missing_ok=True)


def capture_rng_state() -> dict[str, Any]:
    """Every global RNG state as tensors and plain numbers (weights_only-loadable)."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_gauss": float(np_state[4]),
        "python_version": int(py_version),
        "python_internal": torch.tensor(py_internal, dtype=torch.int64),
        "python_gauss": py_gauss,
    }
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state((
        "MT19937", state["numpy_keys"].numpy().astype(np.uint32), int(state["numpy_pos"]),
        int(state["numpy_has_gauss"]), float(state["numpy_gauss"]),
    ))
    random.setstate((int(state["python_version"]), tuple(int(v) for v in state["python_internal"].tolist()), state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_resume_state(exp_dir: str | Path, state: dict[str, Any]) -> None:
    """Write ``resume.pt`` atomically with ``torch.save``."""
    with atomic_path(resume_path(exp_dir)) as tmp:
        torch.save(state, tmp)


def load_resume_state(exp_dir: str | Path) -> dict[str, Any] | None:
    """Read ``resume.pt`` with ``weights_only=True`` (never unpickles arbitrary objects); None if absent."""
    path = resume_path(exp_dir)
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types; all mean an unusable file
        raise ImfaceError(path, f"unreadable resume file ({' '.join(str(err).split())[:300]})") from None


def to_device(obj: Any, device: torch.device) -> Any:
    """Move every tensor in nested dicts/lists (e.g. an optimiser state) to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def clone_state(obj: Any) -> Any:
    """A deep copy of nested dicts/lists of tensors on the CPU (an in-memory rollback point)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: clone_state(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(clone_state(v) for v in obj)
    return obj


__all__ = ["CHECKPOINT_DIR", "capture_rng_state", "checkpoint_path", "clone_state", "latest_checkpoint",
           "list_checkpoints", "load_model_weights", "load_resume_state", "load_weights", "model_state",
           "prune_checkpoints", "restore_rng_state", "resume_path", "save_resume_state", "save_weights", "to_device"]
