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
import sys
import time

import numpy as np

import fpsolve as fp
from _report import replace_block  # noqa: E402  (bench/_report.py)
from fpsolve.stochastic import phase as ph
from fpsolve.study.analyses import phase_diagram as analysis

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
    """Mean |x| per σ after the fast descent into the valley (τ = 2), Fig. 2 landscape."""
    return analysis.post_transient_x(ph.fig2_landscape(), eta, sigmas, seed)


# shared with the phase_diagram analysis (bench/exponents.py uses them through this module)
theory_cut = analysis.theory_cut
boundary_crossing = analysis.crossing
measured_boundaries = analysis.boundaries
_edges = analysis.edges
_theory_lines = analysis.theory_lines


def plot(traj, grid, cut, theory, path, title_note=""):
    """Fig. 2 (the phase_diagram analysis' figure) to ``path``; returns (σ*, σ_m) at η = 0.04."""
    L = grid.landscape
    s_star = ph.critical_sigma(ETA_CUT, L)
    s_m = boundary_crossing(cut.sigma, cut.diverged[0], cut.settings["div_threshold"])
    fig = analysis.figure(L, traj, grid, cut, cut_eta=ETA_CUT, tol=grid.tol,
                    sigma_boundaries=measured_boundaries(grid), s_star=s_star, s_m=s_m,
                    theory={"sigma": theory["sigma"], "F": theory["F"], "tau_s": theory["tau"]},
                    title_note=title_note)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)
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
    """Put ``block`` between the ``bench:<marker>`` markers of the page (else print it)."""
    if not replace_block(DOC, marker, block):
        print(block)


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
