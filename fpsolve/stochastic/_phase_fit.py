"""Critical exponents α, β1, β2 of the I → II transition (SM Sec. II C, S43–S46) with
walker-bootstrap confidence intervals.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._args import as_float as _float, as_int as _int, err as _err
from ._phase_common import _landscape, _vector
from ._phase_grid import PhaseGrid, first_passage_steps
from ._phase_theory import critical_sigma

@dataclass
class ExponentFit:
    """Critical exponents at one learning rate (SM Sec. II C, S43–S46) with bootstrap CIs.

    Conventions of S46 (also docs/transition.md): with r = |σ − σ*|/σ*,

    * α  : F(x_ss) − F(0) ∝ r^α above σ*;
    * β1 : τ_s ∝ r^(−β1) **below** σ* (SM Sec. II C calls this one β2 ≈ 0.56);
    * β2 : τ_s ∝ r^(−β2) **above** σ* (SM Sec. II C calls this one β1 ≈ 0.48).

    Attributes
    ----------
    alpha, beta1, beta2 : float
        Least-squares slopes on log–log axes over the fit windows.
    sigma_star : float
        σ* used (given, or fitted with α).
    ci : dict
        ``name -> (lo, hi)`` percentile bootstrap interval at level ``level`` for
        ``alpha``, ``beta1``, ``beta2`` (and ``sigma_star`` when fitted).
    boot : dict
        ``name -> ndarray`` of bootstrap replicates.
    windows : dict
        ``name -> (r_lo, r_hi)`` fit windows in r.
    data : dict
        ``sigma``, ``F_gain``, ``tau_s``, ``tau_s_se`` and the boolean masks
        ``alpha``, ``beta1``, ``beta2`` of the points inside each window.
    """

    alpha: float
    beta1: float
    beta2: float
    sigma_star: float
    ci: dict
    boot: dict
    windows: dict
    data: dict
    level: float
    n_boot: int
    eta: float

    def __repr__(self):
        def f(k):
            lo, hi = self.ci.get(k, (np.nan, np.nan))
            return f"{k}={getattr(self, k):.3f} [{lo:.3f}, {hi:.3f}]"
        return (f"ExponentFit(eta={self.eta:g}, sigma*={self.sigma_star:.5g}, "
                + ", ".join(f(k) for k in ("alpha", "beta1", "beta2")) + ")")


def _slope(r, y, mask) -> float:
    """Least-squares slope of ln y against ln r over ``mask`` (NaN if < 3 usable points)."""
    m = mask & (y > 0) & np.isfinite(y) & (r > 0)
    if m.sum() < 3:
        return np.nan
    return float(np.polyfit(np.log(r[m]), np.log(y[m]), 1)[0])


def _alpha_profile(sigma, gain, sel, s_lo, s_hi):
    """σ* and α minimising the residual of ln gain = a + α ln(σ − σ*) over ``sel``."""
    from scipy.optimize import minimize_scalar
    s, g = sigma[sel], gain[sel]
    ok = (g > 0) & np.isfinite(g)
    s, g = s[ok], g[ok]
    if s.size < 4:
        return np.nan, np.nan
    lg = np.log(g)

    def rss(sstar):
        X = np.log(s - sstar)
        A = np.vstack([X, np.ones_like(X)]).T
        coef, res, *_ = np.linalg.lstsq(A, lg, rcond=None)
        return float(np.sum((A @ coef - lg) ** 2))

    hi = min(s_hi, s.min() * (1 - 1e-9))
    opt = minimize_scalar(rss, bounds=(s_lo, hi), method="bounded",
                          options={"xatol": 1e-9 * hi})
    sstar = float(opt.x)
    return sstar, float(np.polyfit(np.log(s - sstar), lg, 1)[0])


def fit_exponents(sigma, xbar, *, eta: float, sigma_star, ts=None, hits=None,
                  level_step: float | None = None, tol: float | None = None,
                  n_steps: int | None = None, landscape=None,
                  window_alpha=(0.05, 1.0), window_below=(0.05, 0.6),
                  window_above=(0.05, 1.0), sigma_star_bracket=(0.5, 1.0),
                  n_boot: int = 1000, level: float = 0.95, seed=0) -> ExponentFit:
    """Fit α, β1, β2 from per-walker data at one η, with walker-bootstrap intervals.

    Parameters
    ----------
    sigma : array (n,)
        Noise strengths of the sweep (increasing or not).
    xbar : sequence of n arrays
        Per point the time averages x̄_w of the surviving walkers (NaN entries are
        dropped); x_ss = ⟨|x̄_w|⟩.
    eta : float
        Learning rate (τ_s = η⟨t_s⟩).
    sigma_star : float or "fit"
        Critical noise strength; ``"fit"`` fits it together with α (least squares
        of ln[F(x_ss) − F(0)] = a + α ln(σ − σ*) over the points whose σ lies in
        ``window_alpha`` around the starting value :func:`critical_sigma`, σ*
        bounded by ``sigma_star_bracket`` × the smallest such σ).
    ts : sequence of n arrays, optional
        Per-walker first-passage steps (inf = censored); used when ``hits`` is None.
        Either one entry per entry of ``xbar`` (those where x̄ is NaN are dropped) or
        one per finite x̄.
    hits : sequence of n int arrays (n_walkers, n_levels), optional
        Ladder records (:func:`run_grid` with ``keep_hits``); t_s is then re-read at
        the resampled x_ss + ``tol`` in every bootstrap replicate.
    level_step, tol : float
        Ladder spacing and tolerance (required with ``hits``).
    n_steps : int, optional
        Run length: censored walkers count with t_s = n_steps (required if any
        t_s is infinite).
    landscape : PaperLandscape, optional
        For F(x) = λ(x)^(−1/2); default :func:`fig2_landscape`.
    window_alpha, window_below, window_above : (float, float)
        Fit windows in r = |σ − σ*|/σ* for α, β1 (below σ*) and β2 (above σ*).
    sigma_star_bracket : (float, float)
        Bounds of a fitted σ*, as fractions of the smallest σ in the α window.
    n_boot : int
        Bootstrap replicates (walkers resampled with replacement at every σ).
    level : float
        Confidence level of the percentile intervals.
    seed : int or None
        Seed of the bootstrap.

    Returns
    -------
    ExponentFit
    """
    fn = "fit_exponents"
    L = _landscape(fn, landscape)
    sig = _vector(fn, "sigma", sigma)
    eta = _float(fn, "eta", eta, positive=True)
    xs, hs, tss, level_step, tol = _walker_data(fn, sig.size, xbar, ts, hits, level_step, tol)
    cap, n_boot, level, fit_star, s0 = _options(fn, L, eta, n_steps, n_boot, level, sigma_star, (
        window_alpha, window_below, window_above, sigma_star_bracket))
    f = _Fitter(fn, L, sig, eta, xs, hs, tss, level_step, tol, cap, fit_star, s0,
                tuple(window_alpha), tuple(window_below), tuple(window_above),
                tuple(sigma_star_bracket))
    gain, tau = f.observe(None)
    (a, b1, b2, sstar), masks = f.exps(gain, tau)
    boot, ci = _bootstrap(f, xs, n_boot, level, seed)
    return ExponentFit(alpha=a, beta1=b1, beta2=b2, sigma_star=sstar, ci=ci, boot=boot,
                       windows={"alpha": tuple(window_alpha), "beta1": tuple(window_below),
                                "beta2": tuple(window_above)},
                       data={"sigma": sig, "F_gain": gain, "tau_s": tau,
                             "tau_s_se": f.tau_se(), "alpha": masks[0], "beta1": masks[1],
                             "beta2": masks[2]},
                       level=level, n_boot=n_boot, eta=eta)


def _options(fn, L, eta, n_steps, n_boot, level, sigma_star, windows):
    """Checked (cap, n_boot, level, fit σ*?, σ* or its starting value)."""
    cap = np.inf if n_steps is None else float(_int(fn, "n_steps", n_steps, 1))
    for name, w in zip(("window_alpha", "window_below", "window_above", "sigma_star_bracket"),
                       windows):
        w = tuple(w)
        if len(w) != 2 or not (0 < w[0] < w[1]):
            raise _err(fn, name, "(lo, hi) with 0 < lo < hi", w)
    n_boot = _int(fn, "n_boot", n_boot, 0)
    level = _float(fn, "level", level, positive=True)
    if level >= 1:
        raise _err(fn, "level", "in (0, 1)", level)
    fit_star = isinstance(sigma_star, str)
    if fit_star and sigma_star != "fit":
        raise _err(fn, "sigma_star", "a positive number or 'fit'", sigma_star)
    s0 = critical_sigma(eta, L) if fit_star else _float(fn, "sigma_star", sigma_star, positive=True)
    if fit_star and not np.isfinite(s0):
        raise _err(fn, "sigma_star", "a number (no finite-eta estimate at this eta)", sigma_star)
    return cap, n_boot, level, fit_star, s0


def _walker_data(fn, n, xbar, ts, hits, level_step, tol):
    """Checked per-point walker data: (x̄ arrays, ladders or None, t_s or None, ...)."""
    if len(xbar) != n:
        raise _err(fn, "xbar", f"a sequence of {n} arrays (one per sigma)", f"{len(xbar)} arrays")
    xs = [np.asarray(v, dtype=float) for v in xbar]
    keep = [np.isfinite(v) for v in xs]
    xs = [v[k] for v, k in zip(xs, keep)]
    if any(v.size < 2 for v in xs):
        raise _err(fn, "xbar", "at least 2 finite walkers per sigma", [v.size for v in xs])
    if hits is not None:
        if len(hits) != n:
            raise _err(fn, "hits", f"a sequence of {n} arrays", f"{len(hits)} arrays")
        if level_step is None or tol is None:
            raise ValueError(f"{fn}: level_step and tol are required with hits")
        level_step = _float(fn, "level_step", level_step, positive=True)
        tol = _float(fn, "tol", tol, nonneg=True)
        hs = [np.asarray(h) for h in hits]
        for h, v in zip(hs, xs):
            if h.ndim != 2 or h.shape[0] != v.size:
                raise _err(fn, "hits", "one (n_walkers, n_levels) array per sigma matching xbar",
                           h.shape)
        return xs, hs, None, level_step, tol
    if ts is None:
        raise ValueError(f"{fn}: give per-walker first-passage steps (ts) or ladders (hits)")
    if len(ts) != n:
        raise _err(fn, "ts", f"a sequence of {n} arrays", f"{len(ts)} arrays")
    tss = [np.asarray(t, dtype=float)[k] if np.size(t) == k.size else np.asarray(t, float)
           for t, k in zip(ts, keep)]
    if any(t.size != v.size for t, v in zip(tss, xs)):
        raise _err(fn, "ts", "one value per walker of xbar", [t.size for t in tss])
    if any(np.any(np.isnan(t)) for t in tss):
        raise _err(fn, "ts", "free of NaN (drop diverged walkers)", "NaN entries")
    return xs, None, tss, level_step, tol


def _bootstrap(f, xs, n_boot, level, seed):
    """(replicates, percentile intervals) of the walker bootstrap."""
    rng = np.random.default_rng(seed)
    reps = np.full((n_boot, 4), np.nan)
    for bi in range(n_boot):
        idx = [rng.integers(0, v.size, v.size) for v in xs]
        reps[bi] = f.exps(*f.observe(idx))[0]
    q = (0.5 * (1 - level), 0.5 * (1 + level))
    names = ("alpha", "beta1", "beta2", "sigma_star")
    boot = {k: reps[:, i] for i, k in enumerate(names)}
    ci = {}
    for k in names[:3] + (names[3:] if f.fit_star else ()):
        v = boot[k][np.isfinite(boot[k])]
        ci[k] = tuple(float(c) for c in np.quantile(v, q)) if v.size else (np.nan, np.nan)
    return boot, ci


class _Fitter:
    """Observables and exponents of one (resampled) set of walkers."""

    def __init__(self, fn, L, sig, eta, xs, hs, tss, level_step, tol, cap, fit_star, s0,
                 window_alpha, window_below, window_above, bracket):
        self.fn, self.L, self.sig, self.eta = fn, L, sig, eta
        self.xs, self.hs, self.tss, self.level_step, self.tol = xs, hs, tss, level_step, tol
        self.cap, self.fit_star, self.s0 = cap, fit_star, s0
        self.wa, self.wb, self.wc, self.bracket = window_alpha, window_below, window_above, bracket
        self.sel_alpha0 = (sig > s0 * (1 + window_alpha[0])) & (sig < s0 * (1 + window_alpha[1]))
        self.F0 = float(L.flatness(0.0))

    def _ts(self, k, sl, x_ss):
        if self.hs is not None:
            return first_passage_steps(self.hs[k][sl], self.level_step, x_ss + self.tol)
        return self.tss[k][sl]

    def observe(self, idx):
        """(F gain, τ_s) per point for walker index arrays ``idx`` (None: all walkers)."""
        n = self.sig.size
        gain = np.empty(n)
        tau = np.empty(n)
        for k in range(n):
            sl = slice(None) if idx is None else idx[k]
            x_ss = float(np.abs(self.xs[k][sl]).mean())
            gain[k] = float(self.L.flatness(x_ss)) - self.F0
            t = self._ts(k, sl, x_ss)
            if np.isinf(self.cap) and np.any(np.isinf(t)):
                raise ValueError(f"{self.fn}: censored walkers (t_s = inf) need n_steps")
            tau[k] = self.eta * float(np.minimum(t, self.cap).mean())
        return gain, tau

    def exps(self, gain, tau):
        """((α, β1, β2, σ*), window masks) of one set of observables."""
        sig, sel = self.sig, self.sel_alpha0
        wa, wb, wc = self.wa, self.wb, self.wc
        if self.fit_star:
            base = sig[sel].min() if sel.any() else self.s0
            sstar, a = _alpha_profile(sig, gain, sel, self.bracket[0] * base,
                                      self.bracket[1] * base)
        else:
            sstar = self.s0
        r = np.abs(sig - sstar) / sstar
        above, below = sig > sstar, sig < sstar
        m_a = above & (r >= wa[0]) & (r <= wa[1])
        m_b1 = below & (r >= wb[0]) & (r <= wb[1])
        m_b2 = above & (r >= wc[0]) & (r <= wc[1])
        if not self.fit_star:
            a = _slope(r, gain, m_a)
        return (a, -_slope(r, tau, m_b1), -_slope(r, tau, m_b2), sstar), (m_a, m_b1, m_b2)

    def tau_se(self):
        """Standard error of τ_s per point (all walkers)."""
        out = []
        for k, x in enumerate(self.xs):
            t = np.minimum(self._ts(k, slice(None), np.abs(x).mean()), self.cap)
            out.append(self.eta * np.std(t, ddof=1) / math.sqrt(x.size))
        return np.array(out)


def exponents(grid: PhaseGrid, eta: float | None = None, **kwargs) -> ExponentFit:
    """:func:`fit_exponents` on one row of a :class:`PhaseGrid`.

    The grid must have been run with ``keep_hits=True`` (t_s re-read at every
    resampled x_ss) or ``keep_walkers=True`` (t_s at the full-sample x_ss).
    Keyword arguments go to :func:`fit_exponents` (``sigma_star`` is required).

    Parameters
    ----------
    grid : PhaseGrid
    eta : float, optional
        Row whose η is closest to this (default: the only row).
    """
    fn = "exponents"
    if eta is None:
        if grid.eta.size != 1:
            raise _err(fn, "eta", f"given for a grid with {grid.eta.size} rows", eta)
        i = 0
    else:
        i = grid.row(_float(fn, "eta", eta, positive=True))
    if grid.walker_xbar is None:
        raise ValueError(f"{fn}: the grid has no per-walker data; run it with keep_walkers=True")
    live = ~np.isnan(grid.diverged[i]) & (grid.diverged[i] < 1)
    sig = grid.sigma[live]
    xb = [grid.walker_xbar[i, j] for j in np.flatnonzero(live)]
    kw = dict(eta=float(grid.eta[i]), n_steps=int(grid.n_steps[i]), landscape=grid.landscape)
    if grid.hits is not None:
        kw.update(hits=[grid.hits[i][j] for j in np.flatnonzero(live)],
                  level_step=grid.settings["level_step"], tol=grid.tol)
    else:
        k = grid.tols.index(grid.tol)
        kw["ts"] = [grid.walker_ts[k, i, j][np.isfinite(grid.walker_xbar[i, j])]
                    for j in np.flatnonzero(live)]
    kw.update(kwargs)
    return fit_exponents(sig, xb, **kw)
