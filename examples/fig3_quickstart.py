"""
Fig. 3: the quasi-stationary density of SGD
============================================

The paper's Fig. 3 problem (Yang, Tang & Tu): landscape ε = 0.02, λ0 = 8, λ1 = −2,
λ2 = 1 (Eq. 9) on a disk of radius 2 with an absorbing boundary, noise D = Δ_S H²
with Δ_S ∈ {0.009, 0.012}, with and without cross-diffusion.  One assembly per noise
model; both Δ_S values come from A(Δ_S) = A0 + Δ_S·A1.

Run it as a script with a mesh size of your choice::

    python examples/fig3_quickstart.py 0.025

(the gallery uses h = 0.05, or 0.1 with ``FPSOLVE_DOCS_SMALL=1``).
"""
import os
import sys
import time

import fpsolve as fp

if len(sys.argv) > 1:
    h = float(sys.argv[1])
else:
    h = 0.1 if os.environ.get("FPSOLVE_DOCS_SMALL") == "1" else 0.05
L = fp.landscapes.paper(eps=0.02, lam0=8.0, lam1=-2.0, lam2=1.0)
mesh = fp.disk_mesh(radius=2.0, h=h)
print(f"{mesh}; P2 on curved boundary elements")

# %%
# The four cases: second moments, the density maximum, the x-marginal mode, the escape
# rate μ and the negative mass of the FE density (a resolution check).
print(f"{'Δ_S':>6} {'cross':>5} {'dofs':>7} {'<x²>':>10} {'<y²>':>10} {'|x| of max':>10} "
      f"{'marg. mode':>10} {'escape μ':>11} {'neg. mass':>9} {'time':>6}")
sols = {}
for cross in (True, False):
    t0 = time.perf_counter()
    prob = fp.Problem(L, fp.diffusion.sgd(L, 0.01, cross_diffusion=cross), mesh, order=2)
    for ds in (0.009, 0.012):
        sol = sols[ds, cross] = prob.solve(ds)
        cov = sol.moments()["cov"]
        d = sol.diagnostics
        print(f"{ds:6.3f} {str(cross):>5} {d['dofs']:7d} {cov[0, 0]:10.6f} {cov[1, 1]:10.6f} "
              f"{abs(sol.mode()[0]):10.5f} {abs(sol.marginal_mode('x')):10.5f} "
              f"{sol.escape_rate:11.4e} {d['negative_mass']:9.1e} {time.perf_counter() - t0:5.1f}s")
        t0 = time.perf_counter()

# %%
# One case drawn by the solution itself: the density P(x, y), the probability flux as
# streamlines (their width grows with the current), the centres of the flux cycles and the x-marginal ∫P dy.
# With cross-diffusion and Δ_S = 0.012 the marginal has two maxima (phase II).
fig = sols[0.012, True].plot()

# %%
# A solution shows its key numbers as a table in a notebook (``_repr_html_``):
sols[0.012, True]
