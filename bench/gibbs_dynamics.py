"""Transients of a Gibbs-weighted problem: the weighted pencil against the plain operator on
the same (Gibbs-adapted) mesh.

Radial OU, L = |x|²/2, D = δI, absorbing unit circle.  The mesh is the one the Gibbs loop
adapts for u = P/w (``disk_mesh(1.0, 0.2)``, P3, ``tol=1e-4, goals=["escape_rate"]``).  On it,
``fp.Problem(..., weighting="gibbs")`` and ``weighting="none"`` evolve N(0, 2δI) to t = 20
(tol 1e-6); the table gives the L1 distance of P(t)/S(t) to the weighted quasi-stationary
density, the outflow rate at t = 20 against the exact μ (Kummer root), ⟨x²⟩ against δ, and
the relative L1 error with which the initial density is represented.  ``--unscaled`` adds
the weighted run without the symmetric scaling of the stepper's pencil (for the record:
the scaling is not optional).  Prints a markdown table (docs/dynamics.md).

    python bench/gibbs_dynamics.py [--deltas 0.02 0.01] [--unscaled 0.005]
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

import fpsolve as fp
import fpsolve.fe.gibbs_dynamics as gibbs_dynamics
from fpsolve.fe.dynamics import evolve_problem
from fpsolve.theory.exact import radial_ou_escape_rate

RADIAL = fp.landscapes.quadratic(np.eye(2))
TIMES = [0.0, 1.0, 5.0, 20.0]


def _l1(a, b) -> float:
    _, _, Pa, dx = a._quadrature()
    return float(np.sum(np.abs(Pa - b._quadrature()[2]) * dx))


def run(delta: float, unscaled: bool = False) -> list[dict]:
    """The rows of one δ: weighted and plain (or weighted scaled and unscaled)."""
    D = fp.diffusion.isotropic(delta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mesh = fp.solve(RADIAL, D, fp.disk_mesh(1.0, 0.2), order=3, tol=1e-4,
                        goals=["escape_rate"]).mesh
    weighted = fp.Problem(RADIAL, D, mesh, order=3, weighting="gibbs")
    qsd = weighted.solve()
    exact = radial_ou_escape_rate(delta)
    variants = ([("gibbs", weighted, False), ("gibbs, unscaled", weighted, True)] if unscaled
                else [("gibbs", weighted, False),
                      ("none", fp.Problem(RADIAL, D, mesh, order=3, weighting="none"), False)])
    rows = []
    for name, prob, plain_scale in variants:
        scaling = gibbs_dynamics.symmetric_scaling
        if plain_scale:         # the stepper's pencil without S = diag(A)^(-1/2)
            gibbs_dynamics.symmetric_scaling = lambda A: np.ones(A.shape[0])
        try:
            t = time.perf_counter()
            ev = evolve_problem(prob, fp.gaussian([0, 0], 2 * delta * np.eye(2)), TIMES,
                                tol=1e-6)
            seconds = time.perf_counter() - t
        finally:
            gibbs_dynamics.symmetric_scaling = scaling
        last = ev[-1]
        rows.append({"delta": delta, "operator": name, "dofs": prob.dofs,
                     "l1": [_l1(s, qsd) for s in ev], "rate": ev.escape_rate[-1] / exact - 1,
                     "x2": last.moments()["cov"][0, 0] / delta - 1,
                     "p0": ev.stats.get("initial_L1_error", float("nan")),
                     "steps": ev.stats["steps"], "time": seconds,
                     "load": os.getloadavg()[0]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deltas", type=float, nargs="*", default=[0.02, 0.01])
    ap.add_argument("--unscaled", type=float, nargs="*", default=[0.005])
    args = ap.parse_args()
    print("| δ | operator | dofs | L1 to P_w at t = 0, 1, 5, 20 | μ(20)/μ − 1 | "
          "⟨x²⟩(20)/δ − 1 | p0 error | steps | time [s] | load |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    rows = [r for d in args.deltas for r in run(d)]
    rows += [r for d in args.unscaled for r in run(d, unscaled=True)]
    for r in rows:
        l1 = ", ".join(f"{v:.1e}" for v in r["l1"])
        print(f"| {r['delta']:g} | {r['operator']} | {r['dofs']:,} | {l1} | {r['rate']:.1e} | "
              f"{r['x2']:.1e} | {r['p0']:.1e} | {r['steps']} | {r['time']:.1f} | "
              f"{r['load']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
