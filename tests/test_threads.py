"""set_threads: one count for torch, the BLAS pools and child processes; workers use one each."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from threadpoolctl import threadpool_info

from imface.threads import _ENV_VARS, get_threads, init_worker_process, set_threads


@pytest.fixture
def restore_threads():
    """Put the session's thread settings back after a test changes them."""
    saved_env = {var: os.environ.get(var) for var in (*_ENV_VARS, "IMFACE_THREADS")}
    saved_torch = torch.get_num_threads()
    yield
    set_threads(saved_torch)  # torch and the loaded BLAS pools
    for var, value in saved_env.items():  # then the environment exactly as it was
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value


def test_one_count_everywhere(restore_threads):
    assert set_threads(1) == 1
    assert torch.get_num_threads() == 1 and get_threads() == 1
    assert all(os.environ[var] == "1" for var in _ENV_VARS)
    assert all(pool["num_threads"] == 1 for pool in threadpool_info())  # pools already loaded, limited
    assert set_threads(0) == 1  # at least one
    assert set_threads(None) == (os.cpu_count() or 1)


def test_child_processes_inherit_the_count(restore_threads):
    set_threads(1)
    code = "import os; print(os.environ['OMP_NUM_THREADS'], os.environ['IGL_NUM_THREADS'])"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split() == ["1", "1"]


def test_pool_workers_use_one_thread(restore_threads):
    set_threads(2)
    init_worker_process()
    assert torch.get_num_threads() == 1 and get_threads() == 1


def test_get_threads_without_set_threads_is_every_core(monkeypatch):
    monkeypatch.delenv("IMFACE_THREADS", raising=False)
    assert get_threads() == (os.cpu_count() or 1)
