"""Stationary and quasi-stationary solvers.

* ``boundary="absorbing"`` (P = 0 on the boundary): the only stationary solution
  is P ≡ 0; the meaningful state is the quasi-stationary density, the principal
  eigenpair of A p = μ M p on the interior dofs, normalised to ∫P = 1.  μ ≥ 0 is
  the escape rate.  It is found by inverse iteration with one sparse LU
  factorisation (μ is tiny against the next eigenvalue, so two or three steps
  converge); ARPACK shift-invert with the same factorisation is the fallback.
  μ is reported twice: from the eigen-iteration and from the boundary outflow
  computed consistently from the discrete operator,

      μ_flux = −Σ_{i∈B} (A P)_i / Σ_{i∈I} (M P)_i,

  which follows from the vanishing column sums of A and is computed from small
  numbers with relative precision (the eigenvalue can drown in round-off when
  μ ≈ 1e-10, docs/theory.md).  ``escape_rate`` is μ_flux.
* ``boundary="reflecting"`` (J·n = 0, the natural condition of the weak form):
  A is singular and its normalised null vector is the stationary density; one
  equation is redundant, so P is pinned to 1 at a node where it is large and
  renormalised (the fastest of three measured variants, with a bordered system
  and a row replaced by the mass row, all agreeing to 1e-10).
"""
from __future__ import annotations

import logging
import time
import warnings
from typing import Callable, Iterable

import numpy as np

from ..models.diffusion import DiffusionModel
from . import budget as _budget
from .assembly import Operator, assemble
from ..models.landscapes import Landscape
from .mesh import Mesh
from .estimate import DualSolver, Estimate, estimate_errors
from .gibbs import (WEIGHTINGS, assemble_gibbs, density_at_quadrature, nodal_density,
                    scaled_quasi_stationary, scaled_stationary_reflecting)
from .gibbs import BARRIER as GIBBS_BARRIER
from .gibbs import attach as gibbs_attach
from .gibbs import barrier as gibbs_barrier
from .gibbs import applies as gibbs_applies
from .gibbs_estimate import gibbs_estimate
from .geometry_estimate import add_boundary_term
from .solution import Solution
# the eigen-solves; names re-exported for the modules and tests that import them from here
from .eigensolve import (COMPONENTWISE_CEILING, COMPONENTWISE_STALL,  # noqa: F401
                         COMPONENTWISE_TOL, SolverError, _componentwise_residual,
                         _InteriorBlocks, _quasi_stationary, _splu, _stationary_reflecting)

__all__ = ["Problem", "solve", "FPSolveWarning", "SolverError", "BOUNDARIES", "THRESHOLDS"]

logger = logging.getLogger(__name__)

BOUNDARIES = ("absorbing", "reflecting")
#: Diagnostics above these values produce a warning.
THRESHOLDS = {"negative_mass": 1e-6, "residual": 1e-8, "escape_rate_mismatch": 1e-3}
#: how the warning about an eigenvalue that disagrees with the outflow μ begins
MISMATCH_WARNING = "escape rate from the eigenvalue"
#: how the warning about an inverse iteration that stalled above its ceiling begins
STALL_WARNING = "inverse iteration stalled"
#: an escape rate whose estimated relative error exceeds this is flagged ``untrusted``
UNTRUSTED = 0.1


class FPSolveWarning(UserWarning):
    """A solve finished but a diagnostic is bad (negative mass, residual, ...)."""


class Problem:
    """A Fokker–Planck problem assembled once; solve it for one or many strengths.

    Parameters
    ----------
    landscape : Landscape or None
        Loss L (drift −∇L).  None only with ``drift``.
    diffusion : DiffusionModel
        D = strength × unit tensor (strength = Δ_S for the SGD model).
    mesh : Mesh
        From :func:`fpsolve.disk_mesh` or :func:`fpsolve.load_mesh`.
    boundary : {"absorbing", "reflecting"}
    order : {1, 2, 3}
        Lagrange element order; P3 reaches 4-digit accuracy on much coarser meshes
        (docs/fig3_refinement.md).
    drift : callable, optional
        b(x, y) -> (2, *x.shape) replacing −∇L (non-gradient drift).
    stabilisation : {None, "supg"}
        SUPG makes A non-affine in the strength: a sweep then re-assembles.
    max_dofs : int, optional
        Budget of unknowns (≥ 100).  The default is derived from the available
        memory (:mod:`fpsolve.fe.budget`); a larger problem, or one whose estimated
        peak memory exceeds the available memory, raises
        :class:`~fpsolve.fe.budget.BudgetError` before anything is assembled.
        The adaptive loop checks it before every level.
    tol : float, optional
        Requested relative accuracy (0 < tol < 1): the mesh is refined adaptively until
        the estimated relative errors of ``goals`` are ≤ tol and the negative mass is
        ≤ 1e-8 (docs/adaptivity.md).  None (default): one solve on ``mesh``.
    goals : iterable of str, optional
        Observables ``tol`` applies to: a subset of ("x2", "y2", "escape_rate", "L1")
        (default all; escape_rate only for an absorbing boundary).
    theta : float
        Dörfler bulk fraction of the marking (0 < θ ≤ 1).
    max_levels : int
        Refinement levels at most.
    weighting : {"auto", "gibbs", "none"}
        The Gibbs-weighted discretisation P = e^(−(L − L₀)/δ)·u (:mod:`fpsolve.fe.gibbs`)
        for models in detailed balance (D = δI constant, drift −∇L): exponentially small
        escape rates on a fraction of the dofs.  "auto" (default): in the adaptive loop
        (``tol``) wherever it applies and, absorbing, the boundary is ≥ 4 nats of L/δ above
        the minimum; "gibbs": always (an error where it does not apply or the boundary is
        < 2 nats above the minimum); "none": never.

    Examples
    --------
    >>> import fpsolve as fp
    >>> L = fp.landscapes.paper()
    >>> prob = fp.Problem(L, fp.diffusion.sgd(L, 0.012), fp.disk_mesh(2.0, 0.1))
    >>> sols = prob.sweep([0.009, 0.012])          # one assembly, two solves
    """

    def __init__(self, landscape: Landscape | None, diffusion: DiffusionModel, mesh: Mesh,
                 boundary: str = "absorbing", order: int = 2, drift: Callable | None = None,
                 stabilisation: str | None = None, intorder: int | None = None,
                 max_dofs: int | None = None, tol: float | None = None,
                 goals: Iterable[str] | None = None, theta: float = 0.6, max_levels: int = 40,
                 weighting: str = "auto"):
        from .adapt import check_tol

        self.tol, self.goals = check_tol(tol, goals)
        self.theta, self.max_levels = float(theta), int(max_levels)
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary: expected one of {BOUNDARIES}, got {boundary!r}")
        if landscape is not None and not isinstance(landscape, Landscape):
            raise TypeError(f"landscape: expected a fpsolve Landscape, got "
                            f"{type(landscape).__name__}")
        if drift is not None and not callable(drift):
            raise TypeError("drift: expected a callable b(x, y) -> (2, *x.shape)")
        self.landscape, self.diffusion, self.mesh = landscape, diffusion, mesh
        if intorder is not None and order in (1, 2, 3) and (
                isinstance(intorder, bool) or not isinstance(intorder, (int, np.integer))
                or intorder < 2 * order):
            # below 2·order the mass matrix itself is not integrated exactly: P3 with
            # intorder 2 gave ⟨x²⟩ 480 % off (redteam F13)
            raise ValueError(f"intorder: expected an integer >= 2·order = {2 * order} for "
                             f"P{order}, got {intorder!r}")
        self.boundary, self.order = boundary, order
        self.drift, self.stabilisation, self.intorder = drift, stabilisation, intorder
        self.max_dofs = _budget.check_max_dofs(max_dofs)
        if isinstance(mesh, Mesh) and order in (1, 2, 3):   # else assemble() says what is wrong
            _budget.check(_budget.mesh_dofs(mesh, order), order, self.max_dofs,
                          f"Problem(order={order}) on {mesh!r}", graded=mesh.graded)
        self.weighting = weighting
        self.gibbs = _gibbs_wanted(weighting, landscape, diffusion, drift, stabilisation, mesh,
                                   boundary, self.tol)
        self.operator: Operator = self._assemble(diffusion)
        self._plain: Operator | None = None
        self._assembly_used = False
        #: set by the adaptive loop: above this negative mass the level is refined whatever
        #: the estimates say, and its moment weights are recovered (marking only)
        self._lazy_above: float | None = None
        #: lazy levels also get the negative-mass dual's marking indicators (fe/adapt.py)
        self._negative_dual = True
        #: set by the adaptive loop (each level's pattern is factorised once): the smallest
        #: LU ordered by nested dissection (``ordering.MIN_SIZE_GRADED``; None: the default)
        self._nd_min_size: int | None = None
        #: set by the adaptive loop from the previous level's μ (:func:`.adapt._next_shift`):
        #: the inverse iteration factorises A − σM instead of A, so a slow second mode
        #: (μ₂/μ₁ = 1.3 at Δ_S = 0.03: 61-72 sweeps) is gone in a few sweeps; None: σ = 0
        self._shift: float | None = None
        #: Set True when this problem will be solved for many strengths one by one
        #: (``sweep`` does it itself): the LU then uses a cached nested-dissection
        #: order for P2 too (``pymetis``), which pays from about the fourth solve.
        self.reuse_ordering = False
        #: Called with each Solution of a fixed-mesh solve before its error estimate is
        #: computed (its ``error_estimate`` is filled in afterwards): a study hands the
        #: density to its renderer while this process computes the estimate.
        self.on_solved: Callable | None = None
        #: If set (and ``tol`` is None), a solve returns before its error estimate:
        #: ``defer_estimate(sol, compute, finish)`` gets ``compute()`` -> the Estimate and
        #: ``finish(est, seconds)``, which completes ``sol`` (diagnostics, warnings,
        #: ``error_estimate``); the caller must call it before using ``sol`` (a study
        #: computes the estimate in a forked process meanwhile).
        self.defer_estimate: Callable | None = None
        basis = self.operator.basis
        # P1 dofs are the vertices: skip scikit-fem's facet connectivity (costly, unused)
        self.boundary_dofs = (mesh.boundary_vertices() if order == 1
                              else basis.get_dofs().flatten())
        self.interior_dofs = np.setdiff1d(np.arange(basis.N), self.boundary_dofs)
        self._blocks = None

    def plain_operator(self) -> Operator:
        """The operator of P itself: :attr:`operator`, or for a Gibbs-weighted problem
        (whose :attr:`operator` acts on u = P/w, :mod:`.gibbs`) the unweighted one,
        assembled on first use.  Dynamics uses it (the spectrum and the MFPT take the
        weighted pencil).

        Returns
        -------
        Operator
            The assembled A0, A1 (or A), M of the density P.
        """
        if not self.gibbs:
            return self.operator
        if self._plain is None:
            self._plain = assemble(self.landscape, self.diffusion, self.mesh, self.order,
                                   self.drift, self.stabilisation, self.intorder)
        return self._plain

    def _assemble(self, diffusion) -> Operator:
        if self.gibbs:
            return assemble_gibbs(self.landscape, diffusion, self.mesh, self.order,
                                  self.intorder)
        return assemble(self.landscape, diffusion, self.mesh, self.order, self.drift,
                        self.stabilisation, self.intorder)

    def _interior_blocks(self) -> "_InteriorBlocks":
        """The :class:`_InteriorBlocks` of the interior dofs, shared on the mesh."""
        I = self.interior_dofs
        if self._blocks is None or self._blocks.I is not I:
            key = ("interior-blocks", self.order, self.basis.N)
            blocks = self.mesh._cache.get(key)
            if blocks is None or not np.array_equal(blocks.I, I):
                blocks = self.mesh._cache[key] = _InteriorBlocks(I)
            self._blocks = blocks
        return self._blocks

    @property
    def basis(self):
        return self.operator.basis

    @property
    def dofs(self) -> int:
        return self.basis.N

    def solve(self, strength: float | None = None) -> Solution:
        """Solve at the diffusion strength ``strength`` (default: the model's).

        For the SGD model ``strength`` is Δ_S.  With ``tol`` the mesh is refined
        adaptively from this problem's mesh (:func:`fpsolve.fe.adapt.solve_adaptive`).
        """
        other = self._reweighted(strength)
        if other is not None:
            return other.solve()
        if self.tol is not None:
            from .adapt import solve_adaptive
            return solve_adaptive(self, strength)
        return self._solve_fixed(strength)

    def _reweighted(self, strength) -> "Problem | None":
        """This problem at ``strength`` where the Gibbs decision differs there, else None.

        The decision depends on δ (the boundary's barrier in nats of L/δ): made once at
        construction, a sweep to δ = 0.2 and 0.3 from 0.01 kept the weight at 2.5 nats
        (estimate effectivity 0.15) and raised at 1.7 (review R16).
        """
        if (strength is None or float(strength) == self.diffusion.strength
                or self.weighting == "none"):
            return None
        diffusion = self.diffusion.with_strength(strength)
        gibbs = _gibbs_wanted(self.weighting, self.landscape, diffusion, self.drift,
                              self.stabilisation, self.mesh, self.boundary, self.tol)
        if gibbs == self.gibbs:
            return None
        return Problem(self.landscape, diffusion, self.mesh, self.boundary, self.order,
                       self.drift, self.stabilisation, self.intorder, max_dofs=self.max_dofs,
                       tol=self.tol, goals=self.goals, theta=self.theta,
                       max_levels=self.max_levels, weighting=self.weighting)

    def _solve_fixed(self, strength: float | None = None) -> Solution:
        """One solve on this problem's mesh (no adaptivity)."""
        diffusion = self.diffusion
        op = self.operator
        shared = self._assembly_used        # assembly time already reported by a solve
        if strength is not None and float(strength) != diffusion.strength:
            diffusion = diffusion.with_strength(strength)
            if not op.affine:   # SUPG's τ and the Gibbs weight depend on D: re-assemble
                op = self._assemble(diffusion)
                shared = False
        self._assembly_used = self._assembly_used or op is self.operator
        t0 = time.perf_counter()
        A = op.A(diffusion.strength)
        t1 = time.perf_counter()
        P, mu_eig, info = self._eigensolve(A, op)
        t2 = time.perf_counter()
        u, Pq = P, None
        if self.gibbs:      # the density is w·u: integrated with w, interpolated at the dofs
            Pq = density_at_quadrature(op.basis, op.gibbs, u)
            P = nodal_density(op.basis, op.gibbs, u)
        diag = self._diagnostics(P, op, info, t1 - t0, t2 - t1, shared, Pq)
        mu = diag["escape_rate_flux"] if self.boundary == "absorbing" else 0.0
        diag["escape_rate_eig"] = mu_eig
        if self.boundary == "absorbing":
            _check_escape_agreement(diag)
        # a μ ≤ 0 is no escape rate: reported as NaN (flagged by _check_estimate), the
        # computed value stays in diagnostics["escape_rate_flux"]
        sol = Solution(P, op.basis, self.mesh, self.landscape, diffusion, self.boundary,
                       self.order, _reported_rate(mu, self.boundary), diag, self.drift,
                       self.stabilisation)
        if self.gibbs:
            gibbs_attach(sol, op.gibbs, Pq)
            diag["weighting"] = "gibbs"
        t_hook = time.perf_counter()
        if self.on_solved is not None:
            self.on_solved(sol)
        t_hook = time.perf_counter() - t_hook
        # an adaptive level that will be refined anyway (negative mass above the loop's
        # bound) needs only marking indicators: the cheaper recovered weights serve
        lazy = self._lazy_above is not None and diag["negative_mass"] > self._lazy_above

        def compute() -> Estimate:
            if self.gibbs:
                est = gibbs_estimate(self, op, u, mu, diffusion)
            else:
                est = self._estimate(A, op, P, mu, info, diffusion, lazy)
            add_boundary_term(sol, est)        # the curved boundary's share (reflecting)
            return est

        def finish(est: Estimate, seconds: float) -> Solution:
            diag["estimate_weights"] = est.weights
            diag.update(est.diagnostics)     # which estimator gave μ's (fe/hierarchical.py)
            diag["timings"]["estimate_s"] = seconds
            diag["timings"]["total_s"] += seconds
            _check_estimate(diag, est, mu, self.boundary, self.stabilisation is not None)
            if self.tol is None and self.boundary == "absorbing" and not self.gibbs \
                    and diag.get("escape_rate_estimator") == "dwr":
                _check_outflow_layer(diag, self, diffusion, op.basis, A, P)
            if self.gibbs and self.boundary == "absorbing":
                _check_barrier(diag, gibbs_barrier(self.landscape, diffusion, self.mesh))
            for w in diag["warnings"]:
                warnings.warn(w, FPSolveWarning, stacklevel=3)
            sol.error_estimate = dict(diag["error_estimate"])
            sol._estimate = est          # corrections and element indicators (adaptivity)
            return sol

        if self.defer_estimate is not None and self.tol is None:   # adaptivity needs it now
            self.defer_estimate(sol, compute, finish)
            return sol
        est = compute()
        return finish(est, time.perf_counter() - t2 - t_hook)

    def _eigensolve(self, A, op) -> tuple:
        """(P, μ_eig, info): the principal pair of the absorbing problem (for a Gibbs-weighted
        one, u and its pencil solved symmetrically scaled), or the reflecting stationary P."""
        if self.boundary != "absorbing":
            solve = scaled_stationary_reflecting if self.gibbs else _stationary_reflecting
            P, info = solve(A, op.M, self._pin_guess(), reuse=self.reuse_ordering,
                            min_size=self._nd_min_size)
            return P, 0.0, info
        kwargs = dict(reuse=self.reuse_ordering, blocks=self._interior_blocks(),
                      min_size=self._nd_min_size, shift=self._shift)
        if self.gibbs:
            return scaled_quasi_stationary(A, op.M, self.interior_dofs, self.boundary_dofs,
                                           **kwargs)
        return _quasi_stationary(A, op.M_stab if op.M_stab is not None else op.M, op.M,
                                 self.interior_dofs, self.boundary_dofs, **kwargs)

    def _estimate(self, A, op, P, mu, info, diffusion, lazy=False) -> Estimate:
        """Dual-weighted residual estimates with the solve's LU (fe/estimate.py)."""
        Mop = op.M_stab if op.M_stab is not None else op.M
        MT = self._interior_blocks().mass_T(Mop)
        if self.boundary == "absorbing":
            # the LU may be of A − σM (a shifted adaptive level): the duals know σ
            dual = DualSolver(info["lu"], self.interior_dofs, A.shape[0], A, Mop, mu, MT,
                              shift=info["stop"].get("shift", 0.0))
        else:
            dual = DualSolver(info["lu"], info["keep"], A.shape[0], A, Mop, 0.0, MT)
        # on graded meshes (local refinement, bands, graded files) the patch-recovered
        # moment weights fail: the duals are solved in V_{k+1} instead (docs/adaptivity.md)
        graded = ("+refine" in self.mesh.source or self.mesh.graded) and not lazy
        return estimate_errors(self, diffusion, op.basis, self.mesh._cache, P, mu, dual, op.M,
                               enriched_duals=graded,
                               negative_dual=lazy and self._negative_dual,
                               hierarchical=not lazy)

    def sweep(self, strengths: Iterable[float]) -> list[Solution]:
        """Solve for each strength, re-using the assembled A0 + s·A1.

        Four or more values also share one fill-reducing (METIS) order of the LU
        when ``pymetis`` is installed (see :attr:`reuse_ordering`).
        """
        values = list(strengths)
        before = self.reuse_ordering
        self.reuse_ordering = before or len(values) >= 4
        try:
            return [self.solve(s) for s in values]
        finally:
            self.reuse_ordering = before

    def spectrum(self, k: int = 6, strength: float | None = None, estimate: bool = True):
        """The ``k`` slowest decay rates and modes of the generator (:mod:`.spectrum`).

        Returns a :class:`~fpsolve.fe.spectrum.Spectrum`: ``rates`` (complex, Re ≥ 0;
        the first is 0 when reflecting, μ when absorbing), ``modes``,
        ``relaxation_time`` = 1/Re(λ₂ − λ₁), ``frequency`` = |Im λ₂| and, unless
        ``estimate`` is False, each rate's ``error_estimate`` (P_k against P_{k+1},
        :mod:`.spectrum_estimate`; ``untrusted`` and a warning above 0.1).
        """
        from .spectrum import spectrum

        return spectrum(self, k, strength, estimate=estimate)

    def _pin_guess(self) -> int:
        """A dof where the density is large: the minimum of L (or the centre)."""
        x, y = self.basis.doflocs
        if self.landscape is not None:
            return int(np.argmin(self.landscape.value(x, y)))
        c = np.asarray(self.mesh.center)
        return int(np.argmin((x - c[0]) ** 2 + (y - c[1]) ** 2))

    def _diagnostics(self, P, op, info, t_matrix, t_solve, shared, Pq=None) -> dict:
        basis = op.basis
        asm = 0.0 if shared else sum(op.timings.values())
        Pq = np.asarray(basis.interpolate(P)) if Pq is None else Pq
        dx = np.asarray(basis.dx)
        absmass = float(np.sum(np.abs(Pq) * dx))
        neg = float(np.sum(np.maximum(-Pq, 0.0) * dx)) / absmass
        diag = {
            "dofs": int(basis.N),
            "order": self.order,
            "boundary": self.boundary,
            "stabilisation": self.stabilisation,
            "nvertices": self.mesh.nvertices,
            "nelements": self.mesh.nelements,
            "h": self.mesh.h,
            "residual": info["residual"],
            "negative_mass": neg,
            "min_P": float(min(P.min(), Pq.min())),
            "max_P": float(P.max()),
            "iterations": info.get("iterations", 0),
            "method": info["method"],
            "timings": {**op.timings, "matrix_s": t_matrix,
                        "factorisation_s": info["factorisation_s"],
                        "solve_s": t_solve - info["factorisation_s"],
                        # a sweep assembles once: later solves count only their own work
                        "assembly_in_total_s": asm,
                        "total_s": asm + t_matrix + t_solve},
            "warnings": [],
        }
        if self.boundary == "absorbing":
            diag["escape_rate_flux"] = info["mu_flux"]
            diag["escape_rate_eig_floor"] = info["eig_floor"]
            # why the inverse iteration stopped (reason, sweeps, componentwise residual)
            diag["solver"] = {"stop": dict(info["stop"])}
            if _stop_untrusted(info["stop"]):
                layer = info["stop"].get("layer", {})
                diag["warnings"].append(
                    f"{STALL_WARNING} after {info['stop']['sweeps']} sweeps: componentwise "
                    f"residual {info['stop']['componentwise_residual']:.1e} (ceiling "
                    f"{COMPONENTWISE_CEILING:g}), layer re-solve "
                    f"{'converged' if layer.get('resolved') else 'not converged'}; the "
                    "boundary-layer values and the escape rate may be wrong: refine the mesh "
                    "or use tol=...")
        if neg > THRESHOLDS["negative_mass"]:
            diag["warnings"].append(
                f"negative mass {neg:.2e} exceeds {THRESHOLDS['negative_mass']:g}: refine the "
                "mesh, use a higher order or tol=...")
        if not info["residual"] <= THRESHOLDS["residual"]:
            diag["warnings"].append(f"relative residual {info['residual']:.2e} exceeds "
                                    f"{THRESHOLDS['residual']:g}")
        return diag


def _gibbs_wanted(weighting, landscape, diffusion, drift, stabilisation, mesh, boundary,
                  tol) -> bool:
    """Whether a problem uses the Gibbs-weighted discretisation (``weighting``).

    "auto" takes it for an absorbing problem only where escape is rare: the boundary at
    least :data:`~.gibbs.BARRIER` nats of ψ above the minimum.  Below it the
    quasi-stationary density is far from Gibbs, u = P/w varies like e^ψ, and its estimate
    under-read (minimum of L on the unit circle, δ = 0.01: μ 33× tol off, effectivity
    0.008).  "gibbs" is refused below half of it (the adaptive loop's levels are built with
    "gibbs": their finer boundaries may sit a little lower than the first mesh's).
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting: expected one of {WEIGHTINGS}, got {weighting!r}")
    fits = gibbs_applies(landscape, diffusion, drift, stabilisation)
    if weighting == "gibbs" and not fits:
        raise ValueError("weighting='gibbs': the model is not in detailed balance (it needs "
                         "a constant isotropic diffusion D = δI, the drift −∇L of a "
                         "landscape and no stabilisation)")
    if not fits or weighting == "none" or (weighting == "auto" and tol is None):
        return False
    if boundary == "absorbing" and isinstance(mesh, Mesh):
        barrier = gibbs_barrier(landscape, diffusion, mesh)
        if np.isnan(barrier):           # L not finite: the assembly names the model, a point
            return True
        if not barrier >= GIBBS_BARRIER:
            if weighting == "gibbs" and not barrier >= GIBBS_BARRIER / 2:
                raise ValueError(
                    f"weighting='gibbs': the absorbing boundary is only {barrier:.3f} nats of "
                    f"L/δ above the minimum (needs ≥ {GIBBS_BARRIER / 2:g}: escape is not rare, "
                    "the density is far from Gibbs); use weighting='auto' or 'none'")
            return weighting == "gibbs"
    return True


def _check_barrier(diag: dict, barrier: float) -> None:
    """Flag a Gibbs-weighted absorbing solve whose boundary is less than
    :data:`~.gibbs.BARRIER` nats above the minimum (only ``weighting="gibbs"`` gets there):
    its estimate under-read (2.5 nats: effectivity 0.15, the error 6× tol; review R17)."""
    if barrier < GIBBS_BARRIER:         # (NaN: L not finite, the assembly raised already)
        diag["untrusted"] = True
        diag["warnings"].append(
            f"Gibbs weight with the absorbing boundary only {barrier:.3f} nats of L/δ above "
            f"the minimum (< {GIBBS_BARRIER:g}): the density is far from Gibbs and the error "
            "estimates may under-read; use weighting='auto' or 'none'")


def _check_estimate(diag: dict, est: Estimate, mu: float, boundary: str,
                    stabilised: bool = False) -> None:
    """Record the estimate; flag a result whose observables are not known to 10 % (μ
    negative or not known to a digit; ⟨x²⟩, ⟨y²⟩ or L1 estimated above 10 %: before,
    only μ was looked at, and a reflecting solve with an ⟨x²⟩ estimate of 3.9e17 came back
    unflagged, redteam F13), or whose estimates do not apply (a stabilised form: they are
    the Galerkin ones, redteam F12)."""
    diag["error_estimate"] = {k: float(v) for k, v in est.relative.items()}
    diag["error_correction"] = {k: float(v) for k, v in est.correction.items()}
    diag["untrusted"] = False
    if stabilised:
        diag["untrusted"] = True
        diag["warnings"].append("the error estimates are those of the Galerkin form, not of "
                                "the stabilised (SUPG) one, whose consistency error they do "
                                "not see (P2 at h = 0.025: 1.8e-3 off, estimate 1.2e-7): use "
                                "tol=... instead of a stabilisation")
    bad = [g for g in ("x2", "y2", "L1") if not est.relative.get(g, 0.0) <= UNTRUSTED]
    if bad:
        diag["untrusted"] = True
        diag["warnings"].append(
            "estimated relative error above 10 % for " + ", ".join(
                f"{g} ({est.relative[g]:.1e})" for g in bad) + ": refine the mesh or use tol=...")
    if boundary != "absorbing":
        return
    if _stop_untrusted(diag.get("solver", {}).get("stop")):
        diag["untrusted"] = True
    if not mu > 0:
        diag["untrusted"] = True
        diag["warnings"].append(f"escape rate {mu:.3e} is not positive (reported as NaN): the "
                                "boundary layer is not resolved; refine the mesh near the "
                                "boundary or use tol=...")
    elif est.relative["escape_rate"] > UNTRUSTED:
        diag["untrusted"] = True
        diag["warnings"].append(
            f"escape rate {mu:.3e} has an estimated relative error "
            f"{est.relative['escape_rate']:.1e}: refine the mesh or use tol=...")


def _check_outflow_layer(diag: dict, problem, diffusion, basis, A, P) -> None:
    """Flag the μ of a fixed-mesh solve whose outflow edges (99 % of the outflow) have a
    cell Péclet number above ``hierarchical.PECLET_MAX``: there the boundary layer that
    carries μ is not resolved and the dual-weighted estimate under-reads (radial OU
    δ = 0.07, P2, h = 0.4: μ 3.9× the exact value, estimate 5 %: redteam F11), as the
    hierarchical and Gibbs estimates already know.  ``diagnostics["layer_peclet"]``."""
    from .hierarchical import PECLET_MAX, _outflow_peclet

    B = problem.boundary_dofs
    pe = _outflow_peclet(problem, diffusion, basis, B, -(A @ P)[B])
    diag["layer_peclet"] = float(pe)
    if pe > PECLET_MAX and not diag["untrusted"]:
        diag["untrusted"] = True
        diag["warnings"].append(
            f"the boundary layer that carries the escape rate is not resolved (cell Péclet "
            f"number {pe:.2g} > {PECLET_MAX:g} at the outflow): μ and its estimate may be "
            "wrong; refine the mesh near the boundary or use tol=...")


def _reported_rate(mu: float, boundary: str) -> float:
    """``Solution.escape_rate``: μ, or NaN where an absorbing solve's μ is not positive."""
    return mu if boundary != "absorbing" or mu > 0 else float("nan")


def _stop_untrusted(stop: dict | None) -> bool:
    """An inverse iteration that stopped without converging componentwise, whose result
    (after the layer re-solve) still has a residual above the ceiling or whose layer
    refinement did not converge."""
    if not stop or stop["reason"] == "converged":
        return False
    return (not stop["componentwise_residual"] <= COMPONENTWISE_CEILING
            or not stop.get("layer", {}).get("resolved", True))


def _check_escape_agreement(diag: dict) -> None:
    mu_f, mu_e = diag["escape_rate_flux"], diag["escape_rate_eig"]
    scale = max(abs(mu_f), abs(mu_e))
    diag["escape_rate_mismatch"] = abs(mu_f - mu_e) / scale if scale > 0 else 0.0
    # an eigenvalue of A is only known to ~ε‖A‖: below that floor a mismatch is round-off
    if (diag["escape_rate_mismatch"] > THRESHOLDS["escape_rate_mismatch"]
            and abs(mu_f - mu_e) > diag["escape_rate_eig_floor"]):
        diag["warnings"].append(
            f"{MISMATCH_WARNING} ({mu_e:.6e}) and from the boundary outflow "
            f"({mu_f:.6e}) differ by {diag['escape_rate_mismatch']:.1e} (relative): the "
            "eigenvalue is at the round-off level of the operator; trust the outflow value")


def solve(landscape: Landscape | None, diffusion: DiffusionModel, mesh: Mesh,
          boundary: str = "absorbing", order: int = 2, drift: Callable | None = None,
          stabilisation: str | None = None, intorder: int | None = None,
          max_dofs: int | None = None, tol: float | None = None,
          goals: Iterable[str] | None = None, weighting: str = "auto") -> Solution:
    """Solve the stationary Fokker–Planck equation once.

    See :class:`Problem` for the parameters; use a :class:`Problem` directly to
    solve many strengths (Δ_S) on one assembly.

    Returns
    -------
    Solution
        ``escape_rate``, ``moments()``, ``marginal()``, ``diagnostics``, ...
    """
    return Problem(landscape, diffusion, mesh, boundary, order, drift, stabilisation,
                   intorder, max_dofs=max_dofs, tol=tol, goals=goals,
                   weighting=weighting).solve()
