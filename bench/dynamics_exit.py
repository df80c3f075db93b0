"""Survival S(t) and mean exit times of the paper landscape: FE against Monte Carlo exit
times extrapolated to EM step dt → 0 (docs/dynamics.md).

Euler–Maruyama looks at the circle only at the steps, so it misses excursions beyond it
in between and its walkers exit late by O(√dt) (the effective boundary moves out by
≈ 0.5826·σ_n·√dt, Gobet 2000).  The Monte Carlo is therefore run at several step sizes
with independent seeds and every observable is extrapolated to dt → 0 by a weighted
straight line in √dt (``fp.compare.extrapolate(..., power=0.5)``) through the FIT smallest
step sizes.  The error bar of the limit has a statistical part (the fit's propagated
standard error) and a model part: how far the limit moves when the largest of those step
sizes is left out (the line through the FIT − 1 smallest), i.e. what curvature in √dt
at the resolution of the data can do.  z = (MC(dt → 0) − FE) / √(SE² + model² + err_FE²),
err_FE the change of the FE value between two meshes.

Runs are cached in bench/results/dynamics_mc_exit_runs.json by (Δ_S, dt, walkers, seed),
so that adding a step size runs only that one.

Run through ``python bench/dynamics_accuracy.py mc_exit``.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np

import fpsolve as fp
from fpsolve.compare import extrapolate
from fpsolve.fe.dynamics import evolve_problem
from fpsolve.fe.mfpt import mfpt_problem

from dynamics_accuracy import RAW, _put, _save

L = fp.landscapes.paper()
G0_MEAN, G0_COV = [0.0, 0.0], [[0.01, 0.0], [0.0, 0.001]]
CHUNK = 10_000                   # walkers per MC call (bounds the recorded trajectories)
N_REC = 800                      # records per run: exit times to t_end/800
FIT = 4                          # the line in √dt goes through this many smallest steps
RUNS = os.path.join(os.path.dirname(RAW), "dynamics_mc_exit_runs.json")


def exit_sample(ds, dt, t_end, n, seed, out_times):
    """Exit times (inf for survivors at t_end) and the survivor fractions at ``out_times``
    of ``n`` EM walkers from the initial Gaussian, removed at the circle of radius 2.

    A walker's exit time is the midpoint of the record interval in which it vanished;
    independent chunks of walkers use the children of ``SeedSequence([seed, ...])``.
    """
    every = t_end / N_REC
    rec = max(10, int(round(every / dt / 10)) * 10)     # a multiple of sample_every
    steps = int(np.ceil(t_end / dt / rec)) * rec
    tau, alive_at = [], []
    for k, ss in enumerate(np.random.SeedSequence([seed, int(round(1e9 * dt))]).spawn(
            int(np.ceil(n / CHUNK)))):
        m = min(CHUNK, n - k * CHUNK)
        x0 = np.random.default_rng(ss.spawn(1)[0]).multivariate_normal(G0_MEAN, G0_COV, m)
        mc = fp.montecarlo.langevin(L, fp.diffusion.sgd(L, ds), dt=dt, n_walkers=m,
                                    n_steps=steps, n_burn=0, sample_every=10, seed=ss,
                                    radius=2.0, x0=x0, reinsert=False, record_every=rec)
        rt, alive = mc.record_times, np.isfinite(mc.trajectories[:, :, 0])
        last = alive.sum(axis=0)                       # records before the exit
        gone = last < len(rt)
        t_exit = rt[np.minimum(last, len(rt) - 1)] - 0.5 * (rt[1] - rt[0])
        tau.append(np.where(gone, t_exit, np.inf))
        alive_at.append([alive[int(np.argmin(np.abs(rt - t)))] for t in out_times])
    return np.concatenate(tau), np.concatenate(alive_at, axis=1).mean(axis=1)


def _fe(ds, h, times, tol=1e-7):
    """FE E_G[T(θ₀)] = ∫T G dA (G the initial Gaussian), 1/μ and S(t) on P3, mesh h."""
    prob = fp.Problem(L, fp.diffusion.sgd(L, ds), fp.disk_mesh(2.0, h), "absorbing", 3)
    T = mfpt_problem(prob)
    x, y = (np.asarray(c) for c in prob.basis.global_coordinates())
    Tq = np.asarray(prob.basis.interpolate(T.T))
    mean_T = float(np.sum(Tq * fp.gaussian(G0_MEAN, G0_COV)(x, y) * np.asarray(prob.basis.dx)))
    ev = evolve_problem(prob, fp.gaussian(G0_MEAN, G0_COV), [0.0] + list(times), tol=tol)
    return {"h": h, "dofs": int(prob.dofs), "mean_T": mean_T, "inv_mu": 1 / T.escape_rate,
            "S": ev.mass[1:].tolist()}


def _limit(dts, y, se):
    """MC value at dt → 0: the √dt line through the FIT smallest steps, its SE, the model
    part (change when the largest of them is left out) and the fit's p-value."""
    k = np.argsort(dts)[:FIT]
    dts, y, se = (np.asarray(v, dtype=float)[k] for v in (dts, y, se))
    ex = extrapolate(dts, y, se, power=0.5)
    short = extrapolate(dts[:-1], y[:-1], se[:-1], power=0.5)
    return {"value": float(ex.value), "se": float(ex.se), "p": float(ex.p_value),
            "model": abs(float(short.value - ex.value)), "slope": float(ex.slope),
            "dts": dts.tolist()}


def _cached_run(ds, dt, t_end, n, seed, times, inv_mu):
    """One MC run (from the cache file if it was made before with the same settings)."""
    key = f"{ds}:{dt}:{t_end}:{n}:{seed}:{times}"
    cache = json.load(open(RUNS)) if os.path.exists(RUNS) else {}
    if key in cache:
        return cache[key]
    t0 = time.perf_counter()
    tau, S = exit_sample(ds, dt, t_end, n, seed, times)
    gone = np.isfinite(tau)
    cens = np.where(gone, tau, t_end)
    run = {"dt": dt, "mean_T": float(cens.mean() + (1 - gone.mean()) * inv_mu),
           "se_T": float(cens.std(ddof=1) / np.sqrt(n)), "S": S.tolist(),
           "se_S": np.sqrt(S * (1 - S) / n).tolist(), "exited": float(gone.mean()),
           "wall_s": time.perf_counter() - t0, "load": os.getloadavg()[0]}
    cache[key] = run
    os.makedirs(os.path.dirname(RUNS), exist_ok=True)
    with open(RUNS + ".tmp", "w") as f:
        json.dump(cache, f, indent=1)
    os.replace(RUNS + ".tmp", RUNS)
    return run


CASES = ((0.05, 40.0, (4e-3, 2e-3, 1e-3, 5e-4, 2.5e-4, 1.25e-4, 6.25e-5), 40_000),
         (0.03, 300.0, (4e-3, 2e-3, 1e-3, 5e-4, 2.5e-4, 1.25e-4), 20_000))


def mc_exit(seed=11, cases=CASES, meshes=(0.1, 0.08)):
    """S(t) and E_G[T] of the FE against the MC extrapolated to dt → 0; ``cases`` =
    (Δ_S, t_end, EM steps, walkers)."""
    data = []
    for ds, t_end, dts, n in cases:
        times = [t_end / 40, t_end / 10, t_end / 4, t_end / 2]
        fe = [_fe(ds, h, times) for h in meshes]
        runs = []
        for dt in dts:
            # censored at t_end: the few survivors add S(t_end)/μ (FE μ)
            runs.append(_cached_run(ds, dt, t_end, n, seed, times, fe[-1]["inv_mu"]))
            print(f"Δ_S = {ds}, dt = {dt:g}: {runs[-1]}", flush=True)
        lim_T = _limit(dts, [r["mean_T"] for r in runs], [r["se_T"] for r in runs])
        lim_S = [_limit(dts, [r["S"][i] for r in runs], [r["se_S"][i] for r in runs])
                 for i in range(len(times))]
        data.append({"delta_s": ds, "t_end": t_end, "n": n, "times": times, "fe": fe, "runs": runs,
                     "limit_T": lim_T, "limit_S": lim_S})
    _save("mc_exit", {"seed": seed, "cases": data})
    render_mc_exit(seed, data)


def _zrow(label, fe_vals, runs_vals, lim):
    """One table row: FE (err_FE), MC per dt, MC at dt → 0, z."""
    err = abs(fe_vals[-1] - fe_vals[0])
    tot = np.sqrt(lim["se"] ** 2 + lim["model"] ** 2 + err ** 2)
    z = (lim["value"] - fe_vals[-1]) / tot
    cells = " | ".join(runs_vals)
    return (f"| {label} | {fe_vals[-1]:.5g} ± {err:.1g} | {cells} | {lim['value']:.5g} ± "
            f"{lim['se']:.2g} ± {lim['model']:.2g} (p = {lim['p']:.2f}) | {z:+.2f} |"), z


def render_mc_exit(seed, data):
    """The z-score tables (one per Δ_S) of E_G[T] and S(t)."""
    parts = []
    for c in data:
        fe, runs = c["fe"], c["runs"]
        head = ("| observable | FE ± err_FE | " + " | ".join(f"EM dt = {r['dt']:g}" for r in runs)
                + " | MC dt → 0 ± SE ± model (fit p) | z |\n|---" + "|---" * (len(runs) + 3) + "|")
        rows, zc = [], []
        row, z = _zrow("E_G[T]", [f["mean_T"] for f in fe],
                       [f"{r['mean_T']:.4g} ± {r['se_T']:.2g}" for r in runs], c["limit_T"])
        rows.append(row)
        zc.append(z)
        for i, t in enumerate(c["times"]):
            row, z = _zrow(f"S({t:g})", [f["S"][i] for f in fe],
                           [f"{r['S'][i]:.4f} ± {r['se_S'][i]:.4f}" for r in runs],
                           c["limit_S"][i])
            rows.append(row)
            zc.append(z)
        walls = ", ".join(f"{r['wall_s']:.0f}" for r in runs)
        parts.append(f"**Δ_S = {c['delta_s']}** ({c['n']} walkers per step size; 1/μ = "
                     f"{fe[-1]['inv_mu']:.4g}; FE P3 h = "
                     f"{fe[-1]['h']} ({fe[-1]['dofs']} dofs), err_FE = change from h = "
                     f"{fe[0]['h']}; exited by t = {c['t_end']:g}: "
                     f"{min(r['exited'] for r in c['runs']) * 100:.2f} % or more; MC wall s per "
                     f"step size: {walls}; largest |z| {np.max(np.abs(zc)):.2f})\n\n" + head
                     + "\n" + "\n".join(rows))
    _put("mc_exit", "Walkers from N(0, diag(0.01, 0.001)), independent "
         f"seeds per step size (root {seed}); E_G[T] is the mean exit time averaged over the "
         f"initial Gaussian (FE: ∫T G dA). MC cells: value ± SE. Limit: the line in √dt "
         f"through the {FIT} smallest step sizes.\n\n" + "\n\n".join(parts))
