"""The (η, σ) grid of the Fig. 2 phase diagram: :func:`run_grid` and :class:`PhaseGrid`.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, fields

import numpy as np

from .._args import as_float as _float, as_int as _int, err as _err
from ..models import landscapes as _landscapes
from ._tasks import as_client as _as_client, client_workers as _client_workers
from ._tasks import run_unordered as _run_unordered
from ._phase_common import (ALIVE, START, _INT32_MAX, _N_ACC, _child, _kernels, _landscape, _lp,
                            _progress, _root, _start, _vector)

def first_passage_steps(hit: np.ndarray, level_step: float, level) -> np.ndarray:
    """First-passage steps to |x| ≤ ``level`` from a ladder record.

    Parameters
    ----------
    hit : int array (n_walkers, n_levels)
        hit[w, j] = first step with |x| ≤ j·level_step, −1 if never.
    level_step : float
        Ladder spacing.
    level : float or array (n_walkers,)
        Target level(s); rounded to the nearest ladder level (levels above the
        ladder count as reached at step 0).

    Returns
    -------
    ndarray of float (n_walkers,)
        Steps; ``inf`` where the level was never reached (censored).
    """
    hit = np.asarray(hit)
    nlev = hit.shape[1]
    j = np.rint(np.asarray(level, dtype=float) / level_step).astype(np.int64)
    j = np.broadcast_to(np.clip(j, 0, nlev - 1), hit.shape[:1])
    t = hit[np.arange(hit.shape[0]), j].astype(float)
    t[t < 0] = np.inf
    return t


def _point_stats(eta, n_steps, avg_start, acc, status, hit, level_step, tols, L):
    """Observables of one grid point from its walkers' window sums and ladders."""
    alive = status == ALIVE
    m = n_steps - avg_start
    m1 = m // 2
    m2 = m - m1
    n = int(alive.sum())
    out = {"diverged": 1.0 - n / status.size, "n_alive": n}
    if n == 0:
        return out, None
    a = acc[alive]
    xbar = (a[:, 0] + a[:, 1]) / m
    absx = np.abs(xbar)
    x_ss = float(absx.mean())
    ybar = a[:, 3] / m
    y_ss = float(ybar.mean())
    out.update(
        x_ss=x_ss, x_ss_se=float(absx.std(ddof=1) / math.sqrt(n)) if n > 1 else np.nan,
        x_drift=float(np.abs(a[:, 1] / m2).mean() - np.abs(a[:, 0] / m1).mean()),
        V_x=float((a[:, 2] / m).mean() - x_ss ** 2),
        V_y=float((a[:, 4] / m).mean() - y_ss ** 2),
        y_ss=y_ss, lam=float((a[:, 5] / m).mean()), lam2=float((a[:, 6] / m).mean()),
        dlam2=float((a[:, 7] / m).mean()), abs_x=float((a[:, 8] / m).mean()))
    out["F_ss"] = float(L.flatness(x_ss))
    h = hit[alive]
    ts = np.stack([first_passage_steps(h, level_step, x_ss + tl) for tl in tols])
    capped = np.minimum(ts, n_steps)            # censored walkers count with the run length
    out["tau"] = eta * capped.mean(axis=1)
    out["tau_se"] = (eta * capped.std(axis=1, ddof=1) / math.sqrt(n) if n > 1
                     else np.full(len(tols), np.nan))
    out["censored"] = np.isinf(ts).mean(axis=1)
    return out, (xbar, ts, h)


@dataclass
class PhaseGrid:
    """Observables on a (η, σ) grid; arrays are indexed ``[i_eta, j_sigma]``.

    Attributes
    ----------
    sigma, eta : ndarray
        Grid axes.
    n_steps : ndarray (n_eta,)
        Steps per walker, ⌈T/η⌉.
    x_ss, x_ss_se, F_ss : ndarray
        Steady-state solution ⟨|x̄_w|⟩, its standard error, F(x_ss).
    tau_s, tau_s_se, censored : ndarray
        τ_s = η⟨t_s⟩ at x_ss + ``tol``, its standard error, censored fraction.
    tau_tols, censored_tols : ndarray (n_tols, n_eta, n_sigma)
        The same for every tolerance in ``tols``.
    V_x, V_y : ndarray
        Steady-state fluctuations.
    diverged : ndarray
        Fraction of walkers that diverged.
    x_drift : ndarray
        ⟨|x̄_w|⟩ over the second half of the window minus over the first half: a
        non-stationarity diagnostic (≈ 0 when x_ss has converged).
    abs_x, y_ss, lam_mean, lam2_mean, dlam2_mean : ndarray
        Window averages ⟨|x|⟩, ⟨y⟩, ⟨λ⟩, ⟨λ²⟩, ⟨λ'²⟩ (inputs of S8, S9).
    walker_xbar : ndarray (n_eta, n_sigma, n_walkers) or None
        Per-walker time averages x̄_w (NaN for diverged walkers), with
        ``keep_walkers``.
    walker_ts : ndarray (n_tols, n_eta, n_sigma, n_walkers) or None
        Per-walker t_s in steps (inf censored, NaN diverged), with ``keep_walkers``.
    hits : list or None
        Per point the ladder record of the surviving walkers, with ``keep_hits``.
    settings : dict
        Every run parameter (landscape, T, seed entropy, ...).
    elapsed : float
        Wall time of the run in seconds.
    """

    sigma: np.ndarray
    eta: np.ndarray
    n_steps: np.ndarray
    x_ss: np.ndarray
    x_ss_se: np.ndarray
    F_ss: np.ndarray
    tau_s: np.ndarray
    tau_s_se: np.ndarray
    censored: np.ndarray
    tau_tols: np.ndarray
    tau_tols_se: np.ndarray
    censored_tols: np.ndarray
    V_x: np.ndarray
    V_y: np.ndarray
    diverged: np.ndarray
    x_drift: np.ndarray
    abs_x: np.ndarray
    y_ss: np.ndarray
    lam_mean: np.ndarray
    lam2_mean: np.ndarray
    dlam2_mean: np.ndarray
    settings: dict
    elapsed: float = 0.0
    walker_xbar: np.ndarray | None = None
    walker_ts: np.ndarray | None = None
    hits: list | None = None

    @property
    def landscape(self) -> _landscapes.PaperLandscape:
        return _landscapes.paper(**self.settings["landscape"])

    @property
    def tol(self) -> float:
        return self.settings["tol"]

    @property
    def tols(self) -> tuple:
        return tuple(self.settings["tols"])

    def phase(self, div_threshold: float | None = None,
              x_threshold: float | None = None) -> np.ndarray:
        """Phase label 1, 2 or 3 of every grid point (see the module docstring)."""
        dt = self.settings["div_threshold"] if div_threshold is None else div_threshold
        xt = self.settings["x_threshold"] if x_threshold is None else x_threshold
        ph = np.where(self.x_ss > xt, 2, 1)
        return np.where((self.diverged > dt) | ~np.isfinite(self.x_ss), 3, ph)

    def convergence(self) -> dict:
        """S8/S9 multipliers m1 = 1 − η⟨λ⟩, m2 from the measured window moments."""
        E = self.eta[:, None]
        S = self.sigma[None, :]
        m1 = 1 - E * self.lam_mean
        m2 = 1 + E ** 2 * self.lam2_mean - 2 * E * self.lam_mean + 2 * E ** 2 * S * self.dlam2_mean
        return {"m1": m1, "m2": m2}

    def row(self, eta: float) -> int:
        """Index of the grid row whose η is closest to ``eta``."""
        return int(np.argmin(np.abs(np.log(self.eta / eta))))

    def save(self, path, include_hits: bool = False) -> None:
        """Write the grid to an ``.npz`` file (settings as JSON).

        ``include_hits`` also stores the first-passage ladders (concatenated, with
        the number of surviving walkers per point), so that :func:`exponents` can
        resample a reloaded grid exactly as the original.
        """
        import json
        arrays = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("settings", "hits") or v is None:
                continue
            arrays[f.name] = np.asarray(v)
        if include_hits and self.hits is not None:
            count = np.array([[-1 if h is None else h.shape[0] for h in row]
                              for row in self.hits], dtype=np.int64)
            parts = [h for row in self.hits for h in row if h is not None]
            arrays["hits_count"] = count
            arrays["hits_data"] = (np.concatenate(parts) if parts
                                   else np.zeros((0, 1), np.int32))
        np.savez_compressed(path, settings=json.dumps(self.settings), **arrays)

    @classmethod
    def load(cls, path) -> "PhaseGrid":
        """Read a grid written by :meth:`save`."""
        import json
        with np.load(path, allow_pickle=False) as z:
            kw = {k: z[k] for k in z.files if k not in ("settings", "hits_count", "hits_data")}
            kw["settings"] = json.loads(str(z["settings"]))
            if "hits_count" in z.files:
                count, data = z["hits_count"], z["hits_data"]
                hits, pos = [], 0
                for row in count:
                    hits.append([])
                    for c in row:
                        hits[-1].append(None if c < 0 else data[pos:pos + c])
                        pos += max(int(c), 0)
                kw["hits"] = hits
        kw["elapsed"] = float(kw.get("elapsed", 0.0))
        return cls(**kw)

    def __repr__(self):
        return (f"PhaseGrid({self.eta.size} eta x {self.sigma.size} sigma, "
                f"{self.settings['n_walkers']} walkers, T={self.settings['T']:g}, "
                f"{self.elapsed:.1f} s)")


def run_grid(sigma, eta, *, landscape=None, T: float = 3000.0, n_walkers: int = 64,
             start=START, avg_fraction: float = 0.25, tol: float = 0.05,
             tols=(0.01, 0.02, 0.05, 0.1), level_step: float = 0.0025,
             blowup: float = 1e3, div_threshold: float = 0.5, x_threshold: float = 0.1,
             seed=0, workers: int | None = None, block_size: int = 32,
             progress: bool = False, keep_walkers: bool = False,
             keep_hits: bool = False, client=None) -> PhaseGrid:
    """Run random-shift SGD on every (σ, η) of a grid and measure the Fig. 2 observables.

    One compiled kernel advances one block of walkers of one grid point; all
    (point, block) tasks go through a thread pool of ``workers`` threads (the kernel
    releases the GIL) or a Dask cluster.  The most expensive points (small η) first.

    Parameters
    ----------
    sigma : sequence of float
        Noise strengths σ ≥ 0 (columns).
    eta : sequence of float
        Learning rates η > 0 (rows).
    landscape : PaperLandscape, optional
        Default :func:`fig2_landscape` (ε = 0.001, λ = (8, −2, 1)).
    T : float
        Run length in the paper's time unit τ = ηt: ⌈T/η⌉ steps at every η.
    n_walkers : int
        Walkers per grid point.
    start : (float, float)
        Start of every walker (default (1.5, 1.5)).
    avg_fraction : float
        Fraction of the run at its end over which x_ss, V_x, V_y are averaged.
    tol : float
        First-passage tolerance: t_s = first t with |x_t| ≤ x_ss + tol.
    tols : sequence of float
        Further tolerances for which τ_s is also computed (``tau_tols``); ``tol``
        is added if missing.
    level_step : float
        Spacing of the first-passage ladder (resolution of x_ss + tol).
    blowup : float
        Divergence radius: |θ| > blowup (or a non-finite state) ends a walker.
    div_threshold : float
        Phase III when more than this fraction of walkers diverged.
    x_threshold : float
        Phase II when x_ss exceeds this (and the point is not phase III).
    seed : int, SeedSequence or None
        Root seed; see the module docstring.
    workers : int, optional
        Threads (default: the number of CPUs).  Does not change the results.
    block_size : int
        Walkers per random-number block.  Part of the seed.
    progress : bool
        Show a rich progress bar (ignored if rich is not installed).
    keep_walkers : bool
        Keep per-walker x̄_w and t_s (``walker_xbar``, ``walker_ts``).
    keep_hits : bool
        Keep the first-passage ladders (needed by :func:`exponents` to re-evaluate
        t_s at a resampled x_ss; memory n_points × n_walkers × |start_x|/level_step
        × 4 bytes).
    client : distributed.Client or str, optional
        Run the (point, block) tasks on a Dask cluster (a Client or a scheduler address
        "tcp://host:port") instead of local threads; the results are identical.

    Returns
    -------
    PhaseGrid
    """
    fn = "run_grid"
    cfg = _config(fn, sigma, eta, landscape=landscape, T=T, n_walkers=n_walkers, start=start,
                  avg_fraction=avg_fraction, tol=tol, tols=tols, level_step=level_step,
                  blowup=blowup, div_threshold=div_threshold, x_threshold=x_threshold,
                  seed=seed, workers=workers, block_size=block_size)
    client = _as_client(fn, client)
    return _GridRun(cfg, keep_walkers, keep_hits).run(progress, client)


@dataclass
class _Config:
    L: object
    sigma: np.ndarray
    eta: np.ndarray
    T: float
    n_walkers: int
    x0: float
    y0: float
    avg_fraction: float
    tol: float
    tols: tuple
    level_step: float
    blowup: float
    div_threshold: float
    x_threshold: float
    workers: int
    block_size: int
    root: np.random.SeedSequence
    n_steps: np.ndarray
    avg_start: np.ndarray
    n_levels: int


def _config(fn, sigma, eta, *, landscape, T, n_walkers, start, avg_fraction, tol, tols,
            level_step, blowup, div_threshold, x_threshold, seed, workers, block_size):
    """Validated settings of :func:`run_grid`."""
    L = _landscape(fn, landscape)
    sig = _vector(fn, "sigma", sigma)
    eta = _vector(fn, "eta", eta, positive=True)
    T = _float(fn, "T", T, positive=True)
    n_walkers = _int(fn, "n_walkers", n_walkers, 2)
    x0, y0 = _start(fn, start)
    avg_fraction = _float(fn, "avg_fraction", avg_fraction, positive=True)
    if avg_fraction >= 1:
        raise _err(fn, "avg_fraction", "in (0, 1)", avg_fraction)
    tol = _float(fn, "tol", tol, nonneg=True)
    tl = [] if tols is None or np.size(tols) == 0 else list(_vector(fn, "tols", tols))
    if tol not in tl:
        tl.append(tol)
    tl = tuple(sorted(set(float(v) for v in tl)))
    level_step = _float(fn, "level_step", level_step, positive=True)
    blowup = _float(fn, "blowup", blowup, positive=True)
    if x0 * x0 + y0 * y0 >= blowup * blowup:
        raise _err(fn, "blowup", f"larger than |start| = {math.hypot(x0, y0):g}", blowup)
    div_threshold = _float(fn, "div_threshold", div_threshold, nonneg=True)
    if div_threshold >= 1:
        raise _err(fn, "div_threshold", "in [0, 1)", div_threshold)
    x_threshold = _float(fn, "x_threshold", x_threshold, nonneg=True)
    workers = _int(fn, "workers", (os.cpu_count() or 1) if workers is None else workers, 1)
    block_size = _int(fn, "block_size", block_size, 1)
    root = _root(fn, seed)
    n_steps = np.ceil(T / eta - 1e-9).astype(np.int64)
    if np.any(n_steps > _INT32_MAX):
        raise _err(fn, "T", f"at most {_INT32_MAX} steps at the smallest eta "
                   f"({float(eta.min()):g})", T)
    avg_start = n_steps - np.floor(avg_fraction * n_steps).astype(np.int64)
    if np.any(n_steps - avg_start < 2):
        raise _err(fn, "T", "long enough for at least 2 steps in the averaging window "
                   f"(T*avg_fraction/eta >= 2 at eta={float(eta.max()):g})", T)
    return _Config(L, sig, eta, T, n_walkers, x0, y0, avg_fraction, tol, tl, level_step,
                   blowup, div_threshold, x_threshold, workers, block_size, root, n_steps,
                   avg_start, int(math.floor(abs(x0) / level_step)) + 2)


def grid_block(spec, i, j, b):
    """Run block b of grid point (i, j): (hit ladder, window sums, status).

    ``spec`` = (root SeedSequence, kernel coefficients, η, c, x0, y0, n_steps,
    avg_start, blowup², level_step, n_levels, walkers); a top-level function so that
    Dask workers can run it.
    """
    root, lp, eta, c, x0, y0, n_steps, avg_start, blow2, level_step, n_levels, nb = spec
    hit = np.full((nb, n_levels), -1, np.int32)
    acc = np.zeros((nb, _N_ACC))
    status = np.zeros(nb, np.int8)
    t_end = np.zeros(nb, np.int64)
    _kernels().run_block(_child(root, i, j, b), lp, eta, c, x0, y0, n_steps, avg_start,
                         blow2, level_step, hit, acc, status, t_end, np.zeros((1, 0, 2)), 0)
    return hit, acc, status


class _GridRun:
    """Result arrays of a grid run, filled point by point as their blocks complete."""

    def __init__(self, cfg: _Config, keep_walkers: bool, keep_hits: bool):
        self.cfg = cfg
        ne, ns, nt, nw = cfg.eta.size, cfg.sigma.size, len(cfg.tols), cfg.n_walkers
        self.n_blocks = -(-nw // cfg.block_size)
        self.res = {k: np.full((ne, ns), np.nan) for k in _POINT_KEYS}
        self.res["diverged"] = np.zeros((ne, ns))
        self.tau = np.full((nt, ne, ns), np.nan)
        self.tau_se = np.full((nt, ne, ns), np.nan)
        self.cens = np.full((nt, ne, ns), np.nan)
        self.wx = np.full((ne, ns, nw), np.nan) if keep_walkers else None
        self.wt = np.full((nt, ne, ns, nw), np.nan) if keep_walkers else None
        self.hits = [[None] * ns for _ in range(ne)] if keep_hits else None
        self.pending: dict = {}
        self.order = [(i, j) for i in np.argsort(-cfg.n_steps, kind="stable")
                      for j in range(ns)]
        self.total_work = sum(int(cfg.n_steps[i]) * nw for i, _ in self.order)

    def run(self, progress, client) -> PhaseGrid:
        """Run every block task (local threads or Dask) and return the grid."""
        cfg = self.cfg
        bar, bar_task = _progress(progress, float(self.total_work),
                                  f"SGD phase grid {cfg.eta.size}x{cfg.sigma.size}")

        def consume(args, output):
            self.consume(args[1:], output)
            if bar is not None:
                bar.advance(bar_task, self.work(args[1:]))

        t0 = time.perf_counter()
        try:
            _run_unordered(grid_block, self.tasks(), cfg.workers, consume, client)
        finally:
            if bar is not None:
                bar.stop()
        return self.result(time.perf_counter() - t0, client)

    def _nb(self, b):
        return min(self.cfg.block_size, self.cfg.n_walkers - b * self.cfg.block_size)

    def tasks(self):
        """(spec, i, j, b) of every block, the most expensive points first."""
        cfg = self.cfg
        lp = _lp(cfg.L)
        out = []
        for i, j in self.order:
            c = cfg.eta[i] * math.sqrt(2.0 * cfg.sigma[j])
            base = (cfg.root, lp, float(cfg.eta[i]), c, cfg.x0, cfg.y0, int(cfg.n_steps[i]),
                    int(cfg.avg_start[i]), cfg.blowup * cfg.blowup, cfg.level_step,
                    cfg.n_levels)
            out += [((*base, self._nb(b)), int(i), j, b) for b in range(self.n_blocks)]
        return out

    def work(self, key):
        """Walker-steps of a task, for the progress bar."""
        return int(self.cfg.n_steps[key[0]]) * self._nb(key[2])

    def consume(self, key, output):
        i, j, b = key
        self.pending.setdefault((i, j), {})[b] = output
        if len(self.pending[(i, j)]) == self.n_blocks:
            self._reduce(i, j)

    def _reduce(self, i, j):
        cfg, blocks = self.cfg, self.pending.pop((i, j))
        hit, acc, status = (np.concatenate([blocks[b][k] for b in range(self.n_blocks)])
                            for k in range(3))
        out, per = _point_stats(float(cfg.eta[i]), int(cfg.n_steps[i]), int(cfg.avg_start[i]),
                                acc, status, hit, cfg.level_step, cfg.tols, cfg.L)
        self.res["diverged"][i, j] = out["diverged"]
        if per is None:
            return
        for k in _POINT_KEYS:
            self.res[k][i, j] = out[k]
        self.tau[:, i, j], self.tau_se[:, i, j] = out["tau"], out["tau_se"]
        self.cens[:, i, j] = out["censored"]
        alive = status == ALIVE
        if self.wx is not None:
            self.wx[i, j, alive] = per[0]
            self.wt[:, i, j, alive] = per[1]
        if self.hits is not None:
            self.hits[i][j] = per[2]

    def result(self, elapsed, client) -> PhaseGrid:
        cfg, res = self.cfg, self.res
        k = cfg.tols.index(cfg.tol)
        settings = {"landscape": dict(cfg.L.params), "T": cfg.T, "n_walkers": cfg.n_walkers,
                    "start": [cfg.x0, cfg.y0], "avg_fraction": cfg.avg_fraction,
                    "tol": cfg.tol, "tols": list(cfg.tols), "level_step": cfg.level_step,
                    "blowup": cfg.blowup, "div_threshold": cfg.div_threshold,
                    "x_threshold": cfg.x_threshold, "block_size": cfg.block_size,
                    "seed_entropy": str(cfg.root.entropy),
                    "seed_spawn_key": list(cfg.root.spawn_key),
                    "workers": cfg.workers if client is None else _client_workers(client)}
        return PhaseGrid(
            sigma=cfg.sigma, eta=cfg.eta, n_steps=cfg.n_steps, x_ss=res["x_ss"],
            x_ss_se=res["x_ss_se"], F_ss=res["F_ss"], tau_s=self.tau[k],
            tau_s_se=self.tau_se[k], censored=self.cens[k], tau_tols=self.tau,
            tau_tols_se=self.tau_se, censored_tols=self.cens, V_x=res["V_x"], V_y=res["V_y"],
            diverged=res["diverged"], x_drift=res["x_drift"], abs_x=res["abs_x"],
            y_ss=res["y_ss"], lam_mean=res["lam"], lam2_mean=res["lam2"],
            dlam2_mean=res["dlam2"], settings=settings, elapsed=elapsed,
            walker_xbar=self.wx, walker_ts=self.wt, hits=self.hits)


_POINT_KEYS = ("x_ss", "x_ss_se", "F_ss", "V_x", "V_y", "x_drift", "abs_x", "y_ss", "lam",
               "lam2", "dlam2")
