"""
Monte Carlo cross-check
=======================

The finite-element density is checked against direct simulation of the Itô SDE
dθ = −∇L dt + √(2D) dW (``fp.montecarlo.langevin``, vectorised walkers, seeded and
reproducible bit for bit).  For a quadratic landscape L = ½ θᵀAθ with constant
anisotropic D the stationary density is Gaussian with covariance S solving
AS + SAᵀ = 2D, so the three answers can be compared: exact, FE and Monte Carlo
(with standard errors from independent walker groups).  Euler–Maruyama has a bias of
order dt, so two time steps are run and extrapolated linearly to dt → 0.  The Monte
Carlo runs are small here; ``fp.compare.crosscheck`` does the full check (time-step extrapolation, currents,
escape rates) on the paper's problem.
"""
import os

import numpy as np
from matplotlib.figure import Figure
from scipy.linalg import solve_continuous_lyapunov

import fpsolve as fp

small = os.environ.get("FPSOLVE_DOCS_SMALL") == "1"
A = np.array([[1.0, 0.4], [0.4, 2.0]])
Dm = np.array([[0.05, 0.02], [0.02, 0.03]])
L = fp.landscapes.quadratic(A)
D = fp.diffusion.constant(Dm)
S = solve_continuous_lyapunov(A, 2 * Dm)          # exact stationary covariance

# FE: reflecting disk of radius 1.5 (the density there is ~1e-9 of its maximum)
sol = fp.solve(L, D, fp.disk_mesh(radius=1.5, h=0.15 if small else 0.08),
               boundary="reflecting", order=2)
# Monte Carlo in free space: Euler–Maruyama at two time steps, same physical time
runs = {dt: fp.montecarlo.langevin(L, D, dt=dt, radius=None, extent=(-1.5, 1.5, -1.5, 1.5),
                                   n_walkers=2048 if small else 8192, n_steps=int(20 / dt),
                                   seed=7, bins=60)
        for dt in (0.01, 0.005)}
mc = runs[0.005]
mc

# %%
# Moments: the Monte Carlo covariance is biased by O(dt) (about 1 % at dt = 0.01 for
# these rates); the extrapolation 2·C(dt/2) − C(dt) removes the leading term.
m1, m2 = runs[0.01].moments(), runs[0.005].moments()
print(f"{'':>6} {'exact':>8} {'FE':>8} {'MC dt=0.01':>18} {'MC dt=0.005':>18} "
      f"{'MC dt->0':>18}")
for (i, j), name in (((0, 0), "var x"), ((1, 1), "var y"), ((0, 1), "cov xy")):
    ext = 2 * m2["cov"][i, j] - m1["cov"][i, j]
    ext_se = np.hypot(2 * m2["cov_se"][i, j], m1["cov_se"][i, j])
    print(f"{name:>6} {S[i, j]:8.5f} {sol.moments()['cov'][i, j]:8.5f} "
          f"{m1['cov'][i, j]:9.5f} ± {m1['cov_se'][i, j]:.5f} "
          f"{m2['cov'][i, j]:9.5f} ± {m2['cov_se'][i, j]:.5f} {ext:9.5f} ± {ext_se:.5f}")

# %%
# The run draws itself: density histogram and marginals with ±2 SE bands.
fig = mc.plot()

# %%
# The x-marginal of the three: exact Gaussian, FE (exact line integrals of the FE
# function) and the Monte Carlo histogram.
xs = np.linspace(-1.2, 1.2, 241)
c, v, se = mc.marginal("x", return_se=True)
fig2 = Figure(figsize=(6.4, 4), layout="constrained")
ax = fig2.subplots()
ax.plot(xs, np.exp(-xs**2 / (2 * S[0, 0])) / np.sqrt(2 * np.pi * S[0, 0]), "k-", lw=2.5,
        alpha=0.35, label="exact")
ax.plot(xs, sol.marginal("x", xs), "C0-", label="FE (P2)")
ax.errorbar(c, v, yerr=2 * se, fmt=".", ms=3, color="C3", label="Monte Carlo ± 2 SE")
ax.set(xlabel="x", ylabel="∫P dy", xlim=(-1.2, 1.2))
ax.legend()
