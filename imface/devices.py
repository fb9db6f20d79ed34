"""Which torch device a job runs on: ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``."""
from __future__ import annotations

import torch

from imface.errors import ImfaceError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """The torch device for ``name`` (auto | cpu | cuda, or a torch.device / "cuda:1").

    ``auto`` takes CUDA when torch sees a device, else the CPU. A bare ``cuda`` takes the GPU of
    ``local_rank`` (each torchrun process its own). An explicit CUDA request without CUDA is an
    ImfaceError, not a silent fall-back to the CPU.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    base = name.split(":", 1)[0]
    if base not in ("cpu", "cuda"):
        raise ImfaceError(None, f"--device must be one of {', '.join(DEVICES)}, got {name!r}")
    if base == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ImfaceError(None, "--device cuda asked for, but torch sees no CUDA device")
    index = int(name.split(":", 1)[1]) if ":" in name else local_rank
    count = torch.cuda.device_count()
    if index >= count:
        raise ImfaceError(None, f"CUDA device {index} does not exist (this machine has {count})")
    return torch.device("cuda", index)
