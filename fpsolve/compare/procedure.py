"""FE ↔ Monte Carlo cross-check: a finite-element Solution against direct simulation.

:func:`crosscheck` takes a solved (quasi-)stationary FE case and runs the simulators of
:mod:`fpsolve.montecarlo` on the same model and the same absorbing disk:

* **Euler–Maruyama** (``langevin``) at several time steps ``dts``.  EM is weak order 1,
  so each stationary observable is extrapolated linearly in dt to dt → 0
  (:func:`extrapolate`, standard error propagated from the runs).  The dt → 0 values
  are what is compared with FE.
* **SGD** (``sgd``) at several learning rates ``etas`` at fixed Δ_S = ησ (only for the
  SGD diffusion model), to show the finite-η bias and its trend.  For D = Δ_S H² the
  SGD update *is* EM with dt = η (docs/montecarlo.md), so these rows are EM at larger
  steps: their bias is the same O(η) bias, seen where it is large.

Compared, side by side: ⟨x²⟩, ⟨y²⟩, ⟨|x|⟩, |x| of the mode of the marginal P(x), the
L1 distance between the FE and MC marginals (with the L1 that MC noise alone would
give), the binned probability current J (FE J averaged over the MC bins; χ²/bin and a
fitted scale J_MC ≈ s J_FE over the bins where J is significant) and the escape rate.

Error bars come from the simulators' independent walker blocks (docs/montecarlo.md).
Quantities the simulators do not accumulate (⟨|x|⟩, the bin-bin correlation of the
marginal histogram, the stationarity check) come from recorded frames of every walker,
grouped by the same blocks.  Runs of one family are *chained*: each starts from the
final positions of the previous one (a new, independent random stream), so only the
first needs the long burn-in from the initial condition.  The burn-in is compared with
the relaxation times of the FE operator (:func:`relaxation_times`).

Examples
--------
>>> import fpsolve as fp
>>> L = fp.landscapes.paper()
>>> sol = fp.solve(L, fp.diffusion.sgd(L, 0.012), fp.disk_mesh(2.0, h=0.035))
>>> cc = fp.compare.crosscheck(sol, seed=1)                   # doctest: +SKIP
>>> print(cc.to_markdown())                                   # doctest: +SKIP
"""
from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import scipy.sparse.linalg as spla
from scipy import stats

from ..models import diffusion as _diffusion
from ..stochastic import montecarlo as _mc
from .._json import jsonable
from ..fe.assembly import probe_matrix
from ..fe.flux import Flux
from ..fe.solution import Solution
from ..fe.solver import FPSolveWarning, Problem

__all__ = ["crosscheck", "CrossCheck", "extrapolate", "Extrapolation", "relaxation_times",
           "ROWS", "Z_LIMIT", "P_LIMIT", "MIN_BIN_SAMPLES"]

#: Table rows, in order (keys of ``CrossCheck.table``).
ROWS = ("<x^2>", "<y^2>", "<|x|>", "mode |x|", "marginal L1", "J chi2/bin", "J scale",
        "escape rate")
#: Scalars agree when |MC(dt→0) − FE| ≤ Z_LIMIT × √(SE_MC² + err_FE²).
Z_LIMIT = 3.0
#: Distributional tests (marginal L1 against its noise distribution, χ² of J, Poisson
#: escape counts) agree when their p-value is at least P_LIMIT.
P_LIMIT = 0.01
# Gauss–Legendre points per marginal bin for the FE bin averages (exact for a smooth
# marginal to far below MC noise at bin widths ~0.05).
_GAUSS_PER_BIN = 4
# Fewest exits per EM run for a dt → 0 extrapolation of the escape rate; below it the
# runs are pooled into one Poisson count.
_MIN_EXITS = 50
# Draws of the Gaussian noise model of the marginal (L1 null distribution, mode SE).
_NULL_DRAWS = 4000
# J is compared only in bins with at least this many samples: a block-spread standard
# error from a handful of samples is meaningless (a tail bin with one sample has
# SE = |J| and would enter the χ² with an arbitrary z).
MIN_BIN_SAMPLES = 1000


# ------------------------------------------------------------------ validation
def _positive_floats(name, values, minimum_count=1):
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name}: expected a sequence of positive numbers, got {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name}: expected positive finite numbers, got {v!r}")
        out.append(float(v))
    if len(out) < minimum_count:
        raise ValueError(f"{name}: expected at least {minimum_count} values, got {len(out)}")
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: values must be distinct, got {out}")
    return tuple(out)


def _positive(name, v, allow_none=False):
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: expected a positive number, got {v!r}")
    return float(v)


def _count(name, v, minimum):
    if isinstance(v, bool) or not isinstance(v, Integral) or v < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {v!r}")
    return int(v)


# --------------------------------------------------------------- extrapolation
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


# ------------------------------------------------------------ relaxation times
def relaxation_times(sol: Solution, k: int = 5) -> dict:
    """Slowest relaxation modes of the FE operator of ``sol``: how long a burn-in must be.

    Solves A p = μ M p for the ``k`` eigenvalues nearest 0 (re-assembling the
    problem of ``sol``).  The lowest is the escape rate μ₁ (absorbing) or 0
    (reflecting); the others relax at rates μ_k − μ₁.  Each mode's parity under
    θ → −θ is measured on the FE function (+1 even, −1 odd); a start that is
    symmetric under θ → −θ (the simulators' default, a narrow Gaussian at the origin)
    does not excite odd modes of a symmetric problem, and odd modes do not change
    even observables such as ⟨x²⟩.

    Parameters
    ----------
    sol : Solution
    k : int
        Number of eigenvalues (≥ 2).

    Returns
    -------
    dict
        ``rates`` (k − 1 relaxation rates, real parts, ascending), ``imag`` (their
        imaginary parts), ``times`` (1/rates), ``parity`` (per mode, in [−1, 1]),
        ``density_parity`` (of P itself), ``tau_slowest``, ``tau_even`` (slowest mode
        with parity > 0, NaN if none found).
    """
    if not isinstance(sol, Solution):
        raise TypeError(f"sol: expected a fpsolve Solution, got {type(sol).__name__}")
    k = _count("k", k, 2)
    prob = Problem(sol.landscape, sol.diffusion, sol.mesh, sol.boundary, sol.order,
                   sol.drift, sol.stabilisation)
    op = prob.operator
    A = op.A(sol.diffusion.strength)
    M = op.M_stab if op.M_stab is not None else op.M
    idx = prob.interior_dofs if sol.boundary == "absorbing" else np.arange(prob.dofs)
    Ai, Mi = A[idx][:, idx].tocsc(), M[idx][:, idx].tocsc()
    # a small negative shift keeps A − σM regular (A is singular for reflecting walls)
    sigma = -1e-3 * max(abs(sol.escape_rate), 1e-3)
    vals, vecs = spla.eigs(Ai, k=min(k, Ai.shape[0] - 2), M=Mi, sigma=sigma, which="LM")
    order = np.argsort(vals.real)
    vals, vecs = vals[order], vecs[:, order]
    # parity under θ → −θ, measured where the density lives
    x, y = prob.basis.doflocs
    big = np.abs(sol.P) > 1e-3 * np.abs(sol.P).max()
    pts = np.stack([x[big], y[big]])
    Pp, Pm = probe_matrix(prob.basis, pts), probe_matrix(prob.basis, -pts)

    def parity(full):
        a, b = Pp @ full, Pm @ full
        den = math.sqrt(float(a @ a) * float(b @ b))
        return float(a @ b) / den if den > 0 else float("nan")

    par = []
    for v in vecs.T:
        full = np.zeros(prob.dofs)
        full[idx] = v.real if np.abs(v.real).max() >= np.abs(v.imag).max() else v.imag
        par.append(parity(full))
    rates = vals.real[1:] - vals.real[0]
    times = 1.0 / rates
    even = [t for t, p in zip(times, par[1:]) if p > 0]
    return {"rates": rates.tolist(), "imag": vals.imag[1:].tolist(), "times": times.tolist(),
            "parity": par[1:], "density_parity": parity(sol.P),
            "tau_slowest": float(times[0]), "tau_even": float(even[0]) if even else float("nan")}


# ------------------------------------------------------------------ estimators
class _ModeEstimator:
    """|x| of the maximum of a marginal histogram smoothed with a Gaussian kernel.

    The kernel (standard deviation one bin width) turns the noisy argmax of a
    histogram into the maximum of a smooth function of all the bins, so noise shifts it
    only a little; applied to the FE bin averages it gives what the MC estimate
    converges to (binning and smoothing move a sharp, skewed peak — e.g. by −0.004 for
    Δ_S = 0.012 with 160 bins on [−2, 2] — so that, not the exact FE mode, is the
    comparison target).
    """

    def __init__(self, centres):
        w = centres[1] - centres[0]
        self.x = np.linspace(centres[0], centres[-1], 8 * (centres.size - 1) + 1)
        self.K = np.exp(-0.5 * ((self.x[:, None] - centres[None, :]) / w) ** 2)

    def __call__(self, values):
        """values (nbins,) or (ndraws, nbins) -> |mode| (float or (ndraws,))."""
        s = np.atleast_2d(values) @ self.K.T
        i = np.clip(np.argmax(s, axis=1), 1, self.x.size - 2)
        r = np.arange(s.shape[0])
        y0, y1, y2 = s[r, i - 1], s[r, i], s[r, i + 1]
        den = y0 - 2 * y1 + y2
        with np.errstate(divide="ignore", invalid="ignore"):
            off = np.where(den < 0, 0.5 * (y0 - y2) / den, 0.0)    # parabola through 3 points
        m = np.abs(self.x[i] + off * (self.x[1] - self.x[0]))
        return float(m[0]) if np.ndim(values) == 1 else m


def _gaussian_draws(cov, n, rng):
    """n draws of N(0, cov) (cov PSD, possibly rank deficient)."""
    w, V = np.linalg.eigh(0.5 * (cov + cov.T))
    B = V * np.sqrt(np.clip(w, 0, None))
    return rng.standard_normal((n, w.size)) @ B.T


def _l1_test(diff, cov, width, rng):
    """L1 = Σ w|diff| against its distribution under N(0, cov) noise alone."""
    l1 = float(np.sum(width * np.abs(diff)))
    null = np.sum(width * np.abs(_gaussian_draws(cov, _NULL_DRAWS, rng)), axis=1)
    return {"l1": l1,
            "noise": float(math.sqrt(2 / math.pi) * np.sum(width * np.sqrt(np.diag(cov)))),
            "noise_q95": float(np.quantile(null, 0.95)),
            "p_value": float((np.sum(null >= l1) + 1) / (null.size + 1))}


def _current_test(J, se, Jfe, threshold, counts, groups, rng):
    """χ²/bin of J_MC − J_FE over the bins where |J_FE| > threshold·SE (and that hold
    at least MIN_BIN_SAMPLES samples), and the scale s of the weighted fit
    J_MC ≈ s·J_FE over the same bins.

    The standard errors are themselves estimated from ``groups`` independent blocks,
    so each z is closer to Student's t with groups − 1 degrees of freedom than to a
    normal variate: the p-value is that of Σ t² (simulated), not of χ².
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        use = ((se > 0) & np.isfinite(se) & (np.abs(Jfe) > threshold * se)
               & (counts >= MIN_BIN_SAMPLES)[None])
    n = int(use.sum())
    if n == 0:
        return {"chi2_per_bin": float("nan"), "n": 0, "p_value": float("nan"),
                "scale": float("nan"), "scale_se": float("nan")}
    z = (J[use] - Jfe[use]) / se[use]
    chi2 = float(np.sum(z * z))
    wf = Jfe[use] / se[use] ** 2
    null = np.sum(rng.standard_t(max(groups - 1, 1), size=(_NULL_DRAWS, n)) ** 2, axis=1)
    p = float((np.sum(null >= chi2) + 1) / (_NULL_DRAWS + 1))
    return {"chi2_per_bin": chi2 / n, "n": n, "p_value": p,
            "scale": float(np.sum(wf * J[use]) / np.sum(wf * Jfe[use])),
            "scale_se": float(1.0 / math.sqrt(np.sum(wf * Jfe[use])))}


class _Frames:
    """Per-block statistics of the recorded frames after burn-in (blocks are independent)."""

    def __init__(self, mc, block_size, medges):
        t0 = mc.n_burn * mc.dt * (1 - 1e-12)
        keep = mc.record_times >= t0
        tr = mc.trajectories[keep]                    # (frames, walkers, 2)
        nf, nw = tr.shape[0], tr.shape[1]
        G = -(-nw // block_size)
        pad = G * block_size - nw
        if pad:
            tr = np.concatenate([tr, np.full((nf, pad, 2), np.nan)], axis=1)
        tr = tr.reshape(nf, G, block_size, 2)
        alive = np.isfinite(tr[..., 0])
        x = np.where(alive, tr[..., 0], 0.0)
        y = np.where(alive, tr[..., 1], 0.0)
        half = nf // 2
        self.G, self.nf = G, nf
        self.n = alive.sum(axis=(0, 2)).astype(float)                  # (G,)
        self.n_half = (alive[:half].sum(axis=(0, 2)).astype(float),
                       alive[half:].sum(axis=(0, 2)).astype(float))
        self.sums, self.halves = {}, {}
        for name, f in (("x2", x * x), ("y2", y * y), ("absx", np.abs(x))):
            self.sums[name] = f.sum(axis=(0, 2))
            self.halves[name] = (f[:half].sum(axis=(0, 2)), f[half:].sum(axis=(0, 2)))
        # per-block x-histograms on the marginal bins: the bin-bin correlation structure
        ix = np.floor((tr[..., 0] - medges[0]) / (medges[1] - medges[0])).astype(np.int64)
        nb = medges.size - 1
        ok = alive & (ix >= 0) & (ix < nb)
        blk = np.broadcast_to(np.arange(G)[None, :, None], ix.shape)
        self.hist = np.zeros((G, nb))
        np.add.at(self.hist, (blk[ok], ix[ok]), 1.0)

    def _ratio(self, S, n):
        N = n.sum()
        r = S.sum(0) / N
        e = (S - np.multiply.outer(n, r) if np.ndim(r) else S - r * n) / N
        return r, e

    def mean(self, name):
        """Ratio estimate and its standard error over blocks."""
        r, e = self._ratio(self.sums[name], self.n)
        return float(r), float(math.sqrt(self.G / (self.G - 1) * np.sum(e * e)))

    def drift(self, name):
        """(second half − first half) of the sampling window, in standard errors."""
        (S1, S2), (n1, n2) = self.halves[name], self.n_half
        r1, e1 = self._ratio(S1, n1)
        r2, e2 = self._ratio(S2, n2)
        se = math.sqrt(self.G / (self.G - 1) * np.sum((e2 - e1) ** 2))
        return float((r2 - r1) / se) if se > 0 else float("nan")

    def correlation(self):
        """Correlation matrix of the marginal histogram bins (identity where empty)."""
        r, e = self._ratio(self.hist, self.n)
        C = self.G / (self.G - 1) * e.T @ e
        d = np.sqrt(np.diag(C))
        R = np.eye(d.size)
        ok = d > 0
        R[np.ix_(ok, ok)] = C[np.ix_(ok, ok)] / np.outer(d[ok], d[ok])
        return R


# ------------------------------------------------------------------ the result
def _fmt(v, se=None, digits=4):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if se is None or not math.isfinite(se):
        return f"{v:.{digits}g}"
    return f"{v:.{digits}g} ± {se:.2g}"


class CrossCheck:
    """Side-by-side FE, Euler–Maruyama (dt → 0) and SGD results for one case.

    Attributes
    ----------
    label : str
    fe : dict
        FE values: ``x2``, ``y2``, ``absx``, ``mode`` (|x| of the exact FE marginal
        mode), ``mode_binned`` (the MC mode estimator applied to the FE bin averages:
        what the MC estimate converges to), ``escape_rate``, ``error`` (per quantity,
        |sol − coarse| if a coarser solution was given, else 0), ``dofs``, ``h``.
    runs : list of dict
        One per simulation: ``kind`` ("em" | "sgd"), ``step`` (dt or η), ``dt``,
        steps, burn-in, the measured quantities with standard errors, the marginal and
        current tests against FE, escape counts, stationarity z-scores.
    em0 : dict
        The EM values extrapolated to dt → 0 (scalars: :class:`Extrapolation` as a
        dict; marginal and current tests on the per-bin extrapolation; escape rate).
    sgd0 : dict
        The same linear extrapolation of the SGD rows in η (informative only: the
        η-range is large and the fit p-value says whether a line describes it).
    agreement : dict
        Per table row: ``ok`` (bool or None when not testable), the statistic and the
        criterion.
    spectrum : dict or None
        :func:`relaxation_times` of the FE operator.
    config : dict
        Everything needed to rerun (steps, times, walkers, seeds).
    notes : list of str
        Warnings and explanations gathered during the run.
    """

    def __init__(self, *, label, fe, runs, em0, sgd0, agreement, spectrum, config, notes,
                 arrays):
        self.label, self.fe, self.runs = label, fe, runs
        self.em0, self.sgd0, self.agreement = em0, sgd0, agreement
        self.spectrum, self.config, self.notes = spectrum, config, notes
        self._arrays = arrays

    # ---- table
    @property
    def em_runs(self):
        return [r for r in self.runs if r["kind"] == "em"]

    @property
    def sgd_runs(self):
        return [r for r in self.runs if r["kind"] == "sgd"]

    @property
    def table(self) -> list:
        """Rows (dicts) of the comparison table: ``quantity``, ``fe``, ``em`` (one cell
        per dt), ``em0``, ``agreement``, ``sgd`` (one per η), ``sgd0``; cells are
        ``{"value", "se"}`` or, for the tests, the test's statistics."""
        rows = []
        for q in ROWS:
            rows.append({"quantity": q, "fe": self._fe_cell(q),
                         "em": [self._run_cell(r, q) for r in self.em_runs],
                         "em0": self._x0_cell(self.em0, q),
                         "agreement": self.agreement.get(q),
                         "sgd": [self._run_cell(r, q) for r in self.sgd_runs],
                         "sgd0": self._x0_cell(self.sgd0, q) if self.sgd0 else None})
        return rows

    _SCALARS = {"<x^2>": "x2", "<y^2>": "y2", "<|x|>": "absx", "mode |x|": "mode"}

    def _fe_cell(self, q):
        fe = self.fe
        if q in self._SCALARS:
            key = self._SCALARS[q]
            out = {"value": fe[key], "error": fe["error"][key]}
            if key == "mode":
                out["binned"] = fe["mode_binned"]
            return out
        if q == "escape rate":
            return {"value": fe["escape_rate"], "error": fe["error"]["escape_rate"]}
        if q == "J scale":
            return {"value": 1.0}
        return None

    @classmethod
    def _run_cell(cls, r, q):
        if q in cls._SCALARS:
            v, s = r[cls._SCALARS[q]]
            return {"value": v, "se": s}
        if q == "marginal L1":
            return r["marginal"]
        if q == "J chi2/bin":
            c = r["current"]
            return {"value": c["chi2_per_bin"], "n": c["n"], "p_value": c["p_value"]}
        if q == "J scale":
            c = r["current"]
            return {"value": c["scale"], "se": c["scale_se"]}
        if q == "escape rate":
            return {"value": r["escape_rate"], "se": r["escape_rate_se"], "exits": r["exits"]}
        raise KeyError(q)

    @classmethod
    def _x0_cell(cls, ex, q):
        if q in cls._SCALARS:
            e = ex[cls._SCALARS[q]]
            return {"value": e["value"], "se": e["se"], "fit_p": e["p_value"]}
        if q == "marginal L1":
            return ex["marginal"]
        if q == "J chi2/bin":
            c = ex["current"]
            return {"value": c["chi2_per_bin"], "n": c["n"], "p_value": c["p_value"]}
        if q == "J scale":
            c = ex["current"]
            return {"value": c["scale"], "se": c["scale_se"]}
        if q == "escape rate":
            return ex.get("escape_rate")
        raise KeyError(q)

    # ---- export
    def to_dict(self, arrays: bool = False) -> dict:
        """JSON-friendly dict (NaN → None).  ``arrays=True`` adds the marginals and
        currents (FE and per run)."""
        out = {"label": self.label, "config": self.config, "fe": self.fe,
               "runs": [{k: v for k, v in r.items() if not k.startswith("_")}
                        for r in self.runs],
               "em0": self.em0, "sgd0": self.sgd0, "agreement": self.agreement,
               "spectrum": self.spectrum, "notes": self.notes, "table": self.table}
        if arrays:
            out["arrays"] = self._arrays_dict()
        return jsonable(out)

    _ARRAY_KEYS = ("marginal_edges", "current_edges", "fe_marginal", "fe_current",
                   "fe_marginal_curve", "fe_density_grid", "em0_marginal", "em0_marginal_se",
                   "em0_current", "em0_current_se", "em0_current_counts")
    # (the marginal's bin covariance is left out: 160² numbers per run, used only while
    # extrapolating)
    _RUN_ARRAYS = ("_marginal", "_marginal_se", "_current", "_current_se", "_counts")

    def _arrays_dict(self):
        if self._arrays is None:
            raise ValueError("arrays: this CrossCheck was rebuilt without its arrays")
        out = {k: self._arrays[k] for k in self._ARRAY_KEYS}
        out["runs"] = [{k[1:]: r[k] for k in self._RUN_ARRAYS} for r in self.runs]
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "CrossCheck":
        """Rebuild from :meth:`to_dict` output (e.g. loaded JSON).

        Tables, Markdown and verdicts need only the scalars; :meth:`plot` needs a dict
        written with ``arrays=True``.  Numbers that were NaN come back as None.
        """
        try:
            runs = [dict(r) for r in d["runs"]]
            arrays = None
            if d.get("arrays") is not None:
                raw = d["arrays"]
                arrays = {}
                for k in cls._ARRAY_KEYS:
                    v = raw[k]
                    arrays[k] = (tuple(np.asarray(x, dtype=float) for x in v)
                                 if k in ("current_edges", "fe_marginal_curve",
                                          "fe_density_grid") else np.asarray(v, dtype=float))
                for r, ra in zip(runs, raw["runs"]):
                    for k in cls._RUN_ARRAYS:
                        r[k] = np.asarray(ra[k[1:]], dtype=float)
            return cls(label=d["label"], fe=d["fe"], runs=runs, em0=d["em0"], sgd0=d["sgd0"],
                       agreement=d["agreement"], spectrum=d["spectrum"], config=d["config"],
                       notes=d["notes"], arrays=arrays)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"d: not a CrossCheck.to_dict() result ({exc!r})") from None

    def to_json(self, path: str | None = None, arrays: bool = False) -> str:
        """JSON text of :meth:`to_dict` (written to ``path`` if given)."""
        text = json.dumps(self.to_dict(arrays), indent=1, allow_nan=False)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        return text

    def to_markdown(self) -> str:
        """The comparison table (GitHub Markdown) with a line of settings under it."""
        em, sg = self.em_runs, self.sgd_runs
        head = (["quantity", "FE"] + [f"EM dt={r['step']:g}" for r in em]
                + ["EM dt→0", "FE vs dt→0"] + [f"SGD η={r['step']:g}" for r in sg]
                + (["SGD η→0 (line)"] if sg else []))
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in self.table:
            q = row["quantity"]
            cells = [q.replace("|", "\\|"), self._md_fe(q, row["fe"])]
            cells += [self._md(q, c) for c in row["em"]]
            cells += [self._md(q, row["em0"]), self._md_agree(row["agreement"])]
            cells += [self._md(q, c) for c in row["sgd"]]
            if sg:
                cells.append(self._md(q, row["sgd0"]))
            lines.append("| " + " | ".join(cells) + " |")
        c = self.config
        sp = self.spectrum
        tau = ""
        if sp:
            tau = (f"; FE relaxation times: slowest {sp['tau_slowest']:.3g}, slowest "
                   f"θ→−θ-even {sp['tau_even']:.3g}")
        lines.append("")
        lines.append(
            f"{c['n_walkers']} walkers in {c['n_blocks']} independent blocks per run; burn-in "
            f"t = {c['t_burn']:.3g} from the initial condition for the first run of each "
            f"family, {c['t_warm']:.3g} for chained runs; sampling t = {c['t_sample']:.3g}"
            f"{tau}. Max |stationarity z| (2nd − 1st half of the sampling window): "
            f"{self.max_drift_z():.2g}.")
        return "\n".join(lines)

    @staticmethod
    def _md_fe(q, cell):
        if cell is None:
            return "–"
        v, err = cell.get("value"), cell.get("error")
        s = _fmt(v, err if err else None)
        if q == "mode |x|":
            s += f" (binned: {_fmt(cell['binned'])})"
        return s

    @staticmethod
    def _md(q, cell):
        if cell is None:
            return "–"
        if q == "marginal L1":
            return (f"{_fmt(cell['l1'], digits=3)} (noise {_fmt(cell['noise'], digits=2)}, "
                    f"p={cell['p_value']:.2g})")
        if q == "J chi2/bin":
            if not cell["n"]:
                return "no significant bins"
            return f"{cell['value']:.3g} (n={cell['n']})"
        if q == "escape rate":
            if "pooled" in cell:
                return (f"{cell['exits']} exits, FE expects {cell['expected']:.3g} "
                        f"(p={cell['p_value']:.2g})")
            if cell.get("exits") == 0:
                return "0 exits"
            s = _fmt(cell.get("value"), cell.get("se"), 3)
            if "exits" in cell:
                s += f" ({cell['exits']} exits)"
            elif cell.get("p_value") is not None:
                s += f" (fit p={cell['p_value']:.2g})"
            return s
        s = _fmt(cell.get("value"), cell.get("se"))
        if cell.get("fit_p") is not None:
            s += f" (fit p={cell['fit_p']:.2g})"
        return s

    @staticmethod
    def _md_agree(a):
        if a is None or a.get("ok") is None:
            return "not testable" if a is None else a.get("statistic_text", "not testable")
        return f"{a['statistic_text']} {'✓' if a['ok'] else '✗ DIFFER'}"

    def max_drift_z(self) -> float:
        """Largest |z| of the half-window stationarity test over all runs and observables."""
        zs = [abs(z) for r in self.runs for z in r["stationarity"].values() if z is not None
              and math.isfinite(z)]
        return max(zs) if zs else float("nan")

    @property
    def ok(self) -> bool:
        """True when every testable row agrees."""
        return all(a["ok"] for a in self.agreement.values() if a["ok"] is not None)

    def summary(self) -> str:
        """A few lines: the agreement verdicts."""
        lines = [f"crosscheck {self.label}: {'all agree' if self.ok else 'DISAGREEMENT'}"]
        for q, a in self.agreement.items():
            lines.append(f"  {q:12s} {a.get('statistic_text', '')} "
                         f"{'' if a['ok'] is None else ('ok' if a['ok'] else 'DIFFER')}")
        return "\n".join(lines)

    def __repr__(self):
        return (f"CrossCheck({self.label!r}, {len(self.em_runs)} EM + {len(self.sgd_runs)} SGD "
                f"runs, {'agree' if self.ok else 'DISAGREE'})")

    # ---- figure
    def plot(self, path: str | None = None, title: str | None = None):
        """Figure: marginal P(x) FE vs MC, their difference, binned J arrows, J scatter.

        Returns the matplotlib Figure (saved to ``path`` if given).
        """
        if self._arrays is None:
            raise ValueError("arrays: this CrossCheck was rebuilt without its arrays; "
                             "plotting needs one from to_dict(arrays=True)")
        import matplotlib.pyplot as plt

        a = self._arrays
        me = a["marginal_edges"]
        mc_ = 0.5 * (me[1:] + me[:-1])
        R = self.config["radius"]
        xs, fm = a["fe_marginal_curve"]
        # zoom on where the density lives
        live = xs[fm > 1e-3 * fm.max()]
        xr = min(R, max(abs(live[0]), abs(live[-1])) + 0.15) if live.size else R
        small_em = min(self.em_runs, key=lambda r: r["step"])
        small_sgd = min(self.sgd_runs, key=lambda r: r["step"]) if self.sgd_runs else None
        fig, ax = plt.subplots(2, 2, figsize=(11.5, 8.4))
        p = ax[0, 0]
        p.plot(xs, fm, "k-", lw=1.6, label="FE", zorder=3)
        if small_sgd is not None:
            p.plot(mc_, small_sgd["_marginal"], "-", color="C2", lw=1, alpha=0.9,
                   label=f"SGD η={small_sgd['step']:g}")
        p.plot(mc_, small_em["_marginal"], "-", color="C1", lw=1, alpha=0.9,
               label=f"EM dt={small_em['step']:g}")
        p.errorbar(mc_, a["em0_marginal"], a["em0_marginal_se"], fmt="o", ms=2.5, color="C3",
                   elinewidth=0.8, label="EM dt→0 (±1 SE)", zorder=2)
        p.set(xlim=(-xr, xr), xlabel="x", ylabel="P(x) = ∫P dy", title="marginal P(x)")
        p.legend(fontsize=8)
        p = ax[0, 1]
        d = a["em0_marginal"] - a["fe_marginal"]
        s = a["em0_marginal_se"]
        p.fill_between(mc_, -2 * s, 2 * s, color="0.85", step="mid", label="±2 SE (MC dt→0)")
        p.plot(mc_, d, "o-", ms=2.5, lw=0.8, color="C3", label="EM dt→0 − FE")
        p.plot(mc_, small_em["_marginal"] - a["fe_marginal"], "-", lw=0.8, color="C1",
               label=f"EM dt={small_em['step']:g} − FE")
        p.axhline(0, color="k", lw=0.6)
        l1 = self.em0["marginal"]
        p.set(xlim=(-xr, xr), xlabel="x", ylabel="ΔP(x)",
              title=f"MC − FE (bin averages)\nL1(dt→0) = {l1['l1']:.3g}, "
                    f"noise alone ≈ {l1['noise']:.2g}, p = {l1['p_value']:.2g}")
        p.title.set_fontsize(9.5)
        p.legend(fontsize=8)
        # current: arrows in every bin with enough samples
        xe, ye = a["current_edges"]
        xc, yc = 0.5 * (xe[1:] + xe[:-1]), 0.5 * (ye[1:] + ye[:-1])
        X, Y = np.meshgrid(xc, yc, indexing="ij")
        Jf, Jm, Js = a["fe_current"], a["em0_current"], a["em0_current_se"]
        enough = a["em0_current_counts"] >= MIN_BIN_SAMPLES
        p = ax[1, 0]
        gx, gy, dens = a["fe_density_grid"]
        p.contourf(gx, gy, dens.T, levels=np.linspace(0.02, 1, 11) * dens.max(),
                   cmap="Greys", alpha=0.5)
        if enough.any():
            scale = 1.1 * np.hypot(*Jf[:, enough]).max() / (xe[1] - xe[0])
            kw = dict(angles="xy", scale_units="xy", scale=scale, width=0.0045)
            p.quiver(X[enough], Y[enough], Jf[0][enough], Jf[1][enough], color="k",
                     label="FE (bin average)", **kw)
            p.quiver(X[enough], Y[enough], Jm[0][enough], Jm[1][enough], color="C3",
                     alpha=0.75, label="EM dt→0", **kw)
            yr = min(R, float(np.abs(Y[enough]).max() + (ye[1] - ye[0])))
        else:
            yr = R
        p.set(xlim=(-xr, xr), ylim=(-yr, yr), xlabel="x", ylabel="y",
              title=f"binned current J (bins with ≥ {MIN_BIN_SAMPLES} samples)")
        p.set_aspect("equal")
        p.legend(fontsize=8, loc="upper right")
        p = ax[1, 1]
        thr = self.config["j_threshold"]
        for i, (comp, col) in enumerate((("J_x", "C0"), ("J_y", "C1"))):
            use = (np.abs(Jf[i]) > thr * Js[i]) & (Js[i] > 0) & enough
            p.errorbar(Jf[i][use], Jm[i][use], Js[i][use], fmt="o", ms=3, color=col,
                       elinewidth=0.7, label=comp)
        lim = 1.15 * np.abs(Jf[:, enough]).max() if enough.any() else 1.0
        p.plot([-lim, lim], [-lim, lim], "k-", lw=0.7)
        c0 = self.em0["current"]
        p.set(xlabel="J_FE (bin average)", ylabel="J_MC (EM dt→0, ±1 SE)",
              title=f"bins with |J_FE| > {thr:g} SE (n = {c0['n']}): "
                    f"χ²/bin = {c0['chi2_per_bin']:.3g}\n"
                    f"fit J_MC ≈ ({c0['scale']:.3f} ± {c0['scale_se']:.2g}) J_FE")
        p.title.set_fontsize(9.5)
        p.legend(fontsize=8)
        fig.suptitle(title or self.label)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig


# ------------------------------------------------------------------ FE side
def _inside_eval(f, X, Y, R, ncomp=None):
    """f(points) on the points strictly inside the disk, 0 elsewhere.

    Points on or just outside the curved boundary are skipped: fpsolve.fem.locate's
    isoparametric Newton inversion raises for some of them (and the FE functions vanish
    or are not defined there anyway).
    """
    pts = np.stack([X.ravel(), Y.ravel()], axis=1)
    inside = np.hypot(pts[:, 0], pts[:, 1]) < R * (1 - 1e-4)
    out = np.zeros((pts.shape[0],) if ncomp is None else (pts.shape[0], ncomp))
    if inside.any():
        out[inside] = f(pts[inside])
    return out


def _fe_reference(sol, coarse, medges, cedges, current_sub, curve_points):
    def scalars(s):
        return {"x2": s.expectation(lambda x, y: x * x), "y2": s.expectation(lambda x, y: y * y),
                "absx": s.expectation(lambda x, y: np.abs(x)),
                "mode": abs(s.marginal_mode("x")), "escape_rate": float(s.escape_rate)}

    fe = scalars(sol)
    err = {k: 0.0 for k in fe}
    if coarse is not None:
        c = scalars(coarse)
        err = {k: abs(fe[k] - c[k]) for k in fe}
    # bin averages of the FE marginal (Gauss–Legendre inside each bin)
    g, gw = np.polynomial.legendre.leggauss(_GAUSS_PER_BIN)
    lo, w = medges[:-1], np.diff(medges)
    pts = (lo[:, None] + 0.5 * w[:, None] * (g[None, :] + 1)).ravel()
    fm = (sol.marginal("x", pts).reshape(-1, _GAUSS_PER_BIN) * gw).sum(1) / 2
    centres = 0.5 * (medges[1:] + medges[:-1])
    fe["mode_binned"] = _ModeEstimator(centres)(fm)
    xs = np.linspace(medges[0], medges[-1], curve_points)
    curve = (xs, sol.marginal("x", xs))
    # bin averages of the FE current (sub × sub midpoints per bin)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FPSolveWarning)
        fl = Flux(sol)
    notes = [f"flux: {w.message}" for w in caught if issubclass(w.category, FPSolveWarning)]
    xe, ye = cedges
    off = (np.arange(current_sub) + 0.5) / current_sub
    sx = (xe[:-1, None] + np.diff(xe)[:, None] * off).ravel()
    sy = (ye[:-1, None] + np.diff(ye)[:, None] * off).ravel()
    X, Y = np.meshgrid(sx, sy, indexing="ij")
    J = _inside_eval(fl, X, Y, sol.mesh.radius, 2)            # 0 outside the disk, as in MC
    nx, ny = xe.size - 1, ye.size - 1
    Jb = J.T.reshape(2, nx, current_sub, ny, current_sub).mean(axis=(2, 4))
    gx = np.linspace(medges[0], medges[-1], 121)
    gy = np.linspace(ye[0], ye[-1], 121)
    GX, GY = np.meshgrid(gx, gy, indexing="ij")
    dens = _inside_eval(sol, GX, GY, sol.mesh.radius).reshape(GX.shape)
    fe["error"] = err
    fe["error"]["mode_binned"] = err["mode"]
    return fe, fm, Jb, curve, (gx, gy, dens), notes


# ---------------------------------------------------------------- the driver
def _steps(t, dt, k):
    return max(1, int(round(t / (dt * k)))) * k


def crosscheck(sol: Solution, *, dts=(4e-3, 2e-3, 1e-3), etas="auto", n_walkers: int = 4096,
               t_burn: float | None = None, t_warm: float | None = None,
               t_sample: float = 300.0, seed=0, x0=None, chain: bool = True,
               coarse: Solution | None = None, marginal_bins: int = 160, current_bins=20,
               current_sub: int = 4, j_threshold: float = 3.0, frame_dt: float = 1.0,
               sample_every: int = 10, block_size: int = 128, workers: int | None = None,
               spectrum=True, label: str | None = None,
               verbose: bool = False) -> CrossCheck:
    """Cross-check an FE solution against Euler–Maruyama and SGD simulations.

    Parameters
    ----------
    sol : Solution
        Quasi-stationary FE solution on a disk centred at the origin with an absorbing
        boundary (the simulators' disk is absorbing too, with Fleming–Viot
        re-insertion, so both describe the same quasi-stationary state).
    dts : sequence of float
        Euler–Maruyama time steps (at least two, for the dt → 0 extrapolation).
    etas : sequence of float, "auto" or None
        SGD learning rates at fixed Δ_S = ησ (σ = Δ_S/η).  "auto": (0.04, 0.02, 0.01)
        when ``sol`` uses the SGD diffusion model, none otherwise.  Only the SGD model
        has an SGD counterpart.
    n_walkers : int
        Walkers per run.
    t_burn : float, optional
        Burn-in time (FPE time units) from the initial condition, for the first run
        of each family.  Default: 10 × the slowest relaxation time of the FE operator
        that the start can excite (see :func:`relaxation_times`; needs ``spectrum``).
    t_warm : float, optional
        Burn-in of a chained run, which starts from the final positions of the
        previous (larger-step) run.  Default 5 × the same relaxation time.
    t_sample : float
        Sampling time after burn-in, per run.
    seed : int or numpy.random.SeedSequence
        Root seed; run i uses the i-th spawned child (EM runs first, in the order of
        ``dts``, then SGD), so every run has its own, independent random stream.
    x0 : optional
        Initial condition of the first run of each family (see the simulators);
        default the simulators' narrow Gaussian at the origin.
    chain : bool
        Start each further run of a family from the previous run's final positions.
    coarse : Solution, optional
        The same problem on a coarser mesh: |sol − coarse| is used as the FE error of
        each scalar (conservative for a converging discretisation).
    marginal_bins : int
        Bins of the x-marginal histogram over [−R, R].
    current_bins : int or (int, int)
        Bins of the 2-D histogram over [−R, R]² in which J is compared.
    current_sub : int
        FE J is averaged over current_sub² points per bin.
    j_threshold : float
        J is compared in the bins where |J_FE| > j_threshold × SE_MC (per component).
    frame_dt : float
        Spacing (time units) of the recorded frames used for ⟨|x|⟩, the marginal's
        bin-bin correlation and the stationarity check.
    sample_every, block_size, workers
        Passed to the simulators (``block_size`` sets the independent groups behind
        every error bar: use ≥ 16 blocks).
    spectrum : bool or dict
        Compute :func:`relaxation_times` (a few seconds; needed for the default burn-in),
        or pass its result computed elsewhere (e.g. on a coarser mesh of the same
        problem).
    label : str, optional
        Name of the case in tables and figures.
    verbose : bool
        Print one line per run.

    Returns
    -------
    CrossCheck
    """
    t_start = time.perf_counter()
    if not isinstance(sol, Solution):
        raise TypeError(f"sol: expected a fpsolve Solution, got {type(sol).__name__}")
    if sol.boundary != "absorbing":
        raise ValueError(f"sol: the simulators have absorbing disks or free space, no "
                         f"reflecting wall; solve with boundary='absorbing' (got "
                         f"{sol.boundary!r})")
    R = sol.mesh.radius
    if R is None or not np.allclose(sol.mesh.center, 0.0):
        raise ValueError("sol: the Monte Carlo disk is centred at the origin; the mesh must "
                         "be a disk centred at (0, 0) (disk_mesh(radius) or load_mesh with "
                         "radius)")
    if sol.landscape is None:
        raise ValueError("sol: needs a landscape (the simulators take a loss L)")
    if coarse is not None and not isinstance(coarse, Solution):
        raise TypeError(f"coarse: expected a fpsolve Solution or None, got "
                        f"{type(coarse).__name__}")
    dts = _positive_floats("dts", dts, 2)
    D = sol.diffusion
    is_sgd = isinstance(D, _diffusion.SGD)
    if isinstance(etas, str):
        if etas != "auto":
            raise ValueError(f"etas: expected 'auto', None or a sequence of learning rates, "
                             f"got {etas!r}")
        etas = (0.04, 0.02, 0.01) if is_sgd and sol.drift is None else ()
    elif etas is None:
        etas = ()
    else:
        etas = _positive_floats("etas", etas, 0)
        if etas and not is_sgd:
            raise ValueError(f"etas: SGD runs need the SGD diffusion model "
                             f"(fpsolve.diffusion.sgd), sol uses {D.kind!r}")
        if etas and sol.drift is not None:
            raise ValueError("etas: SGD runs cannot include the user drift of sol")
    if is_sgd and etas:
        DL = D.landscape
        if not (DL is sol.landscape or (type(DL) is type(sol.landscape)
                                        and DL.params == sol.landscape.params)):
            raise ValueError("etas: the SGD noise is built on another landscape than sol's; "
                             "SGD runs would simulate a different model")
    n_walkers = _count("n_walkers", n_walkers, 2)
    block_size = _count("block_size", block_size, 1)
    n_blocks = -(-n_walkers // block_size)
    if n_blocks < 4:
        raise ValueError(f"n_walkers: {n_walkers} walkers in blocks of {block_size} give "
                         f"{n_blocks} independent groups; error bars need at least 4")
    t_sample = _positive("t_sample", t_sample)
    marginal_bins = _count("marginal_bins", marginal_bins, 8)
    if isinstance(current_bins, (tuple, list)):
        if len(current_bins) != 2:
            raise ValueError(f"current_bins: expected an int or (nx, ny), got {current_bins!r}")
        cb = (_count("current_bins", current_bins[0], 2), _count("current_bins",
                                                                 current_bins[1], 2))
    else:
        cb = (_count("current_bins", current_bins, 2),) * 2
    current_sub = _count("current_sub", current_sub, 1)
    j_threshold = _positive("j_threshold", j_threshold)
    frame_dt = _positive("frame_dt", frame_dt)
    sample_every = _count("sample_every", sample_every, 1)
    if not isinstance(seed, np.random.SeedSequence):
        if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
            raise ValueError(f"seed: expected a non-negative integer or a SeedSequence, "
                             f"got {seed!r}")
        seed = np.random.SeedSequence(int(seed))
    notes = []

    if isinstance(spectrum, dict):
        missing = {"tau_slowest", "tau_even", "density_parity"} - set(spectrum)
        if missing:
            raise ValueError(f"spectrum: a dict must come from relaxation_times (missing "
                             f"{sorted(missing)})")
        spec = spectrum
    elif spectrum is True:
        spec = relaxation_times(sol)
    elif spectrum is False or spectrum is None:
        spec = None
    else:
        raise TypeError(f"spectrum: expected True, False or a relaxation_times dict, got "
                        f"{type(spectrum).__name__}")
    if t_burn is None or t_warm is None:
        if spec is None:
            raise ValueError("t_burn: give t_burn and t_warm, or spectrum=True to derive them "
                             "from the FE relaxation times")
        symmetric = x0 is None and spec["density_parity"] > 0.99
        tau = spec["tau_even"] if symmetric and math.isfinite(spec["tau_even"]) \
            else spec["tau_slowest"]
        if t_burn is None:
            t_burn = 10.0 * tau
        if t_warm is None:
            t_warm = 5.0 * tau
    t_burn = _positive("t_burn", t_burn)
    t_warm = _positive("t_warm", t_warm)

    medges = np.linspace(-R, R, marginal_bins + 1)
    cedges = (np.linspace(-R, R, cb[0] + 1), np.linspace(-R, R, cb[1] + 1))
    fe, fe_marg, fe_cur, curve, dens_grid, fnotes = _fe_reference(
        sol, coarse, medges, cedges, current_sub, 801)
    notes += fnotes
    fe["dofs"] = int(sol.P.size)
    fe["h"] = float(sol.mesh.h)
    fe["order"] = sol.order
    width = np.diff(medges)
    centres = 0.5 * (medges[1:] + medges[:-1])

    plan = [("em", h) for h in dts] + [("sgd", e) for e in etas]
    # children built explicitly (not seed.spawn, which advances the SeedSequence): the
    # same seed object always gives the same runs; the last child drives the analysis
    # (null distributions of the L1 test, mode error bars)
    children = [np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, i),
                                       pool_size=seed.pool_size) for i in range(len(plan) + 1)]
    rng = np.random.default_rng(children.pop())
    runs, last = [], {"em": None, "sgd": None}
    for (kind, step), child in zip(plan, children):
        start = last[kind] if chain else None
        tb = t_warm if start is not None else t_burn
        dt = step
        n_burn = _steps(tb, dt, sample_every)
        n_steps = n_burn + _steps(t_sample, dt, sample_every)
        rec = sample_every * max(1, int(round(frame_dt / (dt * sample_every))))
        common = dict(n_walkers=n_walkers, n_steps=n_steps, n_burn=n_burn,
                      sample_every=sample_every, seed=child, radius=R,
                      x0=start if start is not None else x0, bins=cb,
                      extent=(-R, R, -R, R), marginal_bins=marginal_bins,
                      block_size=block_size, workers=workers, record_every=rec)
        t0 = time.perf_counter()
        if kind == "em":
            mc = _mc.langevin(sol.landscape, D, dt=dt, drift=sol.drift, **common)
        else:
            mc = _mc.sgd(sol.landscape, eta=step, sigma=D.strength / step,
                         cross_diffusion=D.cross_diffusion, **common)
        elapsed = time.perf_counter() - t0
        run = _measure(mc, kind, step, tb, block_size, medges, width, centres, fe, fe_marg,
                       fe_cur, j_threshold, rng)
        run["seconds"] = elapsed
        run["seed_spawn_key"] = list(child.spawn_key)
        run["started_from"] = "previous run" if start is not None else "x0"
        runs.append(run)
        if mc.diverged:
            notes.append(f"{kind} step {step:g}: {mc.diverged} walkers diverged")
        # the next run of the family starts here; walkers lost to divergence are
        # replaced by copies of survivors (any survivor is a sample of the same state)
        pos = mc.positions
        bad = ~np.all(np.isfinite(pos), axis=1)
        if bad.any():
            good = np.flatnonzero(~bad)
            pos = pos.copy()
            pos[bad] = pos[rng.choice(good, bad.sum())]
        last[kind] = pos
        del mc
        if verbose:
            print(f"  {kind} {step:g}: {n_steps} steps (burn {n_burn}), {elapsed:.1f}s; "
                  f"<x^2> = {run['x2'][0]:.5g} ± {run['x2'][1]:.2g}, "
                  f"<y^2> = {run['y2'][0]:.5g} ± {run['y2'][1]:.2g}, "
                  f"exits {run['exits']}", flush=True)

    em_runs = [r for r in runs if r["kind"] == "em"]
    sgd_runs = [r for r in runs if r["kind"] == "sgd"]
    em0, em_arrays = _extrapolated(em_runs, fe, fe_marg, fe_cur, width, j_threshold, rng,
                                   centres, escape=True)
    sgd0 = None
    if len(sgd_runs) >= 2:
        sgd0, _ = _extrapolated(sgd_runs, fe, fe_marg, fe_cur, width, j_threshold, rng,
                                centres, escape=False)
    agreement = _agreement(fe, em0)
    for q, e in (("x2", "<x^2>"), ("y2", "<y^2>"), ("absx", "<|x|>"), ("mode", "mode |x|")):
        if em0[q]["p_value"] is not None and em0[q]["p_value"] < P_LIMIT:
            notes.append(f"{e}: the straight line in dt does not describe the EM values "
                         f"(fit p = {em0[q]['p_value']:.2g}); the dt → 0 value is suspect")
    drifts = [(r["kind"], r["step"], k, z) for r in runs for k, z in r["stationarity"].items()
              if z is not None and math.isfinite(z) and abs(z) > Z_LIMIT]
    for kind, step, k, z in drifts:
        notes.append(f"{kind} step {step:g}: {k} differs between the halves of the sampling "
                     f"window by {z:.1f} SE (not stationary? lengthen the burn-in)")
    config = {"dts": list(dts), "etas": list(etas), "n_walkers": n_walkers,
              "block_size": block_size, "n_blocks": n_blocks, "t_burn": t_burn,
              "t_warm": t_warm, "t_sample": t_sample, "chain": chain,
              "sample_every": sample_every, "frame_dt": frame_dt,
              "marginal_bins": marginal_bins, "current_bins": list(cb),
              "current_sub": current_sub, "j_threshold": j_threshold, "radius": R,
              "seed_entropy": seed.entropy, "seed_spawn_key": list(seed.spawn_key),
              "diffusion": D.kind, "diffusion_params": getattr(D, "params", {}),
              "strength": D.strength, "landscape": sol.landscape.kind,
              "landscape_params": sol.landscape.params,
              "seconds": time.perf_counter() - t_start}
    arrays = {"marginal_edges": medges, "current_edges": cedges, "fe_marginal": fe_marg,
              "fe_current": fe_cur, "fe_marginal_curve": curve, "fe_density_grid": dens_grid,
              **em_arrays}
    if label is None:
        label = f"{D.kind} strength {D.strength:g}"
        if is_sgd:
            label = f"Δ_S = {D.strength:g}, {'with' if D.cross_diffusion else 'without'} " \
                    f"cross-diffusion"
    return CrossCheck(label=label, fe=fe, runs=runs, em0=em0, sgd0=sgd0, agreement=agreement,
                      spectrum=spec, config=config, notes=notes, arrays=arrays)


def _measure(mc, kind, step, t_burn, block_size, medges, width, centres, fe, fe_marg, fe_cur,
             j_threshold, rng):
    """Everything one run contributes, with standard errors."""
    m = mc.moments()
    mean, mse = m["mean"], m["mean_se"]

    def raw(i):   # ⟨θ_i²⟩ = Var + mean²; the mean term's error is added linearly-propagated
        v = m["cov"][i, i] + mean[i] ** 2
        s = math.hypot(m["cov_se"][i, i], 2 * abs(mean[i]) * mse[i])
        return float(v), float(s)

    fr = _Frames(mc, block_size, medges)
    P, xe, ye = mc.density
    counts = P * np.diff(xe)[0] * np.diff(ye)[0] * mc.n_samples
    _, marg, marg_se = mc.marginal("x", return_se=True)
    cov = np.outer(marg_se, marg_se) * fr.correlation()
    mode = _ModeEstimator(centres)
    modes = mode(marg + _gaussian_draws(cov, 400, rng))
    run = {"kind": kind, "step": step, "dt": mc.dt, "n_steps": mc.n_steps, "n_burn": mc.n_burn,
           "t_burn": t_burn, "t_sample": (mc.n_steps - mc.n_burn) * mc.dt,
           "n_walkers": mc.n_walkers, "n_blocks": mc.n_blocks, "backend": mc.backend,
           "mean": [[float(mean[i]), float(mse[i])] for i in range(2)],
           "x2": raw(0), "y2": raw(1), "absx": fr.mean("absx"),
           "mode": (mode(marg), float(np.std(modes))),
           "marginal": _l1_test(marg - fe_marg, cov, width, rng),
           "current": _current_test(mc.current, mc.current_se, fe_cur, j_threshold, counts,
                                    mc.n_blocks, rng),
           "exits": int(mc.exits), "walker_time": float(mc.walker_time),
           "escape_rate": float(mc.escape_rate), "escape_rate_se": float(mc.escape_rate_se),
           "diverged": int(mc.diverged),
           "stationarity": {k: fr.drift(k) for k in ("x2", "y2", "absx")},
           "frames": fr.nf,
           "_marginal": marg, "_marginal_se": marg_se, "_marginal_cov": cov,
           "_current": mc.current, "_current_se": mc.current_se, "_counts": counts}
    return run


def _ex_dict(ex: Extrapolation):
    return {"value": ex.value, "se": ex.se, "slope": ex.slope, "slope_se": ex.slope_se,
            "chi2": ex.chi2, "dof": ex.dof,
            "p_value": ex.p_value if ex.dof > 0 else None}


def _extrapolated(runs, fe, fe_marg, fe_cur, width, j_threshold, rng, centres, escape):
    """The runs' values extrapolated linearly in the step to 0."""
    h = [r["step"] for r in runs]
    out = {}
    for k in ("x2", "y2", "absx", "mode"):
        v = np.array([r[k][0] for r in runs])
        s = np.array([r[k][1] for r in runs])
        # equal weights: 1/se² weights would correlate with the values (a variance
        # estimate and its standard error rise together) and bias the intercept low
        out[k] = _ex_dict(extrapolate(h, v, s, weighted=False))
    # marginal: the same (equal-weight) coefficients for every bin, so the covariance of
    # the extrapolated histogram is Σ_k c_k² C_k (the runs are independent)
    ex = extrapolate(h, np.array([r["_marginal"] for r in runs]),
                     np.array([r["_marginal_se"] for r in runs]), weighted=False)
    c = ex.weights[:, 0]
    m0 = np.asarray(ex.value)
    C0 = sum(ck * ck * r["_marginal_cov"] for ck, r in zip(c, runs))
    out["marginal"] = _l1_test(m0 - fe_marg, C0, width, rng)
    ej = extrapolate(h, np.array([r["_current"] for r in runs]),
                     np.array([r["_current_se"] for r in runs]), weighted=False)
    J0, J0se = np.asarray(ej.value), np.asarray(ej.se)
    counts = np.min([r["_counts"] for r in runs], axis=0)
    out["current"] = _current_test(J0, J0se, fe_cur, j_threshold, counts,
                                   min(r["n_blocks"] for r in runs), rng)
    out["weights"] = c.tolist()
    if escape:
        out["escape_rate"] = _escape(runs, fe)
    arrays = {"em0_marginal": m0, "em0_marginal_se": np.sqrt(np.diag(C0)),
              "em0_current": J0, "em0_current_se": J0se, "em0_current_counts": counts}
    return out, arrays


def _escape(runs, fe):
    """Escape rate at dt → 0: ln μ linear in √dt when every run saw enough exits, else
    the runs pooled into one Poisson count against the FE expectation μ_FE × walker time."""
    exits = np.array([r["exits"] for r in runs])
    if np.all(exits >= _MIN_EXITS):
        ex = extrapolate([r["step"] for r in runs], [r["escape_rate"] for r in runs],
                         [r["escape_rate_se"] for r in runs], power=0.5, log=True)
        d = _ex_dict(ex)
        d["model"] = "ln(mu) linear in sqrt(dt)"
        return d
    K, W = int(exits.sum()), float(sum(r["walker_time"] for r in runs))
    lam = fe["escape_rate"] * W
    # two-sided Poisson p-value of K exits given the FE expectation
    p = min(1.0, 2 * min(stats.poisson.cdf(K, lam), stats.poisson.sf(K - 1, lam))) \
        if lam > 0 else (1.0 if K == 0 else 0.0)
    return {"pooled": True, "exits": K, "walker_time": W, "expected": lam,
            "value": K / W, "upper95": stats.chi2.ppf(0.95, 2 * K + 2) / (2 * W),
            "p_value": float(p)}


def _agreement(fe, em0):
    out = {}
    names = {"x2": "<x^2>", "y2": "<y^2>", "absx": "<|x|>", "mode": "mode |x|"}
    for k, q in names.items():
        ref = fe["mode_binned"] if k == "mode" else fe[k]
        err = fe["error"]["mode_binned" if k == "mode" else k]
        e = em0[k]
        sd = math.hypot(e["se"], err)
        z = (e["value"] - ref) / sd if sd > 0 else float("nan")
        out[q] = {"ok": bool(abs(z) <= Z_LIMIT) if math.isfinite(z) else None, "z": z,
                  "statistic_text": f"z = {z:+.2f}",
                  "criterion": f"|MC(dt→0) − FE| ≤ {Z_LIMIT:g} √(SE² + err_FE²)"}
    mg = em0["marginal"]
    out["marginal L1"] = {"ok": bool(mg["p_value"] >= P_LIMIT), "p_value": mg["p_value"],
                          "statistic_text": f"L1/noise = {mg['l1'] / mg['noise']:.2f}, "
                                            f"p = {mg['p_value']:.2g}",
                          "criterion": f"P(L1 from MC noise alone ≥ observed) ≥ {P_LIMIT:g}"}
    cu = em0["current"]
    ok = None if cu["n"] == 0 else bool(cu["p_value"] >= P_LIMIT)
    out["J chi2/bin"] = {"ok": ok, "p_value": cu["p_value"],
                         "statistic_text": (f"p = {cu['p_value']:.2g}" if cu["n"]
                                            else "no significant bins"),
                         "criterion": f"χ² p-value ≥ {P_LIMIT:g} over the significant bins"}
    if cu["n"]:
        z = (cu["scale"] - 1.0) / cu["scale_se"]
        out["J scale"] = {"ok": bool(abs(z) <= Z_LIMIT), "z": z,
                          "statistic_text": f"z = {z:+.2f}",
                          "criterion": f"|scale − 1| ≤ {Z_LIMIT:g} SE"}
    else:
        out["J scale"] = {"ok": None, "statistic_text": "no significant bins",
                          "criterion": "needs significant bins"}
    es = em0["escape_rate"]
    if es.get("pooled"):
        if es["expected"] < 3 and es["exits"] < 3:
            out["escape rate"] = {
                "ok": None, "p_value": es["p_value"],
                "statistic_text": f"unobservable (FE μ × walker time = {es['expected']:.2g})",
                "criterion": "needs an expected number of exits ≳ 3"}
        else:
            out["escape rate"] = {"ok": bool(es["p_value"] >= P_LIMIT),
                                  "p_value": es["p_value"],
                                  "statistic_text": f"Poisson p = {es['p_value']:.2g}",
                                  "criterion": f"Poisson p-value ≥ {P_LIMIT:g}"}
    else:
        err = fe["error"]["escape_rate"]
        sd = math.hypot(es["se"], err)
        z = (es["value"] - fe["escape_rate"]) / sd if sd > 0 else float("nan")
        out["escape rate"] = {"ok": bool(abs(z) <= Z_LIMIT) if math.isfinite(z) else None,
                              "z": z, "statistic_text": f"z = {z:+.2f}",
                              "criterion": f"|MC(dt→0) − FE| ≤ {Z_LIMIT:g} √(SE² + err_FE²)"}
    return out
