"""FE ↔ Monte Carlo cross-check: a finite-element solution against direct simulation.

* :mod:`~fpsolve.compare.procedure` — ``crosscheck`` (EM dt → 0 extrapolation, SGD rows,
  binned currents, escape rates), ``extrapolate``, ``relaxation_times``, ``CrossCheck``.

The only numerical layer that imports both the FE core and the Monte Carlo code.
"""
from .procedure import (MIN_BIN_SAMPLES, P_LIMIT, ROWS, Z_LIMIT, CrossCheck, Extrapolation,
                        crosscheck, extrapolate, relaxation_times)

__all__ = ["crosscheck", "CrossCheck", "extrapolate", "Extrapolation", "relaxation_times",
           "ROWS", "Z_LIMIT", "P_LIMIT", "MIN_BIN_SAMPLES"]
