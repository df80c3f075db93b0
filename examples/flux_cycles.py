"""
Probability flux and flux cycles
================================

With anisotropic, landscape-dependent noise the stationary state of SGD is not in
detailed balance: a probability current J = −∇L P − ∇·(D P) circulates in cycles.
``fp.flux(sol)`` projects J onto the FE space, computes the stream function ψ
(J = rot ψ + ∇φ, ψ = 0 on the boundary) and locates the cycle centres (extrema of ψ);
the circulation of a cycle is the current it carries through any cut from its centre
to the boundary.
"""
import os

import fpsolve as fp

h = 0.08 if os.environ.get("FPSOLVE_DOCS_SMALL") == "1" else 0.04
L = fp.landscapes.paper(eps=0.02, lam0=8.0, lam1=-2.0, lam2=1.0)
sol = fp.solve(L, fp.diffusion.sgd(L, 0.012, cross_diffusion=True),
               fp.disk_mesh(radius=2.0, h=h), order=2)
fl = fp.flux(sol)
fl

# %%
# ψ (left; red maxima are counter-clockwise cycles) and the magnitude of the current
# with its streamlines (right).
fig = fl.plot()

# %%
# Two independent measures of each cycle's current agree: ψ at the centre and the
# line integral of J·n along the cut from the centre to the boundary.
for c in fl.cycles:
    print(f"{c['sense']:>3} cycle at ({c['center'][0]:+.3f}, {c['center'][1]:+.3f}): "
          f"ψ = {c['circulation']:+.5f}, ∫J·n ds = {c['current_line']:.5f}")

# %%
# The current through any line is a line integral of J·n (n to the right of the
# direction of travel); for the rotational part it is the difference of ψ between the
# end points.  From the y axis to the strongest cycle's centre:
c = fl.cycles[0]["center"]
line = [(0.0, c[1]), (c[0], c[1])]
print(f"∫J·n ds = {fl.through(line):+.5f}, ψ(end) − ψ(start) = {fl.psi_difference(line):+.5f}")
