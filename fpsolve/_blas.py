"""BLAS thread limits: one thread while a study solves its cases, n in a block.

A study keeps the cores busy itself: the background renderer, the forked error
estimates, the flux factorisations in a thread, worker processes.  OpenBLAS's own threads
then compete with them for the same cores (measured on 2 cores: ``fpsolve run
studies/fig3.toml`` 7.9 → 7.0 s wall and 14.8 → 12.6 s CPU with one BLAS thread; an
adaptive level's 20k-long dot product took 6.5 ms instead of 13 µs under load, waking
threads).  One thread also makes a study's numbers independent of the machine's core
count (a threaded BLAS splits its reductions by thread, which changes their last bits) —
in this process and in local worker processes; on a Dask worker, as its environment sets
(distributed's nanny sets one thread by default).  A plain ``fp.solve`` keeps the default
threads (quiet, its wall time is the same), so it can differ from a study at round-off.
"""
from __future__ import annotations

import functools
import threading
from contextlib import contextmanager

__all__ = ["blas_threads", "single_blas_thread", "with_single_blas_thread"]

_depth = 0
_limits = None


@contextmanager
def single_blas_thread():
    """Run the block with one BLAS thread; the caller's limits come back afterwards.

    Re-entrant.  Acts in the main thread only: OpenBLAS (pthreads) ignores a thread count
    set from another thread (measured: it still reports the old count there), so a block
    in another thread (a Dask worker's task) leaves the limits alone; local worker
    processes get one thread from their environment (``tasks.THREAD_VARIABLES``).
    """
    global _depth, _limits
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _depth == 0:
        from threadpoolctl import threadpool_limits
        _limits = threadpool_limits(limits=1, user_api="blas")
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            _limits.restore_original_limits()
            _limits = None


def with_single_blas_thread(func):
    """Decorator: ``func`` runs inside :func:`single_blas_thread`."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with single_blas_thread():
            return func(*args, **kwargs)
    return wrapper


@contextmanager
def blas_threads(n: int | None):
    """Limit BLAS threads to ``n`` inside the block (no-op if ``n`` is None).

    The matrices of a digits-sized network (:mod:`fpsolve.vf`) are tiny: a second BLAS
    thread brings nothing, and on a shared, loaded machine it made the full-batch forward
    pass 30× slower (1 ms → 30 ms) in our measurements.
    """
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=int(n), user_api="blas"):
        yield
