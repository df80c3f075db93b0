"""How fast log P varies per element, measured against what the a-priori gradings read.

Solves one case on a uniform P3 mesh and prints, per shell of P (relative to its maximum),
the median and quantiles of

* ψ = h_K max|∇P_h|/P_h (P's own relative variation, on elements where P_h > 0 at every
  quadrature point and no vertex is on the boundary),
* F = h|D⁻¹β| (:func:`fpsolve.fe.grading.equilibrium_variation`, local equilibrium),
* Pe = h|β|³/βᵀDβ (:func:`fpsolve.fe.adapt.element_peclet`, the cell Péclet number),

and the medians of F/ψ and Pe/ψ on the elements where ψ is defined; then log₁₀|P_h|/max P
along the x-axis and its fall per element (``--axis``: P3 Galerkin P_h falls by a fixed
~0.6 decades per element where the true P falls faster, whatever h and Δ_S).  Cases::

    python bench/grading_shells.py paper 0.002 --h 0.02     # SGD noise, paper landscape
    python bench/grading_shells.py ou 0.01 --h 0.025         # radial OU: F = Pe = ψ

The numbers are quoted in docs/adaptivity.md (small noise, "The mesh.").
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

import fpsolve as fp
from fpsolve.fe import adapt, grading

SHELLS = [(0, -3), (-3, -8), (-8, -16), (-16, -35), (-35, -55), (-55, -400)]


def solve_case(case: str, strength: float, h: float):
    """A uniform P3 solve (absorbing) of ``case`` ("paper" or "ou") at ``strength``."""
    if case == "paper":
        L = fp.landscapes.paper()
        D, R = fp.diffusion.sgd(L, strength, cross_diffusion=True), 2.0
    else:
        L = fp.landscapes.expression("(x**2 + y**2)/2")
        D, R = fp.diffusion.isotropic(strength), 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fp.FPSolveWarning)   # coarse cases warn; measured anyway
        return fp.Problem(L, D, fp.disk_mesh(R, h), order=3, max_dofs=2_000_000).solve()


def relative_variation(sol) -> np.ndarray:
    """ψ_K = h_K max_q |∇P_h|/P_h, NaN where P_h ≤ 0 somewhere or K touches the boundary."""
    d = sol.basis.interpolate(sol.P)
    Pq, G = np.asarray(d), np.asarray(d.grad)
    p, t = sol.mesh.p, sol.mesh.t
    on_bnd = np.zeros(p.shape[1], dtype=bool)
    on_bnd[sol.mesh.boundary_vertices()] = True
    ok = np.all(Pq > 0, axis=1) & ~on_bnd[t].any(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.max(np.hypot(G[0], G[1]) / np.where(ok[:, None], Pq, 1.0), axis=1)
    return np.where(ok, grading.element_sizes(p, t) * r, np.nan)


def shell_table(sol) -> list[str]:
    """Markdown rows: one per shell of P, the quantities of the module docstring."""
    p, t = sol.mesh.p, sol.mesh.t
    psi = relative_variation(sol)
    F = grading.equilibrium_variation(p, t, sol.landscape, sol.drift, sol.diffusion)
    pe = adapt.element_peclet(sol)
    nv = sol.mesh.nvertices
    lv = np.log10(np.maximum(np.abs(sol.P[:nv]), 1e-300) / np.abs(sol.P).max())
    lp = lv[t].mean(axis=0)
    rows = ["| P / max P | elements | ψ median (q10–q90) [defined on] | F median (q90) "
            "| Pe median (q90) | F/ψ | Pe/ψ |", "|---|---:|---|---|---|---:|---:|"]
    for hi, lo in SHELLS:
        m = (lp <= hi) & (lp > lo)
        if not m.any():
            continue
        k = m & np.isfinite(psi)
        q = psi[k]
        ps = (f"{np.median(q):.2f} ({np.percentile(q, 10):.2f}–{np.percentile(q, 90):.2f})"
              f" [{k.sum()}]" if k.any() else "– [0]")
        ratios = (f"{np.median(F[k] / q):.2f} | {np.median(pe[k] / q):.2f}" if k.any()
                  else "– | –")
        rows.append(f"| 1e{hi}…1e{lo} | {m.sum()} | {ps} | {np.median(F[m]):.2f} "
                    f"({np.percentile(F[m], 90):.1f}) | {np.median(pe[m]):.2f} "
                    f"({np.percentile(pe[m], 90):.1f}) | {ratios} |")
    return rows


def axis_decay(sol, h: float, step: float = 0.2) -> list[str]:
    """log₁₀ max|P_h|/max P over the elements within h of the x-axis, every ``step`` in x,
    and the fall in decades per element between the stations."""
    p, t = sol.mesh.p, sol.mesh.t
    c = p[:, t].mean(axis=1)
    nv = sol.mesh.nvertices
    lp = np.log10(np.maximum(np.abs(sol.P[:nv]), 1e-300) / np.abs(sol.P).max())[t].mean(axis=0)
    xs = np.arange(0.0, 0.95 * sol.mesh.radius, step)
    row = np.array([lp[(np.abs(c[1]) < h) & (np.abs(c[0] - x) < h)].max() for x in xs])
    fall = -np.diff(row) / step * h
    return [" ".join(f"{x:.1f}:{v:.0f}" for x, v in zip(xs, row)),
            "decades per element: " + " ".join(f"{f:.2f}" for f in fall)]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("case", choices=["paper", "ou"])
    ap.add_argument("strength", type=float, help="Δ_S (paper) or δ (ou)")
    ap.add_argument("--h", type=float, default=0.02, help="uniform mesh size")
    ap.add_argument("--axis", action="store_true", help="also P_h's fall along the x-axis")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    sol = solve_case(args.case, args.strength, args.h)
    print(f"{args.case} {args.strength:g}, uniform h = {args.h:g}, P3: "
          f"{sol.diagnostics['dofs']} dofs, μ_h = {sol.escape_rate:.4e} "
          f"({time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.1f})")
    print("\n".join(shell_table(sol)))
    if args.axis:
        print("log10 |P_h|/max P along the x-axis (x:value):")
        print("\n".join(axis_decay(sol, args.h)))


if __name__ == "__main__":
    main()
