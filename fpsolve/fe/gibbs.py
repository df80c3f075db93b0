"""Gibbs-weighted discretisation of problems in detailed balance (exponential fitting).

With a constant isotropic diffusion D = δI and the drift −∇L the equilibrium density is
e^(−L/δ).  Writing the density as P = w·u with the Gibbs weight w = e^(−ψ),
ψ = (L − L₀)/δ, the flux is J = −δ w ∇u and the absorbing eigenproblem becomes

    ∫ w (δ∇u + β̃ u)·∇v dA = μ ∫ w u v dA,   β̃ = ∇L − δ∇ψ,   u = 0 on ∂Ω,

with β̃ = 0 wherever ψ is not capped: a symmetric, positive problem.  u is O(1) — flat
where P is Boltzmann, with a boundary layer of width δ/|∇L| where the outflow lives — so
Galerkin on u puts the exponential decay of P into w exactly.  The plain Galerkin P_h
decays by only ~0.6 decades per unresolved P3 element, so an escape rate e^(−R²/2δ)
needs the whole radius resolved (radial OU δ = 0.005, μ = 7.4e-42: ~2M P3 dofs); here the
adaptive loop gets μ to 2.3e-5 with 70k P3 dofs (docs/adaptivity.md).

The formulation is exact for any ψ: ψ is capped at :data:`PSI_CAP` so that w stays a
normal double, and beyond the cap ∇ψ = 0 and the convection term β̃ = ∇L carries the
drift.  A reflecting boundary gives u = const, i.e. the Gibbs density, exactly.

Only the integrals see w (at the quadrature points).  The density's nodal values
``w·u`` are its interpolant (plots, point values, VTK); moments, the mass and the
negative mass are integrated with w itself (:func:`density_at_quadrature`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from skfem import Basis, BilinearForm
from skfem.helpers import dot, grad

from ..models.diffusion import DiffusionModel, Isotropic
from .assembly import Operator, _check_models, make_basis
from .mesh import Mesh

# the helpers below __all__ (applies, density_at_quadrature, the scaled solves, attach,
# unresolved_weight) serve the solver, the estimate, the loop and the study runner
__all__ = ["GibbsWeight", "assemble_gibbs", "barrier", "WEIGHTINGS", "PSI_CAP", "BARRIER"]

#: the ``weighting`` argument: "auto" (Gibbs in the adaptive loop where it applies),
#: "gibbs" (always; an error where the model is not in detailed balance), "none"
WEIGHTINGS = ("auto", "gibbs", "none")
#: largest exponent of the weight: e^(−600) ≈ 3e-261 is still a normal double, and a
#: density below it is far below anything the solver reports
PSI_CAP = 600.0
#: the adaptive loop refines elements across which ψ varies by more than this where they
#: can hold mass (:func:`unresolved_weight`): the weight lives only in the quadrature,
#: and an element that is coarse where u is flat is never marked by u's errors (radial OU
#: δ = 0.005 on h = 0.2: ⟨x²⟩ 2.1e-4 off with the P3 rule, 3.3e-6 with P4's)
PSI_STEP = 2.0
#: with weighting="auto" an absorbing problem takes the Gibbs weight only if its boundary is
#: at least this many nats of ψ above the minimum (:func:`barrier`): the quasi-stationary
#: density is then close to Gibbs in the bulk (fe/solver.py).  Radial OU at δ = 0.1 (5 nats):
#: effectivity 1.4; the minimum of L on the boundary (0 nats): 0.008
BARRIER = 4.0


def applies(landscape, diffusion: DiffusionModel, drift, stabilisation) -> bool:
    """Whether the model is in detailed balance with a known potential: D = δI constant,
    drift −∇L, no stabilisation."""
    return (landscape is not None and drift is None and stabilisation is None
            and isinstance(diffusion, Isotropic))


@dataclass(frozen=True)
class GibbsWeight:
    """w = e^(−ψ), ψ = min((L − L₀)/δ, :data:`PSI_CAP`), of one landscape and strength.

    Attributes
    ----------
    landscape : Landscape
        L (its ``value`` and ``gradient``).
    delta : float
        δ of D = δI.
    L0 : float
        The reference value of L (its minimum on the mesh: w ≤ 1 there).
    """

    landscape: object
    delta: float
    L0: float

    def psi(self, x, y):
        """ψ and ∇ψ (0 where capped) at points of any shape."""
        s = (np.asarray(self.landscape.value(x, y), dtype=float) - self.L0) / self.delta
        free = s < PSI_CAP
        g = np.asarray(self.landscape.gradient(x, y), dtype=float) / self.delta
        return np.minimum(s, PSI_CAP), np.where(free, g, 0.0)

    def __call__(self, x, y):
        """w at points of any shape."""
        return np.exp(-self.psi(x, y)[0])


def barrier(landscape, diffusion: DiffusionModel, mesh: Mesh) -> float:
    """How far the boundary lies above the minimum, in nats of L/δ.

    Parameters
    ----------
    landscape : Landscape
        L.
    diffusion : DiffusionModel
        D = δI (its ``strength`` is δ).
    mesh : Mesh
        The domain; L is sampled at its vertices.

    Returns
    -------
    float
        (min of L over the boundary vertices − min over all vertices)/δ; NaN where L is not
        finite at a vertex (the assembly then names the model and the point).
    """
    with np.errstate(all="ignore"):
        L = np.asarray(landscape.value(mesh.p[0], mesh.p[1]), dtype=float)
    if not np.all(np.isfinite(L)):
        return float("nan")             # the assembly's model check names the point
    return float((L[mesh.boundary_vertices()].min() - L.min()) / diffusion.strength)


def weight_of(landscape, diffusion: DiffusionModel, basis: Basis) -> GibbsWeight:
    """The Gibbs weight with L₀ the smallest L at the quadrature points and dofs (w ≤ 1)."""
    x, y = (np.asarray(c) for c in basis.global_coordinates())
    L0 = min(float(np.min(landscape.value(x, y))),
             float(np.min(landscape.value(*basis.doflocs))))
    return GibbsWeight(landscape, float(diffusion.strength), L0)


@BilinearForm(nthreads=2)
def _stiffness(u, v, w):
    return w.w * (w.delta * dot(grad(u), grad(v)) + u * dot(w.beta, grad(v)))


@BilinearForm(nthreads=2)
def _mass(u, v, w):
    return w.w * u * v


def assemble_gibbs(landscape, diffusion: DiffusionModel, mesh: Mesh, order: int = 2,
                   intorder: int | None = None, basis: Basis | None = None,
                   weight: "GibbsWeight | None" = None) -> Operator:
    """The Gibbs-weighted operator (``A_fixed``) and weighted mass ``M`` of the model.

    Parameters
    ----------
    landscape, diffusion
        A model for which :func:`applies` holds.
    mesh
        The mesh (P2/P3 with curved boundary elements, as :func:`.assembly.assemble`).
    order, intorder
        Element order and quadrature order (default 2·order + 1).
    basis
        A basis to assemble on instead (the P_{k+1} basis of the error estimate).
    weight
        The weight to use (default: :func:`weight_of` the basis): the error estimate's
        P_{k+1} solve shares the P_k solve's.

    Returns
    -------
    Operator
        ``A_fixed`` and ``M`` weighted; ``op.gibbs`` is the :class:`GibbsWeight`.
    """
    if not isinstance(diffusion, Isotropic):
        raise ValueError("weighting='gibbs': needs a constant isotropic diffusion D = δI "
                         f"(detailed balance), got {type(diffusion).__name__}")
    t0 = time.perf_counter()
    basis = make_basis(mesh, order, intorder) if basis is None else basis
    x, y = (np.asarray(c) for c in basis.global_coordinates())
    t1 = time.perf_counter()
    with np.errstate(all="ignore"):      # non-finite values are reported with a point
        gradL = np.asarray(landscape.gradient(x, y), dtype=float)
        Dhat, divhat = diffusion.unit_coefficients(x, y)
    _check_models(landscape, diffusion, None, mesh, x, y, gradL, Dhat, divhat)
    weight = weight_of(landscape, diffusion, basis) if weight is None else weight
    psi, gpsi = weight.psi(x, y)
    delta = weight.delta
    beta = gradL - delta * gpsi          # 0 where ψ is not capped (up to round-off)
    beta[:, psi < PSI_CAP] = 0.0
    wq = np.exp(-psi)
    t2 = time.perf_counter()
    A = _stiffness.assemble(basis, w=wq, delta=delta, beta=beta).tocsr()
    M = _mass.assemble(basis, w=wq).tocsr()
    op = Operator(basis, None, None, M, delta, A_fixed=A)
    op.gibbs = weight
    op.timings = {"basis_s": t1 - t0, "coefficients_s": t2 - t1,
                  "assembly_s": time.perf_counter() - t2}
    return op


def density_at_quadrature(basis: Basis, weight: GibbsWeight, u: np.ndarray) -> np.ndarray:
    """P = w·u at the quadrature points of ``basis`` (w exact, u interpolated)."""
    x, y = (np.asarray(c) for c in basis.global_coordinates())
    return weight(x, y) * np.asarray(basis.interpolate(u))


def nodal_density(basis: Basis, weight: GibbsWeight, u: np.ndarray) -> np.ndarray:
    """w·u at the dofs: the Lagrange interpolant of the density (plots, VTK, point values)."""
    return weight(*basis.doflocs) * u


def scaled_quasi_stationary(A, M, I, B, **kwargs):
    """The principal eigenpair of the weighted pencil, solved symmetrically scaled.

    The weighted rows span the range of w (e^(−100) at the boundary of the radial OU
    problem at δ = 0.005), which spoils the LU's pivoting: the inverse iteration stalled
    with a componentwise residual of 0.5 and a μ of noise.  S A S, S M S with
    S = diag(A)^(−1/2) have the same eigenvalues and O(1) rows; u = S û, and the outflow μ
    is computed from the unscaled A, M (its boundary-row sum is not scale-invariant).

    Returns (u with ∫ w u = 1, the eigenvalue μ, the solver's info with ``mu_flux``).
    """
    from .eigensolve import _quasi_stationary

    s = symmetric_scaling(A)
    S = sp.diags(s)
    As, Ms = (S @ A @ S).tocsr(), (S @ M @ S).tocsr()
    P, mu, info = _quasi_stationary(As, Ms, Ms, I, B, **kwargs)
    u = s * P
    u /= (M @ u).sum()
    info["mu_flux"] = float(-(A @ u)[B].sum() / (M @ u)[I].sum())
    # the layer re-solve's "μ before" is the scaled pencil's outflow: no escape rate
    info["stop"].get("layer", {}).pop("escape_rate_before", None)
    return u, mu, info


def symmetric_scaling(A) -> np.ndarray:
    """s = diag(A)^(−1/2) (1 where the diagonal is 0): S A S, S = diag(s), has O(1) rows
    for a weighted operator whose rows span e^(−ψ)."""
    d = np.abs(A.diagonal())
    return 1.0 / np.sqrt(np.where(d > 0, d, 1.0))


def scaled_stationary_reflecting(A, M, pin: int, **kwargs):
    """The reflecting stationary u of the weighted operator, solved symmetrically scaled
    (as :func:`scaled_quasi_stationary`: unscaled, the pinned LU returned u ≡ const as noise
    up to 1e25 in the tails at δ = 0.005).  Returns (u with ∫ w u = 1, info)."""
    from .eigensolve import _stationary_reflecting

    s = symmetric_scaling(A)
    S = sp.diags(s)
    P, info = _stationary_reflecting((S @ A @ S).tocsr(), (S @ M @ S).tocsr(), pin, **kwargs)
    u = s * P
    return u / (M @ u).sum(), info


def attach(sol, weight: GibbsWeight, Pq: np.ndarray | None = None) -> None:
    """Make ``sol`` (whose ``P`` holds w·u at the dofs) a weighted solution: ``sol.weight``
    and its integrals with w exact at the quadrature points (``Pq``: w·u there, if known)."""
    basis = sol.basis
    if Pq is None:
        Pq = density_at_quadrature(basis, weight, sol._u(weight))
    x, y = (np.asarray(c) for c in basis.global_coordinates())
    sol._quad = (x, y, Pq, np.asarray(basis.dx))
    sol.weight = weight


def unresolved_weight(sol, tol: float) -> np.ndarray:
    """Elements of a weighted solution across which ψ varies by more than
    :data:`PSI_STEP` and whose largest |P| = w·|u| times area exceeds tol/100 of ∫|P|
    (they can hold mass: judged on P, not on w, which misses where u is large)."""
    basis, weight = sol.basis, sol.weight
    x, y, Pq, dx = sol._quadrature()
    vx, vy = basis.mesh.p[:, basis.mesh.t]            # the vertices too: quadrature
    psi = np.concatenate([weight.psi(x, y)[0], weight.psi(vx, vy)[0].T], axis=1)
    spread = psi.max(axis=1) - psi.min(axis=1)        # points lie inside the element
    heavy = np.abs(Pq).max(axis=1) * dx.sum(axis=1)
    total = np.sum(np.abs(Pq) * dx)
    return np.flatnonzero((spread > PSI_STEP) & (heavy > 1e-2 * tol * total))
