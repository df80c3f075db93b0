"""Fig. 2 of Yang, Tang & Tu by Monte Carlo SGD: trajectories, (σ, η) phase diagrams of
F(x_ss) and τ_s, and the η = 0.04 cuts with σ* and σ_m.

Writes docs/figures/fig2.png, the grid to bench/results/fig2_<grid>.npz and the tables
between the ``bench:fig2`` markers of docs/phase_diagram.md.

Usage::

    python bench/fig2.py                 # default grid (24 η x 37 σ, 64 walkers, T = 5000),
                                         # ≈ 4.5 min on 2 shared cores
    python bench/fig2.py --paper-grid    # paper-sized grid (40 η x 61 σ, 64 walkers, T = 1e4)
    python bench/fig2.py --quick         # small grid, short runs (smoke test, ≈ 20 s)
    python bench/fig2.py --reuse         # re-plot from bench/results/ without simulating

A study runner would call::

    grid = fpsolve.phase.run_grid(sigma, eta, T=..., n_walkers=..., seed=..., workers=...,
                                  progress=False)          # -> fpsolve.phase.PhaseGrid
    grid.save(path)                                        # .npz with settings as JSON
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time

import numpy as np

import fpsolve as fp
from fpsolve import phase as ph

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIG = os.path.join(ROOT, "docs", "figures")
DOC = os.path.join(ROOT, "docs", "phase_diagram.md")
RESULTS = os.path.join(ROOT, "bench", "results")

GRIDS = {
    "default": dict(eta=np.geomspace(0.005, 0.3, 24), sigma=np.geomspace(1e-3, 1e3, 37),
                    T=5000.0, n_walkers=64),
    "paper": dict(eta=np.geomspace(0.003, 0.3, 40), sigma=np.geomspace(1e-3, 1e3, 61),
                  T=10000.0, n_walkers=64),
    "quick": dict(eta=np.geomspace(0.01, 0.3, 8), sigma=np.geomspace(1e-3, 1e3, 13),
                  T=1000.0, n_walkers=16),
}
ETA_CUT = 0.04                     # the insets of Fig. 2b, d


def cut_sigmas(quick: bool) -> np.ndarray:
    """σ at η = 0.04: log-spaced over the whole convergent range, dense around σ*."""
    s_star = ph.critical_sigma(ETA_CUT)
    if quick:
        return np.unique(np.concatenate([np.geomspace(1e-3, 1.0, 10), s_star * np.array([0.9, 1.1])]))
    r = np.geomspace(0.01, 0.6, 8)
    return np.unique(np.round(np.concatenate([np.geomspace(1e-3, 1.0, 31), s_star * (1 - r),
                                              s_star * (1 + r), [s_star]]), 10))


def cached(path, make, reuse):
    if reuse and os.path.exists(path):
        g = ph.PhaseGrid.load(path)
        print(f"  loaded {os.path.relpath(path, ROOT)} ({g!r})")
        return g
    g = make()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    g.save(path)
    return g


def post_transient_x(eta, sigmas, seed) -> np.ndarray:
    """Mean |x| per σ after the fast descent into the valley (τ = 2): where the slow
    one-dimensional search of the adiabatic theory starts."""
    n = int(np.ceil(2.0 / eta))
    tr = ph.trajectories(sigmas, eta=eta, n_steps=n, n_walkers=256, record_every=n, seed=seed)
    return np.nanmean(np.abs(tr.x[:, :, -1]), axis=1)


def theory_cut(L, sigma, eta, tol, x0):
    """Adiabatic theory along σ at fixed η with the finite-η noise Δ_S/(1 − ηλ0/2).

    Returns F(x_ss) and τ_s(x0 → x_ss + tol) (S30, S44) for each σ > 0; ``x0`` is one
    start per σ.
    """
    fac = 1.0 - 0.5 * eta * L.lam0
    F, tau = np.full(sigma.size, np.nan), np.full(sigma.size, np.nan)
    for k, s in enumerate(sigma):
        if s <= 0:
            continue
        th = fp.theory.adiabatic(L, eta * s / fac)
        F[k] = float(L.flatness(th.x_ss))
        target = th.x_ss + tol
        if target < x0[k]:      # else the fast descent already got there: no 1-D search
            tau[k] = th.search_time(x0[k], target)
    return F, tau


def boundary_crossing(sigma, values, level):
    """First σ (log-interpolated) at which ``values`` crosses ``level`` upwards."""
    v = np.asarray(values, dtype=float)
    for k in range(1, v.size):
        if np.isfinite(v[k - 1]) and np.isfinite(v[k]) and v[k - 1] <= level < v[k]:
            a = (level - v[k - 1]) / (v[k] - v[k - 1])
            return float(np.exp(np.log(sigma[k - 1]) + a * np.log(sigma[k] / sigma[k - 1])))
    return np.nan


def measured_boundaries(grid):
    """Per η: σ of the I → II crossing (x_ss = x_threshold) and of phase III (diverged)."""
    xt, dt = grid.settings["x_threshold"], grid.settings["div_threshold"]
    s12 = np.array([boundary_crossing(grid.sigma, np.nan_to_num(grid.x_ss[i], nan=9.0), xt)
                    for i in range(grid.eta.size)])
    s23 = np.array([boundary_crossing(grid.sigma, grid.diverged[i], dt)
                    for i in range(grid.eta.size)])
    return s12, s23


# ---------------------------------------------------------------------------- figure
def _edges(v):
    lv = np.log(v)
    mid = 0.5 * (lv[1:] + lv[:-1])
    return np.exp(np.concatenate([[2 * lv[0] - mid[0]], mid, [2 * lv[-1] - mid[-1]]]))


def _phase_labels(ax):
    for txt, (sx, ey) in {"I": (2.5e-3, 0.012), "II": (0.25, 0.012), "III": (15, 0.012)}.items():
        ax.text(sx, ey, txt, fontsize=14, weight="bold", color="k", ha="center", va="center",
                bbox=dict(boxstyle="round,pad=0.2", fc="w", ec="none", alpha=0.75))


def _theory_lines(ax, L, eta_lo, eta_hi, label=True):
    etas = np.geomspace(eta_lo, eta_hi, 200)
    ds = fp.theory.critical_delta_s(L)
    kw = dict(color="red", lw=1.6)
    ax.plot(ds / etas, etas, ":", label=r"$\eta\sigma=\Delta_S^*=-\varepsilon/\lambda_1$" if label else None, **kw)
    ax.plot(ph.critical_sigma(etas, L), etas, "--", lw=1.2, color="red",
            label=r"$\eta\sigma=\Delta_S^*(1-\eta\lambda_0/2)$" if label else None)
    ax.plot(ph.divergence_sigma(etas, L), etas, "-.", color="red", lw=1.4,
            label=r"$\eta\sigma=\Delta_m(\eta)$ (S39)" if label else None)


def _measured_lines(ax, grid, label=True):
    s12, s23 = measured_boundaries(grid)
    ax.plot(s12, grid.eta, "o-", ms=2.5, lw=1, color="k", label="MC: $x_{ss}=0.1$" if label else None)
    ax.plot(s23, grid.eta, "s-", ms=2.5, lw=1, color="0.3",
            label="MC: 50 % diverged" if label else None)


def plot(traj, grid, cut, theory, path, title_note=""):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    L = grid.landscape
    F0, FF = float(L.flatness(0.0)), float(L.flatness(1.0))
    fig = plt.figure(figsize=(17, 10.2))
    gs = fig.add_gridspec(2, 3, width_ratios=[1, 1.25, 1], wspace=0.32, hspace=0.3)
    styles = [("red", "-"), ("blue", "--"), ("green", "-.")]

    # (a) trajectories in the plane, mirrored copies as in the paper
    ax = fig.add_subplot(gs[0, 0])
    xs = np.linspace(-1.9, 1.9, 301)
    X, Y = np.meshgrid(xs, xs)
    ax.contourf(X, Y, np.log10(L.value(X, Y) + 1e-4), levels=30, cmap="Greys", alpha=0.55)
    mirrors = [(1, 1), (-1, 1), (1, -1)]
    for k, s in enumerate(traj.sigma):
        c, ls = styles[k % 3]
        mx, my = mirrors[k % 3]
        ax.plot(mx * traj.x[k, 0], my * traj.y[k, 0], ls, color=c, lw=1.3, label=f"σ = {s:g}")
        ax.plot(mx * 1.5, my * 1.5, "o", color=c, mfc="white", ms=6)
    ax.plot(0, 0, "o", color="red", ms=8, label="$x^*=0$")
    ax.plot([-1, 1], [0, 0], "x", color="gold", ms=11, mew=3, label="$x_F=\\pm1$")
    ax.set(xlabel="x", ylabel="y", xlim=(-1.9, 1.9), ylim=(-1.9, 1.9), aspect="equal",
           title=f"(a) SGD trajectories, η = {traj.eta:g}")
    ax.legend(fontsize=8, loc="lower left", framealpha=0.9)

    # (c) x against iteration
    ax = fig.add_subplot(gs[1, 0])
    for k, s in enumerate(traj.sigma):
        c, ls = styles[k % 3]
        ax.plot(traj.t, traj.x[k, 0], ls, color=c, lw=1.3, label=f"σ = {s:g}")
    ax.axhline(1.0, color="gold", lw=1, ls=":")
    ax.axhline(0.0, color="red", lw=1, ls=":")
    ax.set(xlabel="iteration t", ylabel="x", title="(c) projection on the degenerate direction",
           xlim=(0, traj.t[-1]))
    ax.legend(fontsize=8)

    ext = (_edges(grid.sigma), _edges(grid.eta))
    ph3 = grid.phase() == 3

    # (b) F(x_ss) phase diagram
    ax = fig.add_subplot(gs[0, 1])
    ax.set_facecolor("0.82")
    F = np.ma.array(grid.F_ss, mask=ph3 | ~np.isfinite(grid.F_ss))
    pc = ax.pcolormesh(*ext, F, cmap="viridis", vmin=F0, vmax=FF, shading="flat")
    cb = fig.colorbar(pc, ax=ax, pad=0.02)
    cb.set_label("$F(x_{ss})$")
    cb.ax.axhline(F0, color="w", lw=1)
    _theory_lines(ax, L, grid.eta.min(), grid.eta.max())
    _measured_lines(ax, grid)
    ax.axhline(ETA_CUT, color="w", lw=0.8, ls="--")
    ax.set(xscale="log", yscale="log", xlabel="σ", ylabel="η",
           xlim=(ext[0][0], ext[0][-1]), ylim=(ext[1][0], ext[1][-1]),
           title="(b) flatness of the steady-state solution")
    _phase_labels(ax)
    ax.legend(fontsize=7, loc="upper right", framealpha=0.85)

    # (d) τ_s phase diagram
    ax = fig.add_subplot(gs[1, 1])
    ax.set_facecolor("0.82")
    tau = np.ma.array(grid.tau_s, mask=ph3 | ~np.isfinite(grid.tau_s) | (grid.tau_s <= 0))
    pc = ax.pcolormesh(*ext, tau, cmap="magma_r", norm=LogNorm(vmin=max(tau.min(), 1e-1),
                                                               vmax=tau.max()), shading="flat")
    cb = fig.colorbar(pc, ax=ax, pad=0.02)
    cb.set_label(r"$\tau_s=\eta\langle t_s\rangle$")
    cen = (grid.censored > 0.1) & ~ph3
    S, E = np.meshgrid(grid.sigma, grid.eta)
    if cen.any():
        ax.plot(S[cen], E[cen], "+", color="c", ms=5, label="> 10 % censored (lower bound)")
    _theory_lines(ax, L, grid.eta.min(), grid.eta.max(), label=False)
    _measured_lines(ax, grid, label=False)
    ax.axhline(ETA_CUT, color="k", lw=0.8, ls="--")
    ax.set(xscale="log", yscale="log", xlabel="σ", ylabel="η",
           xlim=(ext[0][0], ext[0][-1]), ylim=(ext[1][0], ext[1][-1]),
           title=f"(d) search time (tol = {grid.tol:g})")
    _phase_labels(ax)
    if cen.any():
        ax.legend(fontsize=7, loc="upper right")

    # (e), (f): the η = 0.04 cuts
    s_star = ph.critical_sigma(ETA_CUT, L)
    s_m = boundary_crossing(cut.sigma, cut.diverged[0], cut.settings["div_threshold"])
    ok = cut.diverged[0] <= cut.settings["div_threshold"]
    ax = fig.add_subplot(gs[0, 2])
    ax.semilogx(cut.sigma[ok], cut.F_ss[0, ok], "o", ms=3.5, color="C0", label="MC SGD")
    ax.semilogx(theory["sigma"], theory["F"], "-", color="C1", lw=1.2,
                label="adiabatic theory, $\\Delta_S/(1-\\eta\\lambda_0/2)$")
    ax.axhline(F0, color="0.5", lw=0.8, ls=":")
    ax.set(xlabel="σ", ylabel="$F(x_{ss})$", title=f"(e) η = {ETA_CUT:g}")
    ax2 = ax.twinx()
    ax2.semilogx(cut.sigma, cut.diverged[0], "-", color="0.5", lw=1)
    ax2.set_ylabel("diverged fraction", color="0.5")
    ax2.set_ylim(0, 1.05)
    for a in (ax, ax2):
        a.axvline(s_star, color="red", ls=":", lw=1.2)
        a.axvline(s_m, color="red", ls="-.", lw=1.2)
    ax.text(s_star, ax.get_ylim()[1], " σ*", color="red", va="top")
    ax.text(s_m, ax.get_ylim()[1], " $σ_m$", color="red", va="top")
    for txt, sx in (("I", np.sqrt(1e-3 * s_star)), ("II", np.sqrt(s_star * s_m)),
                    ("III", s_m * 1.8)):
        ax.text(sx, F0 + 0.3 * (FF - F0), txt, fontsize=13, weight="bold", ha="center")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, 0.9))

    ax = fig.add_subplot(gs[1, 2])
    ax.errorbar(cut.sigma[ok], cut.tau_s[0, ok], yerr=cut.tau_s_se[0, ok], fmt="o", ms=3.5,
                color="C0", label="MC SGD")
    ax.plot(theory["sigma"], theory["tau"], "-", color="C1", lw=1.2,
            label="adiabatic theory S44 from the MC\n$|x|$ at τ = 2 "
            f"({np.nanmin(theory['x0']):.2f}–{np.nanmax(theory['x0']):.2f})")
    ax.set(xscale="log", yscale="log", xlabel="σ", ylabel=r"$\tau_s$",
           title=f"(f) search time at η = {ETA_CUT:g}")
    ax.axvline(s_star, color="red", ls=":", lw=1.2)
    ax.axvline(s_m, color="red", ls="-.", lw=1.2)
    ax.text(s_star, ax.get_ylim()[0], " σ*", color="red", va="bottom")
    ax.text(s_m, ax.get_ylim()[0], " $σ_m$", color="red", va="bottom")
    ax.legend(fontsize=7, loc="lower left")

    fig.suptitle("Yang–Tang–Tu Fig. 2 by Monte Carlo SGD: ε = 0.001, λ = (8, −2, 1), start "
                 f"(1.5, 1.5){title_note}", fontsize=12)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)
    plt.close(fig)
    return s_star, s_m


# ---------------------------------------------------------------------------- tables
def tables(grid, cut, s_m, timings, name):
    L = grid.landscape
    s12, s23 = measured_boundaries(grid)
    lines = [f"Grid `{name}`: {grid.eta.size} η × {grid.sigma.size} σ "
             f"(η ∈ [{grid.eta.min():g}, {grid.eta.max():g}], σ ∈ [{grid.sigma.min():g}, "
             f"{grid.sigma.max():g}], log-spaced), {grid.settings['n_walkers']} walkers per "
             f"point, T = {grid.settings['T']:g} (⌈T/η⌉ steps), window = last "
             f"{grid.settings['avg_fraction']:.0%}, tol = {grid.tol:g}, seed 0.", "",
             "| η | σ* MC (x_ss = 0.1) | σ* theory Δ_S*/η | σ* finite η | σ_m MC (50 % div.) "
             "| σ_m S39 | σ_m S40 | Δ_m MC = ησ_m |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for i in range(0, grid.eta.size, max(1, grid.eta.size // 8)):
        e = grid.eta[i]
        lines.append(f"| {e:.4g} | {s12[i]:.4g} | {fp.theory.critical_delta_s(L) / e:.4g} | "
                     f"{ph.critical_sigma(e, L):.4g} | {s23[i]:.4g} | "
                     f"{ph.divergence_sigma(e, L):.4g} | "
                     f"{ph.divergence_sigma(e, L, approx='S40'):.4g} | {e * s23[i]:.3g} |")
    s_star = ph.critical_sigma(ETA_CUT, L)
    lines += ["", f"η = {ETA_CUT:g} cut ({cut.sigma.size} σ, {cut.settings['n_walkers']} walkers, "
              f"T = {cut.settings['T']:g}): σ* = {s_star:.4g} (finite-η theory; paper 0.0105), "
              f"σ_m (50 % diverged within T) = {s_m:.3g}; S39 gives "
              f"{ph.divergence_sigma(ETA_CUT, L):.3g}.", "",
              "| σ | x_ss | F(x_ss) | τ_s | censored | V_x | V_y | diverged | x_drift |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for j in range(0, cut.sigma.size, 3):
        lines.append(f"| {cut.sigma[j]:.4g} | {cut.x_ss[0, j]:.4f} | {cut.F_ss[0, j]:.5f} | "
                     f"{cut.tau_s[0, j]:.4g} | {cut.censored[0, j]:.2f} | {cut.V_x[0, j]:.2e} | "
                     f"{cut.V_y[0, j]:.2e} | {cut.diverged[0, j]:.2f} | {cut.x_drift[0, j]:+.1e} |")
    lines += ["", "Run times (2 shared cores): " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
              + f"; load average {os.getloadavg()[0]:.1f} at the end."]
    return "\n".join(lines)


def write_doc(block, marker="fig2"):
    if not os.path.exists(DOC):
        print(block)
        return
    text = open(DOC, encoding="utf-8").read()
    pat = re.compile(rf"(<!-- bench:{marker}:begin -->\n).*?(<!-- bench:{marker}:end -->)", re.S)
    if not pat.search(text):
        print(block)
        return
    text = pat.sub(lambda m: m.group(1) + block + "\n" + m.group(2), text)
    with open(DOC + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(DOC + ".tmp", DOC)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--paper-grid", action="store_true", help="paper-sized grid (long)")
    g.add_argument("--quick", action="store_true", help="small smoke-test grid")
    p.add_argument("--reuse", action="store_true", help="load cached grids if present")
    p.add_argument("--workers", type=int, default=None, help="threads (default: all CPUs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-doc", action="store_true", help="do not touch docs/phase_diagram.md")
    a = p.parse_args(argv)
    name = "paper" if a.paper_grid else "quick" if a.quick else "default"
    spec = GRIDS[name]
    L = ph.fig2_landscape()
    timings = {}
    tty = sys.stderr.isatty()

    t0 = time.perf_counter()
    traj = ph.trajectories((0.0, 0.02, 0.2), eta=0.01, n_steps=100_000, record_every=20,
                           seed=a.seed)
    timings["trajectories"] = time.perf_counter() - t0
    print(f"trajectories: {timings['trajectories']:.1f} s")

    t0 = time.perf_counter()
    grid = cached(os.path.join(RESULTS, f"fig2_{name}.npz"), lambda: ph.run_grid(
        spec["sigma"], spec["eta"], T=spec["T"], n_walkers=spec["n_walkers"], seed=a.seed,
        workers=a.workers, progress=tty), a.reuse)
    timings[f"grid {name}"] = grid.elapsed     # simulation time, also when reloaded
    print(f"grid: {time.perf_counter() - t0:.1f} s  {grid!r}")

    t0 = time.perf_counter()
    cut = cached(os.path.join(RESULTS, f"fig2_cut_{name}.npz"), lambda: ph.run_grid(
        cut_sigmas(a.quick), [ETA_CUT], T=2000.0 if a.quick else 20000.0,
        n_walkers=32 if a.quick else 128, seed=a.seed + 1, workers=a.workers, progress=tty),
        a.reuse)
    timings["η = 0.04 cut"] = cut.elapsed
    print(f"cut: {time.perf_counter() - t0:.1f} s  {cut!r}")

    t0 = time.perf_counter()
    ts = np.geomspace(1e-3, 0.3, 60)
    x0 = post_transient_x(ETA_CUT, ts, a.seed + 2)
    F, tau = theory_cut(L, ts, ETA_CUT, cut.tol, x0)
    theory = {"sigma": ts, "F": F, "tau": tau, "x0": x0}
    timings["theory"] = time.perf_counter() - t0

    # the quick smoke test never overwrites the documented figures
    path = (os.path.join(RESULTS, "fig2_quick.png") if name == "quick"
            else os.path.join(FIG, "fig2.png" if name == "default" else f"fig2_{name}.png"))
    note = "" if name == "default" else f" — {name} grid"
    _, s_m = plot(traj, grid, cut, theory, path, note)
    print(f"wrote {os.path.relpath(path, ROOT)}")
    block = tables(grid, cut, s_m, timings, name)
    print(block)
    if not a.no_doc and name != "quick":
        write_doc(block, "fig2" if name == "default" else "fig2-paper")


if __name__ == "__main__":
    main()
