"""Analytic theory: closed forms that check the numerics without sharing code with them.

* :mod:`~fpsolve.theory.reduction` — the adiabatic (fast-variable elimination) theory of
  Yang, Tang & Tu: κ(x), Δ(x), the reduced marginal, L_SGD, x_ss, Δ_S*, Δ_m, τ_s, the
  critical exponents, and the constant-noise simple model.
* :mod:`~fpsolve.theory.exact` — exact references of the radial OU exit problem
  (escape rate from Kummer's function, mean exit time from Ein), with mpmath.

Imports the model layer only.
"""
from . import exact, reduction
from .reduction import *  # noqa: F401,F403  (the public face of fp.theory)
from .reduction import __all__ as _reduction_all

__all__ = ["exact", "reduction", *_reduction_all]

