"""Numeric precision of a training step (``train.precision``).

- ``fp32``: plain fp32 everywhere (TF32 matmuls off on CUDA).
- ``tf32``: fp32 tensors, TF32 matmuls on CUDA (on a CPU the same as fp32).
- ``bf16``: TF32 as above, and autocast to bfloat16 for what runs under it: the hypernetworks
  and the Landmark-Nets. The local SIRENs, the fusion nets, the spatial gradients (Eikonal and
  normal terms) and the losses stay fp32, since sin(30 x) loses its phase in 16 bits.
- ``fp16``: as bf16 with float16, plus dynamic loss scaling (CUDA only).
"""
from __future__ import annotations

import contextlib

import torch

from imface.errors import ImfaceError

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """autocast, backward and optimiser steps for one ``train.precision`` on one device."""

    def __init__(self, name: str, device: torch.device) -> None:
        if name not in ("fp32", "tf32", *_DTYPES):
            raise ImfaceError(None, f"train.precision must be fp32, tf32, bf16 or fp16, got {name!r}")
        if name == "fp16" and device.type != "cuda":
            raise ImfaceError(None, "train.precision fp16 needs a CUDA device (use bf16 or fp32 on a CPU)")
        self.name, self.device = name, device
        self.dtype = _DTYPES.get(name)
        if device.type == "cuda":
            allow = name != "fp32"
            torch.backends.cuda.matmul.allow_tf32 = allow
            torch.backends.cudnn.allow_tf32 = allow
        self.scaler = torch.amp.GradScaler("cuda") if name == "fp16" else None

    @property
    def scales_loss(self) -> bool:
        return self.scaler is not None

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor, optimizers: list[torch.optim.Optimizer]) -> None:
        """Backward of ``loss``; with loss scaling the gradients come back unscaled (for clipping)."""
        if self.scaler is None:
            loss.backward()
            return
        self.scaler.scale(loss).backward()
        for optimizer in optimizers:
            self.scaler.unscale_(optimizer)

    def step(self, optimizers: list[torch.optim.Optimizer]) -> None:
        if self.scaler is None:
            for optimizer in optimizers:
                optimizer.step()
            return
        for optimizer in optimizers:  # skipped by the scaler when its gradients are not finite
            self.scaler.step(optimizer)
        self.scaler.update()
