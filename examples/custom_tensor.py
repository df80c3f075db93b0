"""
A custom diffusion tensor
=========================

Any position-dependent tensor can drive the solver: ``fp.diffusion.custom(func)``
takes a vectorised ``func(x, y)`` returning the (2, 2, ...) array of D.  Here the noise
is anisotropic (10:1) with its strong axis turning as x changes, on a quadratic
landscape with a reflecting boundary.  ∇·D, which enters the drift of the
Itô equation, is computed by finite differences when no ``divergence=`` is given.

A gradient drift with such a D is not in detailed balance: the stationary density is
not the Boltzmann one and carries a circulating probability current.
"""
import os

import numpy as np

import fpsolve as fp

h = 0.12 if os.environ.get("FPSOLVE_DOCS_SMALL") == "1" else 0.06


def rotating(x, y, strong=0.10, weak=0.01):
    """D = R(θ) diag(strong, weak) R(θ)ᵀ, the strong axis at the angle θ = 1.2 x."""
    t = 1.2 * x
    c, s = np.cos(t), np.sin(t)
    return np.array([[strong * c * c + weak * s * s, (strong - weak) * c * s],
                     [(strong - weak) * c * s, strong * s * s + weak * c * c]])


L = fp.landscapes.quadratic([[1.0, 0.4], [0.4, 2.0]])
D = fp.diffusion.custom(rotating, name="rotating")
sol = fp.solve(L, D, fp.disk_mesh(radius=1.5, h=h), boundary="reflecting", order=2)
sol

# %%
# The density and the current: the flux cycles show the broken detailed balance.
fig = sol.plot(title="rotating anisotropic noise, reflecting boundary")

# %%
# The same D written as formulas: ``fp.diffusion.expression`` parses them
# (whitelisted, never ``eval``) and differentiates them symbolically, so ∇·D is exact.
# Both give the same tensor and nearly the same density.
De = fp.diffusion.expression(D11="(s + w)/2 + (s - w)/2*cos(2.4*x)",
                             D22="(s + w)/2 - (s - w)/2*cos(2.4*x)",
                             D12="(s - w)/2*sin(2.4*x)", s=0.10, w=0.01)
pts = np.array([[0.3, 0.2], [-0.5, 0.7], [1.0, -0.4]]).T
print("max |D_custom - D_expression| =",
      float(np.max(np.abs(D.tensor(*pts) - De.tensor(*pts)))))
sol_e = fp.solve(L, De, sol.mesh, boundary="reflecting", order=2)
probe = np.array([[0.0, 0.0], [0.5, -0.3], [-0.8, 0.4]])
print("P, custom (finite-difference ∇·D):", np.round(sol(probe), 5))
print("P, expression (symbolic ∇·D):     ", np.round(sol_e(probe), 5))
