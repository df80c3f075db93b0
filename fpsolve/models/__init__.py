"""Models: what the Fokker–Planck equation is made of, independent of any solver.

* :mod:`~fpsolve.models.expressions` — the whitelisted parser of user formulas
  (``ExpressionError``, ``parse``): user text becomes sympy, never ``eval``.
* :mod:`~fpsolve.models.landscapes` — losses L with ∇L, H and ∂H: the paper's family
  (Eq. 9), quadratics, user expressions.
* :mod:`~fpsolve.models.validity` — ``ModelError``: L, ∇L, D and ∇·D must be finite
  (and D a PSD tensor) at the points the solver uses; the error names the model and
  the first bad point.
* :mod:`~fpsolve.models.diffusion` — diffusion tensors D and ∇·D: SGD (D = Δ_S H²,
  with or without cross-diffusion), isotropic, constant, expression, custom callables,
  flatness-detecting noise.

This layer imports numpy and sympy only; every other layer builds on it.  sympy and
``expressions`` are imported on first use (user formulas), not by ``import fpsolve``.
"""
from . import diffusion, landscapes, validity
from .validity import ModelError

__all__ = ["diffusion", "expressions", "landscapes", "validity", "ModelError"]


def __getattr__(name):
    if name == "expressions":       # imports sympy: only when a user formula needs it
        import importlib
        return importlib.import_module(f"{__name__}.expressions")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
