"""Old flat import paths (``fpsolve.fem``, ``fpsolve.montecarlo``, ...) of the modules
that now live in layered subpackages (docs/architecture.md).

``import fpsolve.fem`` keeps working: a meta-path finder hands back the module at its
new place (the very same module object, so state and classes are shared) and issues a
``DeprecationWarning`` that names the new path.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: old module path -> new module path
MOVED = {
    "fpsolve.expressions": "fpsolve.models.expressions",
    "fpsolve.landscapes": "fpsolve.models.landscapes",
    "fpsolve.diffusion": "fpsolve.models.diffusion",
    "fpsolve.mesh": "fpsolve.fe.mesh",
    "fpsolve.fem": "fpsolve.fe.assembly",
    "fpsolve._ordering": "fpsolve.fe.ordering",
    "fpsolve.solution": "fpsolve.fe.solution",
    "fpsolve.solve": "fpsolve.fe.solver",
    "fpsolve.flux": "fpsolve.fe.flux",
    "fpsolve.transition": "fpsolve.fe.transition",
    "fpsolve.montecarlo": "fpsolve.stochastic.montecarlo",
    "fpsolve._mc_kernels": "fpsolve.stochastic._mc_kernels",
    "fpsolve.phase": "fpsolve.stochastic.phase",
    "fpsolve._phase_kernels": "fpsolve.stochastic._phase_kernels",
    "fpsolve.variance_flatness": "fpsolve.vf",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; import it from there",
                      DeprecationWarning, stacklevel=3)
        module = importlib.import_module(new)
        self._spec = module.__spec__
        return module

    def exec_module(self, module):
        # already executed at its new path; the import system has just set __spec__ to
        # the alias spec: give the module back its own
        module.__spec__ = self._spec


def install() -> None:
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
