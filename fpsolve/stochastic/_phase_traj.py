"""Recorded SGD trajectories at one learning rate (Fig. 2a, c; Fig. S2a).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .._args import as_float as _float, as_int as _int, err as _err
from ._phase_common import (DIVERGED, START, _N_ACC, _child, _kernels, _landscape, _lp, _root,
                            _start, _vector)

@dataclass
class Trajectories:
    """Recorded SGD trajectories (Fig. 2a, c; Fig. S2a).

    Attributes
    ----------
    sigma : ndarray (n_sigma,)
    eta : float
    t : ndarray (n_frames,)
        Iteration number of each frame (frame 0 is the start).
    x, y : ndarray (n_sigma, n_walkers, n_frames)
        Positions; NaN after a walker diverged.
    diverged : ndarray (n_sigma, n_walkers) of bool
    """

    sigma: np.ndarray
    eta: float
    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    diverged: np.ndarray
    landscape: dict = field(default_factory=dict)


def trajectories(sigma=(0.0, 0.02, 0.2), eta: float = 0.01, n_steps: int = 100_000, *,
                 landscape=None, start=START, n_walkers: int = 1, record_every: int = 10,
                 blowup: float = 1e3, seed=0) -> Trajectories:
    """SGD trajectories at one learning rate and several noise strengths (Fig. 2a, c).

    Parameters
    ----------
    sigma : sequence of float
        Noise strengths σ ≥ 0 (default Fig. 2's 0, 0.02, 0.2).
    eta : float
        Learning rate (default 0.01, Fig. 2a).
    n_steps : int
        Iterations, a multiple of ``record_every``.
    landscape : PaperLandscape, optional
        Default :func:`fig2_landscape`.
    start : (float, float)
        Start of every walker (default (1.5, 1.5)).
    n_walkers : int
        Independent walkers per σ.
    record_every : int
        Record every this many iterations.
    blowup : float
        Divergence radius.
    seed : int, SeedSequence or None
        Walkers of σ index j use child (j,) of the root SeedSequence.

    Returns
    -------
    Trajectories
    """
    fn = "trajectories"
    L = _landscape(fn, landscape)
    sig = _vector(fn, "sigma", sigma)
    eta = _float(fn, "eta", eta, positive=True)
    n_steps = _int(fn, "n_steps", n_steps, 1)
    n_walkers = _int(fn, "n_walkers", n_walkers, 1)
    every = _int(fn, "record_every", record_every, 1)
    if n_steps % every:
        raise _err(fn, "n_steps", f"a multiple of record_every={every}", n_steps)
    x0, y0 = _start(fn, start)
    blowup = _float(fn, "blowup", blowup, positive=True)
    if x0 * x0 + y0 * y0 >= blowup * blowup:
        raise _err(fn, "blowup", f"larger than |start| = {math.hypot(x0, y0):g}", blowup)
    root = _root(fn, seed)
    K = _kernels()
    nf = n_steps // every + 1
    X = np.full((sig.size, n_walkers, nf), np.nan)
    Y = np.full_like(X, np.nan)
    div = np.zeros((sig.size, n_walkers), bool)
    for j, s in enumerate(sig):
        rec = np.full((nf, n_walkers, 2), np.nan)
        rec[0, :, 0], rec[0, :, 1] = x0, y0
        hit = np.full((n_walkers, 1), -1, np.int32)
        acc = np.zeros((n_walkers, _N_ACC))
        status = np.zeros(n_walkers, np.int8)
        t_end = np.zeros(n_walkers, np.int64)
        K.run_block(_child(root, j), _lp(L), eta, eta * math.sqrt(2 * s), x0, y0, n_steps,
                    n_steps, blowup * blowup, 1.0, hit, acc, status, t_end, rec, every)
        X[j], Y[j] = rec[:, :, 0].T, rec[:, :, 1].T
        div[j] = status == DIVERGED
        for w in np.flatnonzero(div[j]):        # frames after divergence are meaningless
            X[j, w, t_end[w] // every + 1:] = np.nan
            Y[j, w, t_end[w] // every + 1:] = np.nan
    return Trajectories(sig, eta, np.arange(nf) * every, X, Y, div, dict(L.params))
