"""Dynamics of the paper landscape (docs/dynamics.md): relaxation time across the
transition, spectra with and without cross-diffusion, and transients, survival and mean
exit times against Monte Carlo (``fp.montecarlo.langevin``) ensembles.

Run through ``python bench/dynamics_accuracy.py relaxation mc_transient mc_exit`` (mc_exit:
bench/dynamics_exit.py).
"""
from __future__ import annotations

import time

import numpy as np

import fpsolve as fp
from fpsolve.fe.dynamics import evolve_problem

from dynamics_accuracy import FIG, _put, _save
from dynamics_exit import mc_exit

L = fp.landscapes.paper()
G0_MEAN, G0_COV = [0.0, 0.0], [[0.01, 0.0], [0.0, 0.001]]
DELTA_STAR = 0.0106          # 2-D transition (docs/transition.md)


def relaxation():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = [0.004, 0.006, 0.008, 0.009, 0.010, 0.0106, 0.011, 0.012, 0.014, 0.016, 0.02]
    mesh = fp.disk_mesh(2.0, 0.08)
    data = {}
    for cross in (True, False):
        prob = fp.Problem(L, fp.diffusion.sgd(L, 0.01, cross_diffusion=cross), mesh,
                          "absorbing", 3)
        data[cross] = [prob.spectrum(6, s) for s in grid]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.6))
    for cross, style in ((True, "o-"), (False, "s--")):
        lab = "D = Δ_S H²" if cross else "D12 = 0"
        ax[0].semilogy(grid, [s.relaxation_time for s in data[cross]], style, label=lab)
        ax[1].plot(grid, [s.rates[1].real for s in data[cross]], style, label=f"λ₂, {lab}")
        ax[1].plot(grid, [s.rates[2].real for s in data[cross]], style, alpha=0.4,
                   label=f"λ₃, {lab}")
    for a in ax:
        a.axvline(DELTA_STAR, color="k", lw=0.8, ls=":")
        a.set_xlabel("Δ_S")
        a.legend(fontsize=7)
    ax[0].set_ylabel("relaxation time 1/Re(λ₂ − λ₁)")
    ax[1].set_ylabel("decay rate")
    fig.tight_layout()
    fig.savefig(f"{FIG}/dynamics_relaxation.png", dpi=130)
    rows = []
    for i, s in enumerate(grid):
        a, b = data[True][i], data[False][i]
        rows.append(f"| {s:g} | {a.relaxation_time:.4g} | {_fmt(a.rates)} | "
                    f"{b.relaxation_time:.4g} | {_fmt(b.rates)} |")
    _save("relaxation", {"grid": grid, "dofs": prob.dofs,
                         **{str(c): [s.summary() for s in data[c]] for c in data}})
    head = ("| Δ_S | τ_relax (D12) | rates λ₁…λ₆ (D12) | τ_relax (D12 = 0) | "
            "rates λ₁…λ₆ (D12 = 0) |\n|---|---|---|---|---|")
    _put("relaxation", f"P3, h = 0.08 ({prob.dofs} dofs), absorbing disk of radius 2.\n\n"
         + head + "\n" + "\n".join(rows))


def _fmt(rates):
    return ", ".join(f"{z.real:.4g}{z.imag:+.2g}i" if abs(z.imag) > 1e-9 else f"{z.real:.4g}"
                     for z in rates)


def _initial(n, seed):
    return np.random.default_rng(seed).multivariate_normal(G0_MEAN, G0_COV, size=n)


def _ensemble(ds, dt, t_end, every, n, seed):
    """Walkers from the Gaussian, removed at the circle; positions every ``every`` time."""
    x0 = _initial(n, seed)
    steps = int(round(t_end / dt))
    rec = max(10, int(round(every / dt / 10)) * 10)     # a multiple of sample_every
    mc = fp.montecarlo.langevin(L, fp.diffusion.sgd(L, ds), dt=dt, n_walkers=n,
                                n_steps=steps, n_burn=0, sample_every=10, seed=seed,
                                radius=2.0, x0=x0, reinsert=False, record_every=rec)
    return x0, mc.record_times, mc.trajectories


OBS = {"<x²>": lambda x, y: x * x, "<y²>": lambda x, y: y * y,
       "<|x|>": lambda x, y: np.abs(x), "P(|x| > 0.5)": lambda x, y: (np.abs(x) > 0.5) * 1.0}


def mc_transient(ds=0.012, n=10000, seed=7):
    prob = fp.Problem(L, fp.diffusion.sgd(L, ds), fp.disk_mesh(2.0, 0.05), "absorbing", 3)
    times = [1.0, 5.0, 20.0]
    ev = evolve_problem(prob, fp.gaussian(G0_MEAN, G0_COV), [0.0] + times, tol=1e-7)
    rows, data = [], []
    for dt in (1e-3, 5e-4):
        t0 = time.perf_counter()
        _, rt, tr = _ensemble(ds, dt, times[-1], 1.0, n, seed)
        wall = time.perf_counter() - t0
        for t in times:
            k = int(np.argmin(np.abs(rt - t)))
            pos = tr[k][np.isfinite(tr[k][:, 0])]
            sol = ev.at(t)
            for name, f in OBS.items():
                v = f(pos[:, 0], pos[:, 1])
                mc, se = v.mean(), v.std(ddof=1) / np.sqrt(v.size)
                fe = sol.expectation(f)
                data.append({"dt": dt, "t": t, "obs": name, "fe": fe, "mc": mc, "se": se})
        data.append({"dt": dt, "wall_s": wall})
    info = {"ds": ds, "dofs": int(prob.dofs), "n": n, "seed": seed}
    _save("mc_transient", {"info": info, "rows": data})
    render_mc_transient(info, data)


def render_mc_transient(info, data):
    """The z-score table; z is left out where the MC sample has no spread (SE = 0)."""
    rows, zs = [], []
    for d in data:
        if "obs" not in d:
            continue
        z = (d["mc"] - d["fe"]) / d["se"] if d["se"] > 0 else None
        if z is not None:
            zs.append(abs(z))
        zt = f"{z:+.2f}" if z is not None else "— (SE = 0)"
        rows.append(f"| {d['dt']:g} | {d['t']:g} | {d['obs']} | {d['fe']:.5f} | "
                    f"{d['mc']:.5f} ± {d['se']:.5f} | {zt} |")
    zs = np.array(zs)
    head = "| EM dt | t | observable | FE | MC ± SE | z |\n|---|---|---|---|---|---|"
    _put("mc_transient", f"Δ_S = {info['ds']}, D = Δ_S H², FE P3 h = 0.05 ({info['dofs']} dofs), "
         f"tol 1e-7; MC {info['n']} walkers from the same Gaussian (seed {info['seed']}), "
         "removed at the circle (the statistics are those of the survivors, as ev.at(t)). "
         f"{np.mean(zs < 2) * 100:.0f} % of |z| < 2, max |z| = {zs.max():.2f}.\n\n"
         + head + "\n" + "\n".join(rows))


SECTIONS = {"relaxation": relaxation, "mc_transient": mc_transient, "mc_exit": mc_exit}
