"""Accuracy on request: adaptive refinement until the estimated errors are ≤ tol.

Loop (``fp.solve(..., tol=1e-6)``, ``Problem(..., tol=...)``): solve → estimate
(:mod:`fpsolve.fe.estimate`: dual-weighted residuals of ⟨x²⟩, ⟨y²⟩ and μ, recovery for L1)
→ stop when every requested goal is within ``tol`` and the negative mass is ≤
:data:`NEGATIVE_MASS` → else mark (Dörfler on the indicators of each goal still open, and
on the dual-weighted indicators of the negative mass while it exceeds the bound; the union)
→ refine (:mod:`fpsolve.fe.refine`, red–green–blue, boundary on the circle) → solve again.

The dof budget (:mod:`fpsolve.fe.budget`) is checked before each level is assembled.
If the tolerance is not met within the budget (or ``max_levels``), the last solution is
returned with ``diagnostics["adapt_converged"] = False``, ``untrusted`` set, an
:class:`FPSolveWarning` naming the goals that missed, and its honest estimates.
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from . import budget as _budget
from .ordering import MIN_SIZE_GRADED, MIN_SIZE_UNIFORM_ONCE
from .gibbs import unresolved_weight
from .refine import dorfler, refine

__all__ = ["solve_adaptive", "GOALS", "NEGATIVE_MASS", "check_tol"]

#: goals the tolerance applies to (escape_rate only with an absorbing boundary)
GOALS = ("x2", "y2", "escape_rate", "L1")
#: every adaptive result has at most this negative mass (relative to ∫|P|)
NEGATIVE_MASS = 1e-8
#: largest Dörfler fraction of the negative-mass marking (the fraction aims at the bound,
#: :func:`_negative_theta`), on the dual-weighted indicators of the negative mass.  P3 from
#: h = 0.16, tol 1e-6 on x2 (docs/adaptivity.md): 0.8 gave the fewest dofs over the bench
#: cases with negative mass (0.6-0.9 tried; more marks per level cost more dofs than the
#: levels they save)
NEGATIVE_THETA = 0.8
#: ... and its smallest fraction (just above the bound, :func:`_negative_theta`)
NEGATIVE_THETA_MIN = 0.3
#: ... and of the direct marking ∫_K max(−P, 0), kept while μ is a goal: its marks in the
#: tails also grade the shells μ needs; with the dual marking the paper landscape at
#: Δ_S = 0.004 (tol 1e-3 on x2 and μ) stalled at μ 1e5× too large (docs/adaptivity.md)
NEGATIVE_THETA_DIRECT = 0.99
#: boundary elements whose cell Péclet number exceeds this are refined while μ is open
#: (the layer must be resolved before its dual-weighted estimate can be trusted)
PECLET_MAX = 2.0
#: a level whose inverse iteration took at least this many sweeps (μ₂/μ₁ close to 1:
#: Δ_S = 0.03, μ₂/μ₁ = 1.3, 61-72 sweeps; 3-4 where μ ≪ μ₂) has the next level's shifted
#: by σ = (1 − SHIFT_OFFSET)·μ: it contracts by about 0.03 a sweep instead of 0.77
SHIFT_SWEEPS = 8
#: ... σ this far below the previous level's μ, and only where that μ's estimated relative
#: error is ≤ SHIFT_OFFSET/10 (σ < μ of the next level, so its principal pair is the one
#: nearest σ; fe/solver.py re-solves without the shift if it is not)
SHIFT_OFFSET = 1e-2
#: μ is believed (certified, or its indicators used for marking) only if its estimate
#: explains at least this fraction of the change of μ from the previous level: an error
#: that falls by more than 1/this per level is not an estimate but a fluke (paper
#: landscape at Δ_S = 0.002: 0.26 after μ fell from 9.1e-12 to 3.5e-14, with
#: μ = 8.3e-53).  Converged runs measured: 0.8 at their last level (Δ_S = 0.004)
MU_CHANGE_FRACTION = 0.01


def check_tol(tol, goals=None):
    """Validate ``tol`` (a number in (0, 1)) and ``goals`` (subset of :data:`GOALS`)."""
    if tol is None:
        return None, None
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.floating, np.integer)):
        raise ValueError(f"tol: expected a number 0 < tol < 1, got {tol!r}")
    tol = float(tol)
    if not (np.isfinite(tol) and 0 < tol < 1):
        raise ValueError(f"tol: expected a number 0 < tol < 1, got {tol!r}")
    goals = GOALS if goals is None else tuple(goals)
    bad = [g for g in goals if g not in GOALS]
    if bad or not goals:
        raise ValueError(f"goals: expected a non-empty subset of {GOALS}, got {goals!r}")
    return tol, goals


def _open_goals(sol, tol, goals, previous: dict | None = None) -> list:
    """The goals whose estimate exceeds ``tol``; μ also while :func:`_mu_confirmed` fails
    (on the first level always: an estimate is certified only against a previous level)."""
    est = sol.error_estimate
    return [g for g in goals if g in est and not (
        est[g] <= tol and (g != "escape_rate" or _mu_confirmed(sol, previous, first=False)))]


def _mu_confirmed(sol, previous: dict | None, first: bool = True) -> bool:
    """Whether μ's estimate accounts for the change of μ since the ``previous`` level record.

    est·|μ_h| ≥ :data:`MU_CHANGE_FRACTION`·|μ_h − μ_prev|, and the refinement since then
    was one that could move μ: the previous level had μ certified or marked by μ's own
    indicators (``previous["mu_checked"]``; a level refined a priori only, by the Péclet
    grading, can leave μ where it was, and an unchanged μ would pass the first test:
    Δ_S = 0.002 kept μ at −3.7e-31 over four such levels; review R4).  Without a previous
    level: ``first``.  The radial OU problem at δ = 0.1 on ``disk_mesh(1.0, 0.3)`` (P3,
    370 dofs) has an estimate of 8e-5 for a true error of 7e-4: a single level is not
    certified.
    """
    if previous is None:
        return first
    # a hierarchical estimate (μ_{k+1} − μ_h on one mesh, fe/hierarchical.py) is certified
    # against a second level too: P_k and P_{k+1} share that mesh's h-deficits (Δ_S = 0.002,
    # h = 0.025: 14.7 for a true 79); its level counts as checked for the next one
    return bool(previous.get("mu_checked", True) and _mu_change_explained(sol, previous))


def _hierarchical(sol) -> bool:
    """Whether μ's estimate is the hierarchical one (no element indicators of μ)."""
    return getattr(sol, "diagnostics", {}).get("escape_rate_estimator") == "hierarchical"


def _hierarchical_finite(sol) -> bool:
    """A hierarchical μ estimate that says something (finite): the next level can confirm μ
    against it, as against a level marked by μ's own indicators."""
    return bool(_hierarchical(sol) and np.isfinite(sol.error_estimate["escape_rate"]))


def _computed_mu(record: dict) -> float:
    """A level record's computed μ: its ``escape_rate`` is NaN where μ ≤ 0."""
    return record.get("escape_rate_flux", record["escape_rate"])


def _mu_change_explained(sol, previous: dict) -> bool:
    """est·|μ_h| ≥ :data:`MU_CHANGE_FRACTION`·|μ_h − μ_prev| (``previous``: a level record)."""
    mu = float(sol.escape_rate)
    est = float(sol.error_estimate.get("escape_rate", np.inf))
    return bool(est * abs(mu) >= MU_CHANGE_FRACTION * abs(mu - _computed_mu(previous)))


def _mu_weights_usable(sol, previous: dict | None) -> bool:
    """Whether μ's indicators may drive the marking: μ_h > 0, known to a digit by the
    dual-weighted estimate, and its estimate explains the change since the previous level
    (the first level: yes)."""
    return bool(sol.escape_rate > 0 and sol.error_estimate["escape_rate"] <= 1.0
                and not _hierarchical(sol)      # its μ indicators are not finite
                and (previous is None or _mu_change_explained(sol, previous)))


def _negative_indicator(sol) -> np.ndarray:
    """∫_K max(−P, 0) / ∫|P| per element (the mesh elements of the solution)."""
    _, _, Pq, dx = sol._quadrature()      # a Gibbs-weighted density: w·u, w exact
    return np.sum(np.maximum(-Pq, 0.0) * dx, axis=1) / np.sum(np.abs(Pq) * dx)


def boundary_peclet(sol) -> tuple[np.ndarray, np.ndarray]:
    """Cell Péclet numbers h|β·n|/(nᵀDn) of the boundary edges where the drift points inward.

    An absorbing boundary against an inward drift carries a layer of width nᵀDn/(β·n)
    (δ/R for the radial OU problem); the escape rate lives in it.  Returns the elements
    owning the boundary edges and their Péclet numbers (0 where the drift points out).
    """
    mesh = sol.mesh
    e, bnd = mesh.edges()
    be = e[:, bnd]
    a, b = mesh.p[:, be[0]], mesh.p[:, be[1]]
    mid = 0.5 * (a + b)
    n = mid - np.asarray(mesh.center, dtype=float)[:, None]
    n /= np.linalg.norm(n, axis=0)
    x, y = mid
    from .assembly import _beta0
    Dhat, divhat = sol.diffusion.unit_coefficients(x, y)
    s = sol.diffusion.strength
    beta = _beta0(sol.landscape, sol.drift, x, y) + s * np.asarray(divhat)
    dnn = s * np.einsum("i...,ij...,j...->...", n, np.asarray(Dhat), n)
    bn = np.maximum(np.einsum("i...,i...->...", beta, n), 0.0)
    h = np.linalg.norm(b - a, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pe = np.where(bn > 0, h * bn / dnn, 0.0)
    # the element owning each boundary edge
    t, nv = mesh.t.astype(np.int64), mesh.nvertices
    k = np.sort(np.concatenate([t[[0, 1]], t[[1, 2]], t[[0, 2]]], axis=1), axis=0)
    keys = k[0] * nv + k[1]
    order = np.argsort(keys)
    bk = np.sort(be, axis=0).astype(np.int64)
    pos = order[np.searchsorted(keys[order], bk[0] * nv + bk[1])]
    return pos % t.shape[1], np.nan_to_num(pe, nan=np.inf, posinf=np.inf)


def element_peclet(sol) -> np.ndarray:
    """Cell Péclet number h_K Σ|β|³/Σ βᵀDβ of every element (sums over centroid and corners).

    Where the flux nearly balances (J ≈ 0), P varies like e^(−∫D⁻¹β): its logarithm
    changes by about this number across an element.  The escape rate depends on the
    relative accuracy of P and of the μ dual (1 − φ ~ e^(−barrier/D) deep inside) on
    every shell between the bulk and the boundary, not only in the boundary layer.
    """
    mesh = sol.mesh
    p, t = mesh.p, mesh.t
    h = np.max([np.linalg.norm(p[:, t[i]] - p[:, t[(i + 1) % 3]], axis=0) for i in range(3)],
               axis=0)
    x, y = np.concatenate([p[:, t].mean(axis=1)[:, None], p[:, t]], axis=1)   # (4, ne)
    from .assembly import _beta0
    Dhat, divhat = sol.diffusion.unit_coefficients(x, y)
    s = sol.diffusion.strength
    beta = _beta0(sol.landscape, sol.drift, x, y) + s * np.asarray(divhat)
    bb = np.einsum("i...,i...->...", beta, beta)
    bDb = s * np.einsum("i...,ij...,j...->...", beta, np.asarray(Dhat), beta)
    # |β|/D_β with D_β = βᵀDβ/|β|², summed over the points: a single point where D is
    # degenerate (βᵀDβ = 0, e.g. where the SGD tensor H² is singular) does not make it infinite
    b3, bDb = (bb ** 1.5).sum(axis=0), bDb.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pe = np.where(b3 > 0, h * b3 / bDb, 0.0)
    return np.nan_to_num(pe, nan=np.inf, posinf=np.inf)


def _mark(sol, tol, open_goals, theta, previous: dict | None = None) -> np.ndarray:
    ind = sol._estimate.indicators
    total = np.zeros(sol.mesh.nelements)
    layer = np.zeros(0, dtype=np.int64)
    if "escape_rate" in open_goals:
        elems, pe = boundary_peclet(sol)
        layer = elems[pe > PECLET_MAX]
        if not _mu_weights_usable(sol, previous):
            # μ not known to one digit: its weights are unreliable.  μ needs P and its dual
            # to relative accuracy on every shell between the bulk and the boundary, where
            # both vary on the length D/|β|: grade there a priori (cell Péclet ≤ PECLET_MAX).
            # Not with the Gibbs weight: it carries that variation (u is flat there)
            open_goals = [g for g in open_goals if g != "escape_rate"]
            if sol.diagnostics.get("weighting") != "gibbs":
                layer = np.union1d(layer, np.flatnonzero(element_peclet(sol) > PECLET_MAX))
    # Dörfler on each open criterion separately, then the union: on a summed indicator the
    # criterion with the largest sum (mostly the negative mass) takes every mark and the
    # others wait for levels of their own (Fig. 3 case: x2 error flat over three levels)
    marked = layer
    weight = getattr(sol, "weight", None)
    if weight is not None:      # the Gibbs weight resolved by the quadrature (fe/gibbs.py)
        marked = np.union1d(marked, unresolved_weight(sol, tol))
    for g in open_goals:
        marked = np.union1d(marked, _dorfler_finite(ind[g] / tol, theta))
    neg = sol.diagnostics["negative_mass"]
    if neg > NEGATIVE_MASS:
        # the undershoots are error carried into the tails from where P is large: mark by the
        # dual-weighted indicators of the linearised negative mass (estimate.py,
        # negative_dual); where P_h < 0 itself only when those are missing or all zero
        dual = ind.get("negative_mass")
        more = (_dorfler_finite(dual, _negative_theta(neg)) if dual is not None
                else np.zeros(0, dtype=np.int64))
        if more.size == 0:
            th = min(NEGATIVE_THETA_DIRECT, max(theta, 1.0 - 0.5 * NEGATIVE_MASS / neg))
            more = _dorfler_finite(_negative_indicator(sol), th)
        marked = np.union1d(marked, more)
    if marked.size == 0:        # nothing to go on (μ unreliable, layer resolved): the μ weights
        marked = _dorfler_finite(ind.get("escape_rate", np.ones(total.size)) + 0.0, theta)
    return marked if marked.size else np.arange(total.size)


def _negative_theta(neg):
    """Dörfler fraction of the dual negative-mass marking at negative mass ``neg``.

    Refining the marked fraction θ of its indicators has left about (1 − θ)² of the
    negative mass (measured, P3: 27-870x less after θ = 0.8; the lobes vanish, not only
    shrink): θ = 1 − √(bound/neg) aims at the bound, capped at :data:`NEGATIVE_THETA`, at
    least :data:`NEGATIVE_THETA_MIN`.  Aiming at half the bound with θ ≥ 0.6 overshot the
    last level (Δ_S = 0.004: 39k dofs, 3.2e-8 -> 58k, 7.5e-10; now 42k, 5e-9).
    """
    return min(NEGATIVE_THETA, max(NEGATIVE_THETA_MIN, 1.0 - np.sqrt(NEGATIVE_MASS / neg)))


def _dorfler_finite(total, theta):
    """Dörfler marking; elements with a non-finite indicator (μ = 0 weights) are marked too."""
    bad = ~np.isfinite(total)
    return np.union1d(dorfler(np.where(bad, 0.0, np.abs(total)), theta), np.flatnonzero(bad))


def _level_record(level, sol, seconds) -> dict:
    d = sol.diagnostics
    rec = {"level": level, "dofs": int(d["dofs"]), "elements": int(d["nelements"]),
           "estimate": {k: float(v) for k, v in sol.error_estimate.items()},
           "escape_rate": float(sol.escape_rate), "negative_mass": float(d["negative_mass"]),
           "time_s": float(seconds)}
    stop = d.get("solver", {}).get("stop")
    if stop:        # absorbing: the inverse iteration's sweeps and shift σ (0: none)
        rec["sweeps"], rec["shift"] = int(stop["sweeps"]), float(stop.get("shift", 0.0))
        rec["escape_rate_flux"] = float(d["escape_rate_flux"])    # also where μ ≤ 0 (NaN)
    return rec


def _next_shift(sol) -> float | None:
    """σ for the next level's inverse iteration, or None (no shift).

    Shifted where this level's iteration was slow (≥ :data:`SHIFT_SWEEPS` sweeps, or it was
    shifted itself), converged, and its μ is known to :data:`SHIFT_OFFSET`/10 by its
    estimate: σ = (1 − :data:`SHIFT_OFFSET`)·μ_eig.
    """
    d = sol.diagnostics
    stop = d.get("solver", {}).get("stop")
    mu = d.get("escape_rate_eig", 0.0)
    if not stop or stop["reason"] != "converged" or not mu > 0:
        return None
    if stop["sweeps"] < SHIFT_SWEEPS and not stop.get("shift", 0.0) > 0:
        return None
    if not sol.error_estimate.get("escape_rate", np.inf) <= 0.1 * SHIFT_OFFSET:
        return None
    return (1.0 - SHIFT_OFFSET) * mu


def _nd_min_size(level_problem, caller) -> int | None:
    """The smallest LU of a level ordered by nested dissection (fe/ordering.py).

    Adapted (graded) patterns are factorised once: :data:`MIN_SIZE_GRADED`.  Level 0 on
    the user's uniform mesh: the uniform break-even :data:`MIN_SIZE_UNIFORM_ONCE`, or the
    default where a sweep group shares the pattern's cached order (``reuse_ordering``).
    """
    mesh = caller.mesh
    if level_problem is not caller or mesh.graded or "+refine" in mesh.source:
        return MIN_SIZE_GRADED
    return None if caller.reuse_ordering else MIN_SIZE_UNIFORM_ONCE


def _solve_level(level_problem, strength, caller, lazy=True, negative_dual=True,
                 shift=None):
    """One solve of a level whose warnings are held back (only the final level's are shown).

    With ``lazy`` a level whose negative mass exceeds the bound is refined whatever its
    estimates say: it gets marking indicators only (recovered weights, the negative-mass
    dual), level 0 too.  Each level's pattern is factorised once, where METIS rarely pays
    (fe/ordering.py).  ``shift``: σ of the inverse iteration (:func:`_next_shift`).  The
    ``caller``'s problem is left as it was.
    """
    level_problem._lazy_above = NEGATIVE_MASS if lazy else None
    level_problem._negative_dual = negative_dual
    level_problem._nd_min_size = _nd_min_size(level_problem, caller)
    level_problem._shift = shift
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sol = level_problem._solve_fixed(strength)
    finally:
        caller._lazy_above, caller._negative_dual, caller._nd_min_size = None, True, None
        caller._shift = None
    return sol, caught


def solve_adaptive(problem, strength=None):
    """Refine ``problem.mesh`` until the estimated errors are ≤ ``problem.tol``.

    Parameters
    ----------
    problem : Problem
        Carries ``tol``, ``goals``, ``theta``, ``max_levels`` and ``max_dofs``; its own
        (assembled) mesh is level 0.
    strength : float, optional
        Diffusion strength (Δ_S for the SGD model).

    Returns
    -------
    Solution
        The last level; ``diagnostics["adapt"]`` lists every level (dofs, elements,
        estimates, μ, negative mass, seconds), ``diagnostics["adapt_converged"]`` says
        whether ``tol`` was met.
    """
    from .solver import MISMATCH_WARNING, FPSolveWarning, Problem

    tol, goals = problem.tol, problem.goals
    if problem.boundary != "absorbing":
        goals = tuple(g for g in goals if g != "escape_rate")
    levels, level_problem, why, shift = [], problem, None, None
    t0 = time.perf_counter()
    for level in range(problem.max_levels + 1):
        t = time.perf_counter()
        sol, caught = _solve_level(level_problem, strength if level == 0 else None, problem,
                                   negative_dual="escape_rate" not in goals, shift=shift)
        levels.append(_level_record(level, sol, time.perf_counter() - t))
        previous = levels[-2] if len(levels) > 1 else None
        open_goals = _open_goals(sol, tol, goals, previous)
        if "escape_rate" in goals:      # whether the next level can confirm μ
            levels[-1]["mu_checked"] = ("escape_rate" not in open_goals
                                        or _mu_weights_usable(sol, previous)
                                        or _hierarchical_finite(sol))
        if not open_goals and sol.diagnostics["negative_mass"] <= NEGATIVE_MASS:
            break
        if level == problem.max_levels:
            why = f"max_levels = {problem.max_levels} reached"
            break
        mesh = refine(sol.mesh, _mark(sol, tol, open_goals, problem.theta, previous))
        dofs = _budget.mesh_dofs(mesh, problem.order)
        try:
            _budget.check(dofs, problem.order, problem.max_dofs, f"adaptive level {level + 1}",
                          graded=True)
        except _budget.BudgetError as exc:
            why = str(exc)
            break
        level_problem = Problem(problem.landscape, sol.diffusion, mesh, problem.boundary,
                                problem.order, problem.drift, problem.stabilisation,
                                problem.intorder, max_dofs=problem.max_dofs,
                                weighting="gibbs" if problem.gibbs else "none")
        shift = _next_shift(sol)
    if sol.diagnostics["negative_mass"] > NEGATIVE_MASS:
        # the loop stopped (budget, max_levels) on a level estimated for marking only:
        # solve it again with the P_{k+1} duals, so the returned estimates are honest
        t = time.perf_counter()
        sol, caught = _solve_level(level_problem, strength if level_problem is problem else None,
                                   problem, lazy=False, shift=shift)
        levels[-1] = _level_record(levels[-1]["level"], sol, time.perf_counter() - t)
    d = sol.diagnostics
    d["adapt"] = levels
    d["adapt_converged"] = why is None
    d["adapt_tol"], d["adapt_goals"] = tol, list(goals)
    d["timings"]["adapt_total_s"] = time.perf_counter() - t0
    if why is None and "escape_rate" in goals:
        # the reported μ is the outflow, certified to tol by its estimate; an eigenvalue that
        # disagrees is at its own round-off level (radial OU δ = 0.01: −8e-15 against 1.9e-20)
        d["warnings"] = [w for w in d["warnings"] if not w.startswith(MISMATCH_WARNING)]
    for w in caught:
        if not issubclass(w.category, FPSolveWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if why is not None:
        _flag_untrusted(sol, goals, tol, why)
    for w in d["warnings"]:
        warnings.warn(w, FPSolveWarning, stacklevel=3)
    return sol


def _flag_untrusted(sol, goals, tol, why: str) -> None:
    """Mark a result that missed ``tol``: diagnostics["untrusted"] and a warning naming
    what is missing."""
    d, est = sol.diagnostics, sol.error_estimate
    d["untrusted"] = True
    missed = ", ".join(f"{g} {est.get(g, float('nan')):.1e}" for g in goals
                       if not est.get(g, 0.0) <= tol)
    levels = d.get("adapt", [])
    previous = levels[-2] if len(levels) > 1 else None
    if ("escape_rate" in goals and est.get("escape_rate", np.inf) <= tol
            and not _mu_confirmed(sol, previous, first=False)):
        prev = None if previous is None else _computed_mu(previous)
        change = ("no previous level" if prev is None else "μ changed by "
                  f"{abs(sol.escape_rate - prev) / abs(sol.escape_rate):.1e}"
                  " relative since the previous level")
        missed += (f"{', ' if missed else ''}escape_rate {est['escape_rate']:.1e} not "
                   f"confirmed ({change})")
    if d["negative_mass"] > NEGATIVE_MASS:
        missed += f"{', ' if missed else ''}negative mass {d['negative_mass']:.1e}"
    d["warnings"].append(f"tol = {tol:g} not reached ({why}); estimated relative errors: "
                         f"{missed}")
