"""Device names: auto picks CUDA only when torch sees it; an explicit CUDA without CUDA is an error."""
from __future__ import annotations

import pytest
import torch

from imface.devices import resolve_device
from imface.errors import ImfaceError


def test_auto_cpu_and_refusals(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ImfaceError, match="no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(ImfaceError, match="must be one of auto, cpu, cuda"):
        resolve_device("tpu")


def test_cuda_index_follows_the_local_rank(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cuda:0", local_rank=1) == torch.device("cuda", 0)
    with pytest.raises(ImfaceError, match="CUDA device 2 does not exist"):
        resolve_device("cuda", local_rank=2)
