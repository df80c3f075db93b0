"""Flatness of the loss along a direction (Feng–Tu SI S3).

F_i along p_i at a solution θ*: the width of the interval of s around 0 where
L(θ* + s p_i) < e·L(θ*).  Both sides are searched separately (left and right widths),
so asymmetric profiles such as the drift mode's L ≈ L0 exp(−β s + β2 s²) (Eq. S8) are
handled.  Exact values for a quadratic with an offset and a log-quadratic profile.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import optimize

from ._checks import _count, _err, _positive

__all__ = ["Flatness1D", "FlatnessResult", "flatness_1d", "flatness", "quadratic_flatness",
           "log_quadratic_flatness", "E"]

E = math.e


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
