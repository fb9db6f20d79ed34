"""One knob for CPU parallelism: torch intra-op threads, BLAS pools and worker counts."""
from __future__ import annotations

import os

# libigl ignores OMP_NUM_THREADS and reads IGL_NUM_THREADS before its first parallel call.
_ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "IGL_NUM_THREADS",
)


def set_threads(n: int | None) -> int:
    """Use ``n`` threads everywhere (``None``: all cores). Returns the count in force.

    Call it early: BLAS pools read the environment when they start, so the variables
    are set for child processes, and threadpoolctl limits the pools already loaded.
    """
    count = (os.cpu_count() or 1) if n is None else max(1, int(n))
    for var in _ENV_VARS:
        os.environ[var] = str(count)
    os.environ["IMFACE_THREADS"] = str(count)
    # here, not at the top: keeps `imface --help` from loading torch
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(count)
    # BLAS pools that numpy/scipy already started ignore the environment: limit them directly.
    threadpool_limits(count)
    return count


def get_threads() -> int:
    """The thread count set by :func:`set_threads` (or all cores)."""
    value = os.environ.get("IMFACE_THREADS")
    return int(value) if value else (os.cpu_count() or 1)


def init_worker_process() -> None:
    """Initializer for process pools: the pool gives the parallelism, so each worker
    uses one thread (no oversubscription of the cores)."""
    set_threads(1)
