"""Monte Carlo simulation of SGD and of the Fokker–Planck (Langevin) dynamics.

An independent check of the finite-element solver: this module imports only the
models (:mod:`fpsolve.landscapes`, :mod:`fpsolve.diffusion`), never FE code.

Two simulators share one streaming engine (walkers are vectorised, nothing is stored
per step unless ``record_every`` asks for it):

* :func:`sgd` — the paper's random-shift minibatch SGD (Yang–Tang–Tu Eq. 1, 8, S1–S4)

  .. math:: θ_{t+1} = θ_t − η (∇L(θ_t) − H(θ_t) μ_t),\\qquad μ_t \\sim N(0, 2σ I),

  i.e. noise covariance η² 2σ H², diffusion D = Δ_S H² with Δ_S = η σ and time step
  η.  ``cross_diffusion=False`` replaces H μ by a noise of covariance
  2σ·diag((H²)₁₁, (H²)₂₂) (H² with its off-diagonal dropped), the discrete model of the
  FPE without D12 (Fig. S5).
* :func:`langevin` — Euler–Maruyama for the Itô SDE dθ = (−∇L + b) dt + √(2 dt) B ξ with
  B Bᵀ = D, whose Fokker–Planck flux is J = (−∇L + b) P − ∇·(D P) (docs/theory.md).  No
  ∇·D drift is added: see ``docs/montecarlo.md``.

Both are the same kernel, θ ← (θ − a ∇L) + c B z: SGD with (η, σ) is Euler–Maruyama
with dt = η and D = ησ H², step for step.

Results come back as a :class:`MonteCarloResult`: density histogram, marginals,
moments with standard errors, empirical probability current, exit counts and the
escape rate through an absorbing disk (walkers re-inserted Fleming–Viot style by
default, so the density converges to the quasi-stationary density).

Reproducibility: walkers live in fixed blocks of ``block_size``; block ``i`` draws
from ``Generator(PCG64(SeedSequence(seed).spawn(...)[i]))``.  Results are
bit-identical for any ``workers`` / ``blocks_per_task`` / Dask ``client`` and — on the
built-in paper and quadratic models — for either backend.

Compiled models (``docs/montecarlo.md``): the kernel is generated per model; expression
landscapes and expression noise are printed by sympy from their parsed expression
trees, cached in memory and on disk.  Python callables run in numpy.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import time
from typing import Callable

import numpy as np

from .._args import as_bool as _bool, as_float as _float, as_int as _int, err as _err
from ..models import diffusion as _diffusion
from ..models import landscapes as _landscapes
from . import _mc_models as _models
from . import _mc_run as _setup
from ._mc_blocks import kernels as _kernels, numba_available, numba_task
from ._mc_numpy import numpy_task
from ._mc_reduce import Reducer
from ._mc_result import MonteCarloResult, MonteCarloWarning
from ._mc_run import ALIVE, BLOCK_SIZE, DIVERGED, EXITED, REMOVED, Block
from ._tasks import as_client, client_workers, run_ordered

__all__ = ["sgd", "langevin", "MonteCarloResult", "MonteCarloWarning", "numba_available",
           "BLOCK_SIZE", "ALIVE", "EXITED", "DIVERGED", "REMOVED"]

logger = logging.getLogger(__name__)

_NUMPY_WALKERS_PER_TASK = 16384      # numpy pays per ufunc call: vectorise over many blocks
_NUMPY_NORMALS_PER_TASK = 1 << 22    # ... but keep a task's (walkers, k, 2) normals <= 32 MB


# ------------------------------------------------------------------- the engine
def _backend(fn, backend, fast, why):
    """"numba" or "numpy" for the requested backend and model."""
    if backend == "numba":
        if _kernels() is None:
            raise ImportError(f"{fn}: backend='numba' needs numba, which cannot be imported; "
                              f"install it or use backend='numpy'")
        if fast is None:
            raise ValueError(f"{fn}: backend='numba' cannot compile this model: {why}; use "
                             f"backend='numpy' or 'auto'")
        return "numba"
    if backend == "numpy":
        return "numpy"
    if fast is None or _kernels() is None:
        logger.info("%s: numpy path (8-10x slower than the compiled kernel): %s", fn,
                    why if fast is None else "numba cannot be imported")
        return "numpy"
    return "numba"


def _tasks(fn, run, blocks, use, blocks_per_task, block_size):
    """(task function, its argument tuples (run, group of blocks)) for the backend."""
    if use == "numba":
        task_fn = numba_task
        per_task = 1 if blocks_per_task is None else _int(
            fn, "blocks_per_task", blocks_per_task, 1)
        # compile (or load from cache) once in this thread, before the pool starts
        tiny = dataclasses.replace(run, n_chunks=1, n_burn_chunks=0, n_batches=1)
        numba_task(tiny, [Block(0, 0, np.random.default_rng(0), np.zeros(1), np.zeros(1),
                                np.zeros(1, np.int8), 0)])
    else:
        task_fn = numpy_task
        walkers = min(_NUMPY_WALKERS_PER_TASK, _NUMPY_NORMALS_PER_TASK // (2 * run.k))
        per_task = (max(1, walkers // block_size) if blocks_per_task is None
                    else _int(fn, "blocks_per_task", blocks_per_task, 1))
    return task_fn, [(run, blocks[i:i + per_task]) for i in range(0, len(blocks), per_task)]


def _simulate(fn, *, simulator, L, dt, a, c, fast, why, noise, model, drift, x0, backend,
              blocks_per_task, params, client, **kw):
    s = _setup.settings(fn, backend=backend, **kw)
    shift, blocks = _setup.blocks(fn, s, x0)
    run = _setup.make_run(s, shift, simulator=simulator, landscape=L, dt=dt, a=a, c=c,
                          fast=fast, noise=noise, model=model, drift=drift)
    use = _backend(fn, backend, fast, why)
    task_fn, tasks = _tasks(fn, run, blocks, use, blocks_per_task, s.block_size)
    client = as_client(fn, client)
    workers = min(s.workers, len(tasks)) if client is None else client_workers(client)
    red = Reducer(run, s.n_walkers, s.n_blocks, s.n_rec)
    t0 = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):   # diverging walkers are expected
        run_ordered(task_fn, tasks, workers, red.add_all, client)
    elapsed = time.perf_counter() - t0
    res = MonteCarloResult._from_reduction(
        red, run, simulator=simulator, params=params, n_walkers=s.n_walkers,
        n_steps=s.n_steps, n_burn=s.n_burn, radius=s.radius, extent=tuple(s.ext),
        n_blocks=s.n_blocks, block_size=s.block_size, backend=use, workers=workers,
        seed_entropy=s.root.entropy, seed_spawn_key=tuple(s.root.spawn_key), elapsed=elapsed)
    res._warn()
    return res


# ------------------------------------------------------------------ public API
_COMMON_DOC = """
    n_walkers : int
        Number of walkers (independent unless re-insertion couples them within a block).
    n_steps : int
        Total number of steps, burn-in included; a multiple of ``sample_every``.
    n_burn : int, optional
        Steps at the start that are not accumulated (default: 20 % of ``n_steps``,
        rounded down to a multiple of ``sample_every``).  Exits during burn-in are
        reported separately and do not enter the escape rate.
    sample_every : int
        Accumulate every ``sample_every`` steps (default 10); the walker-major kernel
        runs this many steps per walker between samples.
    seed : int, numpy.random.SeedSequence or None
        Root seed.  Block ``i`` of walkers uses child ``i`` of the root SeedSequence.
        ``None`` draws fresh entropy, recorded as ``result.seed_entropy``.
    radius : float or None
        Absorbing disk |θ| < radius centred at the origin (default 2, the paper's
        domain); ``None`` for free space.
    x0 : array_like, optional
        Initial condition: a point (2,) where all walkers start, or an array
        (n_walkers, 2).  Default: a narrow Gaussian at the origin (standard deviation
        0.05, or radius/20 if smaller).
    bins : int or (int, int)
        Bins per axis of the 2-D histogram (default 100) over ``extent``.
    extent : (xmin, xmax, ymin, ymax), optional
        Histogram range; default the disk's bounding square, or (-2, 2, -2, 2) in free
        space.  Samples outside are not binned (the density then integrates to < 1).
    marginal_bins : int, optional
        Bins of the 1-D marginal histograms (default 4 × bins).
    n_batches : int
        Time batches of the moment sums (for ``moments(error="time")`` and
        ``moment_trace``), default 20.
    reinsert : bool
        With an absorbing disk: re-insert an exited walker at the position of a
        uniformly chosen surviving walker of its block at the end of the sampling
        interval (Fleming–Viot; the density converges to the quasi-stationary
        density).  ``False`` removes exited walkers (the density is then that of the
        survivors).  Default True.
    blowup_radius : float
        A walker further than this from the origin, or non-finite, is flagged as
        diverged and removed (default 1e6).
    backend : {"auto", "numba", "numpy"}
        "auto" uses the numba kernel when the model compiles (paper, quadratic or
        expression landscape; sgd, isotropic, constant or expression noise; no drift
        callable), else numpy, logging why.  Both give bit-identical results on the
        paper and quadratic models; on expression models they agree to rounding.
    workers : int, optional
        Threads working on blocks (default: the number of CPUs).  Does not change
        the results.
    block_size : int
        Walkers per random-number block (default 256).  Part of the seed: changing
        it changes the results.
    blocks_per_task : int, optional
        Blocks handed to a worker at once (numpy vectorises over them).  Does not
        change the results.
    record_every : int, optional
        Record positions every this many steps (a multiple of ``sample_every``),
        starting with the initial state; off by default.
    record_walkers : int, optional
        Record only the first this many walkers (default all).
    client : distributed.Client or str, optional
        Run the tasks on a Dask cluster (a Client or a scheduler address
        "tcp://host:port") instead of ``workers`` local threads.  The results are
        identical: blocks carry their own generators and are reduced in block order.

    Returns
    -------
    MonteCarloResult
"""


def sgd(L: _landscapes.Landscape, eta: float, sigma: float, *, n_walkers: int = 10_000,
        n_steps: int = 20_000, n_burn: int | None = None, sample_every: int = 10,
        seed=None, radius: float | None = 2.0, x0=None, cross_diffusion: bool = True,
        bins=100, extent=None, marginal_bins: int | None = None, n_batches: int = 20,
        reinsert: bool = True, blowup_radius: float = 1e6, backend: str = "auto",
        workers: int | None = None, block_size: int = BLOCK_SIZE,
        blocks_per_task: int | None = None, record_every: int | None = None,
        record_walkers: int | None = None, client=None) -> MonteCarloResult:
    fn = "sgd"
    if not isinstance(L, _landscapes.Landscape):
        raise TypeError(f"{fn}: L must be a fpsolve Landscape, got {type(L).__name__}")
    eta = _float(fn, "eta", eta, positive=True)
    sigma = _float(fn, "sigma", sigma, nonneg=True)
    cross = _bool(fn, "cross_diffusion", cross_diffusion)
    c = eta * math.sqrt(2.0 * sigma)
    fast, why = _models.sgd_model(L, cross)
    params = {"landscape": L.kind, **L.params, "eta": eta, "sigma": sigma,
              "delta_s": eta * sigma, "cross_diffusion": cross}
    return _simulate(fn, simulator="sgd", L=L, dt=eta, a=eta, c=c, fast=fast, why=why,
                     noise="sgd" if cross else "sgd-nocross", model=None, drift=None,
                     n_walkers=n_walkers, n_steps=n_steps, n_burn=n_burn,
                     sample_every=sample_every, seed=seed, radius=radius, x0=x0, bins=bins,
                     extent=extent, marginal_bins=marginal_bins, n_batches=n_batches,
                     reinsert=reinsert, blowup_radius=blowup_radius, backend=backend,
                     workers=workers, block_size=block_size, blocks_per_task=blocks_per_task,
                     record_every=record_every, record_walkers=record_walkers, params=params, client=client)


sgd.__doc__ = """Random-shift minibatch SGD (Yang–Tang–Tu Eq. 1, 8; SM Sec. I A).

    Update, for every walker independently:

    .. math:: θ ← θ − η ∇L(θ) + η \\sqrt{2σ}\\, B(θ) z,\\qquad z \\sim N(0, I),

    with B = H(θ) (``cross_diffusion=True``: exactly −η ∇L^μ with μ ~ N(0, 2σ I),
    noise covariance 2σ η² H², FPE diffusion D = Δ_S H², Δ_S = ησ) or
    B = diag(√(H²)₁₁, √(H²)₂₂) (``cross_diffusion=False``: covariance 2σ η² H² with its
    off-diagonal dropped, the discrete model of the FPE without D12 used for Fig. S5).
    Time advances by η per step (the paper's τ = η t), so escape rates and
    ``record_times`` are in the FPE's time unit.

    Parameters
    ----------
    L : Landscape
        Loss; the paper family, quadratics and expressions run in the compiled kernel,
        any other landscape in numpy through ``L.gradient`` / ``L.hessian``.
    eta : float
        Learning rate (> 0).
    sigma : float
        Shift noise strength σ (≥ 0; 0 is plain gradient descent).
    cross_diffusion : bool
        See above (default True, the paper's model).
""" + _COMMON_DOC + """
    Examples
    --------
    >>> import fpsolve as fp
    >>> L = fp.landscapes.paper()
    >>> mc = fp.montecarlo.sgd(L, eta=0.01, sigma=1.2, n_walkers=512, n_steps=2000, seed=1)
    >>> mc.moments()["cov"].shape
    (2, 2)
"""


def _as_diffusion(fn, D):
    if isinstance(D, _diffusion.DiffusionModel):
        return D
    if isinstance(D, numbers.Real) and not isinstance(D, bool):
        return _diffusion.isotropic(_float(fn, "D", D, positive=True))
    try:
        arr = None if callable(D) else np.asarray(D, dtype=float)
    except (TypeError, ValueError):
        arr = None
    if arr is not None and arr.shape == (2, 2):
        try:
            return _diffusion.constant(arr)
        except ValueError as exc:
            raise ValueError(f"{fn}: D: {exc}") from None
    raise _err(fn, "D", "a DiffusionModel, a positive number (isotropic) or a 2x2 matrix", D)


def langevin(L: _landscapes.Landscape, D, dt: float = 1e-3, *, drift: Callable | None = None,
             n_walkers: int = 10_000, n_steps: int = 20_000, n_burn: int | None = None,
             sample_every: int = 10, seed=None, radius: float | None = 2.0, x0=None,
             bins=100, extent=None, marginal_bins: int | None = None, n_batches: int = 20,
             reinsert: bool = True, blowup_radius: float = 1e6, backend: str = "auto",
             workers: int | None = None, block_size: int = BLOCK_SIZE,
             blocks_per_task: int | None = None, record_every: int | None = None,
             record_walkers: int | None = None, client=None) -> MonteCarloResult:
    fn = "langevin"
    if not isinstance(L, _landscapes.Landscape):
        raise TypeError(f"{fn}: L must be a fpsolve Landscape, got {type(L).__name__}")
    D = _as_diffusion(fn, D)
    dt = _float(fn, "dt", dt, positive=True)
    if drift is not None and not callable(drift):
        raise TypeError(f"{fn}: drift must be callable b(x, y) -> (2, *x.shape) or None, "
                        f"got {type(drift).__name__}")
    if drift is not None:
        probe = np.linspace(-0.5, 0.5, 3)
        try:
            b = np.asarray(drift(probe, probe[::-1]), dtype=float)
        except Exception as exc:
            raise ValueError(f"{fn}: calling drift(x, y) with arrays of shape (3,) failed: "
                             f"{exc}") from exc
        if b.shape != (2, 3):
            raise ValueError(f"{fn}: drift(x, y) must return shape (2, *x.shape) = (2, 3), "
                             f"got {b.shape}")
    fast, s, why = _models.langevin_model(L, D, drift)
    c = math.sqrt(2.0 * dt * s)
    params = {"landscape": L.kind, **L.params, "diffusion": D.kind, **D.params,
              "dt": dt, "drift": getattr(drift, "__name__", "drift") if drift else None}
    return _simulate(fn, simulator="langevin", L=L, dt=dt, a=dt, c=c, fast=fast, why=why,
                     noise="model", model=D, drift=drift, n_walkers=n_walkers, n_steps=n_steps,
                     n_burn=n_burn, sample_every=sample_every, seed=seed, radius=radius,
                     x0=x0, bins=bins, extent=extent, marginal_bins=marginal_bins,
                     n_batches=n_batches, reinsert=reinsert, blowup_radius=blowup_radius,
                     backend=backend, workers=workers, block_size=block_size,
                     blocks_per_task=blocks_per_task, record_every=record_every,
                     record_walkers=record_walkers, params=params, client=client)


langevin.__doc__ = """Euler–Maruyama simulation of the Fokker–Planck (Itô Langevin) dynamics.

    .. math:: θ ← θ + (−∇L(θ) + b(θ))\\, dt + \\sqrt{2\\, dt}\\, B(θ) ξ,
              \\qquad B Bᵀ = D(θ),\\ ξ \\sim N(0, I).

    This is the Itô SDE whose Fokker–Planck equation is
    ∂P/∂t = −∇·((−∇L + b) P) + Σ ∂_i ∂_j (D_ij P), i.e. exactly the flux
    J = (−∇L + b) P − ∇·(D P) that the FE solver discretises.  No ∇·D term is added to
    the drift: in the Itô convention the noise-induced drift is already contained in
    the second-derivative term (see ``docs/montecarlo.md``).

    Parameters
    ----------
    L : Landscape
        Loss.
    D : DiffusionModel, float or 2x2 array
        Diffusion tensor: any :mod:`fpsolve.diffusion` model (its ``noise_factor`` is
        used, so custom and expression tensors work), a number Δ (isotropic Δ I) or a
        constant matrix.  The numba kernel handles isotropic, constant and expression
        tensors and ``diffusion.sgd(L, Δ_S)`` of the same landscape (with or without
        cross-diffusion); other models (custom, fdn) run in numpy.
    dt : float
        Time step (> 0).  The EM bias of stationary statistics is O(dt).
    drift : callable, optional
        Extra non-gradient drift ``b(x, y) -> (2, *x.shape)`` (numpy backend).
""" + _COMMON_DOC + """
    Examples
    --------
    >>> import fpsolve as fp
    >>> L = fp.landscapes.quadratic([[1.0, 0.0], [0.0, 2.0]])
    >>> mc = fp.montecarlo.langevin(L, 0.1, dt=0.01, n_walkers=512, n_steps=2000,
    ...                             radius=None, seed=3)
    >>> round(float(mc.moments()["cov"][0, 0]), 1)
    0.1
"""
