"""Stochastic simulation: the independent check of the finite-element answers.

* :mod:`~fpsolve.stochastic.montecarlo` — random-shift SGD and Euler–Maruyama Langevin
  walkers (``sgd``, ``langevin``), absorbing disks (Fleming–Viot), histograms, currents,
  escape rates, block error bars.
* :mod:`~fpsolve.stochastic.phase` — the Fig. 2 phase diagram and critical exponents.
* ``_mc_run`` (set-up: settings, seeding, blocks), ``_mc_models`` (which models compile),
  ``_mc_blocks`` / ``_mc_numpy`` (block execution, numba / numpy), ``_mc_reduce``
  (block-ordered reduction), ``_mc_result`` (:class:`MonteCarloResult`); ``_phase_grid``,
  ``_phase_traj``, ``_phase_fit``, ``_phase_theory``, ``_phase_common``: the pieces of
  ``phase``; ``_tasks``: local thread pool or Dask cluster.
* ``_mc_kernels``, ``_phase_kernels`` — their numba kernels.

Imports the model layer and the theory; never the finite-element code.
"""
from . import montecarlo, phase

__all__ = ["montecarlo", "phase"]
