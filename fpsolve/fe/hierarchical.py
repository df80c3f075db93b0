"""Hierarchical (p-enrichment) estimate of the escape rate: μ_{k+1} − μ_h.

The dual-weighted estimate of μ (:mod:`.estimate`) needs the weight w = 1 − φ to relative
accuracy where it is exponentially small.  At the smallest noise levels that weight cannot
be computed in double precision (paper landscape at Δ_S = 0.002: the LU's correction
solves amplify relative errors by ~1e18, docs/adaptivity.md), the DWR estimate is then
infinite and μ is never certified.  The hierarchical estimate needs no dual: the same
quasi-stationary problem is solved in V_{k+1} (P_{k+1} on the same, curved, mesh) with the
solver's own inverse iteration and boundary-layer re-solve, and

    μ − μ_h ≈ μ_{k+1} − μ_h,

which holds when μ_{k+1} is much closer to μ than μ_h (saturation: one order higher on the
same mesh; measured below and in docs/adaptivity.md).  It costs a factorisation of 1.8×
the P3 dofs, so it is used only where the DWR estimate of μ is not finite
(:func:`fpsolve.fe.estimate.estimate_errors`).  A P_{k+1} solve that is flagged (stalled
above the ceiling, layer re-solve not converged), a μ_{k+1} ≤ 0, or one that would not fit
the memory budget gives no estimate (inf).
"""
from __future__ import annotations

import numpy as np

from . import budget as _budget
from .assembly import _assemble_affine, _pattern

__all__ = ["HIER_BYTES_PER_DOF", "PECLET_MAX", "OUTFLOW_FRACTION", "enriched_escape_rate",
           "enriched_operator", "fits_budget", "hierarchical_estimate"]

#: peak memory of the V_{k+1} solve per P_k dof (assembly, LU, inverse iteration, layer
#: re-solve), measured by bench/hierarchical.py, before budget.SAFETY
HIER_BYTES_PER_DOF = {1: 16000.0, 2: 10000.0, 3: 8000.0}


def enriched_escape_rate(problem, diffusion, basis, cache: dict, graded: bool = False
                         ) -> dict:
    """The outflow escape rate of the same problem solved in V_{k+1} on the same mesh.

    Parameters
    ----------
    problem
        Anything with ``landscape``, ``drift``, ``diffusion`` (a :class:`Problem`).
    diffusion
        The diffusion model at the solved strength.
    basis, cache
        The solve's P_k basis and its mesh cache (the P_{k+1} basis is kept there).
    graded
        The mesh is graded: its LU keeps SuperLU's order below ordering.MIN_SIZE_GRADED.

    Returns
    -------
    dict
        ``escape_rate`` (μ_{k+1}, the outflow as the solver reports it), ``dofs``,
        ``stop`` (the inverse iteration's record, layer re-solve included) and
        ``trusted`` (converged, or stalled with a residual below the ceiling and a
        converged layer re-solve).
    """
    from .eigensolve import _quasi_stationary
    from .ordering import MIN_SIZE_GRADED
    from .solver import _stop_untrusted

    bp, A, M, I, B = enriched_operator(problem, diffusion, basis, cache)
    P, mu_eig, info = _quasi_stationary(A, M, M, I, B,
                                        min_size=MIN_SIZE_GRADED if graded else None)
    stop = info["stop"]
    return {"escape_rate": float(info["mu_flux"]), "escape_rate_eig": float(mu_eig),
            "dofs": int(bp.N), "stop": stop, "trusted": not _stop_untrusted(stop),
            "layer_peclet": _outflow_peclet(problem, diffusion, bp, B, -(A @ P)[B])}


def enriched_operator(problem, diffusion, basis, cache: dict):
    """The plain Galerkin operator of ``problem`` in V_{k+1} on the same mesh.

    Returns
    -------
    (bp, A, M, I, B)
        The P_{k+1} basis, A (at ``diffusion``'s strength) and M, interior and boundary dofs.
    """
    from .estimate import _boundary_dofs, _coefficients, enriched_basis

    bp, _ = enriched_basis(basis, cache)
    beta, D = _coefficients(problem, bp, diffusion.strength)
    M, A0, A1 = _assemble_affine(bp, _pattern(bp), beta, D, np.zeros_like(beta))
    A = (A0 + A1).tocsr()
    del A0, A1
    B = _boundary_dofs(bp, cache)
    return bp, A, M, np.setdiff1d(np.arange(bp.N), B), B


def _outflow_peclet(problem, diffusion, bp, B, outflow) -> float:
    """The cell Péclet number h|β·n|/nᵀDn of the boundary edges that carry
    :data:`OUTFLOW_FRACTION` of the outflow (|outflow| per boundary dof of V_{k+1}).

    Where it exceeds :data:`PECLET_MAX` the boundary layer, of width nᵀDn/|β·n|, is not
    resolved, and P_k and P_{k+1} can be wrong alike (radial OU at Pe = 5: μ_h and
    μ_{k+1} 26 % and 30 % off, 3 % apart).
    """
    from types import SimpleNamespace

    from scipy.spatial import cKDTree

    from .adapt import boundary_peclet

    mesh = problem.mesh
    view = SimpleNamespace(mesh=mesh, diffusion=diffusion, landscape=problem.landscape,
                           drift=problem.drift)
    _, pe = boundary_peclet(view)
    e, bnd = mesh.edges()
    mid = 0.5 * (mesh.p[:, e[0, bnd]] + mesh.p[:, e[1, bnd]])
    _, edge = cKDTree(mid.T).query(bp.doflocs[:, B].T)     # each boundary dof's edge
    pe, w = pe[edge], np.abs(outflow)
    if not w.sum() > 0:
        return np.inf
    order = np.argsort(pe)
    cum = np.cumsum(w[order]) / w.sum()
    return float(pe[order][min(np.searchsorted(cum, OUTFLOW_FRACTION), pe.size - 1)])


#: the hierarchical estimate certifies μ only where the boundary edges that carry
#: :data:`OUTFLOW_FRACTION` of the outflow have a cell Péclet number ≤ this (radial OU,
#: P2/P3, δ = 0.05 … 0.01: effectivity 1.01-1.06 up to Pe = 3, 1.09-1.19 at 4, 0.11-0.58
#: at 5; paper landscape Δ_S = 0.004, h = 0.04: 2.5, effectivity 1.01)
PECLET_MAX = 3.0
OUTFLOW_FRACTION = 0.99


def fits_budget(dofs: int, order: int) -> bool:
    """Whether the V_{k+1} solve of a P_k problem with ``dofs`` unknowns fits the memory."""
    need = _budget.SAFETY * (_budget.BASE_BYTES + HIER_BYTES_PER_DOF[order] * float(dofs))
    return _budget.fits(need)


def hierarchical_estimate(problem, diffusion, basis, cache: dict, mu: float,
                          graded: bool = False) -> tuple[float, float, dict]:
    """(relative estimate, correction μ_{k+1} − μ_h, record) of the escape rate μ_h.

    The relative estimate is 2|μ_{k+1} − μ_h| / μ_{k+1} (the factor ``estimate.SAFETY`` of
    the dual-weighted estimates): relative to the better value, so a μ_h wrong by orders
    of magnitude in either direction gets a large estimate.  It is inf (no certification)
    where μ_h ≤ 0, where the V_{k+1} solve would not fit the memory, fails, is not
    trusted, gives μ_{k+1} ≤ 0, or where the boundary layer that carries the outflow is
    not resolved (:func:`_outflow_peclet` > :data:`PECLET_MAX`).

    Parameters
    ----------
    problem
        The solved problem (``landscape``, ``drift``, ``mesh``: a :class:`Problem`).
    diffusion
        The diffusion model at the solved strength.
    basis, cache
        The solve's P_k basis and its mesh cache (the V_{k+1} basis is kept there).
    mu : float
        μ_h, the solve's outflow escape rate.
    graded : bool
        The mesh is graded (as :func:`enriched_escape_rate`).

    Returns
    -------
    estimate : float
        The relative estimate above (inf: no certification).
    correction : float
        μ_{k+1} − μ_h (NaN where the V_{k+1} solve did not run).
    record : dict
        What ``diagnostics["escape_rate_hierarchical"]`` carries: ``dofs_k``, and
        ``escape_rate`` (μ_{k+1}), ``dofs``, ``trusted``, ``stop``, ``layer_peclet``
        where the V_{k+1} solve ran, or ``skipped`` with the reason where it did not.
    """
    from .eigensolve import SolverError
    from .estimate import SAFETY, _order

    order = _order(basis)
    record: dict = {"dofs_k": int(basis.N)}
    if not mu > 0:
        record["skipped"] = "escape rate not positive"
        return np.inf, np.nan, record
    if not fits_budget(basis.N, order):
        record["skipped"] = "memory budget"
        return np.inf, np.nan, record
    try:
        res = enriched_escape_rate(problem, diffusion, basis, cache, graded)
    except (SolverError, MemoryError) as exc:   # an estimate that fails is no estimate
        record["skipped"] = f"P_{{k+1}} solve failed: {exc}"
        return np.inf, np.nan, record
    mu1 = res["escape_rate"]
    record.update(escape_rate=mu1, dofs=res["dofs"], trusted=res["trusted"],
                  stop=res["stop"]["reason"], layer_peclet=res["layer_peclet"])
    if not (res["trusted"] and mu1 > 0 and res["layer_peclet"] <= PECLET_MAX):
        return np.inf, mu1 - mu, record
    # the DWR's factor 2 too: measured effectivities of |μ_{k+1} − μ_h| were 0.76-1.06
    # where it certifies (review R4), and tol must bound the true error
    return SAFETY * abs(mu1 - mu) / mu1, mu1 - mu, record
