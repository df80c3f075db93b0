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
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..models.diffusion import DiffusionModel
from . import budget as _budget
from .assembly import Operator, assemble
from ..models.landscapes import Landscape
from .mesh import Mesh
from .estimate import DualSolver, Estimate, estimate_errors
from .solution import Solution

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


def _splu(A, reuse: bool = False, min_size: int | None = None):
    """Sparse LU of a FE matrix with a symmetric sparsity pattern.

    SuperLU's default (COLAMD on AᵀA, unsymmetric mode) fills in 1.5-3x as much
    and factorises 2-5x slower on P2 matrices of 20k-190k dofs (docs/performance.md);
    symmetric mode keeps a fill-reducing order on Aᵀ+A while partial pivoting (the
    default diag_pivot_thresh=1) is unchanged.  The order is METIS nested dissection
    when ``pymetis`` is installed (a core dependency; computed once per
    sparsity pattern and cached), else SuperLU's minimum degree on Aᵀ+A: nested
    dissection factorises P3 matrices several times faster from ~80k dofs on
    (docs/ordering.md).  ``reuse`` (a sweep factorises the pattern many times) lets
    P2 matrices use the nested-dissection order too.
    """
    from . import ordering as _ordering

    return _ordering.splu(A, reuse=reuse, min_size=min_size)


class FPSolveWarning(UserWarning):
    """A solve finished but a diagnostic is bad (negative mass, residual, ...)."""


class SolverError(RuntimeError):
    """The linear algebra failed (singular system, no convergence)."""


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
                 goals: Iterable[str] | None = None, theta: float = 0.6, max_levels: int = 40):
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
        self.boundary, self.order = boundary, order
        self.drift, self.stabilisation, self.intorder = drift, stabilisation, intorder
        self.max_dofs = _budget.check_max_dofs(max_dofs)
        if isinstance(mesh, Mesh) and order in (1, 2, 3):   # else assemble() says what is wrong
            _budget.check(_budget.mesh_dofs(mesh, order), order, self.max_dofs,
                          f"Problem(order={order}) on {mesh!r}", graded=mesh.graded)
        self.operator: Operator = assemble(landscape, diffusion, mesh, order, drift,
                                           stabilisation, intorder)
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
        if self.tol is not None:
            from .adapt import solve_adaptive
            return solve_adaptive(self, strength)
        return self._solve_fixed(strength)

    def _solve_fixed(self, strength: float | None = None) -> Solution:
        """One solve on this problem's mesh (no adaptivity)."""
        diffusion = self.diffusion
        op = self.operator
        shared = self._assembly_used        # assembly time already reported by a solve
        if strength is not None and float(strength) != diffusion.strength:
            diffusion = diffusion.with_strength(strength)
            if not op.affine:   # SUPG: τ depends on D, so re-assemble
                op = assemble(self.landscape, diffusion, self.mesh, self.order, self.drift,
                              self.stabilisation, self.intorder)
                shared = False
        self._assembly_used = self._assembly_used or op is self.operator
        t0 = time.perf_counter()
        A = op.A(diffusion.strength)
        t1 = time.perf_counter()
        if self.boundary == "absorbing":
            P, mu_eig, info = _quasi_stationary(A, op.M_stab if op.M_stab is not None else op.M,
                                                op.M, self.interior_dofs, self.boundary_dofs,
                                                reuse=self.reuse_ordering, blocks=self._interior_blocks(),
                                                min_size=self._nd_min_size, shift=self._shift)
        else:
            P, info = _stationary_reflecting(A, op.M, self._pin_guess(),
                                             reuse=self.reuse_ordering, min_size=self._nd_min_size)
            mu_eig = 0.0
        t2 = time.perf_counter()
        diag = self._diagnostics(P, op, info, t1 - t0, t2 - t1, shared)
        mu = diag["escape_rate_flux"] if self.boundary == "absorbing" else 0.0
        diag["escape_rate_eig"] = mu_eig
        if self.boundary == "absorbing":
            _check_escape_agreement(diag)
        # a μ ≤ 0 is no escape rate: reported as NaN (flagged by _check_estimate), the
        # computed value stays in diagnostics["escape_rate_flux"]
        sol = Solution(P, op.basis, self.mesh, self.landscape, diffusion, self.boundary,
                       self.order, _reported_rate(mu, self.boundary), diag, self.drift,
                       self.stabilisation)
        t_hook = time.perf_counter()
        if self.on_solved is not None:
            self.on_solved(sol)
        t_hook = time.perf_counter() - t_hook
        # an adaptive level that will be refined anyway (negative mass above the loop's
        # bound) needs only marking indicators: the cheaper recovered weights serve
        lazy = self._lazy_above is not None and diag["negative_mass"] > self._lazy_above

        def compute() -> Estimate:
            return self._estimate(A, op, P, mu, info, diffusion, lazy)

        def finish(est: Estimate, seconds: float) -> Solution:
            diag["estimate_weights"] = est.weights
            diag.update(est.diagnostics)     # which estimator gave μ's (fe/hierarchical.py)
            diag["timings"]["estimate_s"] = seconds
            diag["timings"]["total_s"] += seconds
            _check_estimate(diag, est, mu, self.boundary)
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

    def spectrum(self, k: int = 6, strength: float | None = None):
        """The ``k`` slowest decay rates and modes of the generator (:mod:`.spectrum`).

        Returns a :class:`~fpsolve.fe.spectrum.Spectrum`: ``rates`` (complex, Re ≥ 0;
        the first is 0 when reflecting, μ when absorbing), ``modes``,
        ``relaxation_time`` = 1/Re(λ₂ − λ₁) and ``frequency`` = |Im λ₂|.
        """
        from .spectrum import spectrum

        return spectrum(self, k, strength)

    def _pin_guess(self) -> int:
        """A dof where the density is large: the minimum of L (or the centre)."""
        x, y = self.basis.doflocs
        if self.landscape is not None:
            return int(np.argmin(self.landscape.value(x, y)))
        c = np.asarray(self.mesh.center)
        return int(np.argmin((x - c[0]) ** 2 + (y - c[1]) ** 2))

    def _diagnostics(self, P, op, info, t_matrix, t_solve, shared) -> dict:
        basis = op.basis
        asm = 0.0 if shared else sum(op.timings.values())
        Pq = np.asarray(basis.interpolate(P))
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
                "mesh, use order=2 or stabilisation='supg'")
        if not info["residual"] <= THRESHOLDS["residual"]:
            diag["warnings"].append(f"relative residual {info['residual']:.2e} exceeds "
                                    f"{THRESHOLDS['residual']:g}")
        return diag


def _check_estimate(diag: dict, est: Estimate, mu: float, boundary: str) -> None:
    """Record the estimate; flag a μ that is negative or not even known to 1 digit."""
    diag["error_estimate"] = {k: float(v) for k, v in est.relative.items()}
    diag["error_correction"] = {k: float(v) for k, v in est.correction.items()}
    diag["untrusted"] = False
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


#: the inverse iteration also stops only when every row's residual is this small against
#: that row's own terms (|A||p|): the boundary-layer values, e^(−barrier/D) of the bulk,
#: carry μ_flux; a max-norm test stops while they are still wrong (radial OU δ = 0.005:
#: μ = 7.9e-32 after 2 steps, the converged 7.0e-42 after 3)
COMPONENTWISE_TOL = 1e-10
#: ... unless that residual has stopped falling for this many sweeps of an unchanging
#: iterate (paper landscape Δ_S = 0.004, 62k dofs: stuck at 1e-5 in 16 rows where P_h
#: crosses zero from the 2nd sweep on; the loop ran 100 sweeps and ARPACK for nothing)
COMPONENTWISE_STALL = 3
#: ... and is then followed by a re-solve of the region where P is tiny (fe/layer.py): its
#: values there may be round-off (paper landscape Δ_S = 0.002, h = 0.014: μ_flux −4e-39
#: from the LU, 8.2e-53 after).  A result whose componentwise residual is still above this,
#: or whose re-solve did not converge, is flagged
COMPONENTWISE_CEILING = 1e-4


def _componentwise_residual(AII, absA, MII, p, mu) -> float:
    """max_i |A p − μ M p|_i / (|A| |p|)_i over the rows with a nonzero scale."""
    r = np.abs(AII @ p - mu * (MII @ p))
    scale = absA @ np.abs(p)
    ok = scale > 0
    return float(np.max(r[ok] / scale[ok])) if ok.any() else 0.0


class _InteriorBlocks:
    """The interior blocks of a problem's matrices, with what depends only on their pattern
    (or, for the mass matrix, on the matrix) kept for the next strength.

    ``A[I][:, I].tocsc()`` and ``abs(·).tocsr()`` gather the same entries of ``A.data`` for
    every A of one sparsity pattern: the gathers are recorded once (by slicing the entry
    positions) and replayed, which gives the same arrays bit for bit without the slicing
    and conversions (~40 ms a case at 82k P3 dofs).  ``M`` does not depend on the strength.
    Shared by the problems on one mesh (Fig. 3: both noise models).
    """

    def __init__(self, I):
        self.I = I
        self._pattern = None     # A's indptr, indices; the CSC and CSR gathers and structures
        self._mass = None        # (Mstab, M_II, ∫ of each interior basis function)
        self._mass_T = None      # (Mop, Mop.T as CSR)

    def stiffness(self, A):
        """(A_II as CSC, |A_II| as CSR), as ``A[I][:, I].tocsc()`` and ``abs(A_II).tocsr()``."""
        A = A.tocsr()
        if not A.has_canonical_format:          # duplicates: no one-to-one gather
            AII = A[self.I][:, self.I].tocsc()
            return AII, abs(AII).tocsr()
        pat = self._pattern                     # read once: other threads may replace it
        if not (pat is not None and np.array_equal(pat[0], A.indptr)
                and np.array_equal(pat[1], A.indices)):
            # the positions (+1: none is an explicit zero) go through the same slicing
            pos = sp.csr_matrix((np.arange(1.0, A.nnz + 1.0), A.indices, A.indptr),
                                shape=A.shape)
            csc = pos[self.I][:, self.I].tocsc()
            csr = csc.tocsr()
            pat = (A.indptr.copy(), A.indices.copy(),
                   [(c.data.astype(np.int64) - 1, c.indices, c.indptr) for c in (csc, csr)])
            self._pattern = pat
        (gc, ic, pc), (gr, ir, pr) = pat[2]
        n = self.I.size
        AII = sp.csc_matrix((A.data[gc], ic, pc), shape=(n, n))
        absA = sp.csr_matrix((np.abs(A.data[gr]), ir, pr), shape=(n, n))
        return AII, absA

    def mass_T(self, Mop):
        """``Mop.T`` as CSR (the error estimate's duals), kept for the next strength."""
        m = self._mass_T
        if m is None or m[0] is not Mop:
            m = self._mass_T = (Mop, Mop.T.tocsr())
        return m[1]

    def mass(self, Mstab):
        """(M_II as CSR, its column sums)."""
        m = self._mass
        if m is None or m[0] is not Mstab:
            MII = Mstab[self.I][:, self.I].tocsr()
            m = self._mass = (Mstab, MII, np.asarray(MII.sum(axis=0)).ravel())
        return m[1], m[2]


#: a shifted inverse iteration (adaptive levels, σ just below the previous level's μ) is
#: kept only if it found 0 < μ − σ ≤ SHIFT_WINDOW·σ and a density of one sign
#: (:func:`_shift_accepted`); else the level is solved again without the shift.  The
#: eigenvalue nearest σ is the principal one when σ < μ₁, but the window alone cannot tell:
#: σ = 1.25 μ₁ at Δ_S = 0.03 (μ₂ = 1.3 μ₁) put μ₂ inside it (review R1)
SHIFT_WINDOW = 0.05
#: ... and the density of the pair found must not dip below −SHIFT_SIGN·max: the
#: principal mode's undershoots are discretisation error (≤ a few % of max P on the
#: coarsest meshes measured); a higher mode changes sign at O(max)
SHIFT_SIGN = 0.5
#: a plain solve whose inverse iteration still moves after this many sweeps (μ₂/μ₁ near 1:
#: paper landscape Δ_S = 0.03, h = 0.056 took 68 sweeps; from 0.05 on, 100 and then ARPACK)
#: goes on with A − σM, σ just below its μ estimate (:func:`_slow_shift`)
SLOW_SWEEPS = 8
#: ... σ = μ_k(1 − offset), offset = SLOW_MARGIN·|μ_k − μ_(k−1)|/μ_k within these bounds.
#: Measured from the constant start vector (Δ_S = 0.03-0.4): μ_k approaches μ₁ from below
#: with an error 1-1.5× its last change, so σ < μ₁ with μ₁ − σ a few times that error
SLOW_MARGIN = 3.0
SLOW_OFFSET = (1e-6, 1e-2)


def _shift_accepted(mu: float, sigma: float, p: np.ndarray) -> bool:
    """Whether a shifted iteration found the principal pair (μ in the window, p of one
    sign up to discretisation undershoots)."""
    if not 0.0 < mu - sigma <= SHIFT_WINDOW * sigma:
        return False
    top = np.max(np.abs(p))
    return bool(np.max(-p * np.sign(p[np.argmax(np.abs(p))])) <= SHIFT_SIGN * top)


def _quasi_stationary(A, Mstab, M, I, B, tol=1e-13, maxit=100, reuse=False, blocks=None,
                      min_size=None, shift=None):
    """Principal eigenpair of A p = μ M p on the interior dofs (inverse iteration).

    ``blocks``: the problem's :class:`_InteriorBlocks` of I (kept between strengths).
    ``shift``: σ (< μ) of the adaptive loop: A − σM is factorised instead of A, and the
    iteration contracts by (μ − σ)/(μ₂ − σ) instead of μ/μ₂; the returned LU is then of
    A − σM (``info["stop"]["shift"]`` = σ).  None (default): σ = 0, as before.
    """
    t0 = time.perf_counter()
    blocks = _InteriorBlocks(I) if blocks is None else blocks
    AII, absA = blocks.stiffness(A)
    MII, mI = blocks.mass(Mstab)
    sigma = 0.0 if shift is None else float(shift)
    system = (AII, absA, MII, mI)
    try:
        lu = _interior_lu(AII if sigma == 0.0 else (AII - sigma * MII).tocsc(), reuse, min_size)
        tf = time.perf_counter() - t0
        p, mu, it, stop, cw, method = _inverse_iteration(
            lu, *system, sigma, tol, maxit, slow=SLOW_SWEEPS if shift is None else None)
    except SolverError:
        if sigma == 0.0:
            raise
        mu, it, tf = np.nan, 0, time.perf_counter() - t0    # σ an eigenvalue: no shift
        stop = None
    rejected = None
    if stop == "slow":          # a plain solve with μ₂/μ₁ near 1: go on shifted
        shift = _slow_shift(mu, cw)
        p, mu, it, stop, cw, method, lu, sigma, tf, rejected = _shifted_continuation(
            system, p, mu, it, lu, shift, tol, maxit, reuse, min_size, tf)
    elif sigma != 0.0 and not (np.isfinite(mu) and _shift_accepted(mu, sigma, p)):
        rejected = float(mu)                 # not certainly the principal pair: no shift
        t1 = time.perf_counter()
        lu, sigma = _interior_lu(AII, reuse, min_size), 0.0
        tf += time.perf_counter() - t1
        p, mu, it2, stop, cw, method = _inverse_iteration(lu, *system, 0.0, tol, maxit)
        it += it2
    P = np.zeros(A.shape[0])
    P[I] = p
    P /= (M @ P).sum()
    AP = A @ P
    mu_flux = float(-AP[B].sum() / (Mstab @ P)[I].sum())
    stop = {"reason": stop, "sweeps": it, "componentwise_residual": float(cw)}
    if shift is not None:
        stop["shift"] = float(sigma)
        if rejected is not None:
            stop["shift_rejected"] = {"shift": float(shift), "eigenvalue": rejected}
    # a stall above the ceiling gets the re-solve too: where it succeeds the result is
    # checked (its residual below the ceiling) instead of flagged wholesale (review R11)
    if stop["reason"] != "converged" and (not cw <= COMPONENTWISE_CEILING
                                          or _layer_below_round_off(A, B, P)):
        P, mu_flux = _resolve_layer(A, Mstab, M, I, B, P, mu_flux, lu, stop,
                                    (AII, absA, MII))
    r = AII @ P[I] - mu * (MII @ P[I])
    normA = absA.sum(axis=1).max()          # spla.norm(AII, np.inf), from |A_II| at hand
    residual = float(np.max(np.abs(r)) / (normA * np.max(np.abs(P))))
    # μ = pᵀAp/pᵀMp is known to ~ε‖M⁻¹A‖, not ε‖A‖: on graded meshes the smallest
    # elements set it (A_ii/M_ii ~ D/h²); the larger of the two is the round-off floor
    dM = MII.diagonal()
    ratio = np.abs(AII.diagonal())[dM > 0] / dM[dM > 0]
    scale = max(normA, float(ratio.max()) if ratio.size else 0.0)
    return P, float(mu), {"residual": residual, "mu_flux": mu_flux, "iterations": it,
                          "method": method, "factorisation_s": tf,
                          "eig_floor": 10 * np.finfo(float).eps * scale, "lu": lu,
                          "stop": stop}


def _slow_shift(mu: float, dmu: float) -> float | None:
    """σ for a slow plain iteration at μ_k = ``mu`` whose last change was ``dmu``, or None
    (μ_k not positive)."""
    if not (np.isfinite(mu) and mu > 0):
        return None
    offset = min(SLOW_OFFSET[1], max(SLOW_OFFSET[0], SLOW_MARGIN * abs(dmu) / mu))
    return (1.0 - offset) * mu


def _shifted_continuation(system, p, mu, it, lu, shift, tol, maxit, reuse, min_size, tf):
    """Continue a slow unshifted iteration from its iterate ``p`` with A − σM, σ = ``shift``;
    kept if :func:`_shift_accepted`, else the unshifted iteration goes on from ``p``.

    Returns (p, μ, sweeps, stop, cw, method, lu, σ, factorisation seconds, rejected μ).
    """
    AII, MII = system[0], system[2]
    if shift is not None:
        t1 = time.perf_counter()
        try:
            lu_s = _interior_lu((AII - shift * MII).tocsc(), reuse, min_size)
            tf += time.perf_counter() - t1
            q, nu, it2, stop, cw, method = _inverse_iteration(lu_s, *system, shift, tol,
                                                              maxit, p0=p)
            if np.isfinite(nu) and _shift_accepted(nu, shift, q):
                return q, nu, it + it2, stop, cw, method, lu_s, shift, tf, None
            it, rejected = it + it2, float(nu)
        except SolverError:         # σ at an eigenvalue (cannot happen below μ₁): no shift
            rejected = float("nan")
    else:
        rejected = float("nan")
    q, nu, it2, stop, cw, method = _inverse_iteration(lu, *system, 0.0, tol, maxit, p0=p)
    return q, nu, it + it2, stop, cw, method, lu, 0.0, tf, rejected


def _interior_lu(K, reuse, min_size):
    try:
        return _splu(K, reuse, min_size)
    except RuntimeError as exc:   # exactly singular: no escape at all (μ = 0)
        raise SolverError(f"absorbing solve: interior operator is singular ({exc})") from None


def _inverse_iteration(lu, AII, absA, MII, mI, sigma, tol, maxit, slow=None, p0=None):
    """Inverse iteration with ``lu`` of A_II − σ M_II from ``p0`` (default: the constant
    vector), with the stop rules below; ARPACK shift-invert (same LU) after ``maxit`` sweeps.
    With ``slow``, an iterate that still moves after that many sweeps is returned with the
    stop reason ``"slow"`` and μ's last change in place of the componentwise residual.

    Returns (p, μ, sweeps, stop reason, componentwise residual, method).
    """
    p = np.ones(MII.shape[0]) if p0 is None else p0.copy()
    p /= mI @ p
    mu, method, it = np.nan, "inverse-iteration", 0
    best, stalled, cw, stop = np.inf, 0, np.nan, "max-sweeps"
    for it in range(1, maxit + 1):
        q = lu.solve(MII @ p)
        mass = mI @ q
        if not np.isfinite(mass) or mass == 0:
            raise SolverError("absorbing solve: inverse iteration broke down (non-finite iterate)")
        nu = 1.0 / mass                 # = μ − σ
        q *= nu
        mu, mu_prev = sigma + nu, mu    # σ = 0: exactly ν
        change = np.max(np.abs(q - p)) / np.max(np.abs(q))
        p = q
        if slow is not None and it >= slow and not change < tol:
            return p, mu, it, "slow", mu - mu_prev, method
        if change < tol:
            cw = _componentwise_residual(AII, absA, MII, p, mu)
            if cw < COMPONENTWISE_TOL:
                stop = "converged"
                break
            # the iterate no longer changes and the componentwise residual sits at its
            # round-off floor (the LU's normwise backward error ε‖A‖‖p‖ shows in the rows
            # where |p| ≪ max|p| once P_h changes sign, i.e. A is no M-matrix): further
            # sweeps, and ARPACK after them, return the same vector
            stalled = stalled + 1 if cw > 0.5 * best else 0
            best = min(best, cw)
            if stalled >= COMPONENTWISE_STALL:
                stop = "stalled" if cw <= COMPONENTWISE_CEILING else "stalled-above-ceiling"
                break
    else:
        # slow convergence (small spectral gap): ARPACK shift-invert, same factorisation
        method = "arpack"
        op = spla.LinearOperator(AII.shape, matvec=lu.solve, dtype=float)
        try:
            vals, vecs = spla.eigs(AII, k=1, M=MII, sigma=sigma, OPinv=op, v0=p, tol=1e-14)
        except spla.ArpackNoConvergence as exc:
            raise SolverError(f"absorbing solve: eigen-solver did not converge ({exc})") from None
        mu = float(np.real(vals[0]))
        p = np.real(vecs[:, 0])
        p /= mI @ p
        cw = _componentwise_residual(AII, absA, MII, p, mu)
        stop = "arpack"
    return p, mu, it, stop, cw, method


def _layer_below_round_off(A, B, P) -> bool:
    from .layer import below_round_off

    return below_round_off(A, B, P)


def _resolve_layer(A, Mstab, M, I, B, P, mu_flux, lu, stop, interior):
    """P where it is tiny re-solved to relative accuracy (:mod:`.layer`), when the inverse
    iteration did not converge componentwise and P next to the boundary is below
    ``layer.LAYER_TRIGGER`` of its maximum: its layer values may be round-off then
    (paper landscape Δ_S = 0.002, h = 0.014: μ_flux −4.0e-39 from the LU, 8.23e-53 after).
    Records ``stop["layer"]`` (with the outflow μ before); the componentwise residual of the
    result replaces the stalled one.  Returns (P, μ_flux)."""
    from .layer import resolve_layer

    Q, info = resolve_layer(A, Mstab, I, P, mu_flux, getattr(lu, "perm", None))
    Q /= (M @ Q).sum()
    mu_q = float(-(A @ Q)[B].sum() / (Mstab @ Q)[I].sum())
    info["escape_rate_before"] = mu_flux
    stop["layer"] = info
    stop["componentwise_residual"] = _componentwise_residual(*interior, Q[I], mu_q)
    return Q, mu_q


def _stationary_reflecting(A, M, k, reuse=False, min_size=None):
    """Null vector of A (reflecting): pin P_k = 1, drop equation k, renormalise."""
    t0 = time.perf_counter()
    N = A.shape[0]
    lu = keep = None

    def pinned(k):
        nonlocal lu, keep
        keep = np.setdiff1d(np.arange(N), [k])
        Akk = A[keep][:, keep].tocsc()
        rhs = -np.asarray(A[keep][:, [k]].todense()).ravel()
        try:
            lu = _splu(Akk, reuse, min_size)
        except RuntimeError as exc:
            raise SolverError(f"reflecting solve: pinned system is singular ({exc})") from None
        P = np.zeros(N)
        P[k] = 1.0
        P[keep] = lu.solve(rhs)
        return P

    P = pinned(k)
    method = "pinned"
    if abs(P[k]) < 1e-6 * np.max(np.abs(P)):   # pinned where P is tiny: pin at the maximum
        P = pinned(int(np.argmax(np.abs(P))))
    P /= (M @ P).sum()
    tf = time.perf_counter() - t0
    residual = float(np.max(np.abs(A @ P)) / (spla.norm(A, np.inf) * np.max(np.abs(P))))
    return P, {"residual": residual, "method": method, "factorisation_s": tf, "lu": lu,
               "keep": keep}


def solve(landscape: Landscape | None, diffusion: DiffusionModel, mesh: Mesh,
          boundary: str = "absorbing", order: int = 2, drift: Callable | None = None,
          stabilisation: str | None = None, intorder: int | None = None,
          max_dofs: int | None = None, tol: float | None = None,
          goals: Iterable[str] | None = None) -> Solution:
    """Solve the stationary Fokker–Planck equation once.

    See :class:`Problem` for the parameters; use a :class:`Problem` directly to
    solve many strengths (Δ_S) on one assembly.

    Returns
    -------
    Solution
        ``escape_rate``, ``moments()``, ``marginal()``, ``diagnostics``, ...
    """
    return Problem(landscape, diffusion, mesh, boundary, order, drift, stabilisation,
                   intorder, max_dofs=max_dofs, tol=tol, goals=goals).solve()
