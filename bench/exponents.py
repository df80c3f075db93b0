"""Figs. S2–S4 of Yang, Tang & Tu by Monte Carlo SGD, and the critical exponents at η = 0.04.

* figS2.png — the landscape of Fig. S1a (x* = x_F = 0): trajectories and τ_s(σ, η);
* figS3.png — V_x and V_y over (σ, η) (the Fig. 2 grid) with η = 0.037 cuts;
* figS4.png — α, β1, β2 at η = 0.04 (power-law fits, walker bootstrap, theory).

Writes the tables between the ``bench:exponents`` markers of docs/phase_diagram.md.
The S3 maps reuse bench/results/fig2_default.npz (run ``bench/fig2.py`` first; if the
file is missing the default grid is simulated here).

Usage::

    python bench/exponents.py            # ≈ 3–5 min on 2 shared cores (+ the Fig. 2 grid)
    python bench/exponents.py --quick    # small runs, few bootstrap replicates
    python bench/exponents.py --reuse    # re-fit and re-plot from bench/results/
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import fpsolve as fp
from fpsolve.stochastic import phase as ph

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fig2  # noqa: E402  (the Fig. 2 grid definition, cache and theory helpers)

ROOT, FIG, RESULTS = fig2.ROOT, fig2.FIG, fig2.RESULTS
ETA_FIT = 0.04
ETA_S3 = 0.037
S1A = dict(eps=0.001, lam0=8.0, lam1=2.0, lam2=0.0)       # Fig. S1a / S2: x* = x_F = 0
PAPER = {"sigma_star": 0.0105, "alpha": 0.85, "below": 0.56, "above": 0.48}
WINDOWS = {"alpha": (0.03, 1.0), "below": (0.03, 0.7), "above": (0.03, 1.0)}
TOLS = (0.01, 0.02, 0.05, 0.1)


def fit_sigmas(quick):
    s_star = ph.critical_sigma(ETA_FIT)
    r = np.geomspace(0.01, 1.0, 8 if quick else 17)
    return np.unique(np.round(np.concatenate([s_star * (1 - r[r < 0.95]), s_star * (1 + r),
                                              [s_star]]), 12))


def run_fit_sweep(quick, seed, workers, tty):
    """Dense σ sweep at η = 0.04 with the first-passage ladders (kept in memory only)."""
    return ph.run_grid(fit_sigmas(quick), [ETA_FIT], T=4000.0 if quick else 20000.0,
                       n_walkers=32 if quick else 256, tols=TOLS, seed=seed, workers=workers,
                       progress=tty, keep_walkers=True, keep_hits=True)


def theory_same_definition(L, sigma, eta, tol, x0):
    """Adiabatic F(x_ss) − F(0) and τ_s with the observable of the Monte Carlo."""
    F, tau = fig2.theory_cut(L, sigma, eta, tol, x0)
    return F - float(L.flatness(0.0)), tau


def fits_table(sweep, fits, theory_fit, theory_own, s_star):
    def ci(f, k):
        lo, hi = f.ci[k]
        return f"{getattr(f, k):.3f} [{lo:.3f}, {hi:.3f}]"

    rows = ["| exponent | paper SGD (Sec. II C) | MC, σ* = 0.0105, tol = 0.05 | adiabatic theory, "
            "same observable & window | theory, own asymptotic window | theory, asymptotic "
            "(S43, S45) |", "| --- | --- | --- | --- | --- | --- |"]
    main = fits[(0.05, "fixed", "main")]
    rows.append(f"| σ* | {PAPER['sigma_star']} | {s_star:.4f} (finite-η theory, fixed) | "
                f"{s_star:.4f} | Δ_S*/η = {theory_own['delta_star'] / ETA_FIT:.4f} | "
                f"−ε/(λ1η) = 0.0125 (with the finite-η factor 1 − ηλ0/2: 0.0105) |")
    rows.append(f"| α (F gain, above σ*) | {PAPER['alpha']} | {ci(main, 'alpha')} | "
                f"{theory_fit['alpha']:.3f} | {theory_own['alpha']:.3f} | 1 |")
    rows.append(f"| β1 (τ_s below σ*; S46 convention) | {PAPER['below']} (called β2 there) | "
                f"{ci(main, 'beta1')} | {theory_fit['beta1']:.3f} | {theory_own['beta1']:.3f} | 1/2 |")
    rows.append(f"| β2 (τ_s above σ*; S46 convention) | {PAPER['above']} (called β1 there) | "
                f"{ci(main, 'beta2')} | {theory_fit['beta2']:.3f} | {theory_own['beta2']:.3f} | "
                f"1/2 (S45 with κ, Δ frozen at 0) |")
    rows += ["", "Sensitivity (MC, 95 % bootstrap intervals over walkers; windows in "
             "r = |σ − σ*|/σ*):", "",
             "| variant | σ* | α | β1 (below) | β2 (above) |", "| --- | --- | --- | --- | --- |"]
    for (tol, star, win), f in fits.items():
        sst = (f"{f.sigma_star:.5f} [{f.ci['sigma_star'][0]:.5f}, {f.ci['sigma_star'][1]:.5f}]"
               if star == "fit" else f"{f.sigma_star:.4f}")
        wtxt = ", ".join(f"{k} {v[0]:g}–{v[1]:g}" for k, v in f.windows.items())
        rows.append(f"| tol = {tol:g}, σ* {star}, {win} ({wtxt}) | {sst} | {ci(f, 'alpha')} | "
                    f"{ci(f, 'beta1')} | {ci(f, 'beta2')} |")
    rows += ["", f"Sweep: {sweep.sigma.size} σ at η = {ETA_FIT:g}, "
             f"{sweep.settings['n_walkers']} walkers, T = {sweep.settings['T']:g} "
             f"({int(sweep.n_steps[0])} steps), max censored fraction "
             f"{np.nanmax(sweep.censored_tols):.3f}, max |x_drift| "
             f"{np.nanmax(np.abs(sweep.x_drift)):.1e}, {sweep.elapsed:.0f} s."]
    return "\n".join(rows)


# ---------------------------------------------------------------------------- figures
def _mpl():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path):
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)


def figure_s2(traj, grid, path):
    plt = _mpl()
    from matplotlib.colors import LogNorm
    fig, axs = plt.subplots(1, 3, figsize=(17, 4.8), gridspec_kw={"width_ratios": [1, 1.2, 1]})
    ax = axs[0]
    for k, (c, ls) in enumerate([("red", "-"), ("blue", "--"), ("green", "-.")]):
        ax.plot(traj.t, traj.x[k, 0], ls, color=c, lw=1.3, label=f"σ = {traj.sigma[k]:g}")
    ax.set(xscale="symlog", xlabel="iteration t", ylabel="x", title=f"(a) x(t), η = {traj.eta:g}")
    ax.legend(fontsize=8)
    ph3 = grid.phase() == 3
    ext = (fig2._edges(grid.sigma), fig2._edges(grid.eta))
    ax = axs[1]
    ax.set_facecolor("0.82")
    tau = np.ma.array(grid.tau_s, mask=ph3 | ~(grid.tau_s > 0))
    pc = ax.pcolormesh(*ext, tau, cmap="magma_r", norm=LogNorm(), shading="flat")
    fig.colorbar(pc, ax=ax, pad=0.02).set_label(r"$\tau_s=\eta\langle t_s\rangle$")
    ax.set(xscale="log", yscale="log", xlabel="σ", ylabel="η",
           title="(b) search time; grey: divergence (> 50 % of walkers)")
    ax = axs[2]
    for i in range(0, grid.eta.size, max(1, grid.eta.size // 6)):
        ok = ~ph3[i]
        ax.loglog(grid.sigma[ok], grid.tau_s[i, ok], "o-", ms=3, label=f"η = {grid.eta[i]:.3g}")
    ax.set(xlabel="σ", ylabel=r"$\tau_s$", title="(c) τ_s against σ (convergent points)")
    ax.legend(fontsize=7)
    fig.suptitle("Fig. S2: global minimum = flattest solution (ε = 0.001, λ = (8, 2, 0)), "
                 f"tol = {grid.tol:g}", fontsize=11)
    _save(fig, path)
    plt.close(fig)


def figure_s3(grid, cut, path):
    plt = _mpl()
    from matplotlib.colors import LogNorm
    fig, axs = plt.subplots(1, 2, figsize=(15, 5.6))
    ph3 = grid.phase() == 3
    ext = (fig2._edges(grid.sigma), fig2._edges(grid.eta))
    L = grid.landscape
    s_star = ph.critical_sigma(ETA_S3, L)
    for ax, key, lab in ((axs[0], "V_x", "$V_x$"), (axs[1], "V_y", "$V_y$")):
        v = getattr(grid, key)
        ax.set_facecolor("0.82")
        m = np.ma.array(v, mask=ph3 | ~(v > 0))
        pc = ax.pcolormesh(*ext, m, cmap="viridis", norm=LogNorm(vmin=max(m.min(), 1e-8)),
                           shading="flat")
        fig.colorbar(pc, ax=ax, pad=0.02).set_label(lab)
        fig2._theory_lines(ax, L, grid.eta.min(), grid.eta.max(), label=key == "V_x")
        ax.axhline(ETA_S3, color="w", ls="--", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel="σ", ylabel="η",
               xlim=(ext[0][0], ext[0][-1]), ylim=(ext[1][0], ext[1][-1]),
               title=f"({'ab'[key == 'V_y']}) {lab}; grey: divergence (phase III)")
        ins = ax.inset_axes([0.57, 0.08, 0.4, 0.38])
        ok = cut.diverged[0] <= cut.settings["div_threshold"]
        ins.loglog(cut.sigma[ok], getattr(cut, key)[0, ok], "o", ms=2.5, color="C1")
        ins.axvline(s_star, color="red", ls=":", lw=1)
        ins.set_title(f"η = {ETA_S3:g}", fontsize=8)
        ins.tick_params(labelsize=7)
        ins.set_xlabel("σ", fontsize=7, labelpad=0)
        ins.set_facecolor("w")
        ins.set_zorder(5)
        if key == "V_x":
            ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("Fig. S3: steady-state fluctuations (landscape of Fig. 2), "
                 f"{grid.settings['n_walkers']} walkers per point", fontsize=11)
    _save(fig, path)
    plt.close(fig)


def figure_s4(fit, theory, path):
    plt = _mpl()
    fig, axs = plt.subplots(1, 3, figsize=(16, 4.8))
    d = dict(fit.data)
    far = np.abs(d["sigma"] - fit.sigma_star) > 1e-6 * fit.sigma_star   # r = 0 has no log
    d = {k: v[far] for k, v in d.items()}
    s = d["sigma"]
    r = np.abs(s - fit.sigma_star) / fit.sigma_star
    above, below = s > fit.sigma_star, s < fit.sigma_star
    rt = np.abs(theory["sigma"] - fit.sigma_star) / fit.sigma_star
    ta, tb = theory["sigma"] > fit.sigma_star, theory["sigma"] < fit.sigma_star
    specs = [(axs[0], "alpha", above, d["F_gain"], theory["gain"], ta,
              "$F(x_{ss})-F(x^*)$", "σ − σ*", "(a) α"),
             (axs[1], "beta1", below, d["tau_s"], theory["tau"], tb, r"$\tau_s$", "σ* − σ",
              "(b) β1 (below σ*)"),
             (axs[2], "beta2", above, d["tau_s"], theory["tau"], ta, r"$\tau_s$", "σ − σ*",
              "(c) β2 (above σ*)")]
    for ax, key, side, y, yth, tside, ylab, xlab, title in specs:
        dist = r * fit.sigma_star
        m = d[key]
        ax.loglog(dist[side & ~m], y[side & ~m], "o", mfc="none", color="C0", ms=5,
                  label="MC, outside window")
        if key == "alpha":
            ax.loglog(dist[m], y[m], "o", color="C0", ms=5, label="MC, fitted")
        else:
            ax.errorbar(dist[m], y[m], yerr=d["tau_s_se"][m], fmt="o", color="C0", ms=5,
                        label="MC, fitted")
        val = getattr(fit, key)
        lo, hi = fit.ci[key]
        sgn = 1 if key == "alpha" else -1
        if m.sum() >= 2:
            c = np.exp(np.mean(np.log(y[m]) - sgn * val * np.log(r[m])))
            rr = np.geomspace(r[m].min(), r[m].max(), 50)
            ax.loglog(rr * fit.sigma_star, c * rr ** (sgn * val), "-", color="C3",
                      label=f"fit: {val:.3f} [{lo:.3f}, {hi:.3f}]")
        ok = tside & np.isfinite(yth) & (yth > 0)
        ax.loglog(rt[ok] * fit.sigma_star, yth[ok], "--", color="C1", lw=1.2,
                  label="adiabatic theory (same observable)")
        ax.set(xlabel=xlab, ylabel=ylab, title=title)
        ax.legend(fontsize=7)
    fig.suptitle(f"Fig. S4: critical exponents at η = {fit.eta:g}, σ* = {fit.sigma_star:.4f}, "
                 f"tol = 0.05, {fit.n_boot} bootstrap replicates", fontsize=11)
    _save(fig, path)
    plt.close(fig)


def slopes(x, y, lo, hi):
    m = (x >= lo) & (x <= hi) & (y > 0) & np.isfinite(y)
    return float(np.polyfit(np.log(x[m]), np.log(y[m]), 1)[0]) if m.sum() >= 3 else np.nan


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--reuse", action="store_true", help="load cached grids if present")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-doc", action="store_true")
    a = p.parse_args(argv)
    tty = sys.stderr.isatty()
    L = ph.fig2_landscape()
    q = "_quick" if a.quick else ""
    timings = {}

    # -- exponents at η = 0.04 (cached with the first-passage ladders) ---------------
    path = os.path.join(RESULTS, f"exponent_sweep{q}.npz")
    if a.reuse and os.path.exists(path):
        sweep = ph.PhaseGrid.load(path)
    else:
        sweep = run_fit_sweep(a.quick, a.seed + 10, a.workers, tty)
        os.makedirs(RESULTS, exist_ok=True)
        sweep.save(path, include_hits=True)
    timings["η = 0.04 exponent sweep"] = sweep.elapsed
    print(f"fit sweep: {sweep!r}")
    s_star = ph.critical_sigma(ETA_FIT, L)
    n_boot = 100 if a.quick else 1000
    fits = {}
    t0 = time.perf_counter()
    for tol in TOLS:
        sweep.settings["tol"] = tol          # t_s re-read from the ladders at this tol
        fits[(tol, "fixed", "main")] = ph.exponents(
            sweep, sigma_star=s_star, n_boot=n_boot, seed=a.seed, window_alpha=WINDOWS["alpha"],
            window_below=WINDOWS["below"], window_above=WINDOWS["above"])
    sweep.settings["tol"] = 0.05
    fits[(0.05, "fit", "main")] = ph.exponents(
        sweep, sigma_star="fit", n_boot=n_boot, seed=a.seed, window_alpha=WINDOWS["alpha"],
        window_below=WINDOWS["below"], window_above=WINDOWS["above"])
    fits[(0.05, "fixed", "narrow")] = ph.exponents(
        sweep, sigma_star=s_star, n_boot=n_boot, seed=a.seed, window_alpha=(0.03, 0.3),
        window_below=(0.03, 0.3), window_above=(0.03, 0.3))
    fits[(0.05, "fixed", "wide")] = ph.exponents(
        sweep, sigma_star=s_star, n_boot=n_boot, seed=a.seed, window_alpha=(0.1, 1.0),
        window_below=(0.1, 0.7), window_above=(0.1, 1.0))
    timings["fits + bootstrap"] = time.perf_counter() - t0
    main = fits[(0.05, "fixed", "main")]
    print(main)

    # -- theory: same observable, same windows; and its own asymptotic window ---------
    t0 = time.perf_counter()
    x0 = fig2.post_transient_x(ETA_FIT, sweep.sigma, a.seed + 11)
    gain_th, tau_th = theory_same_definition(L, sweep.sigma, ETA_FIT, 0.05, x0)
    r = np.abs(sweep.sigma - s_star) / s_star
    ab, be = sweep.sigma > s_star, sweep.sigma < s_star

    def th_slope(y, side, w):
        m = side & (r >= w[0]) & (r <= w[1]) & (y > 0) & np.isfinite(y)
        return float(np.polyfit(np.log(r[m]), np.log(y[m]), 1)[0])

    theory_fit = {"alpha": th_slope(gain_th, ab, WINDOWS["alpha"]),
                  "beta1": -th_slope(tau_th, be, WINDOWS["below"]),
                  "beta2": -th_slope(tau_th, ab, WINDOWS["above"])}
    theory_own = fp.theory.critical_exponents(L)
    ts = np.concatenate([s_star * (1 - np.geomspace(0.005, 0.95, 40)),
                         s_star * (1 + np.geomspace(0.005, 1.2, 40))])
    ts.sort()
    x0f = np.interp(ts, sweep.sigma, x0)
    g_f, t_f = theory_same_definition(L, ts, ETA_FIT, 0.05, x0f)
    timings["theory"] = time.perf_counter() - t0

    # -- Fig. S3: V_x, V_y over the Fig. 2 grid and the η = 0.037 cut ----------------
    spec = fig2.GRIDS["quick" if a.quick else "default"]
    grid = fig2.cached(os.path.join(RESULTS, f"fig2_{'quick' if a.quick else 'default'}.npz"),
                       lambda: ph.run_grid(spec["sigma"], spec["eta"], T=spec["T"],
                                           n_walkers=spec["n_walkers"], seed=a.seed,
                                           workers=a.workers, progress=tty), True)
    cut37 = fig2.cached(os.path.join(RESULTS, f"s3_cut{q}.npz"), lambda: ph.run_grid(
        np.geomspace(1e-3, 1.0, 16 if a.quick else 37), [ETA_S3], T=2000.0 if a.quick else 10000.0,
        n_walkers=16 if a.quick else 64, seed=a.seed + 12, workers=a.workers, progress=tty),
        a.reuse)
    timings["η = 0.037 cut"] = cut37.elapsed

    # -- Fig. S2: the landscape with x* = x_F = 0 ------------------------------------
    L1 = fp.landscapes.paper(**S1A)
    traj = ph.trajectories((0.0, 0.02, 0.2), eta=0.01, n_steps=100_000, record_every=10,
                           landscape=L1, seed=a.seed)
    s2 = fig2.cached(os.path.join(RESULTS, f"s2_grid{q}.npz"), lambda: ph.run_grid(
        np.geomspace(1e-3, 1e3, 13 if a.quick else 25), np.geomspace(0.005, 0.3, 8 if a.quick else 16),
        landscape=L1, T=1000.0 if a.quick else 2000.0, n_walkers=16 if a.quick else 32,
        seed=a.seed + 13, workers=a.workers, progress=tty), a.reuse)
    timings["Fig. S2 grid"] = s2.elapsed

    out = RESULTS if a.quick else FIG      # the smoke test never overwrites the docs' figures
    os.makedirs(out, exist_ok=True)
    figure_s2(traj, s2, os.path.join(out, f"figS2{q}.png"))
    figure_s3(grid, cut37, os.path.join(out, f"figS3{q}.png"))
    figure_s4(main, {"sigma": ts, "gain": g_f, "tau": t_f}, os.path.join(out, f"figS4{q}.png"))

    # -- tables ----------------------------------------------------------------------
    block = [fits_table(sweep, fits, theory_fit, theory_own, s_star), ""]
    ok = cut37.diverged[0] <= cut37.settings["div_threshold"]
    s37 = ph.critical_sigma(ETA_S3, L)
    s_m37 = fig2.boundary_crossing(cut37.sigma, cut37.diverged[0], 0.5)
    sx = cut37.sigma[ok]
    block.append(f"Fluctuations at η = {ETA_S3:g} ({cut37.settings['n_walkers']} walkers, "
                 f"T = {cut37.settings['T']:g}; σ* = {s37:.4g}, σ_m = {s_m37:.3g}): "
                 f"log–log slope of V_y over σ ∈ [1e-3, σ_m/2] = "
                 f"{slopes(sx, cut37.V_y[0, ok], 1e-3, s_m37 / 2):.2f} (paper: linear); of V_x "
                 f"over [3σ*, σ_m/2] = {slopes(sx, cut37.V_x[0, ok], 3 * s37, s_m37 / 2):.2f} "
                 f"(paper: quadratic far beyond σ*); V_x has its maximum over σ < 3σ* at "
                 f"σ = {sx[np.nanargmax(np.where(sx < 3 * s37, cut37.V_x[0, ok], -1))]:.4g}.")
    conv = grid.convergence()
    i = grid.row(ETA_FIT)
    jlast = np.flatnonzero(grid.diverged[i] <= grid.settings["div_threshold"])[-1]
    block.append("")
    block.append(f"Convergence conditions at the last convergent grid point of η = "
                 f"{grid.eta[i]:.4g} (σ = {grid.sigma[jlast]:.3g}, diverged fraction "
                 f"{grid.diverged[i, jlast]:.2f}): measured ⟨λ⟩ = {grid.lam_mean[i, jlast]:.3f}, "
                 f"m1 = 1 − η⟨λ⟩ = {conv['m1'][i, jlast]:.3f} (S8 needs |m1| < 1), m2 = "
                 f"{conv['m2'][i, jlast]:.3f} (S9 needs m2 < 1).")
    block.append("")
    block.append("Run times (2 shared cores): " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
                 + f"; load average {os.getloadavg()[0]:.1f} at the end.")
    text = "\n".join(block)
    print(text)
    if not a.no_doc and not a.quick:
        fig2.write_doc(text, "exponents")


if __name__ == "__main__":
    main()
