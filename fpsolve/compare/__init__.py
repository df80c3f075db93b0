"""FE ↔ Monte Carlo cross-check: a finite-element solution against direct simulation.

The only numerical layer that imports both the FE core and the Monte Carlo code.
Modules, from the driver down:

* :mod:`~fpsolve.compare.procedure` — :func:`crosscheck`: checks the arguments, runs
  the FE reference, the simulations and the extrapolation, returns a :class:`CrossCheck`.
* :mod:`~fpsolve.compare.reference` — the FE side: scalars and bin-averaged marginal
  and current on the Monte Carlo bins.
* :mod:`~fpsolve.compare.runs` — the Monte Carlo side: the EM and SGD runs, what each
  measures, and the runs extrapolated to step → 0 (escape rate: ln μ linear in √dt, or
  pooled Poisson counts).
* :mod:`~fpsolve.compare.estimators` — block-based estimators and tests: marginal mode,
  L1 of the marginal, χ² and scale of the binned current, frame statistics.
* :mod:`~fpsolve.compare.extrapolation` — :func:`extrapolate`, :class:`Extrapolation`.
* :mod:`~fpsolve.compare.relaxation` — :func:`relaxation_times` of the FE operator.
* :mod:`~fpsolve.compare.criteria` — :data:`ROWS`, :data:`Z_LIMIT`, :data:`P_LIMIT`,
  :data:`MIN_BIN_SAMPLES` and the per-row verdicts.
* :mod:`~fpsolve.compare.report` — :class:`CrossCheck`: table, JSON, Markdown;
  :mod:`~fpsolve.compare.figure` draws its figure.
"""
from .criteria import MIN_BIN_SAMPLES, P_LIMIT, ROWS, Z_LIMIT
from .extrapolation import Extrapolation, extrapolate
from .procedure import crosscheck
from .relaxation import relaxation_times
from .report import CrossCheck

__all__ = ["crosscheck", "CrossCheck", "extrapolate", "Extrapolation", "relaxation_times",
           "ROWS", "Z_LIMIT", "P_LIMIT", "MIN_BIN_SAMPLES"]
