"""Refinement study of the flux cycles of the paper's Fig. 3 (Yang–Tang–Tu).

Landscape ε = 0.02, λ0 = 8, λ1 = −2, λ2 = 1 on the disk of radius 2, absorbing boundary,
Δ_S ∈ {0.009, 0.012}, with and without cross-diffusion; P2 elements.  For every mesh
level and case the script prints the (+, +)-quadrant cycle (the other three are its
mirror images: the symmetry mismatch is printed too), its circulation ψ(centre), the
same current as a line integral of J·n along the radial cut to the boundary, the share
of the curl-free (escape) part ‖∇φ‖/‖J‖, the escape rate μ and the boundary outflow
(trace integral) relative to it, and the entropy production where it is defined.

    python bench/fig3_cycles.py                  # levels 1-4 (h = 0.1 … 0.0125 in the band)
    python bench/fig3_cycles.py --first 5 --levels 5
                                                 # h = 0.00625 in |y| < 0.7 (662k dofs,
                                                 # about 2 min per case, 4 GB)
    python bench/fig3_cycles.py --figure docs/figures/fig3_panels.png
                                                 # also draw the Fig. 3 panels (level 3)

Output: one Markdown table row per case and level (copied into docs/flux.md).
"""
from __future__ import annotations

import argparse
import time
import warnings

import fpsolve as fp
from fpsolve import plot

LEVELS = {
    1: ("h = 0.1", lambda: fp.disk_mesh(2.0, 0.1)),
    2: ("h = 0.05", lambda: fp.disk_mesh(2.0, 0.05)),
    3: ("h = 0.025", lambda: fp.disk_mesh(2.0, 0.025)),
    4: ("h = 0.05, 0.0125 in |y| < 0.9", lambda: fp.disk_mesh(2.0, 0.05, band=0.9, band_levels=2)),
    5: ("h = 0.05, 0.00625 in |y| < 0.7", lambda: fp.disk_mesh(2.0, 0.05, band=0.7, band_levels=3)),
}
CASES = [(True, 0.009), (True, 0.012), (False, 0.009), (False, 0.012)]


def row(level, cross, ds, sol, fl, seconds):
    d = fl.diagnostics
    cycles = fl.cycles or fl.find_cycles()
    q = [c for c in cycles if c["center"][0] > 0 and c["center"][1] > 0]
    ep = fl.entropy_production
    cells = [f"{ds:.3f}", "yes" if cross else "no", str(level), f"{sol.P.size:,}",
             "" if d["flux_resolved"] else "unresolved"]
    if q:
        c = q[0]
        cells += [f"{c['center'][0]:.4f}", f"{c['center'][1]:.4f}", c["sense"],
                  f"{c['circulation']:+.6f}", f"{c['current_line']:.6f}"]
    else:
        cells += ["–"] * 5
    sym = d.get("cycle_center_mismatch")
    cells += [f"{len(fl.cycles)}", "–" if sym is None else f"{sym:.0e}",
              f"{d['grad_phi_fraction']:.1e}", f"{d['helmholtz_residual']:.3f}",
              f"{sol.escape_rate:.4e}", f"{d['outflow_trace_mismatch']:.1e}",
              "n/a" if ep is None else f"{ep:.5f}", f"{seconds:.0f}"]
    return "| " + " | ".join(cells) + " |"


HEADER = ("| Δ_S | D12 | level | dofs | flux | x_c | y_c | sense | ψ(c) | line current "
          "| cycles | sym. | ‖∇φ‖/‖J‖ | noise | μ | trace/μ−1 | entropy prod. | s |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--levels", type=int, default=4, help="finest level (1-5), default 4")
    ap.add_argument("--first", type=int, default=1, help="coarsest level, default 1")
    ap.add_argument("--figure", default=None, help="write the Fig. 3 panel PNG here")
    ap.add_argument("--figure-level", type=int, default=3)
    args = ap.parse_args()
    if not 1 <= args.first <= args.levels <= 5:
        ap.error(f"--first/--levels: expected 1 <= first <= levels <= 5, got "
                 f"{args.first}, {args.levels}")
    warnings.simplefilter("ignore", fp.FPSolveWarning)   # coarse levels: reported in the table
    L = fp.landscapes.paper(eps=0.02, lam0=8.0, lam1=-2.0, lam2=1.0)
    for lv in range(args.first, args.levels + 1):
        print(f"level {lv}: {LEVELS[lv][0]}", flush=True)
    print(HEADER)
    print("|" + "---|" * (HEADER.count("|") - 1))
    panels = {}
    for lv in range(args.first, args.levels + 1):
        mesh = LEVELS[lv][1]()
        for cross in (True, False):
            prob = fp.Problem(L, fp.diffusion.sgd(L, 0.01, cross_diffusion=cross), mesh, order=2)
            for ds in (0.009, 0.012):
                t0 = time.perf_counter()
                sol = prob.solve(ds)
                fl = fp.flux(sol)
                print(row(lv, cross, ds, sol, fl, time.perf_counter() - t0), flush=True)
                if args.figure and lv == args.figure_level:
                    panels[cross, ds] = (sol, fl)
                del sol, fl
            del prob
    if args.figure:
        if len(panels) != 4:
            raise SystemExit(f"--figure-level {args.figure_level} was not computed")
        sols = [[panels[c, ds][0] for ds in (0.009, 0.012)] for c in (True, False)]
        fls = [[panels[c, ds][1] for ds in (0.009, 0.012)] for c in (True, False)]
        plot.panel_figure(sols, args.figure, fluxes=fls, dpi=130)
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
