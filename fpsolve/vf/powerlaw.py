"""Power law σ_i² ∝ F_i^(−ψ): least squares in log–log, bootstrap confidence interval."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ._checks import _count, _fraction

__all__ = ["PowerLawFit", "power_law_fit"]


@dataclass(frozen=True)
class PowerLawFit:
    """y ≈ prefactor · x^(−exponent), from :func:`power_law_fit`.

    ``ci`` is the bootstrap percentile interval of the exponent at level ``level``;
    ``se`` the ordinary least-squares standard error (for comparison — it assumes
    independent Gaussian residuals in log y, which directions need not have);
    ``r2`` the coefficient of determination in log–log.
    """

    exponent: float
    prefactor: float
    ci: tuple
    level: float
    se: float
    r2: float
    n: int
    n_excluded: int
    bootstrap: np.ndarray = field(repr=False)

    def __call__(self, x):
        return self.prefactor * np.asarray(x, dtype=float) ** (-self.exponent)


def _ols(lx, ly):
    mx, my = lx.mean(), ly.mean()
    sxx = np.sum((lx - mx) ** 2)
    slope = np.sum((lx - mx) * (ly - my)) / sxx
    return slope, my - slope * mx, sxx


def power_law_fit(x, y, *, n_boot: int = 2000, level: float = 0.95,
                  seed=0) -> PowerLawFit:
    """Fit y ∝ x^(−exponent) by least squares in log–log, CI by bootstrap over points.

    Parameters
    ----------
    x, y : array_like
        E.g. flatness F_i and variance σ_i² of the directions.  Pairs with a
        non-finite or non-positive member (e.g. F = inf: the threshold was never
        reached) are excluded and counted in ``n_excluded``.
    n_boot : int
        Bootstrap resamples (pairs drawn with replacement).
    level : float
        Confidence level of the percentile interval.
    seed : int or SeedSequence
        Seed of the bootstrap generator (the fit is reproducible).

    Returns
    -------
    PowerLawFit
    """
    fn = "power_law_fit"
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"{fn}: x and y must have the same length, got {x.size} and {y.size}")
    n_boot = _count(fn, "n_boot", n_boot, 10)
    level = _fraction(fn, "level", level)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    lx, ly = np.log(x[ok]), np.log(y[ok])
    n = lx.size
    if n < 3:
        raise ValueError(f"{fn}: need at least 3 points with finite positive x and y, got {n}")
    if np.ptp(lx) == 0:
        raise ValueError(f"{fn}: all x are equal; the exponent is undefined")
    slope, icpt, sxx = _ols(lx, ly)
    resid = ly - (icpt + slope * lx)
    se = float(np.sqrt(np.sum(resid ** 2) / (n - 2) / sxx)) if n > 2 else math.nan
    sst = np.sum((ly - ly.mean()) ** 2)
    r2 = float(1 - np.sum(resid ** 2) / sst) if sst > 0 else 1.0
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    bx, by = lx[idx], ly[idx]
    mx, my = bx.mean(axis=1, keepdims=True), by.mean(axis=1, keepdims=True)
    bsxx = np.sum((bx - mx) ** 2, axis=1)
    valid = bsxx > 0                    # a resample of one repeated x has no slope
    bslope = np.sum((bx - mx) * (by - my), axis=1)[valid] / bsxx[valid]
    boot = -bslope
    q = 0.5 * (1 - level)
    lo, hi = np.quantile(boot, [q, 1 - q])
    return PowerLawFit(exponent=float(-slope), prefactor=float(np.exp(icpt)),
                       ci=(float(lo), float(hi)), level=level, se=se, r2=r2, n=n,
                       n_excluded=int(x.size - n), bootstrap=boot)
