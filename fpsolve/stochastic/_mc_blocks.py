"""Block execution of :mod:`fpsolve.stochastic.montecarlo` with the compiled kernel
(:func:`numba_task`; the numpy twin is :func:`._mc_numpy.numpy_task`).
"""
from __future__ import annotations

import numpy as np

from ._mc_run import Block, BlockOut, Run, rec_len

_KERNELS = None


def kernels():
    """The numba module, or None if numba cannot be imported (lazy, cached).

    The kernel also needs numba's ziggurat tables (``numba.np.random._constants``, an
    internal module): a numba without them counts as missing (numpy path)."""
    global _KERNELS
    if _KERNELS is None:
        try:
            import numba
            from numba.np.random import _constants  # noqa: F401
        except ImportError:
            _KERNELS = False
        else:
            _KERNELS = numba
    return _KERNELS or None


def numba_available() -> bool:
    """True if numba can be imported, i.e. ``backend="numba"`` is possible."""
    return kernels() is not None


_M64 = (1 << 64) - 1


def pcg_state(rng: np.random.Generator) -> np.ndarray:
    """(state hi, state lo, inc hi, inc lo) of a PCG64 generator, for the kernel."""
    if type(rng.bit_generator) is not np.random.PCG64:
        raise TypeError(f"the kernel draws PCG64 numbers, not {type(rng.bit_generator).__name__}")
    s = rng.bit_generator.state["state"]
    return np.array([s["state"] >> 64, s["state"] & _M64, s["inc"] >> 64, s["inc"] & _M64],
                    dtype=np.uint64)


def set_pcg_state(rng: np.random.Generator, st: np.ndarray) -> None:
    """Advance ``rng`` to the state the kernel left in ``st`` (as if it had drawn)."""
    d = rng.bit_generator.state
    d["state"]["state"] = (int(st[0]) << 64) | int(st[1])
    rng.bit_generator.state = d


def numba_task(run: Run, blocks: list[Block]) -> list[BlockOut]:
    K = run.fast.kernel()
    lp, bm = run.fast.lp, run.fast.bm
    gnx, gny = run.gshape
    mnx, mny = run.mshape
    outs = []
    for b in blocks:
        hist = np.zeros((gnx, gny), np.int64)
        margx = np.zeros(mnx, np.int64)
        margy = np.zeros(mny, np.int64)
        cur = np.zeros((2, gnx, gny))
        mom = np.zeros((run.n_batches, 6))
        counters = np.zeros(6, np.int64)
        X, Y, status = b.X.copy(), b.Y.copy(), b.status.copy()
        rec = np.full((max(rec_len(run), 1), b.n_rec, 2), np.nan)
        if rec_len(run):
            rec[0, :, 0] = X[:b.n_rec]
            rec[0, :, 1] = Y[:b.n_rec]
        st = pcg_state(b.rng)
        K(st, X, Y, status, lp, bm, run.a, run.c, run.R2, run.blow2,
                    run.absorbing, run.reinsert, run.k, run.n_chunks, run.n_burn_chunks,
                    run.n_batches, run.grid, run.mgrid, run.shift, hist, margx, margy, cur,
                    mom, counters, rec, run.rec_every)
        set_pcg_state(b.rng, st)
        outs.append(BlockOut(hist, margx, margy, cur, mom, counters, X, Y, status,
                              rec[:rec_len(run)]))
    return outs
