"""Where Monte Carlo tasks run: a local thread pool or a Dask cluster.

A *task* is a top-level function and its arguments (blocks of walkers, or one block of
one grid point); its result depends only on its arguments (each block carries its own
seeded generator), so the place a task runs never changes the numbers.  Results are
consumed in the main thread, either in task order (:func:`run_ordered`, for reductions
whose float sums must be folded in a fixed order) or as they complete
(:func:`run_unordered`, for results keyed by the task).

At most a few tasks per worker are in flight, so memory stays bounded.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

__all__ = ["run_ordered", "run_unordered", "client_workers", "as_client"]


def as_client(fn: str, client):
    """``client`` as a ``distributed.Client`` (a Client, an address "tcp://..." or None)."""
    if client is None:
        return None
    if isinstance(client, str):
        try:
            from distributed import Client
        except ImportError:
            raise ImportError(f"{fn}: client={client!r} needs dask.distributed "
                              "(pip install 'fpsolve[dask]')") from None
        return Client(client, timeout="30s", set_as_default=False)
    if not all(hasattr(client, a) for a in ("submit", "nthreads")):
        raise TypeError(f"{fn}: client must be a distributed.Client, a scheduler address "
                        f"or None, got {type(client).__name__}")
    return client


def client_workers(client) -> int:
    """Number of worker threads of a Dask cluster."""
    return max(1, sum(client.nthreads().values()))


def _submit(pool, client, fn, args):
    if client is not None:
        return client.submit(fn, *args, pure=False)
    return pool.submit(fn, *args)


def run_ordered(fn, tasks, workers: int, consume, client=None) -> None:
    """``consume(fn(*args))`` for every ``args`` in ``tasks``, in task order."""
    if client is None and (workers == 1 or len(tasks) == 1):
        for args in tasks:
            consume(fn(*args))
        return
    window = 2 * (client_workers(client) if client is not None else workers)
    with _pool(client, workers) as pool:
        pending = deque()
        it = iter(tasks)
        for args in it:
            pending.append(_submit(pool, client, fn, args))
            if len(pending) >= window:
                break
        while pending:
            out = pending.popleft().result()
            args = next(it, None)
            if args is not None:
                pending.append(_submit(pool, client, fn, args))
            consume(out)


def run_unordered(fn, tasks, workers: int, consume, client=None) -> None:
    """``consume(args, fn(*args))`` for every ``args`` in ``tasks``, as they complete."""
    if client is None and workers == 1:
        for args in tasks:
            consume(args, fn(*args))
        return
    if client is not None:
        _dask_unordered(fn, tasks, consume, client)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        it = iter(tasks)
        running = {}
        for args in it:
            running[pool.submit(fn, *args)] = args
            if len(running) >= 4 * workers:
                break
        while running:
            for fut in wait(running, return_when=FIRST_COMPLETED)[0]:
                args = running.pop(fut)
                consume(args, fut.result())
                nxt = next(it, None)
                if nxt is not None:
                    running[pool.submit(fn, *nxt)] = nxt


def _dask_unordered(fn, tasks, consume, client) -> None:
    from distributed import as_completed
    it = iter(tasks)
    running = {}
    for args in it:
        running[client.submit(fn, *args, pure=False)] = args
        if len(running) >= 4 * client_workers(client):
            break
    done = as_completed(list(running), loop=client.loop)
    for fut in done:
        args = running.pop(fut)
        consume(args, fut.result())
        nxt = next(it, None)
        if nxt is not None:
            new = client.submit(fn, *nxt, pure=False)
            running[new] = nxt
            done.add(new)


class _NoPool:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _pool(client, workers):
    return _NoPool() if client is not None else ThreadPoolExecutor(max_workers=workers)
