"""Variance–flatness analysis of one window of parameter snapshots (Feng & Tu, PNAS 2021, SI).

Everything here works on plain arrays and a loss callable, so it applies equally to
the 2-D Monte Carlo walkers of :mod:`fpsolve.stochastic.montecarlo` and to a neural
network's weights.  numpy and scipy only.  :func:`variance_flatness` combines the
pieces, which live in one module per concept and are re-exported here:

* :mod:`.spectrum` — PCA of the fluctuations (p_i, σ_i², Eq. S17), accumulated variance
  spectrum, learning dimension D_l (Fig. S16);
* :mod:`.profile` — flatness F_i along p_i (SI S3), left/right widths, exact values;
* :mod:`.powerlaw` — σ_i² ∝ F_i^(−ψ) with a bootstrap confidence interval;
* :mod:`.correlation` — D_i, τ_i and the lag functions c_i, G_i, S_i (Eqs. S15–S19);
* :mod:`.order` — the order parameters A_g, C_g of the learning phases (Eqs. S2–S3).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ._checks import _count, _err, _snapshots
from .correlation import CorrelationResult, diffusion_and_correlation
from .order import (GradientOrderParameters, OrderParameters, gradient_order_parameters,
                    moving_average, transition_time)
from .powerlaw import PowerLawFit, power_law_fit
from .profile import (E, Flatness1D, FlatnessResult, flatness, flatness_1d,
                      log_quadratic_flatness, quadratic_flatness)
from .spectrum import (PCAResult, StreamingPCA, accumulated_variance, learning_dimension,
                       pca)


__all__ = ["PCAResult", "pca", "StreamingPCA", "accumulated_variance",
           "learning_dimension", "Flatness1D", "FlatnessResult", "flatness_1d",
           "flatness", "quadratic_flatness", "log_quadratic_flatness", "PowerLawFit",
           "power_law_fit", "CorrelationResult", "diffusion_and_correlation",
           "OrderParameters", "GradientOrderParameters", "gradient_order_parameters",
           "moving_average", "transition_time", "VarianceFlatness", "variance_flatness",
           "log_spaced_indices"]


# ---------------------------------------------------------------- one window
@dataclass(frozen=True)
class VarianceFlatness:
    """Everything the SI measures on one window (:func:`variance_flatness`).

    Attributes
    ----------
    pca : PCAResult
    indices : ndarray of int
        0-based indices i of the analysed directions (direction i + 1 in the SI).
    variance : ndarray
        σ_i² of those directions.
    flat : FlatnessResult
        Left/right widths and F_i.
    corr : CorrelationResult
        D_i, τ_i and the lag functions of those directions.
    fit_variance, fit_D, fit_tau : PowerLawFit or None
        σ_i² ∝ F_i^(−ψ), D_i ∝ F_i^(−ψ_D), τ_i ∝ F_i^(−ψ_τ) over the analysed
        directions i ≥ ``fit_from`` with finite F_i (None if fewer than 3 such).
    learning_dimension : int
        D_l at ``fraction`` (99.9 %).
    fraction : float
    """

    pca: PCAResult
    indices: np.ndarray
    variance: np.ndarray
    flat: FlatnessResult
    corr: CorrelationResult
    fit_variance: PowerLawFit | None
    fit_D: PowerLawFit | None
    fit_tau: PowerLawFit | None
    learning_dimension: int
    fraction: float
    fit_from: int = 2

    def to_dict(self) -> dict:
        """JSON-able summary (fits, D_l, per-direction arrays)."""
        def fit(f):
            if f is None:
                return None
            return {"exponent": f.exponent, "ci": list(f.ci), "level": f.level,
                    "se": f.se, "r2": f.r2, "n": f.n, "n_excluded": f.n_excluded,
                    "prefactor": f.prefactor}

        def arr(a):
            return [None if not np.isfinite(v) else float(v) for v in np.asarray(a, float)]
        return {"n_snapshots": self.pca.n_snapshots, "n_params": self.pca.n_params,
                "n_components": int(self.pca.variances.size),
                "learning_dimension": self.learning_dimension, "fraction": self.fraction,
                "fit_from": self.fit_from,
                "psi": fit(self.fit_variance), "psi_D": fit(self.fit_D),
                "psi_tau": fit(self.fit_tau), "L0": self.flat.L0,
                "index": [int(i) + 1 for i in self.indices], "variance": arr(self.variance),
                "F": arr(self.flat.width), "left": arr(self.flat.left),
                "right": arr(self.flat.right), "D": arr(self.corr.D),
                "tau": arr(self.corr.tau),
                "accumulated_variance": arr(self.pca.accumulated())}


def log_spaced_indices(k: int, n: int) -> np.ndarray:
    """About ``n`` distinct 0-based indices in 0..k−1, evenly spaced in log(i + 1)."""
    k, n = _count("log_spaced_indices", "k", k), _count("log_spaced_indices", "n", n)
    if n >= k:
        return np.arange(k)
    m = n
    while True:   # rounding merges small indices: ask for more until n distinct remain
        idx = np.unique(np.round(np.geomspace(1, k, m)).astype(int) - 1)
        if idx.size >= n or m > 10 * k:
            return idx
        m += 1


def _direction_indices(fn, P, indices, n_directions, min_variance):
    """0-based indices of the directions to analyse, among those that move."""
    if not (isinstance(min_variance, numbers.Real) and 0 <= min_variance < 1):
        raise _err(fn, "min_variance", "a number in [0, 1)", min_variance)
    K = int(np.sum(P.variances > min_variance * P.total_variance))
    if K < 1:
        raise ValueError(f"{fn}: no direction moves (all variances <= {min_variance} x total)")
    if indices is not None:
        idx = np.asarray(indices)
        if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer) \
                or idx.min() < 0 or idx.max() >= K:
            raise ValueError(f"{fn}: indices must be integers in 0..{K - 1} (the directions "
                             f"that move)")
        return np.unique(idx)
    if n_directions is None:
        return np.arange(K)
    return log_spaced_indices(K, _count(fn, "n_directions", n_directions))


def _fit_used(F, y, n_boot, level, seed):
    """Power-law fit of y against F over the usable directions (None if fewer than 3)."""
    ok = np.isfinite(F) & (F > 0) & (y > 0)
    if ok.sum() < 3 or np.ptp(np.log(F[ok])) == 0:
        return None
    return power_law_fit(F, y, n_boot=n_boot, level=level, seed=seed)


def variance_flatness(snapshots, loss: Callable, *, solution=None,
                      n_directions: int | None = 60, indices=None, dt: float = 1.0,
                      fraction: float = 0.999, factor: float = E, step: float = 1e-2,
                      max_distance: float = 1e4, n_boot: int = 2000, level: float = 0.95,
                      seed=0, fit_from: int = 2, min_variance: float = 1e-15,
                      pca_result: PCAResult | None = None) -> VarianceFlatness:
    """The SI's analysis of one exploration-phase window.

    Parameters
    ----------
    snapshots : array_like, shape (T, N)
        Parameters (e.g. one layer's weights) at equally spaced times ``dt``.
    loss : callable
        θ (N,) ↦ training loss, with everything not in θ held fixed.
    solution : array_like, optional
        θ* where flatness is measured (default: the window mean).
    n_directions : int, optional
        Analyse about this many directions, log-spaced over the K' directions that move
        (flatness costs ~50 loss evaluations per direction); None analyses all K'.
        Directions whose variance is below ``min_variance`` × the total are frozen
        (e.g. weights of dead ReLU units: variance at round-off level, ~1e-35 of the
        total in our digits runs) and are never analysed.
    indices : array_like of int, optional
        Explicit 0-based direction indices (overrides ``n_directions``).
    dt : float
        Time between snapshots (iterations), for D_i and τ_i.
    fraction : float
        Variance fraction of the learning dimension (0.999 in the SI).
    factor, step, max_distance
        Flatness search settings (:func:`flatness_1d`).
    n_boot, level, seed
        Bootstrap of the power-law fits.
    fit_from : int
        First direction (1-based, as in the SI) entering the power-law fits.  The
        default 2 leaves out p_1, the SI's drift mode (S2: finite mean velocity, loss
        profile with a finite slope), whose window variance measures the drift rather
        than fluctuations; 1 fits all analysed directions.
    min_variance : float
        Relative variance below which a direction counts as frozen (see above).
    pca_result : PCAResult, optional
        A PCA already computed (e.g. by :class:`StreamingPCA`); ``snapshots`` are then
        only projected for D_i and τ_i.

    Returns
    -------
    VarianceFlatness
    """
    fn = "variance_flatness"
    X = _snapshots(fn, snapshots, min_rows=3)
    P = pca(X) if pca_result is None else pca_result
    if P.n_params != X.shape[1]:
        raise ValueError(f"{fn}: pca_result has {P.n_params} parameters, snapshots {X.shape[1]}")
    fit_from = _count(fn, "fit_from", fit_from)
    idx = _direction_indices(fn, P, indices, n_directions, min_variance)
    sol = P.mean if solution is None else np.asarray(solution, dtype=float)
    flat = flatness(loss, sol, P.directions[idx], factor=factor, step=step,
                    max_distance=max_distance)
    corr = diffusion_and_correlation(P.project(X)[:, idx], dt=dt, max_lag=min(X.shape[0] - 1, 2000))
    var = P.variances[idx]
    ss = np.random.SeedSequence(seed) if not isinstance(seed, np.random.SeedSequence) else seed
    seeds = ss.spawn(3)
    use = idx >= fit_from - 1
    fit = lambda y, s: _fit_used(flat.width[use], y[use], n_boot, level, s)  # noqa: E731
    return VarianceFlatness(pca=P, indices=idx, variance=var, flat=flat, corr=corr,
                            fit_variance=fit(var, seeds[0]), fit_D=fit(corr.D, seeds[1]),
                            fit_tau=fit(corr.tau, seeds[2]),
                            learning_dimension=P.learning_dimension(fraction),
                            fraction=float(fraction), fit_from=fit_from)
