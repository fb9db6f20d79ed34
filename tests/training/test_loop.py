"""The training loop's own helpers: naming the loss terms that broke, the stop signals, and the
loader's worker count (the loop itself runs in tests/training/test_trainer.py)."""
from __future__ import annotations

import os
import signal

import torch

from imface.config.experiment import apply_overrides, preset
from imface.threads import get_threads
from imface.training.loop import _non_finite_terms, _num_workers, _StopSignals


def test_non_finite_terms_name_the_broken_terms_first() -> None:
    names = ["eikonal", "sdf", "total", "grad_norm"]
    nan, inf = float("nan"), float("inf")
    assert _non_finite_terms(names, torch.tensor([1.0, nan, nan, nan])) == ["sdf"]
    assert _non_finite_terms(names, torch.tensor([1.0, 2.0, inf, nan])) == ["total"]  # no single term broke
    assert _non_finite_terms(names, torch.tensor([1.0, 2.0, 3.0, nan])) == ["grad_norm"]
    assert _non_finite_terms(names, torch.tensor([1.0, 2.0, 3.0, 4.0])) == []


def test_stop_signals_set_a_flag_and_restore_the_handlers() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with _StopSignals() as signals:
        assert signals.received is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.received == signal.SIGTERM  # the process lives on: the loop decides when to stop
    assert signal.getsignal(signal.SIGTERM) == before


def test_worker_count_follows_the_config_or_the_threads() -> None:
    assert _num_workers(apply_overrides(preset("tiny"), ["data.num_workers=3"])) == 3
    threads = get_threads()
    expected = 0 if threads <= 2 else min(8, threads // 2)
    assert _num_workers(apply_overrides(preset("tiny"), ["data.num_workers=-1"])) == expected
