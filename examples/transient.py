"""
Transient dynamics: fp.evolve
=============================

``fp.evolve`` integrates ∂P/∂t = ∇·(∇L P + ∇·(D P)) from an initial density with an
error-controlled TR-BDF2 scheme (one LU per step size).  For an Ornstein–Uhlenbeck
process (quadratic L, constant D) started from a Gaussian the density stays Gaussian
with an exactly known mean and covariance (``fp.theory.exact.ou_transient``), which
checks the time integration.  With an absorbing boundary the survival probability
S(t) = ∫P dA decays and −S'/S tends to the escape rate μ of the quasi-stationary state.
"""
import os

import numpy as np
from matplotlib.figure import Figure

import fpsolve as fp
from fpsolve.theory.exact import ou_transient

small = os.environ.get("FPSOLVE_DOCS_SMALL") == "1"
A = np.array([[1.0, 0.3], [0.3, 2.0]])
Dm = np.array([[0.1, 0.04], [0.04, 0.05]])
L = fp.landscapes.quadratic(A)
D = fp.diffusion.constant(Dm)
mesh = fp.disk_mesh(radius=2.5, h=0.15 if small else 0.08)
m0, C0 = np.array([1.0, -0.5]), 0.02 * np.eye(2)
times = np.linspace(0.0, 3.0, 13)
ev = fp.evolve(L, D, mesh, fp.gaussian(m0, C0), times, boundary="reflecting", tol=1e-5)
print(f"{ev.stats['steps']} steps, {ev.stats['factorisations']} factorisations")

# %%
# Mean and covariance of the FE density against the exact OU transient.
fe = [ev[i].moments() for i in range(len(times))]
ex = [ou_transient(A, Dm, m0, C0, t) for t in times]
err_m = max(np.max(np.abs(f["mean"] - e[0])) for f, e in zip(fe, ex))
err_c = max(np.max(np.abs(f["cov"] - e[1])) for f, e in zip(fe, ex))
print(f"max |mean - exact| = {err_m:.1e}, max |cov - exact| = {err_c:.1e}")

fig = Figure(figsize=(10, 4), layout="constrained")
a, b = fig.subplots(1, 2)
tt = np.linspace(0, times[-1], 200)
exact = [ou_transient(A, Dm, m0, C0, t) for t in tt]
for k, name in ((0, "x"), (1, "y")):
    a.plot(tt, [e[0][k] for e in exact], f"C{k}-", label=f"exact mean {name}")
    a.plot(times, [f["mean"][k] for f in fe], f"C{k}o", ms=4, label=f"FE mean {name}")
for (i, j), name, c in (((0, 0), "var x", 2), ((1, 1), "var y", 3), ((0, 1), "cov xy", 4)):
    b.plot(tt, [e[1][i, j] for e in exact], f"C{c}-", label=f"exact {name}")
    b.plot(times, [f["cov"][i, j] for f in fe], f"C{c}o", ms=4, label=f"FE {name}")
a.set(xlabel="t", ylabel="mean")
b.set(xlabel="t", ylabel="covariance")
a.legend(fontsize=8)
b.legend(fontsize=8)

# %%
# With an absorbing circle of radius 1 and weaker confinement the walkers leak out:
# the survival probability and the instantaneous outflow rate, which settles at the
# escape rate μ of the quasi-stationary solve.
L2 = fp.landscapes.quadratic(0.5 * np.eye(2))
D2 = fp.diffusion.isotropic(0.15)
mesh2 = fp.disk_mesh(radius=1.0, h=0.1 if small else 0.05)
t2 = np.linspace(0.0, 6.0, 25)
ev2 = fp.evolve(L2, D2, mesh2, fp.gaussian([0.0, 0.0], 0.01 * np.eye(2)), t2)
mu = fp.solve(L2, D2, mesh2).escape_rate
print(f"outflow rate at t = {t2[-1]:g}: {ev2.escape_rate[-1]:.5f}; quasi-stationary μ = {mu:.5f}")
fig2 = Figure(figsize=(10, 3.6), layout="constrained")
a, b = fig2.subplots(1, 2)
a.plot(t2, ev2.mass, "o-", ms=3)
a.set(xlabel="t", ylabel="survival S(t) = ∫P dA")
b.plot(t2, ev2.escape_rate, "o-", ms=3, label="−S'(t)/S(t)")
b.axhline(mu, color="k", ls="--", label="μ (quasi-stationary)")
b.set(xlabel="t", ylabel="outflow rate")
b.legend()
