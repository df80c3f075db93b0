"""Shared pieces of the phase-diagram modules: the Fig. 2 landscape and start, argument
checks, seeding and the progress bar.
"""
from __future__ import annotations


import numpy as np

from .._args import err as _err
from ..models import landscapes as _landscapes
from ._mc_run import root_seed as _root   # one seed rule for all walkers

FIG2 = {"eps": 0.001, "lam0": 8.0, "lam1": -2.0, "lam2": 1.0}
"""Landscape coefficients of Fig. 2 and Figs. S3, S4."""

START = (1.5, 1.5)
"""Start of every walker (Fig. 2 caption)."""

ALIVE, DIVERGED = 0, 1
_N_ACC = 9
_INT32_MAX = 2 ** 31 - 1


def fig2_landscape() -> _landscapes.PaperLandscape:
    """The landscape of Fig. 2: ε = 0.001, λ0 = 8, λ1 = −2, λ2 = 1."""
    return _landscapes.paper(**FIG2)


# --------------------------------------------------------------------------- helpers
def _kernels():
    try:
        from . import _phase_kernels
    except ImportError as exc:   # pragma: no cover - numba is installed in the test extra
        raise ImportError("fpsolve.phase needs numba (pip install 'fpsolve[fast]'): "
                          f"{exc}") from exc
    return _phase_kernels


def _vector(fn, name, values, *, positive=False):
    try:
        a = np.atleast_1d(np.asarray(values, dtype=float))
    except (TypeError, ValueError):
        raise _err(fn, name, "a sequence of numbers", values) from None
    if a.ndim != 1 or a.size == 0:
        raise _err(fn, name, "a non-empty 1-D sequence of numbers", values)
    if not np.all(np.isfinite(a)) or np.any(a <= 0 if positive else a < 0):
        what = "positive" if positive else "non-negative"
        raise _err(fn, name, f"finite and {what}", values)
    return a


def _landscape(fn, landscape):
    if landscape is None:
        return fig2_landscape()
    if type(landscape) is not _landscapes.PaperLandscape:
        raise _err(fn, "landscape", "a fpsolve.landscapes.paper(...) landscape (the compiled "
                   "kernel implements that family only)", landscape)
    return landscape


def _start(fn, start):
    try:
        s = np.asarray(start, dtype=float)
    except (TypeError, ValueError):
        raise _err(fn, "start", "a point (x0, y0)", start) from None
    if s.shape != (2,) or not np.all(np.isfinite(s)):
        raise _err(fn, "start", "a finite point (x0, y0)", start)
    return float(s[0]), float(s[1])




def _child(root: np.random.SeedSequence, *key: int) -> np.random.Generator:
    ss = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, *key),
                                pool_size=root.pool_size)
    return np.random.Generator(np.random.PCG64(ss))


def _lp(L) -> np.ndarray:
    return np.array([L.eps * L.lam0, L.lam0, L.lam1, L.lam2])


def _progress(enabled: bool, total: float, description: str):
    """A started rich progress bar and its task id, or (None, None)."""
    if not enabled:
        return None, None
    try:
        from rich.progress import (BarColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
    except ImportError:        # rich is optional
        return None, None
    bar = Progress(TextColumn("{task.description}"), BarColumn(),
                   TextColumn("{task.percentage:>5.1f}%"), TimeElapsedColumn(),
                   TimeRemainingColumn())
    bar.start()
    return bar, bar.add_task(description, total=total)
