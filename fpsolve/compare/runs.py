"""The Monte Carlo side: one run's measurements and the runs extrapolated to step → 0."""
from __future__ import annotations

import math
import time

import numpy as np
from scipy import stats

from ..stochastic import montecarlo as _mc
from .estimators import _current_test, _Frames, _gaussian_draws, _l1_test, _ModeEstimator
from .extrapolation import Extrapolation, extrapolate

# Fewest exits per EM run for a dt → 0 extrapolation of the escape rate; below it the
# runs are pooled into one Poisson count.
_MIN_EXITS = 50


def _steps(t, dt, k):
    return max(1, int(round(t / (dt * k)))) * k



def _simulate(sol, s, fe, fe_marg, fe_cur, notes):
    """Run the EM family (steps ``s.dts``) then the SGD family (``s.etas``) and measure
    each run.  Returns the runs and the analysis generator (the last seed child: null
    distributions of the L1 test, mode error bars), which continues to the extrapolation.

    Children are built explicitly (not ``seed.spawn``, which advances the SeedSequence):
    the same seed object always gives the same runs.
    """
    seed = s.seed
    plan = [("em", h) for h in s.dts] + [("sgd", e) for e in s.etas]
    children = [np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, i),
                                       pool_size=seed.pool_size) for i in range(len(plan) + 1)]
    rng = np.random.default_rng(children.pop())
    runs, last = [], {"em": None, "sgd": None}
    for (kind, step), child in zip(plan, children):
        start = last[kind] if s.chain else None
        tb = s.t_warm if start is not None else s.t_burn
        t0 = time.perf_counter()
        mc = _run(sol, s, kind, step, tb, child, start)
        elapsed = time.perf_counter() - t0
        run = _measure(mc, kind, step, tb, s.block_size, s.medges, s.width, s.centres, fe,
                       fe_marg, fe_cur, s.j_threshold, rng)
        run["seconds"] = elapsed
        run["seed_spawn_key"] = list(child.spawn_key)
        run["started_from"] = "previous run" if start is not None else "x0"
        runs.append(run)
        if mc.diverged:
            notes.append(f"{kind} step {step:g}: {mc.diverged} walkers diverged")
        last[kind] = _restart_positions(mc, rng)
        del mc
        if s.verbose:
            print(f"  {kind} {step:g}: {run['n_steps']} steps (burn {run['n_burn']}), "
                  f"{elapsed:.1f}s; <x^2> = {run['x2'][0]:.5g} ± {run['x2'][1]:.2g}, "
                  f"<y^2> = {run['y2'][0]:.5g} ± {run['y2'][1]:.2g}, "
                  f"exits {run['exits']}", flush=True)
    return runs, rng


def _run(sol, s, kind, step, t_burn, child, start):
    """One simulation: EM at dt = step or SGD at η = step (same Δ_S), from x0 or ``start``."""
    dt = step
    n_burn = _steps(t_burn, dt, s.sample_every)
    n_steps = n_burn + _steps(s.t_sample, dt, s.sample_every)
    rec = s.sample_every * max(1, int(round(s.frame_dt / (dt * s.sample_every))))
    R = s.R
    common = dict(n_walkers=s.n_walkers, n_steps=n_steps, n_burn=n_burn,
                  sample_every=s.sample_every, seed=child, radius=R,
                  x0=start if start is not None else s.x0, bins=s.cb,
                  extent=(-R, R, -R, R), marginal_bins=s.marginal_bins,
                  block_size=s.block_size, workers=s.workers, record_every=rec)
    if kind == "em":
        return _mc.langevin(sol.landscape, s.D, dt=dt, drift=sol.drift, **common)
    return _mc.sgd(sol.landscape, eta=step, sigma=s.D.strength / step,
                   cross_diffusion=s.D.cross_diffusion, **common)


def _restart_positions(mc, rng):
    """Final positions, the start of the family's next run; walkers lost to divergence
    are replaced by copies of survivors (any survivor is a sample of the same state)."""
    pos = mc.positions
    bad = ~np.all(np.isfinite(pos), axis=1)
    if bad.any():
        good = np.flatnonzero(~bad)
        pos = pos.copy()
        pos[bad] = pos[rng.choice(good, bad.sum())]
    return pos


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
