"""Extrapolation of step-size-dependent measurements to step → 0 (weighted straight line)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ._checks import _positive, _positive_floats


@dataclass(frozen=True)
class Extrapolation:
    """Linear fit y = a + b·h^power (or ln y = a + b·h^power) and its value at h → 0.

    Attributes
    ----------
    value, se : float or ndarray
        The fit at h = 0 (``exp(a)`` for ``log=True``) and its propagated standard
        error (NaN when it cannot be estimated).
    slope, slope_se : float or ndarray
        b and its standard error (in log units for ``log=True``).
    chi2 : float or ndarray
        Σ ((y − fit)/se)² of the fit (NaN without standard errors).
    dof : int
        Number of points − 2.
    p_value : float or ndarray
        P(χ²_dof ≥ chi2): small values reject the linear model (NaN if dof = 0).
    weights : ndarray
        c_k with a = Σ_k c_k y_k (y_k = ln of the values for ``log=True``), shape
        (k, ...): what propagates any covariance of the inputs to the intercept.
    power : float
    log : bool
    """

    value: object
    se: object
    slope: object
    slope_se: object
    chi2: object
    dof: int
    p_value: object
    weights: np.ndarray
    power: float
    log: bool


def extrapolate(h, values, se=None, *, power: float = 1.0, log: bool = False,
                weighted: bool = True) -> Extrapolation:
    """Extrapolate values measured at step sizes ``h`` to h → 0 by a straight line.

    Fits y = a + b·h^power (weak order 1 of Euler–Maruyama: ``power=1``; an escape rate
    with discrete-time exit monitoring: ``power=0.5``, ``log=True``, since missed
    excursions shift the effective boundary by O(√h) and the rate depends on it
    exponentially).

    Parameters
    ----------
    h : sequence of float
        Step sizes (positive, at least two distinct values).
    values : array_like, shape (k, ...)
        Measurements; trailing axes are independent fits (e.g. histogram bins).
    se : array_like, shape (k, ...), optional
        Standard errors of ``values`` (independent between the k runs).
    power : float
        Exponent of h in the model (> 0).
    log : bool
        Fit ln(values) (values must be positive), with standard errors se/values;
        ``value`` is exp(a) and ``se`` its delta-method error.
    weighted : bool
        With ``se``: weighted least squares (weights 1/se², the usual choice for
        scalars).  ``False`` uses equal weights — the same coefficients for every
        trailing element, robust where some standard errors vanish (empty bins) —
        and still propagates ``se`` exactly.

    Returns
    -------
    Extrapolation

    Examples
    --------
    >>> ex = extrapolate([0.004, 0.002, 0.001], [1.04, 1.02, 1.01])
    >>> round(float(ex.value), 12), round(float(ex.slope), 9)
    (1.0, 10.0)
    """
    h, y, s, power = _fit_inputs(h, values, se, power, log, weighted)
    x = (h ** power).reshape((-1,) + (1,) * (y.ndim - 1))
    w = (1.0 / s ** 2) if (s is not None and weighted) else np.ones_like(y)
    S0, S1, S2 = w.sum(0), (w * x).sum(0), (w * x * x).sum(0)
    det = S0 * S2 - S1 * S1
    c = w * (S2 - S1 * x) / det                       # intercept = Σ c_k y_k
    cb = w * (S0 * x - S1) / det                      # slope = Σ cb_k y_k
    a, b = (c * y).sum(0), (cb * y).sum(0)
    resid = y - a - b * x
    dof = h.size - 2
    if s is not None:
        a_se = np.sqrt((c * c * s * s).sum(0))
        b_se = np.sqrt((cb * cb * s * s).sum(0))
        with np.errstate(divide="ignore", invalid="ignore"):
            chi2 = np.where(s > 0, (resid / np.where(s > 0, s, 1.0)) ** 2, 0.0).sum(0)
    elif dof > 0:                                     # scatter about the line
        var = (resid ** 2).sum(0) / dof
        a_se, b_se = np.sqrt(var * (c * c).sum(0)), np.sqrt(var * (cb * cb).sum(0))
        chi2 = np.full(np.shape(a), np.nan)
    else:
        a_se = b_se = chi2 = np.full(np.shape(a), np.nan)
    p = stats.chi2.sf(chi2, dof) if dof > 0 else np.full(np.shape(a), np.nan)
    value = np.exp(a) if log else a
    se_out = value * a_se if log else a_se

    def scalar(v):
        v = np.asarray(v, dtype=float)
        return float(v) if v.ndim == 0 else v

    return Extrapolation(scalar(value), scalar(se_out), scalar(b), scalar(b_se), scalar(chi2),
                         dof, scalar(p), c, power, log)


def _fit_inputs(h, values, se, power, log, weighted):
    """Checked arrays of :func:`extrapolate`: h, y (ln values for ``log``), se of y, power."""
    h = np.asarray(_positive_floats("h", list(np.ravel(h)) if np.ndim(h) else h, 2))
    power = _positive("power", power)
    y = np.asarray(values, dtype=float)
    if y.shape[:1] != h.shape:
        raise ValueError(f"values: expected a leading axis of length {h.size} (one per h), "
                         f"got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("values: must be finite")
    s = None
    if se is not None:
        s = np.asarray(se, dtype=float)
        if s.shape != y.shape:
            raise ValueError(f"se: expected the shape of values {y.shape}, got {s.shape}")
        if not np.all(np.isfinite(s)) or np.any(s < 0):
            raise ValueError("se: standard errors must be finite and non-negative")
        if weighted and np.any(s == 0):
            raise ValueError("se: weighted=True needs positive standard errors "
                             "(use weighted=False where some vanish)")
    if log:
        if np.any(y <= 0):
            raise ValueError("values: log=True needs positive values")
        if s is not None:
            s = s / y
        y = np.log(y)
    return h, y, s, power
