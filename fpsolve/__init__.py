"""fpsolve: finite-element Fokker–Planck solver for SGD's anisotropic noise.

>>> import fpsolve as fp
>>> L = fp.landscapes.paper(eps=0.02, lam0=8.0, lam1=-2.0, lam2=1.0)
>>> D = fp.diffusion.sgd(L, delta_s=0.012, cross_diffusion=True)
>>> sol = fp.solve(L, D, fp.disk_mesh(radius=2.0, h=0.1), boundary="absorbing", order=2)

Layers (imports point down the list only; docs/architecture.md):

* :mod:`fpsolve.models` — expressions, landscapes, diffusion tensors
* :mod:`fpsolve.theory` — the adiabatic theory and exact references
* :mod:`fpsolve.fe` — mesh, assembly, solver, solution, flux, transition
* :mod:`fpsolve.stochastic` — Monte Carlo SGD/Langevin, the Fig. 2 phase diagram
* :mod:`fpsolve.vf` — variance–flatness (Feng–Tu)
* :mod:`fpsolve.compare` — the FE ↔ Monte Carlo cross-check
* edges: :mod:`fpsolve.io`, :mod:`fpsolve.plot`, :mod:`fpsolve.study`, :mod:`fpsolve.cli`
"""
import sys as _sys

from . import _display, _moved
from .models import diffusion, landscapes
from .models.validity import ModelError
from .fe.budget import BudgetError
from .fe.mesh import Mesh, MeshError, disk_mesh, load_mesh
from .fe.solution import Solution
from .fe import solver as _solver
from .fe.solver import FPSolveWarning, Problem, SolverError, solve
# fpsolve.flux is a callable module: fp.flux(sol) is fp.flux.flux(sol) (importing the
# function under the module's name would break fpsolve.flux.flux)
from .fe import flux
from .fe.flux import Flux

#: Imported on first use (``fp.compare``, ``from fpsolve import evolve``): a study or a
#: solve needs none of them, and together they cost about a third of ``import fpsolve``
#: (scipy.stats, numba, the theory's root finders).  name -> (module, attribute)
_LAZY = {
    "expressions": ("fpsolve.models.expressions", None),       # sympy
    "theory": ("fpsolve.theory", None),
    "critical_delta_s": ("fpsolve.fe.transition", "critical_delta_s"),
    "Evolution": ("fpsolve.fe.dynamics", "Evolution"),
    "evolve": ("fpsolve.fe.dynamics", "evolve"),
    "gaussian": ("fpsolve.fe.dynamics", "gaussian"),
    "MeanExitTime": ("fpsolve.fe.mfpt", "MeanExitTime"),
    "mfpt": ("fpsolve.fe.mfpt", "mfpt"),
    "export_vtk": ("fpsolve.io", "export_vtk"),
    "write_pvd": ("fpsolve.io", "write_pvd"),
    "export_field": ("fpsolve.io", "export_field"),
    "export_series": ("fpsolve.io", "export_series"),
    "montecarlo": ("fpsolve.stochastic.montecarlo", None),
    "phase": ("fpsolve.stochastic.phase", None),
    "compare": ("fpsolve.compare", None),
    "variance_flatness": ("fpsolve.vf", None),
}

# Old flat paths (fpsolve.fem, fpsolve.montecarlo, ...) resolve to the new modules.
# fpsolve.solve and fpsolve.flux are registered now: importing them through the finder
# would rebind the attributes fp.solve / fp.flux of this package to the modules.
_moved.install()
# Solution.plot() & co. draw through fpsolve.display (imported on first use)
_display.PROVIDER = "fpsolve.display"
_sys.modules.setdefault("fpsolve.solve", _solver)
_sys.modules.setdefault("fpsolve.flux", flux)



def __getattr__(name):
    import importlib
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = importlib.import_module(module)
        value = value if attr is None else getattr(value, attr)
        globals()[name] = value          # later lookups do not come here
        return value
    # fp.mesh, fp.fem, fp.transition, ...: the old flat modules, at their new places
    new = _moved.MOVED.get(f"{__name__}.{name}")
    if new is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import warnings
    warnings.warn(f"fpsolve.{name} moved to {new}", DeprecationWarning, stacklevel=2)
    return importlib.import_module(new)


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"
__all__ = ["landscapes", "diffusion", "expressions", "Mesh", "MeshError", "disk_mesh",
           "load_mesh", "Problem", "Solution", "solve", "FPSolveWarning", "SolverError",
           "__version__", "theory", "critical_delta_s", "flux", "Flux", "export_vtk",
           "write_pvd", "compare", "montecarlo", "variance_flatness", "phase", "evolve",
           "gaussian", "Evolution", "mfpt", "MeanExitTime", "export_series", "export_field",
           "ModelError", "BudgetError"]
