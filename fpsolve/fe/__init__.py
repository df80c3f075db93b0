"""The finite-element core: mesh → assembly → solve → solution → flux.

* :mod:`~fpsolve.fe.mesh` — disk meshes, loading any meshio file, curved P2/P3
  boundaries (``Mesh``, ``disk_mesh``, ``load_mesh``).
* :mod:`~fpsolve.fe.assembly` — the weak form: M, A0, A1 on one shared sparsity
  pattern (A(Δ_S) = A0 + Δ_S·A1), SUPG, point location and probes.
* :mod:`~fpsolve.fe.geometry` — curved boundary elements: inverse map, exact
  boundary-facet quadrature points (``boundary_basis``).
* :mod:`~fpsolve.fe.ordering` — fill-reducing orders for the sparse LU (METIS).
* :mod:`~fpsolve.fe.solver` — quasi-stationary (absorbing) and stationary
  (reflecting) solves (``Problem``, ``solve``) with their diagnostics and estimates;
  :mod:`~fpsolve.fe.eigensolve` holds the sparse LU and inverse iteration behind them,
  :mod:`~fpsolve.fe.layer` re-solves the density where it is below the LU's round-off
  (small noise).
* :mod:`~fpsolve.fe.gibbs` — the Gibbs-weighted discretisation P = e^(−ψ)·u of models in
  detailed balance (``weighting=``), with its P_k/P_{k+1} error estimate
  (:mod:`~fpsolve.fe.gibbs_estimate`): exponentially small escape rates on few dofs.
* :mod:`~fpsolve.fe.solution` — ``Solution``: moments, marginals, evaluation.
* :mod:`~fpsolve.fe.flux` — probability current, stream function, cycles.
* :mod:`~fpsolve.fe.transition` — Δ_S* of the 2-D solution.
* :mod:`~fpsolve.fe.dynamics` — P(x, t) (``evolve``, ``gaussian``), stepped by
  :mod:`~fpsolve.fe.timestep` (TR-BDF2); a Gibbs-weighted problem's u = P/w on its
  weighted pencil (:mod:`~fpsolve.fe.gibbs_dynamics`).
* :mod:`~fpsolve.fe.spectrum` — relaxation spectrum (``Problem.spectrum``).
* :mod:`~fpsolve.fe.mfpt` — mean first-passage time (``mfpt``).
* :mod:`~fpsolve.fe.grading` — a-priori variation of log P per element (local
  equilibrium h|D⁻¹β|), measured against the cell Péclet number of the adaptive loop.

Imports the model layer and the theory; never the Monte Carlo, study, I/O or plot code.
"""
from .mesh import Mesh, MeshError, disk_mesh, load_mesh
from .solution import Solution
from .solver import FPSolveWarning, Problem, SolverError, solve

__all__ = ["Mesh", "MeshError", "disk_mesh", "load_mesh", "Solution", "FPSolveWarning",
           "Problem", "SolverError", "solve"]
