"""Variance–flatness analysis of parameter snapshots (Feng & Tu, PNAS 2021, and SI).

Everything here works on plain arrays and a loss callable, so it applies equally to
the 2-D Monte Carlo walkers of :mod:`fpsolve.montecarlo` and to a neural network's
weights.  numpy and scipy only.

Definitions (SI numbering):

* **PCA** of the fluctuations in a window of T snapshots θ(t) ∈ R^N: principal
  directions p_i (unit vectors) and variances σ_i² (population variance, ddof = 0,
  Eq. S17), ordered σ_1² ≥ σ_2² ≥ …; accumulated variance spectrum
  Σ_{j≤i} σ_j² / Σ_j σ_j²; learning dimension D_l = the smallest number of directions
  holding 99.9 % of the variance (Fig. S16).
* **Flatness** F_i along p_i at a solution θ*: the width of the interval of s around 0
  where L(θ* + s p_i) < e·L(θ*) (SI S3).  Both sides are searched separately
  (left and right widths), so asymmetric profiles such as the drift mode's
  L ≈ L0 exp(−β s + β2 s²) (Eq. S8) are handled.
* **Power law** σ_i² ∝ F_i^(−ψ): least squares in log–log with a bootstrap over
  directions for the confidence interval.
* **D_i, τ_i** (Eqs. S15–S19): velocities v_i = Δθ_i/Δt of the projections,
  D_i = C_i(0) = ⟨v_i²⟩, c_i = C_i/D_i, G_i(t) = ∫_{−t}^{t} c_i,
  S_i(t) = D_i^{-1}⟨θ_i(t)²⟩ = ∫_0^t G_i, τ_i = T_w^{-1} Δt^{-1} ∫_0^{T_w} S_i dt.
* **Order parameters** (Eqs. S2–S3): A_g(t) = ‖g(t)‖ and
  C_g(t) = g(t)·g(t+1) / (A_g(t) A_g(t+1)) of the minibatch gradients, averaged over
  a moving window (one epoch in the SI).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import optimize

__all__ = ["PCAResult", "pca", "StreamingPCA", "accumulated_variance",
           "learning_dimension", "Flatness1D", "FlatnessResult", "flatness_1d",
           "flatness", "quadratic_flatness", "log_quadratic_flatness", "PowerLawFit",
           "power_law_fit", "CorrelationResult", "diffusion_and_correlation",
           "OrderParameters", "GradientOrderParameters", "gradient_order_parameters",
           "moving_average", "transition_time", "VarianceFlatness", "variance_flatness",
           "log_spaced_indices"]

E = math.e


# ------------------------------------------------------------------ validation
def _err(fn, name, expected, got):
    return ValueError(f"{fn}: {name} must be {expected}, got {got!r}")


def _positive(fn, name, value, *, allow_inf=False):
    if isinstance(value, bool):
        raise _err(fn, name, "a positive number", value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise _err(fn, name, "a positive number", value) from None
    if not (v > 0) or (math.isinf(v) and not allow_inf) or math.isnan(v):
        raise _err(fn, name, "a positive finite number" if not allow_inf
                   else "a positive number", value)
    return v


def _count(fn, name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise _err(fn, name, f"an integer >= {minimum}", value)
    return int(value)


def _fraction(fn, name, value):
    v = _positive(fn, name, value)
    if v >= 1:
        raise _err(fn, name, "a number in (0, 1)", value)
    return v


def _snapshots(fn, snapshots, min_rows=2):
    X = np.asarray(snapshots, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"{fn}: snapshots must be a 2-D array (T snapshots, N parameters), "
                         f"got shape {X.shape}")
    if X.shape[0] < min_rows or X.shape[1] < 1:
        raise ValueError(f"{fn}: need at least {min_rows} snapshots of at least one "
                         f"parameter, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{fn}: snapshots contain NaN or inf (row "
                         f"{int(np.flatnonzero(~np.all(np.isfinite(X), axis=1))[0])})")
    return X


# ------------------------------------------------------------------------ PCA
def _fix_signs(V):
    """Make the largest-magnitude component of every row positive (reproducible output)."""
    idx = np.argmax(np.abs(V), axis=1)
    s = np.sign(V[np.arange(V.shape[0]), idx])
    s[s == 0] = 1.0
    return V * s[:, None]


@dataclass(frozen=True)
class PCAResult:
    """Principal components of the fluctuations in a window of snapshots.

    Attributes
    ----------
    mean : ndarray, shape (N,)
        Window mean θ̄ (the "solution" around which flatness is measured).
    directions : ndarray, shape (K, N)
        Unit principal directions p_i as rows, by decreasing variance.
    variances : ndarray, shape (K,)
        σ_i² = variance of θ·p_i over the window (ddof = 0).
    total_variance : float
        Trace of the window covariance (the sum over *all* directions, also those
        not kept in ``directions``).
    n_snapshots : int
        T, the number of snapshots in the window.
    """

    mean: np.ndarray
    directions: np.ndarray
    variances: np.ndarray
    total_variance: float
    n_snapshots: int

    @property
    def n_params(self) -> int:
        return self.mean.shape[0]

    def accumulated(self) -> np.ndarray:
        """Normalised accumulated variance Σ_{j≤i} σ_j² / tr(cov), shape (K,)."""
        return accumulated_variance(self.variances, self.total_variance)

    def learning_dimension(self, fraction: float = 0.999) -> int:
        """D_l: the number of directions holding ``fraction`` of the variance."""
        return learning_dimension(self.variances, fraction, self.total_variance)

    def project(self, snapshots, n: int | None = None) -> np.ndarray:
        """θ_i(t) = (θ(t) − θ̄)·p_i for the first ``n`` directions, shape (T, n)."""
        X = _snapshots("PCAResult.project", snapshots, min_rows=1)
        if X.shape[1] != self.n_params:
            raise ValueError(f"PCAResult.project: snapshots have {X.shape[1]} parameters, "
                             f"the PCA has {self.n_params}")
        P = self.directions if n is None else self.directions[:_count("project", "n", n)]
        return (X - self.mean) @ P.T


def pca(snapshots, n_components: int | None = None) -> PCAResult:
    """PCA of the fluctuations of a window of parameter snapshots.

    Parameters
    ----------
    snapshots : array_like, shape (T, N)
        θ(t) for the T snapshots of the window (T ≥ 2).
    n_components : int, optional
        Keep only the first K directions (default: all min(T − 1, N) directions that a
        window of T snapshots can span).

    Returns
    -------
    PCAResult

    Notes
    -----
    Thin SVD of the centred (T, N) matrix, which costs O(min(T, N)² max(T, N)) and never
    forms the N × N covariance when T < N (a window of a few epochs of a network).
    Signs are fixed so that each direction's largest component is positive.
    """
    X = _snapshots("pca", snapshots)
    T, N = X.shape
    mean = X.mean(axis=0)
    Xc = X - mean
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    var = s ** 2 / T
    k = min(T - 1, N)
    if n_components is not None:
        k = min(k, _count("pca", "n_components", n_components))
    return PCAResult(mean=mean, directions=_fix_signs(Vt[:k]), variances=var[:k].copy(),
                     total_variance=float(np.sum(Xc * Xc) / T), n_snapshots=T)


class StreamingPCA:
    """Streaming accumulator of the window mean and covariance: O(N²) memory, no snapshots.

    For windows too long to store (T ≫ N).  Sums are taken about the first snapshot
    (a shift that avoids the cancellation of a raw Σθθᵀ − T θ̄θ̄ᵀ when the fluctuations
    are small compared with θ).

    Examples
    --------
    >>> acc = StreamingPCA(3)
    >>> for theta in np.random.default_rng(0).normal(size=(100, 3)):
    ...     acc.update(theta)
    >>> acc.result().n_snapshots
    100
    """

    def __init__(self, n_params: int):
        self.n_params = _count("StreamingPCA", "n_params", n_params)
        self.count = 0
        self._shift = None
        self._s1 = np.zeros(self.n_params)
        self._s2 = np.zeros((self.n_params, self.n_params))

    def update(self, theta) -> None:
        """Add one snapshot (N,) or a batch (b, N)."""
        X = np.asarray(theta, dtype=float)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != self.n_params:
            raise ValueError(f"StreamingPCA.update: expected shape ({self.n_params},) or "
                             f"(b, {self.n_params}), got {np.shape(theta)}")
        if not np.all(np.isfinite(X)):
            raise ValueError("StreamingPCA.update: snapshot contains NaN or inf")
        if self._shift is None:
            self._shift = X[0].copy()
        Y = X - self._shift
        self._s1 += Y.sum(axis=0)
        self._s2 += Y.T @ Y
        self.count += X.shape[0]

    def covariance(self) -> np.ndarray:
        """Window covariance (ddof = 0), shape (N, N)."""
        if self.count < 2:
            raise ValueError(f"StreamingPCA: need at least 2 snapshots, have {self.count}")
        m = self._s1 / self.count
        C = self._s2 / self.count - np.outer(m, m)
        return 0.5 * (C + C.T)

    def result(self, n_components: int | None = None) -> PCAResult:
        """The PCA of everything accumulated so far (same conventions as :func:`pca`)."""
        C = self.covariance()
        w, V = np.linalg.eigh(C)
        order = np.argsort(w)[::-1]
        w, V = np.maximum(w[order], 0.0), V[:, order]
        k = min(self.count - 1, self.n_params)
        if n_components is not None:
            k = min(k, _count("StreamingPCA.result", "n_components", n_components))
        return PCAResult(mean=self._shift + self._s1 / self.count,
                         directions=_fix_signs(V[:, :k].T.copy()), variances=w[:k].copy(),
                         total_variance=float(np.trace(C)), n_snapshots=self.count)


def accumulated_variance(variances, total: float | None = None) -> np.ndarray:
    """Normalised accumulated variance spectrum Σ_{j≤i} σ_j² / total (Fig. S16A)."""
    v = np.asarray(variances, dtype=float)
    if v.ndim != 1 or v.size == 0 or np.any(v < 0) or not np.all(np.isfinite(v)):
        raise ValueError("accumulated_variance: variances must be a non-empty 1-D array of "
                         "finite non-negative numbers")
    tot = float(v.sum()) if total is None else float(total)
    if not tot > 0:
        raise ValueError("accumulated_variance: total variance is zero (no fluctuations)")
    return np.cumsum(v) / tot


def learning_dimension(variances, fraction: float = 0.999, total: float | None = None) -> int:
    """D_l: smallest number of leading directions holding ``fraction`` of the variance.

    ``variances`` must be sorted in decreasing order (as :func:`pca` returns them).
    """
    fraction = _fraction("learning_dimension", "fraction", fraction)
    acc = accumulated_variance(variances, total)
    if np.any(np.diff(np.asarray(variances, dtype=float)) > 0):
        raise ValueError("learning_dimension: variances must be in decreasing order")
    # tolerance: the accumulated sum of an exactly-represented spectrum may end at 1 - 1e-16
    k = int(np.searchsorted(acc, fraction * (1 - 1e-12))) + 1
    if k > acc.size:
        raise ValueError(f"learning_dimension: the {acc.size} directions given hold only "
                         f"{acc[-1]:.6g} of the total variance, less than {fraction}")
    return k


# ------------------------------------------------------------------- flatness
@dataclass(frozen=True)
class Flatness1D:
    """Result of :func:`flatness_1d`.

    ``left`` and ``right`` are the distances from 0 to the first crossing of the
    threshold on each side (``inf`` if the loss stays below it up to
    ``max_distance``); ``width = left + right`` is the SI's F.
    """

    left: float
    right: float
    L0: float
    threshold: float
    n_evaluations: int

    @property
    def width(self) -> float:
        return self.left + self.right


def _first_crossing(g, step, grow, max_distance, n_scan, xtol, rtol):
    """Smallest s > 0 with g(s) ≥ 0, given g(0) < 0; inf if none up to max_distance."""
    a, b = 0.0, step
    while True:
        gb = g(b)
        if gb >= 0:
            break
        if b >= max_distance:
            return math.inf
        a, b = b, min(b * grow, max_distance)
    # the expansion only tells that g crosses somewhere in (a, b]; scanning the bracket
    # picks the first crossing when the profile is not monotone inside it
    for s in np.linspace(a, b, n_scan + 2)[1:-1]:
        if g(s) >= 0:
            b = float(s)
            break
        a = float(s)
    if g(a) >= 0:       # cannot happen unless g is not a function; keep brentq honest
        return a
    return float(optimize.brentq(g, a, b, xtol=xtol, rtol=rtol))


def flatness_1d(profile: Callable[[float], float], *, factor: float = E,
                step: float = 1e-2, grow: float = 2.0, max_distance: float = 1e4,
                n_scan: int = 8, xtol: float = 1e-10, rtol: float = 1e-10) -> Flatness1D:
    """Flatness of a 1-D loss profile: where ``profile(s) < factor·profile(0)``.

    Parameters
    ----------
    profile : callable
        s ↦ L(θ* + s p); must be positive at s = 0 (the SI's definition is relative).
    factor : float
        The threshold factor (> 1), e in the SI.
    step, grow : float
        The search on each side evaluates s = step, step·grow, step·grow², … until the
        threshold is reached, then scans the last bracket at ``n_scan`` interior points
        and finishes with Brent's method.  A bump narrower than that grid can be missed.
    max_distance : float
        Give up (width ``inf``) beyond this distance.
    xtol, rtol : float
        Tolerances of the Brent root.

    Returns
    -------
    Flatness1D

    Notes
    -----
    Non-finite loss values, and an OverflowError raised by ``profile``, count as above
    the threshold (the loss blew up).

    Examples
    --------
    >>> r = flatness_1d(lambda s: 1.0 + s ** 2)       # L0 = 1: e·L0 at s = ±√(e − 1)
    >>> round(r.width, 6) == round(2 * math.sqrt(math.e - 1), 6)
    True
    """
    fn = "flatness_1d"
    if not callable(profile):
        raise TypeError(f"{fn}: profile must be callable s -> loss, got {type(profile).__name__}")
    factor = _positive(fn, "factor", factor)
    if factor <= 1:
        raise _err(fn, "factor", "a number > 1", factor)
    step = _positive(fn, "step", step)
    grow = _positive(fn, "grow", grow)
    if grow <= 1:
        raise _err(fn, "grow", "a number > 1", grow)
    max_distance = _positive(fn, "max_distance", max_distance, allow_inf=True)
    if max_distance < step:
        raise _err(fn, "max_distance", f"at least step={step}", max_distance)
    n_scan = _count(fn, "n_scan", n_scan, 0)
    L0 = float(profile(0.0))
    if not math.isfinite(L0) or L0 <= 0:
        raise ValueError(f"{fn}: the loss at the solution must be positive and finite "
                         f"(flatness is relative to it), got {L0!r}")
    thr = factor * L0
    n = [1]
    big = 1e6 * thr

    def side(sign):
        def g(s):
            n[0] += 1
            try:
                v = float(profile(sign * s))
            except OverflowError:       # e.g. math.exp of an exponential profile
                return big
            return v - thr if math.isfinite(v) else big
        return _first_crossing(g, step, grow, max_distance, n_scan, xtol, rtol)

    right = side(1.0)
    left = side(-1.0)
    return Flatness1D(left=left, right=right, L0=L0, threshold=thr, n_evaluations=n[0])


@dataclass(frozen=True)
class FlatnessResult:
    """Flatness along several directions (:func:`flatness`).

    Attributes
    ----------
    left, right, width : ndarray, shape (K,)
        Distances to the threshold on the − and + side of each direction and their sum
        F_i (``inf`` where the threshold was not reached).
    L0 : float
        Loss at the solution.
    threshold : float
        factor·L0.
    n_evaluations : int
        Loss evaluations used.
    """

    left: np.ndarray
    right: np.ndarray
    L0: float
    threshold: float
    n_evaluations: int

    @property
    def width(self) -> np.ndarray:
        return self.left + self.right

    @property
    def asymmetry(self) -> np.ndarray:
        """(right − left)/(right + left): 0 for a symmetric profile."""
        return (self.right - self.left) / self.width


def flatness(loss: Callable, solution, directions, *, factor: float = E,
             step: float = 1e-2, grow: float = 2.0, max_distance: float = 1e4,
             n_scan: int = 8, xtol: float = 1e-10, rtol: float = 1e-10) -> FlatnessResult:
    """Flatness F_i of ``loss`` at ``solution`` along each row of ``directions`` (SI S3).

    Parameters
    ----------
    loss : callable
        θ (N,) ↦ loss (float), e.g. the full training loss of a network.
    solution : array_like, shape (N,)
        θ*, e.g. the window mean :attr:`PCAResult.mean`.
    directions : array_like, shape (K, N) or (N,)
        Directions p_i; normalised to unit length here, so widths are Euclidean
        distances in parameter space.
    factor, step, grow, max_distance, n_scan, xtol, rtol
        As in :func:`flatness_1d`.

    Returns
    -------
    FlatnessResult
    """
    fn = "flatness"
    if not callable(loss):
        raise TypeError(f"{fn}: loss must be callable theta -> float, got {type(loss).__name__}")
    w0 = np.asarray(solution, dtype=float)
    if w0.ndim != 1 or not np.all(np.isfinite(w0)):
        raise ValueError(f"{fn}: solution must be a finite 1-D array, got shape {w0.shape}")
    P = np.asarray(directions, dtype=float)
    if P.ndim == 1:
        P = P[None, :]
    if P.ndim != 2 or P.shape[1] != w0.shape[0] or P.shape[0] == 0:
        raise ValueError(f"{fn}: directions must have shape (K, {w0.shape[0]}), got "
                         f"{np.shape(directions)}")
    norms = np.linalg.norm(P, axis=1)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise ValueError(f"{fn}: directions must be finite and non-zero")
    P = P / norms[:, None]
    left, right = np.empty(P.shape[0]), np.empty(P.shape[0])
    n, L0, thr = 0, None, None
    for i, p in enumerate(P):
        r = flatness_1d(lambda s, p=p: loss(w0 + s * p), factor=factor, step=step,
                        grow=grow, max_distance=max_distance, n_scan=n_scan, xtol=xtol,
                        rtol=rtol)
        left[i], right[i], n = r.left, r.right, n + r.n_evaluations
        L0, thr = r.L0, r.threshold
    return FlatnessResult(left=left, right=right, L0=L0, threshold=thr, n_evaluations=n)


def quadratic_flatness(h, L0, factor: float = E):
    """Exact F for L(s) = L0 + ½ h s² (quadratic with an offset): 2 √(2 (factor − 1) L0 / h).

    The SI's definition L(s) < e·L0 gives ½ h s² < (e − 1) L0 on both sides.  This is
    the Hessian-based flatness of a loss whose minimum value is L0 > 0.
    """
    h = np.asarray(h, dtype=float)
    if np.any(~(h > 0)):
        raise ValueError("quadratic_flatness: curvatures h must be positive")
    L0 = _positive("quadratic_flatness", "L0", L0)
    return 2.0 * np.sqrt(2.0 * (factor - 1.0) * L0 / h)


def log_quadratic_flatness(kappa, factor: float = E):
    """Exact F for ln L(s) = ln L0 + ½ κ s²: 2 √(2 ln(factor)/κ) = √(8/κ) for factor e (SI S3)."""
    kappa = np.asarray(kappa, dtype=float)
    if np.any(~(kappa > 0)):
        raise ValueError("log_quadratic_flatness: curvatures kappa must be positive")
    return 2.0 * np.sqrt(2.0 * math.log(factor) / kappa)


# ------------------------------------------------------------------ power law
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


# ----------------------------------------------------- D_i and τ_i (S15–S19)
@dataclass(frozen=True)
class CorrelationResult:
    """Per-direction velocity statistics (SI S5), from :func:`diffusion_and_correlation`.

    Attributes
    ----------
    D : ndarray, shape (K,)
        D_i = C_i(0) = ⟨v_i²⟩ with v_i = Δθ_i/Δt (fluctuations: the window's mean
        velocity, the drift, is removed).
    tau : ndarray, shape (K,)
        τ_i = T_w^{-1} Δt^{-1} ∫_0^{T_w} S_i(t) dt (Eq. S19, trapezoid rule).
    lags : ndarray, shape (M,)
        Times t = n Δt of the lag functions below.
    c, G, S : ndarray, shape (K, M)
        Normalised velocity autocorrelation c_i(t), G_i(t) = ∫_{−t}^{t} c_i and
        S_i(t) = ⟨θ_i(t)²⟩ / D_i (mean squared displacement over t, time-averaged over
        the window's origins).
    dt : float
        Δt, the time between snapshots.
    window : float
        T_w = (T − 1) Δt.
    """

    D: np.ndarray
    tau: np.ndarray
    lags: np.ndarray
    c: np.ndarray
    G: np.ndarray
    S: np.ndarray
    dt: float
    window: float


def _autocov_fft(v):
    """Unbiased autocovariance of the (already centred) columns of v, lags 0..T−1."""
    T = v.shape[0]
    nfft = 1 << (2 * T - 1).bit_length()
    f = np.fft.rfft(v, n=nfft, axis=0)
    ac = np.fft.irfft(f * np.conj(f), n=nfft, axis=0)[:T]
    return ac / (T - np.arange(T))[:, None]


def _msd_fft(x):
    """Time-averaged mean squared displacement of the columns of x, lags 0..T−1."""
    T = x.shape[0]
    nfft = 1 << (2 * T - 1).bit_length()
    f = np.fft.rfft(x, n=nfft, axis=0)
    s2 = np.fft.irfft(f * np.conj(f), n=nfft, axis=0)[:T]        # Σ_t x_t x_{t+n}
    sq = x * x
    cs = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(sq, axis=0)])
    n = np.arange(T)
    # Σ_{t<T−n} (x_{t+n}² + x_t²) = (cs[T] − cs[n]) + cs[T − n]
    s1 = (cs[T][None, :] - cs[n]) + cs[T - n]
    return (s1 - 2 * s2) / (T - n)[:, None]


def diffusion_and_correlation(theta, *, dt: float = 1.0,
                              max_lag: int | None = None) -> CorrelationResult:
    """D_i and τ_i of the projections θ_i(t) on the principal directions (SI S5).

    Parameters
    ----------
    theta : array_like, shape (T, K)
        Projections of the window's snapshots, e.g. :meth:`PCAResult.project`.
    dt : float
        Δt, time between snapshots (1 for one snapshot per iteration: the SI's unit).
    max_lag : int, optional
        Return c, G, S up to this many lags (τ always integrates over the whole window).

    Returns
    -------
    CorrelationResult

    Notes
    -----
    C_i is the autocovariance of the velocity *fluctuations* (the window's mean
    velocity is subtracted; it is the drift of the SI's mode p_1 and ≈ 0 for the
    diffusive modes i ≥ 2).  S_i(t) is estimated by the time-averaged mean squared
    displacement of θ_i, which is the double integral ∫∫ c_i of Eq. S18 for stationary
    velocities with far less noise than integrating the estimated c_i twice.  It is not
    detrended: removing a linear trend fitted to the same window biases the
    displacements at lags ~ T_w by O(1) (tested: +20..30 % on τ of an OU process), so a
    drifting mode gets a τ that includes its drift, as in the SI's definition.  The
    estimate of τ_i is unbiased for stationary increments but noisy when T_w is only a
    few tens of relaxation times (≈ 25 % scatter at T_w = 40 relaxation times).

    With this, D_i Δt τ_i is the window average of ⟨θ_i²(t)⟩ measured from the window
    start — the first term of Eq. S17.
    The SI drops the second term, −⟨θ̄_i²⟩, when it writes σ_i² = D_i Δt τ_i, so that
    relation holds only up to an O(1) factor: D_i Δt τ_i → 2σ_i² for a confined
    (Ornstein–Uhlenbeck) direction with T_w ≫ its relaxation time and 3σ_i² for free
    diffusion (D T_w/2 against D T_w/6).
    """
    fn = "diffusion_and_correlation"
    X = np.asarray(theta, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[0] < 3:
        raise ValueError(f"{fn}: theta must have shape (T, K) with T >= 3, got {np.shape(theta)}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{fn}: theta contains NaN or inf")
    dt = _positive(fn, "dt", dt)
    T = X.shape[0]
    M = T - 1
    if max_lag is not None:
        M = min(_count(fn, "max_lag", max_lag, 1), T - 1)
    dX = np.diff(X, axis=0)
    dX = dX - dX.mean(axis=0)                       # velocity fluctuations
    X = X - X.mean(axis=0)                          # no effect on MSD; less round-off
    msd = _msd_fft(X)                               # lags 0..T−1, per step
    C = _autocov_fft(dX)                            # lags 0..T−2
    if np.any(C[0] <= 0) or np.any(msd[1] <= 0):
        bad = np.flatnonzero((C[0] <= 0) | (msd[1] <= 0)).tolist()
        raise ValueError(f"{fn}: direction(s) {bad} do not move (zero velocity variance)")
    c = C / C[0]
    G = np.cumsum(np.concatenate([c[:1], 2 * c[1:]]), axis=0)
    s = msd / C[0]                                  # S(n Δt) / Δt²
    n_lags = T - 1
    # τ = T_w^{-1} Δt^{-1} ∫_0^{T_w} S dt, trapezoid with S(0) = 0, T_w = (T−1) Δt
    tau = dt * (s[1:n_lags].sum(axis=0) + 0.5 * s[n_lags]) / n_lags
    D = C[0] / dt ** 2
    lags = dt * np.arange(M + 1)
    Mc = min(M, c.shape[0] - 1)
    return CorrelationResult(D=D, tau=tau, lags=lags,
                             c=np.pad(c[:Mc + 1], ((0, M - Mc), (0, 0)),
                                      constant_values=np.nan).T,
                             G=np.pad(G[:Mc + 1], ((0, M - Mc), (0, 0)),
                                      constant_values=np.nan).T,
                             S=(s[:M + 1] * dt ** 2).T, dt=dt, window=n_lags * dt)


# ---------------------------------------------------- order parameters S2–S3
def moving_average(x, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` samples ('valid' part: len(x) − window + 1).

    NaNs (e.g. C_g where a gradient vanished) are skipped in each window.
    """
    x = np.asarray(x, dtype=float)
    window = _count("moving_average", "window", window)
    if x.ndim != 1 or x.size < window:
        raise ValueError(f"moving_average: need a 1-D array of at least window={window} "
                         f"values, got shape {x.shape}")
    ok = np.isfinite(x)
    cs = np.concatenate([[0.0], np.cumsum(np.where(ok, x, 0.0))])
    cn = np.concatenate([[0], np.cumsum(ok)])
    num = cs[window:] - cs[:-window]
    den = cn[window:] - cn[:-window]
    return np.divide(num, den, out=np.full(num.shape, np.nan), where=den > 0)


@dataclass(frozen=True)
class OrderParameters:
    """A_g(t), C_g(t) per iteration and their moving averages (SI Eqs. S2–S3).

    ``C[t]`` pairs the gradients of iterations t and t+1, so it has one value fewer
    than ``A``; ``t_avg`` are the iterations at which the trailing windows end.
    """

    A: np.ndarray
    C: np.ndarray
    window: int
    t_avg: np.ndarray
    A_avg: np.ndarray
    C_avg: np.ndarray


class GradientOrderParameters:
    """Streaming A_g and C_g: feed one minibatch gradient per iteration, keep two numbers.

    Only the previous gradient is stored, so this runs alongside a training loop at
    O(N) memory.
    """

    def __init__(self):
        self._prev = None
        self._prev_norm = math.nan
        self._A: list[float] = []
        self._C: list[float] = []

    def update(self, g) -> None:
        g = np.asarray(g, dtype=float).ravel()
        a = float(np.sqrt(g @ g))
        if self._prev is not None:
            if g.shape != self._prev.shape:
                raise ValueError("GradientOrderParameters.update: gradient size changed "
                                 f"from {self._prev.size} to {g.size}")
            den = a * self._prev_norm
            self._C.append(float(g @ self._prev) / den if den > 0 else math.nan)
        self._A.append(a)
        self._prev, self._prev_norm = g.copy(), a

    @property
    def A(self) -> np.ndarray:
        return np.array(self._A)

    @property
    def C(self) -> np.ndarray:
        return np.array(self._C)

    def result(self, window: int) -> OrderParameters:
        return _order_parameters(self.A, self.C, window)


def _order_parameters(A, C, window):
    window = _count("order parameters", "window", window)
    if A.size < window + 1:
        raise ValueError(f"order parameters: need more than window={window} iterations, "
                         f"have {A.size}")
    A_avg = moving_average(A[:-1], window)
    C_avg = moving_average(C, window)
    t_avg = np.arange(window - 1, A.size - 1)
    return OrderParameters(A=A, C=C, window=window, t_avg=t_avg, A_avg=A_avg, C_avg=C_avg)


def gradient_order_parameters(gradients, window: int) -> OrderParameters:
    """A_g and C_g from stored minibatch gradients, shape (T, N)."""
    G = np.asarray(gradients, dtype=float)
    if G.ndim != 2 or G.shape[0] < 2:
        raise ValueError(f"gradient_order_parameters: gradients must have shape (T, N) with "
                         f"T >= 2, got {G.shape}")
    acc = GradientOrderParameters()
    for g in G:
        acc.update(g)
    return acc.result(window)


def transition_time(t, C_avg, fraction: float = 0.5, tail: float = 0.1) -> float:
    """Time of the fast-learning → exploration transition from ⟨C_g⟩(t).

    Operational definition (the SI marks the transition region by eye): the first time
    after the maximum of ⟨C_g⟩ at which it falls below
    C_end + fraction·(C_max − C_end), with C_end the mean over the last ``tail`` of the
    record.  NaN if ⟨C_g⟩ never falls that far.
    """
    t = np.asarray(t, dtype=float)
    c = np.asarray(C_avg, dtype=float)
    if t.shape != c.shape or t.ndim != 1 or t.size < 3:
        raise ValueError("transition_time: t and C_avg must be 1-D arrays of the same length >= 3")
    fraction = _fraction("transition_time", "fraction", fraction)
    tail = _fraction("transition_time", "tail", tail)
    ok = np.isfinite(c)
    if ok.sum() < 3:
        raise ValueError("transition_time: C_avg has fewer than 3 finite values")
    n_tail = max(1, int(round(tail * c.size)))
    c_end = float(np.nanmean(c[-n_tail:]))
    i_max = int(np.nanargmax(c))
    level = c_end + fraction * (c[i_max] - c_end)
    below = np.flatnonzero(ok[i_max:] & (c[i_max:] < level))
    return float(t[i_max + below[0]]) if below.size else math.nan


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
        idx = np.unique(idx)
    elif n_directions is None:
        idx = np.arange(K)
    else:
        idx = log_spaced_indices(K, _count(fn, "n_directions", n_directions))
    sol = P.mean if solution is None else np.asarray(solution, dtype=float)
    flat = flatness(loss, sol, P.directions[idx], factor=factor, step=step,
                    max_distance=max_distance)
    corr = diffusion_and_correlation(P.project(X)[:, idx], dt=dt, max_lag=min(X.shape[0] - 1, 2000))
    var = P.variances[idx]
    ss = np.random.SeedSequence(seed) if not isinstance(seed, np.random.SeedSequence) else seed
    seeds = ss.spawn(3)

    use = idx >= fit_from - 1
    F = flat.width[use]

    def fit(y, s):
        y = y[use]
        ok = np.isfinite(F) & (F > 0) & (y > 0)
        if ok.sum() < 3 or np.ptp(np.log(F[ok])) == 0:
            return None
        return power_law_fit(F, y, n_boot=n_boot, level=level, seed=s)
    return VarianceFlatness(pca=P, indices=idx, variance=var, flat=flat, corr=corr,
                            fit_variance=fit(var, seeds[0]), fit_D=fit(corr.D, seeds[1]),
                            fit_tau=fit(corr.tau, seeds[2]),
                            learning_dimension=P.learning_dimension(fraction),
                            fraction=float(fraction), fit_from=fit_from)
