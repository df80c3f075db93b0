"""
A symbolic landscape and an exact answer
========================================

Landscapes can be given as formulas: ``fp.landscapes.expression`` parses them with a
whitelist (no ``eval``) and derives ∇L, the Hessian H and ∂H symbolically.  With
isotropic constant noise D = δI and a reflecting boundary the stationary density is
the Boltzmann distribution P ∝ exp(−L/δ), which checks the solver: the maximum error
of P2 elements falls quickly with the mesh size h (observed orders printed below; the
dashed line is h³ for reference).
"""
import os

import numpy as np
from matplotlib.figure import Figure
from scipy.integrate import dblquad

import fpsolve as fp

small = os.environ.get("FPSOLVE_DOCS_SMALL") == "1"
L = fp.landscapes.expression("(x**2 - 1)**2 + 0.5*(y - 0.3*x)**2 + 0.2*x")
delta = 0.15
D = fp.diffusion.isotropic(delta)

xs, ys = np.meshgrid(np.linspace(-1.6, 1.6, 161), np.linspace(-1.6, 1.6, 161))
inside = xs**2 + ys**2 < 1.95**2
pts = np.stack([xs[inside], ys[inside]], axis=1)

# exact normalisation over the disk r < 2
Z = dblquad(lambda r, t: r * np.exp(-float(L.value(r * np.cos(t), r * np.sin(t))) / delta),
            0.0, 2 * np.pi, 0.0, 2.0, epsabs=1e-12, epsrel=1e-10)[0]
exact = np.exp(-L.value(pts[:, 0], pts[:, 1]) / delta) / Z

hs = [0.3, 0.15, 0.075] if small else [0.2, 0.1, 0.05, 0.025]
errors = []
for h in hs:
    sol = fp.solve(L, D, fp.disk_mesh(radius=2.0, h=h), boundary="reflecting", order=2)
    errors.append(np.max(np.abs(sol(pts) - exact)) / np.max(exact))
    print(f"h = {h:5.3f}: dofs {sol.diagnostics['dofs']:6d}, max |P - P_exact| / max P = "
          f"{errors[-1]:.2e}")
rates = np.diff(np.log(errors)) / np.diff(np.log(hs))
print("observed orders:", np.round(rates, 2))

# %%
fig = Figure(figsize=(10, 4), layout="constrained")
a, b = fig.subplots(1, 2)
a.loglog(hs, errors, "o-", label="P2, max error")
a.loglog(hs, errors[-1] * (np.array(hs) / hs[-1]) ** 3, "k--", label="h³")
a.set(xlabel="mesh size h", ylabel="max |P − P_exact| / max P")
a.legend()
xline = np.linspace(-1.8, 1.8, 301)
b.plot(xline, sol.marginal("x", xline), label="FE marginal ∫P dy")
b.set(xlabel="x", ylabel="∫P dy", title="double well, finest mesh")
b.legend()
