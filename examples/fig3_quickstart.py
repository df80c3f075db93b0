"""Solve the paper's Fig. 3 problem (Yang–Tang–Tu) for its four cases and print observables.

    python examples/fig3_quickstart.py [h]

Landscape ε = 0.02, λ0 = 8, λ1 = −2, λ2 = 1 on a disk of radius 2 with an absorbing
boundary; Δ_S ∈ {0.009, 0.012} with and without cross-diffusion.  One assembly per
noise model, both Δ_S values from A0 + Δ_S·A1.
"""
import sys
import time

import fpsolve as fp

h = float(sys.argv[1]) if len(sys.argv) > 1 else 0.025
L = fp.landscapes.paper(eps=0.02, lam0=8.0, lam1=-2.0, lam2=1.0)
mesh = fp.disk_mesh(radius=2.0, h=h)
print(f"{mesh}; P2 on curved boundary elements")
print(f"{'Δ_S':>6} {'cross':>5} {'dofs':>7} {'<x²>':>10} {'<y²>':>10} {'|x| of max':>10} "
      f"{'marg. mode':>10} {'escape μ':>11} {'neg. mass':>9} {'time':>6}")
for cross in (True, False):
    t0 = time.perf_counter()
    prob = fp.Problem(L, fp.diffusion.sgd(L, 0.01, cross_diffusion=cross), mesh, order=2)
    for ds in (0.009, 0.012):
        sol = prob.solve(ds)
        cov = sol.moments()["cov"]
        d = sol.diagnostics
        print(f"{ds:6.3f} {str(cross):>5} {d['dofs']:7d} {cov[0, 0]:10.6f} {cov[1, 1]:10.6f} "
              f"{abs(sol.mode()[0]):10.5f} {abs(sol.marginal_mode('x')):10.5f} "
              f"{sol.escape_rate:11.4e} {d['negative_mass']:9.1e} {time.perf_counter() - t0:5.1f}s")
        t0 = time.perf_counter()
