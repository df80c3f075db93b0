"""
Accuracy on request: adaptive refinement with ``tol``
=====================================================

Every solution carries estimated relative errors of ⟨x²⟩, ⟨y²⟩, the escape rate μ and
P (dual-weighted residuals, ``sol.error_estimate``).  With ``tol=`` the solver refines
the mesh where those estimates come from until they are below ``tol``.  The escape rate
lives in the boundary layer where P falls to zero, so that is where the mesh is refined;
the figure compares the error per unknown with uniform refinement.

The check: the radial Ornstein–Uhlenbeck problem (L = r²/2, D = δI, absorbing unit
circle) whose exact μ is the smallest root of Kummer's function
(``fp.theory.exact.radial_ou_escape_rate``).
"""
import os

import numpy as np
from matplotlib.figure import Figure

import fpsolve as fp
from fpsolve.theory import exact

small = os.environ.get("FPSOLVE_DOCS_SMALL") == "1"
delta, tol = 0.05, (1e-3 if small else 1e-4)
L = fp.landscapes.quadratic(np.eye(2))
D = fp.diffusion.isotropic(delta)
mu = exact.radial_ou_escape_rate(delta, 1.0)

sol = fp.solve(L, D, fp.disk_mesh(radius=1.0, h=0.25), order=2, tol=tol,
               goals=["escape_rate"])
print(f"converged: {sol.diagnostics['adapt_converged']}, untrusted: "
      f"{sol.diagnostics['untrusted']}")
print(f"{'level':>5} {'dofs':>7} {'μ_h':>12} {'estimated':>10} {'true error':>10}")
for lv in sol.diagnostics["adapt"]:
    print(f"{lv['level']:5d} {lv['dofs']:7d} {lv['escape_rate']:12.6e} "
          f"{lv['estimate']['escape_rate']:10.1e} {abs(lv['escape_rate'] / mu - 1):10.1e}")

# %%
# The same problem on uniformly refined meshes, for comparison.
uniform = []
for h in ([0.25, 0.125, 0.0625] if small else [0.25, 0.125, 0.0625, 0.03125]):
    s = fp.solve(L, D, fp.disk_mesh(radius=1.0, h=h), order=2)
    uniform.append((s.diagnostics["dofs"], abs(s.escape_rate / mu - 1),
                    s.error_estimate["escape_rate"]))
    print(f"uniform h = {h:<7g} dofs {uniform[-1][0]:6d}: true error {uniform[-1][1]:.1e}, "
          f"estimated {uniform[-1][2]:.1e}")

# %%
# Left: relative error of μ against the number of unknowns (true errors as lines,
# estimates as open markers).  Right: the adapted mesh, refined towards the absorbing
# circle where the quasi-stationary density falls to zero.
levels = sol.diagnostics["adapt"]
fig = Figure(figsize=(11, 4.6), layout="constrained")
a, b = fig.subplots(1, 2, width_ratios=[1.2, 1.0])
a.loglog([lv["dofs"] for lv in levels], [abs(lv["escape_rate"] / mu - 1) for lv in levels],
         "o-", color="C0", label="adaptive: true error")
a.loglog([lv["dofs"] for lv in levels], [lv["estimate"]["escape_rate"] for lv in levels],
         "o", mfc="none", color="C0", label="adaptive: estimate")
u = np.array(uniform)
a.loglog(u[:, 0], u[:, 1], "s-", color="C1", label="uniform: true error")
a.loglog(u[:, 0], u[:, 2], "s", mfc="none", color="C1", label="uniform: estimate")
a.axhline(tol, color="k", ls=":", label=f"tol = {tol:g}")
a.set(xlabel="dofs", ylabel="relative error of the escape rate μ")
a.legend(fontsize=8)
m = sol.mesh
b.triplot(m.p[0], m.p[1], m.t[:3].T, lw=0.2, color="0.2")
b.set_aspect("equal")
b.set(xlabel="x", ylabel="y", title=f"adapted mesh: {m.nelements} triangles")
