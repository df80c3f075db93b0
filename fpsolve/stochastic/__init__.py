"""Stochastic simulation: the independent check of the finite-element answers.

* :mod:`~fpsolve.stochastic.montecarlo` — random-shift SGD and Euler–Maruyama Langevin
  walkers (``sgd``, ``langevin``), absorbing disks (Fleming–Viot), histograms, currents,
  escape rates, block error bars.
* :mod:`~fpsolve.stochastic.phase` — the Fig. 2 phase diagram and critical exponents.
* ``_mc_kernels``, ``_phase_kernels`` — their numba kernels.

Imports the model layer and the theory; never the finite-element code.
"""
from . import montecarlo, phase

__all__ = ["montecarlo", "phase"]
