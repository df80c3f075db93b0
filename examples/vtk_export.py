"""
Export to ParaView (VTK)
========================

``fp.export_vtk(sol, "case.vtu")`` writes the density and its flux fields (P, J, its magnitude,
ψ, φ, L, D) on the FE dofs themselves: P2 solutions as quadratic triangles, P3 as
cubic Lagrange triangles, so ParaView shows the FE function and not an interpolant.
Here the file is read back with meshio to show what it holds.
"""
import json
import os
import tempfile

import meshio
import numpy as np
from matplotlib.figure import Figure
from matplotlib.tri import Triangulation

import fpsolve as fp

h = 0.1 if os.environ.get("FPSOLVE_DOCS_SMALL") == "1" else 0.05
L = fp.landscapes.paper(eps=0.02, lam0=8.0, lam1=-2.0, lam2=1.0)
sol = fp.solve(L, fp.diffusion.sgd(L, 0.012), fp.disk_mesh(radius=2.0, h=h), order=2)

out = tempfile.mkdtemp()
path = fp.export_vtk(sol, os.path.join(out, "paper_ds0012.vtu"))
m = meshio.read(path)
print(f"{os.path.basename(path)}: {len(m.points)} points, cells {[c.type for c in m.cells]}")
print("point data:", sorted(m.point_data))
print("cell data: ", sorted(m.cell_data))
params = json.loads(bytes(m.field_data["parameters_json"].astype(np.uint8)).decode())
print("escape rate in the file:", float(m.field_data["escape_rate"][0]),
      "| keys of parameters_json:", sorted(params))

# %%
# P and the stream function ψ as stored in the file (drawn on the triangle corners).
tri = Triangulation(m.points[:, 0], m.points[:, 1], m.cells_dict["triangle6"][:, :3])
fig = Figure(figsize=(10, 4.2), layout="constrained")
for ax, name in zip(fig.subplots(1, 2), ("P", "psi")):
    cs = ax.tripcolor(tri, m.point_data[name], shading="gouraud",
                      cmap="viridis" if name == "P" else "RdBu_r")
    fig.colorbar(cs, ax=ax, label=name)
    ax.set_aspect("equal")
    ax.set(xlim=(-1, 1), ylim=(-1.2, 1.2), xlabel="x", ylabel="y", title=f"{name} from the .vtu")

# %%
# A time series or a sweep goes into one ``.pvd`` collection, which ParaView opens as
# an animation: ``fp.write_pvd("sweep.pvd", ["a.vtu", "b.vtu"], times=[0.009, 0.012])``.
