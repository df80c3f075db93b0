"""Run set-up of :mod:`fpsolve.stochastic.montecarlo`: validated settings, seeding, blocks.

:func:`setup` turns the keyword arguments of ``sgd`` / ``langevin`` into plain data —
a :class:`Run` (everything a backend needs) and the list of :class:`Block` s of walkers,
each with its own ``Generator(PCG64(child i of the root SeedSequence))`` and initial
positions.  Nothing here advances a walker.
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .._args import as_bool as _bool, as_float as _float, as_int as _int, err as _err

BLOCK_SIZE = 256
"""Default walkers per random-number block (the unit of seeding, Fleming–Viot
re-insertion and of the independent groups behind the error bars)."""

# walker status codes (also in the kernels)
ALIVE, EXITED, DIVERGED, REMOVED = 0, 1, 2, 3
C_EXITS_BURN, C_EXITS, C_DIVERGED, C_STEPS_BURN, C_STEPS, C_REMOVED = range(6)

BACKENDS = ("auto", "numba", "numpy")
_DEFAULT_X0_SCALE = 0.05


@dataclass
class Run:
    """Everything a backend needs to advance blocks (plain data)."""

    simulator: str
    landscape: object
    dt: float                      # physical time per step (η for SGD)
    a: float                       # drift coefficient
    c: float                       # noise scale
    fast: object                   # compiled model (_mc_models.Compiled) or None
    noise: str                     # generic path: "sgd", "sgd-nocross" or "model"
    model: object                  # DiffusionModel for the generic Langevin path
    drift: Callable | None
    R2: float
    blow2: float
    absorbing: bool
    reinsert: bool
    k: int
    n_chunks: int
    n_burn_chunks: int
    n_batches: int
    grid: np.ndarray               # (x0, 1/dx, y0, 1/dy) of the 2-D histogram
    gshape: tuple
    mgrid: np.ndarray              # same for the two 1-D marginal histograms
    mshape: tuple
    shift: np.ndarray              # reference point of the moment sums
    rec_every: int                 # in chunks; 0 = no recording
    record_walkers: int


@dataclass
class Block:
    index: int
    start: int
    rng: np.random.Generator
    X: np.ndarray
    Y: np.ndarray
    status: np.ndarray
    n_rec: int                     # walkers of this block that are recorded


@dataclass
class BlockOut:
    hist: np.ndarray
    margx: np.ndarray
    margy: np.ndarray
    cur: np.ndarray
    mom: np.ndarray
    counters: np.ndarray
    X: np.ndarray
    Y: np.ndarray
    status: np.ndarray
    rec: np.ndarray


def rec_len(run: Run) -> int:
    """Number of recorded frames (initial state included), 0 without recording."""
    return run.n_chunks // run.rec_every + 1 if run.rec_every else 0


@dataclass
class Settings:
    """Validated run-size, histogram, recording and seeding settings."""

    n_walkers: int
    n_steps: int
    n_burn: int
    k: int
    n_chunks: int
    n_burn_chunks: int
    n_batches: int
    block_size: int
    workers: int
    reinsert: bool
    blowup: float
    radius: float | None
    ext: list
    gshape: tuple
    mshape: tuple
    grid: np.ndarray
    mgrid: np.ndarray
    rec_every: int
    n_rec: int
    root: np.random.SeedSequence
    n_blocks: int


def _steps(fn, n_walkers, n_steps, n_burn, sample_every, n_batches):
    n_walkers = _int(fn, "n_walkers", n_walkers, 1)
    n_steps = _int(fn, "n_steps", n_steps, 1)
    k = _int(fn, "sample_every", sample_every, 1)
    if n_steps % k:
        raise _err(fn, "n_steps", f"a multiple of sample_every={k}", n_steps)
    if n_burn is None:
        n_burn = (n_steps // 5) // k * k
    n_burn = _int(fn, "n_burn", n_burn, 0)
    if n_burn % k:
        raise _err(fn, "n_burn", f"a multiple of sample_every={k}", n_burn)
    if n_burn >= n_steps:
        raise _err(fn, "n_burn", f"smaller than n_steps={n_steps}", n_burn)
    n_chunks, n_burn_chunks = n_steps // k, n_burn // k
    n_batches = min(_int(fn, "n_batches", n_batches, 1), n_chunks - n_burn_chunks)
    return n_walkers, n_steps, n_burn, k, n_chunks, n_burn_chunks, n_batches


def _histogram_grid(fn, radius, bins, extent, marginal_bins):
    if extent is None:
        extent = (-radius, radius, -radius, radius) if radius is not None else (-2.0, 2.0, -2.0, 2.0)
    try:
        ext = [float(v) for v in extent]
    except (TypeError, ValueError):
        raise _err(fn, "extent", "(xmin, xmax, ymin, ymax)", extent) from None
    if len(ext) != 4 or not all(map(math.isfinite, ext)) or ext[0] >= ext[1] or ext[2] >= ext[3]:
        raise _err(fn, "extent", "(xmin, xmax, ymin, ymax) with xmin < xmax, ymin < ymax", extent)
    if isinstance(bins, (tuple, list)) and len(bins) == 2:
        gshape = (_int(fn, "bins", bins[0], 1), _int(fn, "bins", bins[1], 1))
    else:
        gshape = (_int(fn, "bins", bins, 1),) * 2
    if marginal_bins is None:
        mshape = (4 * gshape[0], 4 * gshape[1])
    else:
        mshape = (_int(fn, "marginal_bins", marginal_bins, 1),) * 2
    grid = np.array([ext[0], gshape[0] / (ext[1] - ext[0]), ext[2], gshape[1] / (ext[3] - ext[2])])
    mgrid = np.array([ext[0], mshape[0] / (ext[1] - ext[0]), ext[2], mshape[1] / (ext[3] - ext[2])])
    return ext, gshape, mshape, grid, mgrid


def _recording(fn, record_every, record_walkers, k, n_walkers):
    if record_every is None:
        return 0, 0
    record_every = _int(fn, "record_every", record_every, 1)
    if record_every % k:
        raise _err(fn, "record_every", f"a multiple of sample_every={k}", record_every)
    n_rec = n_walkers if record_walkers is None else min(
        _int(fn, "record_walkers", record_walkers, 1), n_walkers)
    return record_every // k, n_rec


def root_seed(fn, seed) -> np.random.SeedSequence:
    """The root SeedSequence of ``seed`` (int ≥ 0, SeedSequence or None)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)
                        and seed >= 0):
        return np.random.SeedSequence(seed)
    raise _err(fn, "seed", "a non-negative integer, a numpy SeedSequence or None", seed)


def child(root: np.random.SeedSequence, *key: int) -> np.random.SeedSequence:
    """Child ``key`` of ``root`` (what ``root.spawn`` would give, without its state)."""
    return np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, *key),
                                  pool_size=root.pool_size)


def settings(fn, *, n_walkers, n_steps, n_burn, sample_every, seed, radius, bins, extent,
             marginal_bins, n_batches, reinsert, blowup_radius, backend, workers, block_size,
             record_every, record_walkers) -> Settings:
    """Validate the common keyword arguments of ``sgd`` / ``langevin``."""
    n_walkers, n_steps, n_burn, k, n_chunks, n_burn_chunks, n_batches = _steps(
        fn, n_walkers, n_steps, n_burn, sample_every, n_batches)
    block_size = _int(fn, "block_size", block_size, 1)
    if backend not in BACKENDS:
        raise _err(fn, "backend", f"one of {BACKENDS}", backend)
    if workers is None:
        workers = os.cpu_count() or 1
    workers = _int(fn, "workers", workers, 1)
    reinsert = _bool(fn, "reinsert", reinsert)
    blowup = _float(fn, "blowup_radius", blowup_radius, positive=True)
    if radius is not None:
        radius = _float(fn, "radius", radius, positive=True)
        if blowup < radius:
            raise _err(fn, "blowup_radius", f"at least radius={radius}", blowup_radius)
    ext, gshape, mshape, grid, mgrid = _histogram_grid(fn, radius, bins, extent, marginal_bins)
    rec_every, n_rec = _recording(fn, record_every, record_walkers, k, n_walkers)
    root = root_seed(fn, seed)
    return Settings(n_walkers=n_walkers, n_steps=n_steps, n_burn=n_burn, k=k, n_chunks=n_chunks,
                    n_burn_chunks=n_burn_chunks, n_batches=n_batches, block_size=block_size,
                    workers=workers, reinsert=reinsert, blowup=blowup, radius=radius, ext=ext,
                    gshape=gshape, mshape=mshape, grid=grid, mgrid=mgrid, rec_every=rec_every,
                    n_rec=n_rec, root=root, n_blocks=-(-n_walkers // block_size))


def _initial(fn, x0, radius, n_walkers):
    """(centre, scale, x0 array or None) of the initial condition."""
    if x0 is None:
        scale = _DEFAULT_X0_SCALE if radius is None else min(_DEFAULT_X0_SCALE, radius / 20)
        return np.zeros(2), scale, None
    x0_arr = np.asarray(x0, dtype=float)
    if x0_arr.shape == (2,):
        centre = x0_arr
    elif x0_arr.shape == (n_walkers, 2):
        centre = x0_arr.mean(axis=0)
    else:
        raise _err(fn, "x0", f"None, a point (2,) or an array of shape ({n_walkers}, 2)",
                   f"array of shape {x0_arr.shape}")
    if not np.all(np.isfinite(x0_arr)):
        raise _err(fn, "x0", "finite", "non-finite values")
    r2 = np.sum(x0_arr.reshape(-1, 2) ** 2, axis=1)
    if radius is not None and np.any(r2 >= radius * radius):
        raise _err(fn, "x0", f"inside the disk of radius {radius}", "points outside it")
    return centre, None, x0_arr


def blocks(fn, s: Settings, x0):
    """(the moment reference point, the walker blocks with their generators and x0)."""
    centre, scale, x0_arr = _initial(fn, x0, s.radius, s.n_walkers)
    radius, out = s.radius, []
    for i in range(s.n_blocks):
        start = i * s.block_size
        nb = min(s.block_size, s.n_walkers - start)
        rng = np.random.Generator(np.random.PCG64(child(s.root, i)))
        if x0_arr is None:
            z = rng.standard_normal((nb, 2))
            X, Y = centre[0] + scale * z[:, 0], centre[1] + scale * z[:, 1]
            if radius is not None:   # a 20-sigma draw could land outside: pull it in
                r = np.hypot(X, Y)
                far = r >= radius
                X[far] *= 0.5 * radius / r[far]
                Y[far] *= 0.5 * radius / r[far]
        elif x0_arr.shape == (2,):
            X, Y = np.full(nb, centre[0]), np.full(nb, centre[1])
        else:
            X, Y = x0_arr[start:start + nb, 0].copy(), x0_arr[start:start + nb, 1].copy()
        out.append(Block(i, start, rng, np.ascontiguousarray(X), np.ascontiguousarray(Y),
                         np.zeros(nb, np.int8), max(0, min(nb, s.n_rec - start))))
    return np.array(centre, dtype=float), out


def make_run(s: Settings, shift, **model) -> Run:
    """The :class:`Run` of validated settings and a model (simulator, L, dt, a, c, ...)."""
    radius, blowup = s.radius, s.blowup
    return Run(**model, R2=radius * radius if radius is not None else blowup * blowup,
               blow2=blowup * blowup, absorbing=radius is not None, reinsert=s.reinsert,
               k=s.k, n_chunks=s.n_chunks, n_burn_chunks=s.n_burn_chunks,
               n_batches=s.n_batches, grid=s.grid, gshape=s.gshape, mgrid=s.mgrid,
               mshape=s.mshape, shift=shift, rec_every=s.rec_every, record_walkers=s.n_rec)
