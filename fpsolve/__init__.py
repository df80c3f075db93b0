"""fpsolve: finite-element Fokker–Planck solver for SGD's anisotropic noise.

>>> import fpsolve as fp
>>> L = fp.landscapes.paper(eps=0.02, lam0=8.0, lam1=-2.0, lam2=1.0)
>>> D = fp.diffusion.sgd(L, delta_s=0.012, cross_diffusion=True)
>>> sol = fp.solve(L, D, fp.disk_mesh(radius=2.0, h=0.1), boundary="absorbing", order=2)
"""
from . import diffusion, landscapes
from . import theory
from .mesh import Mesh, MeshError, disk_mesh, load_mesh
from .solution import Solution
from .solve import FPSolveWarning, Problem, SolverError, solve
from .transition import critical_delta_s
# fpsolve.flux is a callable module: fp.flux(sol) is fp.flux.flux(sol) (importing the
# function under the module's name would break fpsolve.flux.flux)
from . import flux
from .flux import Flux
from .io import export_vtk, write_pvd
from . import compare
from . import variance_flatness
from . import phase

__version__ = "0.1.0"
__all__ = ["landscapes", "diffusion", "Mesh", "MeshError", "disk_mesh", "load_mesh",
           "Problem", "Solution", "solve", "FPSolveWarning", "SolverError", "__version__",
           "theory", "critical_delta_s", "flux", "Flux", "export_vtk", "write_pvd", "compare",
           "variance_flatness", "phase"]
