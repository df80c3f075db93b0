"""Radial OU escape rates with tol = 1e-4: Gibbs-weighted against the plain discretisation.

L = |x|²/2, D = δI, absorbing unit circle; exact μ: the smallest Kummer root
(``fpsolve.theory.exact.radial_ou_escape_rate``, mpmath).  From ``disk_mesh(1.0, 0.2)``,
P3, ``tol=1e-4, goals=["escape_rate"]``, with ``weighting="auto"`` (the Gibbs weight,
fpsolve.fe.gibbs) and ``weighting="none"`` (the plain loop, only where it fits in a few
minutes: ``--plain`` lists the δ).  Prints a markdown table (docs/adaptivity.md).

    python bench/gibbs_radial.py [--plain 0.1 0.05 0.02]
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import fpsolve as fp
from fpsolve.theory.exact import radial_ou_escape_rate

DELTAS = (0.1, 0.05, 0.02, 0.01, 0.005)
RADIAL = fp.landscapes.quadratic([[1.0, 0.0], [0.0, 1.0]])


def run(delta: float, weighting: str) -> dict:
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = fp.solve(RADIAL, fp.diffusion.isotropic(delta), fp.disk_mesh(1.0, 0.2),
                       order=3, tol=1e-4, goals=["escape_rate"], weighting=weighting)
    seconds = time.perf_counter() - t
    exact = radial_ou_escape_rate(delta)
    d = sol.diagnostics
    return {"delta": delta, "weighting": weighting, "exact": exact, "mu": sol.escape_rate,
            "err": (sol.escape_rate - exact) / exact, "est": sol.error_estimate["escape_rate"],
            "dofs": d["dofs"], "levels": len(d["adapt"]), "time": seconds,
            "load": os.getloadavg()[0],
            "status": "converged" if d["adapt_converged"] else "flagged"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plain", type=float, nargs="*", default=[0.1, 0.05, 0.02],
                    help="δ values also run with weighting='none'")
    args = ap.parse_args()
    rows = [run(d, "auto") for d in DELTAS] + [run(d, "none") for d in args.plain]
    print("| δ | weighting | exact μ | μ | rel. error | estimate | effectivity | dofs | "
          "levels | time [s] | load | status |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        eff = r["est"] / abs(r["err"]) if r["err"] else float("inf")
        print(f"| {r['delta']:g} | {'gibbs' if r['weighting'] == 'auto' else 'none'} | "
              f"{r['exact']:.4e} | {r['mu']:.4e} | {r['err']:.1e} | {r['est']:.1e} | "
              f"{eff:.2f} | {r['dofs']:,} | {r['levels']} | {r['time']:.1f} | "
              f"{r['load']:.1f} | {r['status']} |", flush=True)


if __name__ == "__main__":
    main()
