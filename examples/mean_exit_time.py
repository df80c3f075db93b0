"""
Mean exit time and escape rate against exact results
====================================================

For L = r²/2 (r the distance from the minimum) and D = δI in the disk r < R with an
absorbing circle, the mean exit time from r is T(r) = ½[Ein(R²/2δ) − Ein(r²/2δ)] and
the escape rate μ is the smallest root of Kummer's function M(−μ/2, 1, R²/2δ)
(``fp.theory.exact``, computed with mpmath).  ``fp.mfpt`` solves the backward equation on the FE mesh; ``fp.solve``
gives μ from the quasi-stationary density.
"""
import os

import numpy as np
from matplotlib.figure import Figure

import fpsolve as fp
from fpsolve.theory import exact

small = os.environ.get("FPSOLVE_DOCS_SMALL") == "1"
delta, R = 0.1, 1.0
L = fp.landscapes.quadratic(np.eye(2))
D = fp.diffusion.isotropic(delta)
mesh = fp.disk_mesh(radius=R, h=0.1 if small else 0.05)
T = fp.mfpt(L, D, mesh, order=3)
sol = fp.solve(L, D, mesh, order=3)
mu = exact.radial_ou_escape_rate(delta, R)
print(f"escape rate: FE {sol.escape_rate:.8f}, exact {mu:.8f}, "
      f"relative error {abs(sol.escape_rate / mu - 1):.1e}")
print(f"E_QSD[T] = {T.mean_qsd:.5f} = 1/μ = {1 / mu:.5f}")

# %%
r = np.linspace(0.0, R, 101)
pts = np.stack([r, np.zeros_like(r)], axis=1)
Tex = np.array(exact.radial_ou_mfpt(r, delta, R), dtype=float)
Tfe = T(pts)
print(f"max |T_FE - T_exact| / T(0) = {np.max(np.abs(Tfe - Tex)) / Tex[0]:.1e}")
fig = Figure(figsize=(6.4, 4), layout="constrained")
ax = fig.subplots()
ax.plot(r, Tex, "k-", lw=3, alpha=0.35, label="exact ½[Ein(R²/2δ) − Ein(r²/2δ)]")
ax.plot(r, Tfe, "C0--", label="FE (P3), along the x axis")
ax.axhline(1 / mu, color="C3", ls=":", label="1/μ (mean over the quasi-stationary state)")
ax.set(xlabel="distance r from the minimum", ylabel="mean exit time T(r)")
ax.legend(fontsize=8)
