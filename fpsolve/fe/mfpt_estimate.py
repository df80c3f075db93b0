"""Error estimate of the mean exit time (:mod:`.mfpt`): T_k against T_{k+1}.

The same exit time is computed in V_{k+1} on the same mesh (the plain Galerkin operator,
or the Gibbs-weighted pencil with the same weight), and each relative estimate is
``SAFETY``·|q_{k+1} − q_k|/|q_{k+1}| for q = T at the mesh centre, max T, E_QSD[T] and μ,
and ``SAFETY``·∫|T_{k+1} − T_k| / ∫|T_{k+1}| (``T_L1``).  As for the hierarchical μ
estimate (:mod:`.hierarchical`), every estimate is inf where the boundary layer that
carries the outflow is not resolved (cell Péclet number of the outflow edges >
``PECLET_MAX``: T_k and T_{k+1} can be wrong alike there), where the V_{k+1} problem
does not fit the memory or its solve fails.  An estimate above ``UNTRUSTED`` flags the
result (``diagnostics["untrusted"]``) with a :class:`~.solver.FPSolveWarning`: before,
T(0) 250× too small (radial OU δ = 0.02, P2, h = 0.1) came back without a word.
"""
from __future__ import annotations

import warnings

import numpy as np
from .assembly import evaluate
from .estimate import SAFETY, embedded_basis, enriched_basis, relative_change
from .gibbs_estimate import enriched_pencil
from .hierarchical import PECLET_MAX, _outflow_peclet, enriched_operator, fits_budget
from .mfpt import exit_time
from .solver import UNTRUSTED, FPSolveWarning, SolverError

__all__ = ["attach_estimate", "GOALS"]

#: the estimated quantities (relative errors)
GOALS = ("T_center", "T_max", "mean_qsd", "escape_rate", "T_L1")


def _next_pencil(problem, diffusion):
    """(bp, A, M, I, B) of the exit-time problem in V_{k+1}: Gibbs-weighted if the
    problem is, with the weight of ``diffusion``'s strength."""
    cache = problem.mesh._cache
    if not problem.gibbs:
        return enriched_operator(problem, diffusion, problem.basis, cache)
    op = problem.operator
    if diffusion.strength != problem.diffusion.strength:
        op = problem._assemble(diffusion)
    bp, _ = enriched_basis(problem.basis, cache)
    return (bp, *enriched_pencil(problem, diffusion, op.gibbs, bp, cache))


def _compare(T, bp, Tn, exn) -> dict:
    """The relative estimates of :data:`GOALS` from T_k (``T``) and T_{k+1} (``Tn``)."""
    centre = np.asarray(T.mesh.center, dtype=float)
    tn_c = float(evaluate(bp, Tn, centre))
    est = {"T_center": relative_change(tn_c, float(T(centre))) if tn_c > 0 else np.nan,
           "T_max": relative_change(float(Tn.max()), float(T.T.max())),
           "mean_qsd": relative_change(exn.mean_qsd, T.mean_qsd),
           "escape_rate": relative_change(exn.mu, T.escape_rate)}
    bk = embedded_basis(T.basis, bp, T.mesh._cache)     # T_k at V_{k+1}'s points
    dx = np.asarray(bp.dx)
    tn, tk = np.asarray(bp.interpolate(Tn)), np.asarray(bk.interpolate(T.T))
    norm = float(np.sum(np.abs(tn) * dx))
    est["T_L1"] = SAFETY * float(np.sum(np.abs(tn - tk) * dx)) / norm if norm > 0 else np.inf
    return est


def attach_estimate(T) -> None:
    """Estimate the error of the exit time ``T`` (a :class:`~.mfpt.MeanExitTime`) and
    flag it: sets ``T.error_estimate``, ``T.diagnostics["estimate"]`` (the V_{k+1}
    record) and ``T.diagnostics["untrusted"]`` (warning where an estimate exceeds 0.1
    or is unknown)."""
    problem, diffusion = T.problem, T.diffusion
    record: dict = {"dofs_k": int(T.T.size)}
    est = {g: np.inf for g in GOALS}
    if not fits_budget(T.T.size, problem.order):
        record["skipped"] = "memory budget"
    else:
        try:
            bp, A, M, I, B = _next_pencil(problem, diffusion)
            exn = exit_time(A, M, I, B, problem.gibbs)
            pe = _outflow_peclet(problem, diffusion, bp, B, -(A @ exn.P)[B])
            record.update(dofs=int(bp.N), escape_rate=exn.mu, mean_qsd=float(exn.mean_qsd),
                          layer_peclet=pe)
            if pe <= PECLET_MAX:
                est = _compare(T, bp, exn.T, exn)
            else:
                record["skipped"] = (f"boundary layer not resolved (Péclet {pe:.2g} > "
                                     f"{PECLET_MAX:g})")
        except (SolverError, MemoryError) as exc:
            record["skipped"] = f"P_{{k+1}} solve failed: {exc}"
    T.error_estimate = {g: float(v) for g, v in est.items()}
    T.diagnostics["estimate"] = record
    worst = max((v for v in est.values() if not np.isnan(v)), default=np.inf)
    T.diagnostics["untrusted"] = not worst <= UNTRUSTED
    if T.diagnostics["untrusted"]:
        why = record.get("skipped", f"estimated relative error {worst:.1e}")
        warnings.warn(f"mfpt: the exit time is not known to 10 % on this mesh ({why}): "
                      "refine it, or grade it with peclet=1.5", FPSolveWarning, stacklevel=4)
