"""The result of a Monte Carlo run: :class:`MonteCarloResult` (densities, moments with
error bars, current, escape rate, export).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from .._display import figure as _figure, html as _html
from ._mc_reduce import Reducer
from ._mc_run import ALIVE, C_DIVERGED, C_EXITS, C_EXITS_BURN, C_REMOVED, C_STEPS, Run


class MonteCarloWarning(RuntimeWarning):
    """A Monte Carlo run finished but its statistics need care (divergence, extinction)."""


@dataclass
class MonteCarloResult:
    """Statistics of a Monte Carlo run (streamed; see :func:`sgd`, :func:`langevin`).

    Densities are normalised by the total number of walker samples, so that they
    integrate to the fraction of samples inside the histogram range (1 for a disk whose
    extent covers it).  Standard errors come from independent walker groups (the
    random-number blocks) unless stated otherwise.

    Attributes
    ----------
    simulator : str
        ``"sgd"`` or ``"langevin"``.
    params : dict
        Model and run parameters (JSON-friendly).
    dt : float
        Physical time per step (η for SGD, dt for Langevin).
    n_walkers, n_steps, n_burn, sample_every : int
        Run size; statistics use steps ``n_burn < t <= n_steps`` every ``sample_every``.
    edges : tuple of ndarray
        ``(xedges, yedges)`` of the 2-D histogram.
    exits : int
        Walkers that left the absorbing disk after burn-in.
    exits_burn_in : int
        Exits during burn-in (not in the escape rate).
    diverged : int
        Walkers flagged as diverged (non-finite or beyond ``blowup_radius``), removed.
    removed : int
        Exited walkers that were not re-inserted (``reinsert=False`` or extinct block).
    walker_time : float
        Σ over walkers of the time they spent alive after burn-in.
    n_samples : int
        Walker samples accumulated (walkers alive at a sampling time).
    positions : ndarray, shape (n_walkers, 2)
        Final positions; NaN for walkers that are no longer alive.
    status : ndarray of int8, shape (n_walkers,)
        Final status: 0 alive, 2 diverged, 3 removed.
    trajectories : ndarray, shape (n_records, n_recorded, 2) or None
        Recorded positions (``record_every``), NaN where a walker is not alive.
    record_times : ndarray or None
        Times of the recorded frames.
    backend, workers, n_blocks, block_size, elapsed
        How the run was executed; ``elapsed`` in seconds.
    seed_entropy
        Entropy of the root ``SeedSequence``: passing it as ``seed`` reproduces the run.
    """

    simulator: str
    params: dict
    dt: float
    n_walkers: int
    n_steps: int
    n_burn: int
    sample_every: int
    radius: float | None
    reinsert: bool
    extent: tuple
    edges: tuple
    marginal_edges: tuple
    exits: int
    exits_burn_in: int
    diverged: int
    removed: int
    walker_time: float
    n_samples: int
    positions: np.ndarray
    status: np.ndarray
    trajectories: np.ndarray | None
    record_times: np.ndarray | None
    backend: str
    workers: int
    n_blocks: int
    block_size: int
    elapsed: float
    seed_entropy: int
    seed_spawn_key: tuple
    _density: tuple = field(repr=False, default=None)
    _marg: dict = field(repr=False, default=None)
    _current: tuple = field(repr=False, default=None)
    _mom: np.ndarray = field(repr=False, default=None)
    _shift: np.ndarray = field(repr=False, default=None)
    _block_exits: np.ndarray = field(repr=False, default=None)   # (blocks, [exits, steps])

    @classmethod
    def _from_reduction(cls, red: Reducer, run: Run, **kw):
        G = kw["n_blocks"]
        N, Nsq = red.N, red.Nsq
        ext = kw["extent"]
        gnx, gny = run.gshape
        xe = np.linspace(ext[0], ext[1], gnx + 1)
        ye = np.linspace(ext[2], ext[3], gny + 1)
        area = (xe[1] - xe[0]) * (ye[1] - ye[0])
        R, se = red.hist.ratio(N, Nsq, G)
        density = (R / area, se / area)
        Rc, sec = red.cur.ratio(N, Nsq, G)
        current = (Rc / (area * run.dt), sec / (area * run.dt))
        mxe = np.linspace(ext[0], ext[1], run.mshape[0] + 1)
        mye = np.linspace(ext[2], ext[3], run.mshape[1] + 1)
        marg = {}
        for ax, sums, e in (("x", red.margx, mxe), ("y", red.margy, mye)):
            r, s = sums.ratio(N, Nsq, G)
            w = e[1] - e[0]
            marg[ax] = (r / w, s / w)
        per_block = red.counters
        c = per_block.sum(axis=0)
        alive = red.status == ALIVE
        pos = np.where(alive[:, None], np.stack([red.X, red.Y], axis=1), np.nan)
        rec_times = None
        if run.rec_every:
            rec_times = np.arange(red.rec.shape[0]) * run.rec_every * run.k * run.dt
        return cls(
            simulator=kw["simulator"], params=kw["params"], dt=run.dt,
            n_walkers=kw["n_walkers"], n_steps=kw["n_steps"], n_burn=kw["n_burn"],
            sample_every=run.k, radius=kw["radius"], reinsert=run.reinsert, extent=ext,
            edges=(xe, ye), marginal_edges=(mxe, mye), exits=int(c[C_EXITS]),
            exits_burn_in=int(c[C_EXITS_BURN]), diverged=int(c[C_DIVERGED]),
            removed=int(c[C_REMOVED]), walker_time=float(c[C_STEPS]) * run.dt,
            n_samples=int(round(N)), positions=pos, status=red.status,
            trajectories=red.rec if run.rec_every else None, record_times=rec_times,
            backend=kw["backend"], workers=kw["workers"], n_blocks=G,
            block_size=kw["block_size"], elapsed=kw["elapsed"],
            seed_entropy=kw["seed_entropy"], seed_spawn_key=kw["seed_spawn_key"],
            _density=density, _marg=marg, _current=current, _mom=red.mom,
            _shift=run.shift.copy(), _block_exits=per_block[:, [C_EXITS, C_STEPS]].copy())

    # ---- densities
    @property
    def density(self):
        """``(P, xedges, yedges)``: 2-D density histogram, ``P[i, j]`` on bin (x_i, y_j)."""
        return self._density[0], self.edges[0], self.edges[1]

    @property
    def density_se(self) -> np.ndarray:
        """Standard error of :attr:`density` per bin (independent walker groups)."""
        return self._density[1]

    @property
    def centers(self):
        """``(xc, yc)``: bin centres of the 2-D histogram."""
        xe, ye = self.edges
        return 0.5 * (xe[1:] + xe[:-1]), 0.5 * (ye[1:] + ye[:-1])

    @property
    def current(self) -> np.ndarray:
        """Empirical probability current, shape (2, nx, ny): ``[Jx, Jy]`` per bin.

        J ≈ Σ Δθ / (N_samples · Δt · bin area), Δθ the displacement of the last step of
        each sampling interval, binned at its midpoint (θ_t + θ_{t+1})/2 — this binning
        makes the diffusive part average to −∇·(D P), see ``docs/montecarlo.md``.
        """
        return self._current[0]

    @property
    def current_se(self) -> np.ndarray:
        """Standard error of :attr:`current`, shape (2, nx, ny)."""
        return self._current[1]

    def marginal(self, axis: str, xs=None, return_se: bool = False):
        """Marginal density P(x) = ∫ P dy (``axis="x"``) or P(y) (``axis="y"``).

        From a 1-D histogram of ``marginal_bins`` bins over the extent (walkers at any
        value of the other coordinate count).

        Parameters
        ----------
        axis : {"x", "y"}
        xs : array_like, optional
            Where to evaluate: piecewise-linear through the bin centres, the edge bins'
            values in the outer half bins, 0 outside the extent.  Without ``xs`` the
            bin centres and values are returned.
        return_se : bool
            Also return the standard error (interpolated the same way).

        Returns
        -------
        values or (centres, values), with ``se`` appended if ``return_se``.
        """
        if axis not in ("x", "y"):
            raise ValueError(f"marginal: axis must be 'x' or 'y', got {axis!r}")
        e = self.marginal_edges[0 if axis == "x" else 1]
        val, se = self._marg[axis]
        centres = 0.5 * (e[1:] + e[:-1])
        if xs is None:
            return (centres, val, se) if return_se else (centres, val)
        xs = np.asarray(xs, dtype=float)
        outside = (xs < e[0]) | (xs > e[-1])
        v = np.where(outside, 0.0, np.interp(xs, centres, val))
        if return_se:
            return v, np.where(outside, 0.0, np.interp(xs, centres, se))
        return v

    # ---- moments
    def moments(self, error: str = "walkers") -> dict:
        """Mean and covariance of the sampled positions with standard errors.

        Parameters
        ----------
        error : {"walkers", "time"}
            ``"walkers"`` (default): delete-one-group jackknife over the independent
            random-number blocks (exact independence, no autocorrelation assumption;
            needs at least 2 blocks).  ``"time"``: jackknife over ``n_batches``
            consecutive time batches, all walkers pooled (valid only if a batch is much
            longer than the correlation time; the only option for a single block).

        Returns
        -------
        dict
            ``mean`` (2,), ``cov`` (2, 2) (population covariance over all samples),
            ``mean_se`` (2,), ``cov_se`` (2, 2), ``n_samples``, ``n_groups``, ``error``.
        """
        if error == "walkers":
            groups = self._mom.sum(axis=1)
        elif error == "time":
            groups = self._mom.sum(axis=0)
        else:
            raise ValueError(f"moments: error must be 'walkers' or 'time', got {error!r}")
        total = groups.sum(axis=0)
        mean, cov = _mean_cov(total, self._shift)
        G = groups.shape[0]
        if G < 2 or total[0] <= 0:
            mean_se, cov_se = np.full(2, np.nan), np.full((2, 2), np.nan)
        else:
            jm, jc = zip(*(_mean_cov(total - g, self._shift) for g in groups))
            jm, jc = np.array(jm), np.array(jc)
            with np.errstate(invalid="ignore"):
                mean_se = np.sqrt((G - 1) / G * np.sum((jm - jm.mean(0)) ** 2, axis=0))
                cov_se = np.sqrt((G - 1) / G * np.sum((jc - jc.mean(0)) ** 2, axis=0))
        return {"mean": mean, "cov": cov, "mean_se": mean_se, "cov_se": cov_se,
                "n_samples": int(total[0]), "n_groups": G, "error": error}

    def moment_trace(self):
        """Mean and covariance per time batch (pooled over walkers): a stationarity check.

        Returns
        -------
        times : ndarray (n_batches,)
            Mid time of each batch.
        mean : ndarray (n_batches, 2)
        cov : ndarray (n_batches, 2, 2)
        """
        per = self._mom.sum(axis=0)
        mc = [_mean_cov(p, self._shift) for p in per]
        nb = per.shape[0]
        t0 = self.n_burn * self.dt
        span = (self.n_steps - self.n_burn) * self.dt
        times = t0 + (np.arange(nb) + 0.5) * span / nb
        return times, np.array([m for m, _ in mc]), np.array([c for _, c in mc])

    # ---- escape
    @property
    def escape_rate(self) -> float:
        """Exits per walker per unit time after burn-in (NaN in free space).

        With Fleming–Viot re-insertion this estimates the quasi-stationary escape rate μ
        (the principal eigenvalue of the absorbing FPE).
        """
        if self.radius is None or self.walker_time <= 0:
            return float("nan")
        return self.exits / self.walker_time

    @property
    def escape_rate_se(self) -> float:
        """Standard error of :attr:`escape_rate` (NaN in free space).

        Ratio-estimator spread over the independent blocks (which also covers the
        correlations Fleming–Viot cloning introduces); √exits / walker_time (Poisson)
        when there is a single block.
        """
        if self.radius is None or self.walker_time <= 0:
            return float("nan")
        e, s = self._block_exits[:, 0].astype(float), self._block_exits[:, 1].astype(float)
        G = e.size
        if G < 2:
            return math.sqrt(self.exits) / self.walker_time
        r = e.sum() / s.sum()
        return float(math.sqrt(G / (G - 1) * np.sum((e - r * s) ** 2)) / s.sum() / self.dt)

    @property
    def alive(self) -> int:
        """Walkers alive at the end."""
        return int(np.count_nonzero(self.status == ALIVE))

    @property
    def throughput(self) -> float:
        """Walker-steps per second of wall time."""
        return self.n_walkers * self.n_steps / self.elapsed if self.elapsed > 0 else float("inf")

    # ---- export
    def to_dict(self, arrays: bool = False) -> dict:
        """JSON-friendly summary (plain floats, ints, lists).

        Parameters
        ----------
        arrays : bool
            Also include the density, its SE, the marginals and the current as nested
            lists (large).
        """
        m = self.moments()

        def f(v):
            v = float(v)
            return v if math.isfinite(v) else None

        def lst(a):
            return np.where(np.isfinite(a), a, np.nan).tolist()

        out = {
            "simulator": self.simulator, "params": self.params, "dt": self.dt,
            "n_walkers": self.n_walkers, "n_steps": self.n_steps, "n_burn": self.n_burn,
            "sample_every": self.sample_every, "radius": self.radius,
            "reinsert": self.reinsert, "extent": list(self.extent),
            "bins": [len(self.edges[0]) - 1, len(self.edges[1]) - 1],
            "mean": m["mean"].tolist(), "mean_se": lst(m["mean_se"]),
            "cov": m["cov"].tolist(), "cov_se": lst(m["cov_se"]),
            "n_samples": self.n_samples, "n_groups": m["n_groups"],
            "exits": self.exits, "exits_burn_in": self.exits_burn_in,
            "escape_rate": f(self.escape_rate), "escape_rate_se": f(self.escape_rate_se),
            "walker_time": self.walker_time, "diverged": self.diverged,
            "removed": self.removed, "alive": self.alive, "backend": self.backend,
            "workers": self.workers, "n_blocks": self.n_blocks, "block_size": self.block_size,
            "elapsed_s": self.elapsed, "walker_steps_per_s": f(self.throughput),
            "seed_entropy": str(self.seed_entropy), "seed_spawn_key": list(self.seed_spawn_key),
        }
        if arrays:
            P, xe, ye = self.density
            out.update(xedges=xe.tolist(), yedges=ye.tolist(), density=lst(P),
                       density_se=lst(self.density_se), current=lst(self.current),
                       current_se=lst(self.current_se))
            for ax in ("x", "y"):
                c, v, s = self.marginal(ax, return_se=True)
                out[f"marginal_{ax}"] = {"centres": c.tolist(), "density": lst(v), "se": lst(s)}
        return out

    def summary(self) -> str:
        """A few human-readable lines."""
        m = self.moments()
        def fmt(v, se):
            return ", ".join(f"{a:.5g} ± {b:.2g}" for a, b in zip(np.ravel(v), np.ravel(se)))

        lines = [f"{self.simulator} Monte Carlo: {self.n_walkers} walkers x {self.n_steps} steps "
                 f"(burn-in {self.n_burn}), dt={self.dt:g}, backend={self.backend}, "
                 f"{self.throughput / 1e6:.1f} M walker-steps/s",
                 f"mean (x, y)            = {fmt(m['mean'], m['mean_se'])}",
                 f"cov (xx, xy, yx, yy)   = {fmt(m['cov'], m['cov_se'])}"]
        if self.radius is not None:
            lines.append(f"exits = {self.exits}, escape rate = {self.escape_rate:.4g} "
                         f"± {self.escape_rate_se:.2g} (radius {self.radius:g})")
        if self.diverged:
            lines.append(f"diverged walkers: {self.diverged}")
        return "\n".join(lines)

    def plot(self, **kwargs):
        """Density histogram and marginals with error bands, as a matplotlib Figure.

        Keyword arguments go to :func:`fpsolve.display.plot_montecarlo` (``title``).
        """
        return _figure("montecarlo", self, **kwargs)

    def _repr_html_(self):
        return _html("montecarlo", self)

    def __repr__(self):
        return (f"MonteCarloResult(simulator={self.simulator!r}, n_walkers={self.n_walkers}, "
                f"n_steps={self.n_steps}, dt={self.dt:g}, exits={self.exits}, "
                f"diverged={self.diverged}, backend={self.backend!r})")

    def _warn(self):
        if self.diverged:
            warnings.warn(f"{self.simulator}: {self.diverged} of {self.n_walkers} walkers diverged "
                          f"(non-finite or beyond blowup_radius) and were removed; samples they "
                          f"gave before diverging are included", MonteCarloWarning, stacklevel=4)
        extinct = self.removed if (self.radius is not None and self.reinsert) else 0
        if extinct:
            warnings.warn(f"{self.simulator}: {extinct} exited walkers could not be re-inserted "
                          f"because their whole block had died out", MonteCarloWarning,
                          stacklevel=4)


def _mean_cov(s, shift):
    """Mean and covariance from sums [n, Σdx, Σdy, Σdx², Σdxdy, Σdy²] about ``shift``."""
    n = s[0]
    if n <= 0:
        return np.full(2, np.nan), np.full((2, 2), np.nan)
    mx, my = s[1] / n, s[2] / n
    cxx = s[3] / n - mx * mx
    cxy = s[4] / n - mx * my
    cyy = s[5] / n - my * my
    return np.array([mx + shift[0], my + shift[1]]), np.array([[cxx, cxy], [cxy, cyy]])
