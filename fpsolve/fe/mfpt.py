"""Mean first-passage (exit) time T(x) through an absorbing boundary.

T solves the backward Kolmogorov equation of the Itô process dθ = b dt + √(2D) dW,

    Σ D_ij ∂_i∂_j T + b·∇T = −1 in Ω,   T = 0 on ∂Ω,      b = −∇L (or the user drift).

Its Galerkin form is the transpose of the forward operator: a(φ_i, T) = ∫ φ_i for every
interior test function, i.e.

    A_IIᵀ t = Mᵀ_II 1,

because a(P, v) = −∫ P (D:∇∇v + b·∇v) dA for v = 0 on ∂Ω (docs/dynamics.md).  If
A_II p = μ M_II p is the quasi-stationary pair, then tᵀ A_II p = μ tᵀ M_II p = 1ᵀ M_II p,
so μ · ∫T P dA / ∫P dA = 1 holds exactly for the discrete functions: E_QSD[T] = 1/μ.

At small noise μ ~ 1e-40 is far below the round-off level ε‖A‖ of A_II, and a direct
solve returns a meaningless magnitude.  The solution is therefore split along the
adjoint quasi-stationary vector q (A_IIᵀ q = μ M_IIᵀ q):

    t = α q + r,   α = (M p)ᵀ1 / (μ (M p)ᵀ q),   A_IIᵀ r = Mᵀ1 − ((M p)ᵀ1/(M p)ᵀq) Mᵀq,
    (M p)ᵀ r = 0.

All of the 1/μ sits in the scalar α, and μ is taken from the boundary outflow, which
keeps relative precision (see the solver); the right-hand side for r has no component
along the near-null direction, so r = O(1/λ₂) is computed to working accuracy with the
same LU, and the round-off it picks up along q is projected out.

What is left at small noise is discretisation error: the exit time and the QSD vary on
the scale D/|b| wherever the drift dominates (the QSD decays like e^(−L/δ), a relative
change on the scale δ/|∇L|, not only in the boundary layer).  ``peclet=`` grades the mesh
until every element's cell Péclet number h_K·|β|/(β̂ᵀD β̂) is at most that bound
(docs/dynamics.md: ≤ 1.5 brings T(0) of the radial test at δ = 0.01 from 1.6e-2 on a
uniform mesh to 3e-4).  A Gibbs-weighted problem (:mod:`.gibbs`, detailed balance) keeps its
weighted pencil, solved symmetrically scaled: T is then as smooth as u (radial test on the
meshes its adaptive loop makes: 2e-5 at δ = 0.01 and 0.005).
"""
from __future__ import annotations

import time
import warnings
from types import SimpleNamespace
from typing import Callable

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from . import budget as _budget
from .adapt import element_peclet as _element_peclet
from .assembly import evaluate
from .gibbs import symmetric_scaling
from .ordering import splu
from .refine import refine
from .solver import COMPONENTWISE_CEILING, COMPONENTWISE_STALL, COMPONENTWISE_TOL, \
    FPSolveWarning, Problem, SolverError, \
    _componentwise_residual

__all__ = ["MeanExitTime", "exit_time", "mfpt", "mfpt_problem", "graded_mesh"]


class MeanExitTime:
    """The mean exit time T(x) as a FE function (callable on points of shape (n, 2)).

    Attributes
    ----------
    T : ndarray
        FE coefficients (0 on the absorbing boundary).
    escape_rate : float
        μ of the quasi-stationary state (boundary-outflow value).
    mean_qsd : float
        E_QSD[T] = ∫T P dA / ∫P dA with the quasi-stationary P (= 1/μ, see the module).
    error_estimate : dict
        Relative error estimates of ``T_center``, ``T_max``, ``mean_qsd``, ``escape_rate``
        and ``T_L1`` (∫|T − T_h| / ∫|T|): the same exit time in P_{k+1} on the same mesh
        (:mod:`.mfpt_estimate`); inf where that is no reference.  Empty with
        ``estimate=False``.
    diagnostics : dict
        iterations, residual ‖A_IIᵀt − Mᵀ1‖∞/(‖A‖∞‖t‖∞), timings, ``untrusted`` (an
        estimate above 0.1 or unknown: warned about) and ``estimate`` (the P_{k+1} record).
    """

    def __init__(self, T, problem: Problem, diffusion, escape_rate, mean_qsd, diagnostics):
        self.T = T
        self.problem = problem
        self.basis, self.mesh, self.order = problem.basis, problem.mesh, problem.order
        self.landscape, self.drift = problem.landscape, problem.drift
        self.diffusion = diffusion
        self.escape_rate = float(escape_rate)
        self.mean_qsd = float(mean_qsd)
        self.diagnostics = diagnostics
        self.error_estimate: dict = {}

    def __call__(self, points) -> np.ndarray:
        """T at ``points`` of shape (n, 2) (or one point (2,)); 0 outside the mesh."""
        return evaluate(self.basis, self.T, points)

    def _vtk_fields(self) -> dict:
        """Point data for :func:`fpsolve.export_vtk`."""
        return {"T": np.asarray(self.T, dtype=float)}

    def summary(self) -> dict:
        """JSON-friendly values: T at the mesh centre, its maximum, μ, E_QSD[T]."""
        return {"T_center": self(np.asarray(self.mesh.center)), "T_max": float(self.T.max()),
                "escape_rate": self.escape_rate, "mean_qsd": self.mean_qsd,
                "inverse_escape_rate": 1.0 / self.escape_rate,
                "dofs": int(self.T.size), "order": self.order,
                "residual": self.diagnostics["residual"],
                "error_estimate": dict(self.error_estimate),
                "untrusted": bool(self.diagnostics.get("untrusted", False))}

    def __repr__(self):
        return (f"MeanExitTime(P{self.order}, dofs={self.T.size}, T_max={self.T.max():.6g}, "
                f"escape_rate={self.escape_rate:.6g})")


#: an inverse-iteration change below this that has stopped falling is the noise floor
STALL_CHANGE = 1e-6


def _inverse_iteration(solve, A, M, tol=1e-13, maxit=500):
    """Eigenvector of A w = μ M w for the eigenvalue nearest 0 (inverse iteration).

    Converged when the max-norm change is below ``tol`` *and* every row's residual
    |A w − μ M w|_i is below COMPONENTWISE_TOL of its own scale (|A||w|)_i: the rows of
    the boundary layer, e^(−barrier/δ) below the maximum, carry the outflow μ, and a
    max-norm test alone stops while they are still wrong (radial δ = 0.005: μ 1e7 too
    large after 2 steps).
    """
    n = A.shape[0]
    absA = abs(A).tocsr()
    v = np.ones(n) / np.sqrt(n)
    best, stalled = np.inf, 0
    for it in range(1, maxit + 1):
        w = solve(M @ v)
        nrm = np.linalg.norm(w)
        if not np.isfinite(nrm) or nrm == 0:
            raise SolverError("mfpt: inverse iteration broke down (non-finite iterate)")
        w /= nrm
        if w.sum() < 0:
            w = -w
        change = np.max(np.abs(w - v)) / np.max(np.abs(w))
        if change < tol and \
                _componentwise_residual(A, absA, M, w, 1.0 / nrm) < COMPONENTWISE_TOL:
            return w, it, "converged"
        # an iterate that moves only at the solves' noise floor (ε‖A‖/λ₂ ≈ 1e-9 for the
        # scaled Gibbs pencil at δ = 0.005) without its change falling any more: done, if
        # its rows are consistent to the ceiling (before: 500 sweeps and ARPACK, 47 s)
        stalled = stalled + 1 if change < STALL_CHANGE and change > 0.9 * best else 0
        best = min(best, change)
        if stalled >= COMPONENTWISE_STALL and \
                _componentwise_residual(A, absA, M, w, 1.0 / nrm) <= COMPONENTWISE_CEILING:
            return w, it, "stalled"
        v = w
    return _arpack(solve, M.__matmul__, n, v), maxit, "arpack"


def _arpack(solve, Mv, n, v0):
    # slow inverse iteration (small gap μ/λ₂): Krylov on the same operator
    op = spla.LinearOperator((n, n), matvec=lambda x: solve(Mv(x)), dtype=float)
    try:
        vals, vecs = spla.eigs(op, k=1, which="LM", v0=v0, tol=1e-14)
    except spla.ArpackNoConvergence as exc:
        raise SolverError(f"mfpt: eigen-solver did not converge ({exc})") from None
    w = np.real(vecs[:, 0])
    return w / (np.linalg.norm(w) * np.sign(w.sum()))


def mfpt_problem(problem: Problem, strength: float | None = None,
                 estimate: bool = True) -> MeanExitTime:
    """Mean exit time of an assembled absorbing :class:`Problem` (see :func:`mfpt`)."""
    if problem.boundary != "absorbing":
        raise ValueError("boundary: the mean exit time needs an absorbing boundary, got "
                         f"{problem.boundary!r}")
    t0 = time.perf_counter()
    diffusion = problem.diffusion
    if strength is not None and float(strength) != diffusion.strength:
        diffusion = diffusion.with_strength(strength)
    A, M = _matrices(problem, diffusion)
    ex = exit_time(A, M, problem.interior_dofs, problem.boundary_dofs, problem.gibbs)
    ex.diagnostics["total_s"] = time.perf_counter() - t0
    T = MeanExitTime(ex.T, problem, diffusion, ex.mu, ex.mean_qsd, ex.diagnostics)
    if estimate:
        from .mfpt_estimate import attach_estimate
        attach_estimate(T)
    return T


def exit_time(A, M, I, B, scaled: bool) -> SimpleNamespace:
    """T, μ, E_QSD[T] and the quasi-stationary P of the pencil (A, M), boundary dofs B.

    Parameters
    ----------
    A, M : sparse matrices
        The (plain or Gibbs-weighted) forward operator and mass matrix.
    I, B : ndarray of int
        Interior and (absorbing) boundary dofs.
    scaled : bool
        Factorise S A_II S (a Gibbs-weighted pencil).

    Returns
    -------
    SimpleNamespace
        ``T``, ``P`` (full vectors), ``mu`` (outflow), ``mean_qsd``, ``diagnostics``.
    """
    AII, MII = A[I][:, I].tocsc(), M[I][:, I].tocsr()
    MIIt = MII.T.tocsr()
    solve, solve_T = _factorised(AII, scaled)
    n = len(I)
    p, itp, stp = _inverse_iteration(solve, AII, MII)
    q, itq, stq = _inverse_iteration(solve_T, AII.T.tocsr(), MIIt)
    P = np.zeros(A.shape[0])
    P[I] = p
    Mp = MII @ p
    mu = float(-(A @ P)[B].sum() / Mp.sum())       # boundary outflow: relative precision
    if not mu > 0:
        raise SolverError(f"mfpt: escape rate {mu:.3e} is not positive: no exit through "
                          "the boundary, or its layer is not resolved on this mesh (grade "
                          "it, e.g. peclet=1.5)")
    b = MIIt @ np.ones(n)
    c = Mp.sum() / (Mp @ q)
    r = solve_T(b - c * (MIIt @ q))
    r -= (Mp @ r) / (Mp @ q) * q
    t = (c / mu) * q + r
    T = np.zeros(A.shape[0])
    T[I] = t
    res = np.max(np.abs(AII.T @ t - b)) / (spla.norm(AII, np.inf) * np.max(np.abs(t)))
    diag = {"iterations": [itp, itq], "stop": [stp, stq], "residual": float(res),
            "dofs": int(A.shape[0]),
            "escape_rate_eig_floor": float(10 * np.finfo(float).eps * spla.norm(AII, np.inf))}
    return SimpleNamespace(T=T, P=P, mu=mu, mean_qsd=(Mp @ t) / Mp.sum(), diagnostics=diag)


def _matrices(problem: Problem, diffusion):
    """(A, M) of the problem at ``diffusion``'s strength.  A Gibbs-weighted problem
    (:mod:`.gibbs`) keeps its weighted pencil: with P = w·u its trial functions are w·φ_j
    and T stays in the plain space, so A_IIᵀ t = M_IIᵀ 1 is the same identity, and for this
    symmetric form T is as smooth as u (flat, with the boundary layer)."""
    if problem.gibbs:
        op = problem.operator
        if diffusion.strength != problem.diffusion.strength:
            op = problem._assemble(diffusion)
        return op.A_fixed, op.M
    op = problem.plain_operator()
    return op.A(diffusion.strength), (op.M_stab if op.M_stab is not None else op.M)


def _factorised(AII, scaled: bool):
    """(solve, transposed solve) with one LU of A_II; ``scaled``: of S A_II S,
    S = diag(A_II)^(−1/2) (a weighted pencil's rows span e^(−ψ): the LU's pivoting needs
    O(1) rows, fe/gibbs.py), A⁻¹ = S (S A S)⁻¹ S."""
    s = np.ones(AII.shape[0])
    if scaled:
        s = symmetric_scaling(AII)
        AII = (sp.diags(s) @ AII @ sp.diags(s)).tocsc()
    try:
        lu = splu(AII)
    except RuntimeError as exc:
        raise SolverError(f"mfpt: interior operator is singular ({exc})") from None
    if not scaled:
        return lu.solve, lambda b: lu.solve(b, trans="T")
    return (lambda b: s * lu.solve(s * b)), (lambda b: s * lu.solve(s * b, trans="T"))


def graded_mesh(landscape, diffusion, mesh, peclet: float, drift: Callable | None = None,
                max_levels: int = 6, order: int = 3):
    """Refine ``mesh`` until every element's Péclet number is ≤ ``peclet``.

    The Péclet number is :func:`fpsolve.fe.adapt.element_peclet`'s, h_K Σ|β|³/Σ βᵀDβ over
    the centroid and corners (the length on which P and T vary is D_β/|β|).

    Parameters
    ----------
    landscape, diffusion
        The models of the problem (the drift is −∇L unless ``drift`` is given).
    mesh : Mesh
        The starting mesh.
    peclet : float
        The bound on every element's Péclet number (> 0).
    drift : callable, optional
        A drift b(x, y) replacing −∇L.
    max_levels : int
        At most this many refinement levels (≥ 0).
    order : int
        The element order whose dofs are checked against the memory budget.

    Returns
    -------
    (Mesh, dict)
        The mesh and a record (levels, largest remaining Péclet number, elements
    left above the bound: those where D vanishes along b, or all after ``max_levels``).
    A level whose P``order`` dofs exceed the memory budget raises
    :class:`~fpsolve.fe.budget.BudgetError` before anything is assembled on it.
    """
    if isinstance(peclet, bool) or not isinstance(peclet, (int, float)) or not peclet > 0 \
            or not np.isfinite(peclet):
        raise ValueError(f"peclet: expected a positive number, got {peclet!r}")
    if isinstance(max_levels, bool) or not isinstance(max_levels, (int, np.integer)) \
            or max_levels < 0:
        raise ValueError(f"max_levels: expected an integer >= 0, got {max_levels!r}")
    for level in range(max_levels + 1):
        pe = _element_peclet(SimpleNamespace(mesh=mesh, diffusion=diffusion,
                                             landscape=landscape, drift=drift))
        marked = np.flatnonzero(np.isfinite(pe) & (pe > peclet))
        if marked.size == 0 or level == max_levels:
            break
        mesh = refine(mesh, marked)
        _budget.check(_budget.mesh_dofs(mesh, order), order, None,
                      f"mfpt: mesh grading level {level + 1} (peclet = {peclet:g})")
    left = int(np.sum(pe > peclet))
    rec = {"peclet": float(peclet), "levels": level, "elements": int(mesh.nelements),
           "max_peclet": float(pe.max()), "above_bound": left}
    if left:
        warnings.warn(f"mfpt: {left} elements keep a Péclet number above peclet = {peclet:g} "
                      f"(largest {pe.max():.3g}) after {level} refinement levels",
                      FPSolveWarning, stacklevel=3)
    return mesh, rec


def mfpt(landscape, diffusion, mesh, order: int = 2, drift: Callable | None = None,
         stabilisation: str | None = None, peclet: float | None = None,
         weighting: str = "auto", estimate: bool = True) -> MeanExitTime:
    """Mean first-passage time T(x) to the absorbing boundary of ``mesh``.

    Parameters
    ----------
    landscape, diffusion, mesh, order, drift, stabilisation
        As for :class:`fpsolve.Problem` (the boundary is absorbing).
    peclet : float, optional
        Grade the mesh first: refine (red–green–blue, boundary on the circle) until
        every element's cell Péclet number h_K·|β|/(β̂ᵀDβ̂) is ≤ ``peclet``.
        At small noise this is what resolves T and μ (1.5: relative error 3e-4 at
        T ~ 5e19 in the radial test).  ``diagnostics["grading"]`` records the levels.
    weighting : {"auto", "gibbs", "none"}
        As for :class:`fpsolve.Problem` ("auto" is the plain operator here: no ``tol``);
        "gibbs" solves a detailed-balance model on its Gibbs-weighted pencil.
    estimate : bool
        Estimate the error (the same exit time in P_{k+1} on the same mesh: about 3×
        the solve) and warn where it exceeds 10 % or cannot be had.

    Returns
    -------
    MeanExitTime
        Callable on points (n, 2); ``escape_rate``, ``mean_qsd`` (= 1/μ), ``T``,
        ``error_estimate``.

    Examples
    --------
    >>> import fpsolve as fp
    >>> L = fp.landscapes.quadratic(np.eye(2))
    >>> T = fp.mfpt(L, fp.diffusion.isotropic(0.05), fp.disk_mesh(1.0, 0.05), order=3)
    >>> T([[0.0, 0.0]])          # ½ Ein(1/(2·0.05)) = 1.2e3
    """
    grading = None
    if peclet is not None:
        mesh, grading = graded_mesh(landscape, diffusion, mesh, peclet, drift, order=order)
    problem = Problem(landscape, diffusion, mesh, "absorbing", order, drift, stabilisation,
                      weighting=weighting)
    T = mfpt_problem(problem, estimate=estimate)
    if grading is not None:
        T.diagnostics["grading"] = grading
    return T
