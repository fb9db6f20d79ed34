"""Run the benchmark's independent numpy jobs (baseline fits) on a pool of processes.

A baseline fit is mostly single-threaded (kd-tree and AABB queries, small products): on 2
cores, one fit with 2 threads took 12.7 s and with 1 thread 16.0 s, so two one-thread
processes fit about 1.6x as many scans per second. Results do not depend on ``workers``.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Callable, Sequence

from imface.threads import init_worker_process

Call = tuple[Callable[..., Any], dict[str, Any]]


def run_calls(calls: Sequence[Call], workers: int) -> list[Any]:
    """Results of ``function(**kwargs)`` for each call, in order; ``workers`` > 1 runs them on
    that many one-thread processes (the functions and arguments must pickle)."""
    if workers <= 1 or len(calls) <= 1:
        return [function(**kwargs) for function, kwargs in calls]
    with ProcessPoolExecutor(min(workers, len(calls)), mp_context=get_context("spawn"),
                             initializer=init_worker_process) as pool:
        futures = [pool.submit(function, **kwargs) for function, kwargs in calls]
        return [future.result() for future in futures]
