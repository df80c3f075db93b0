"""A posteriori error estimates of a stationary solve: goal-oriented dual-weighted residuals.

Every :class:`~fpsolve.fe.solution.Solution` carries ``error_estimate``, relative errors of
its observables, computed here (docs/adaptivity.md explains the choice).

Goals and their duals (weak form a(P, v) = ∫ (D∇P)·∇v + P β·∇v, flux J = −D∇P − βP,
quasi-stationary problem A p = μ M p, ∫p = 1):

* a moment J_g(p) = ∫ g p (g = x², y²): the adjoint is (Aᵀ − μM) z = ∫ (g − J_g) v with
  m(p, z) = 0, and J_g(p) − J_g(p_h) ≈ ρ(z), ρ(v) = μ_h m(p_h, v) − a(p_h, v) = ∫ μ_h p_h v
  + J_h·∇v;
* the escape rate μ: the dual is the left eigenfunction φ (Aᵀ φ = μ M φ, the backward
  quasi-stationary function, ≈ 1 inside and falling to 0 across the boundary layer);
  exactly μ − μ_h = −ρ(φ)/m(p_h, φ);
* the L1 norm of P: recovery, ‖R p_h − p_h‖_L1 / ‖p_h‖_L1.

The duals cost only triangular solves with the primal's LU (``trans="T"``).  Because ρ
vanishes on the discrete test space (Galerkin orthogonality), only the part of the dual
that the discrete space cannot represent matters: the weights are e = Rz_h − z_h, where R
is a patch recovery of degree k+1 (least-squares fit over each element and its edge
neighbours, averaged at the P_{k+1} nodes), and ρ is evaluated with P_{k+1} test
functions on the same (curved) mesh: assembly of one vector, no new factorisation.
The element contributions η_K = Σ_i ρ_K(φ_i⁺) e_i are the refinement indicators.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from skfem import Basis, ElementTriP1, ElementTriP2, ElementTriP3, ElementTriP4

from .assembly import _assemble_affine, _beta0, _pattern

__all__ = ["Estimate", "DualSolver", "estimate_errors", "enriched_basis", "prepare"]

_ELEMENTS = {1: ElementTriP1, 2: ElementTriP2, 3: ElementTriP3, 4: ElementTriP4}
_BLOCK = 4096
#: where 1 − φ (the μ weight) falls below this it is ε-noise of φ, and ε times the bulk
#: residual would swamp an exponentially small μ: such elements are dropped ...
#: (docs/adaptivity.md, "exponentially small weights")
_MU_WEIGHT_FLOOR = 1e-8
#: ... unless the elements where it does could carry more than this fraction of μ
_MU_FLOOR_RELATIVE = 1e-6
#: the μ weight is refined until its corrections are below this, relative, componentwise
_WEIGHT_RTOL = 1e-3
#: then w = 1 − φ is solved for directly only where 1 − φ is below this: elsewhere 1 − φ
#: (absolute error ~1e-12 from the left eigenvector on Fig. 3) serves as Dirichlet data
_MU_WEIGHT_SUBDOMAIN = 1e-5
#: a change of the max-normalised left eigenvector below this is round-off
_PHI_ROUND_OFF = 1e-13
#: reported estimates are SAFETY·|η|: measured effectivities of |η| are 0.5-1.4 once the
#: layers are resolved and 0.25-0.7 on coarse meshes, 0.98-1.07 for the moments on graded
#: meshes with the P_{k+1} duals (docs/adaptivity.md)
SAFETY = 2.0


@dataclass
class DualSolver:
    """Transposed solves with the primal LU of the block ``A[idx][:, idx]``.

    ``mu`` and ``Mop`` (the eigenproblem's mass matrix) are set for absorbing problems.
    """

    lu: object
    idx: np.ndarray
    N: int
    A: object
    Mop: object
    mu: float = 0.0
    #: ``Mop.T`` as CSR (built on first use unless the caller kept one)
    MT: object = field(default=None, repr=False)
    #: σ: ``lu`` is of the block of A − σ·Mop (a shifted adaptive level, fe/solver.py)
    shift: float = 0.0

    def mass_T(self):
        """``Mop.T`` as a CSR matrix, converted once."""
        if self.MT is None:
            self.MT = self.Mop.T.tocsr()
        return self.MT

    def solve_T(self, rhs: np.ndarray) -> np.ndarray:
        z = np.zeros((self.N,) + rhs.shape[1:])
        z[self.idx] = self.lu.solve(np.ascontiguousarray(rhs[self.idx]), trans="T")
        return z


@dataclass
class Estimate:
    """Relative estimates per goal, signed absolute corrections and element indicators."""

    relative: dict
    correction: dict
    indicators: dict = field(repr=False)
    #: how the moment weights were obtained: "recovered" or "enriched" (P_{k+1} duals)
    weights: str = "recovered"
    #: what the solve's diagnostics carry about the μ estimate: ``escape_rate_estimator``
    #: ("dwr" or "hierarchical") and, where the hierarchical fallback ran, its record
    #: ``escape_rate_hierarchical`` (μ_{k+1}, dofs, ...; :mod:`.hierarchical`)
    diagnostics: dict = field(default_factory=dict)


def relative_change(value_next: float, value_k: float) -> float:
    """``SAFETY``·|q_{k+1} − q_k|/|q_{k+1}|: the relative estimate of a value q_k from its
    P_{k+1} counterpart (inf where q_{k+1} is 0 or the difference is not finite)."""
    if not value_next != 0 or not np.isfinite(value_next - value_k):
        return np.inf
    return SAFETY * abs(value_next - value_k) / abs(value_next)


def embedded_basis(basis: Basis, bp: Basis, cache: dict) -> Basis:
    """The P_k basis with the quadrature of the V_{k+1} basis ``bp`` (same dofs as
    ``basis``): P_k functions at the points where P_{k+1} ones are integrated, cached."""
    key = ("embedded", bp.N)
    if key not in cache:
        cache[key] = Basis(basis.mesh, basis.elem, quadrature=bp.quadrature)
    return cache[key]


def enriched_basis(basis: Basis, cache: dict):
    """(P_{k+1} basis, recovery/embedding of V_k) on the same scikit-fem mesh, cached."""
    k = _order(basis)
    key = ("enriched", k)
    if key not in cache:
        m = basis.mesh
        bp = Basis(m, _ELEMENTS[k + 1](), intorder=2 * (k + 1) + 1)
        cache[key] = (bp, _Recovery(basis, bp))
    return cache[key]


def _order(basis) -> int:
    for k, E in _ELEMENTS.items():
        if type(basis.elem) is E:
            return k
    raise ValueError(f"error estimate: unsupported element {type(basis.elem).__name__}")


class _Recovery:
    """Patch recovery V_k → V_{k+1} and the exact embedding (prolongation) V_k ⊂ V_{k+1}."""

    def __init__(self, basis: Basis, bp: Basis):
        m = basis.mesh
        self.k = _order(basis)
        self.ek, self.ep = basis.element_dofs, bp.element_dofs
        self.Np, self.Nk, self.ne = bp.N, basis.N, self.ek.shape[1]
        X = bp.elem.doflocs.T                                        # reference P_{k+1} nodes
        self.Phi = np.array([basis.elem.lbasis(X, j)[0] for j in range(basis.Nbfun)])
        nb = m.f2t[:, m.t2f]                                         # (2, 3, ne)
        own = np.arange(self.ne)
        nb = np.where(nb[0] == own, nb[1], nb[0])
        self.patch = np.vstack([own, np.where(nb < 0, own, nb)])    # (4, ne)
        self.xk, self.xp = basis.doflocs, bp.doflocs
        count = np.bincount(self.ep.ravel(), minlength=self.Np)
        self.inv_count = 1.0 / np.maximum(count, 1)
        self._local = None          # the recovery's local operators, built on first use

    def prolong(self, z: np.ndarray) -> np.ndarray:
        """Exact embedding of V_k functions (columns of z (N_k, n)) into V_{k+1}."""
        out = np.zeros((self.Np, z.shape[1]))
        loc = np.einsum("ji,jen->ien", self.Phi, z[self.ek])
        out[self.ep.ravel()] = loc.reshape(-1, z.shape[1])
        return out

    def recover(self, z: np.ndarray) -> np.ndarray:
        """Degree-(k+1) least-squares patch fits of z (N_k, n), averaged at P_{k+1} nodes.

        Each element's patch is itself and its edge neighbours (4·Nb values, shared
        nodes counted once per element); coordinates are centred and scaled per element.
        The fits are linear in z and depend only on the mesh: their local operators are
        built on the first call and reused by every solve on the mesh.
        """
        out = np.zeros((self.Np, z.shape[1]))
        for dofs, L, idx in self.operators():
            vals = L @ z[dofs].transpose(1, 0, 2)                            # (nel, Nb+, n)
            for j in range(z.shape[1]):
                out[:, j] += np.bincount(idx, weights=vals[:, :, j].ravel(), minlength=self.Np)
        return out * self.inv_count[:, None]

    def operators(self) -> list:
        """The local operators of the fits, per block of elements (built once)."""
        if self._local is None:
            self._local = [self._local_operator(s) for s in range(0, self.ne, _BLOCK)]
        return self._local

    def _local_operator(self, s: int):
        """(patch dofs (4Nb, nel), fit-and-evaluate matrices (nel, Nb+, 4Nb), P_{k+1}
        dofs) of the elements s, s+1, ... of one block."""
        q = self.k + 1
        pw = [(a, d - a) for d in range(q + 1) for a in range(d, -1, -1)]
        sl = slice(s, min(s + _BLOCK, self.ne))
        dofs = self.ek[:, self.patch[:, sl]].reshape(-1, sl.stop - s)         # (4Nb, nel)
        xe = self.xk[:, self.ek[:, sl]]
        c = xe.mean(axis=1)                                                  # (2, nel)
        hK = np.ptp(xe[0], axis=0) + np.ptp(xe[1], axis=0)
        Vt = _monomials((self.xk[:, dofs] - c[:, None]) / hK, pw)           # (nel, nm, npts)
        G = Vt @ Vt.transpose(0, 2, 1)
        # a tiny ridge: a P1 boundary patch has 5 points for 6 terms
        G += 1e-10 * np.trace(G, axis1=1, axis2=2)[:, None, None] * np.eye(G.shape[1])
        Wt = _monomials((self.xp[:, self.ep[:, sl]] - c[:, None]) / hK, pw)
        L = Wt.transpose(0, 2, 1) @ np.linalg.solve(G, Vt)                   # (nel, Nb+, 4Nb)
        return dofs, L, self.ep[:, sl].T.ravel()


def _monomials(X, powers):
    """Monomials x^a y^b of the points X (2, npts, nel) as an array (nel, nm, npts)."""
    x, y = np.ascontiguousarray(X[0].T), np.ascontiguousarray(X[1].T)    # (nel, npts)
    q = max(a for a, _ in powers)
    xp, yp = [np.ones_like(x)], [np.ones_like(y)]
    for _ in range(q):
        xp.append(xp[-1] * x)
        yp.append(yp[-1] * y)
    out = np.empty((x.shape[0], len(powers), x.shape[1]))
    for i, (a, b) in enumerate(powers):
        np.multiply(xp[a], yp[b], out=out[:, i])
    return out


def _local_residual(bp, ph, mu, coeff):
    """ρ_K(φ_i⁺) = ∫_K μ p_h φ_i + J_h·∇φ_i for the P_{k+1} test functions: (ne, Nb+)."""
    beta, D = coeff
    p = np.asarray(ph)
    g = np.asarray(ph.grad)
    J = -(np.einsum("ijeq,jeq->ieq", D, g) + beta * p)
    dx = np.asarray(bp.dx)
    out = np.empty((p.shape[0], bp.Nbfun))
    for i in range(bp.Nbfun):
        phi = bp.basis[i][0]
        out[:, i] = np.sum((mu * p * np.asarray(phi) + J[0] * phi.grad[0] + J[1] * phi.grad[1])
                           * dx, axis=1)
    return out


def _coefficients(problem, bp, strength):
    """(β, D) of the solved strength at the P_{k+1} quadrature points.

    The strength-free parts (β₀, D̂, ∇·D̂) are kept on ``problem`` for the next solve
    of the same model on ``bp``: a Δ_S sweep evaluates them once.
    """
    cache = problem.__dict__.setdefault("_estimate_coefficients", {})
    key = (id(bp), id(problem.landscape), id(problem.drift), id(problem.diffusion))
    if key not in cache:
        cache.clear()               # one entry: the problem's current model and mesh
        x, y = (np.asarray(c) for c in bp.global_coordinates())
        beta0 = _beta0(problem.landscape, problem.drift, x, y)
        # the objects are kept with their values: their ids cannot be reused meanwhile
        cache[key] = ((bp, problem.landscape, problem.drift, problem.diffusion), beta0,
                      *problem.diffusion.unit_coefficients(x, y))
    _, beta0, Dhat, divhat = cache[key]
    return beta0 + strength * divhat, strength * Dhat


def _load(bp, rec, gq) -> np.ndarray:
    """∫ g φ_j for the V_k basis functions, through φ_j = Σ_i φ_j(x_i⁺) φ_i⁺ (exact)."""
    w = gq * np.asarray(bp.dx)
    loc = np.stack([np.sum(w * np.asarray(bp.basis[i][0]), axis=1) for i in range(bp.Nbfun)])
    return np.bincount(rec.ek.ravel(), weights=(rec.Phi @ loc).ravel(), minlength=rec.Nk)


def _loads(bp, rec, cache: dict) -> dict:
    """∫ φ_j and ∫ g φ_j of every moment goal g: they depend on the mesh only."""
    key = ("enriched-loads", type(bp.elem).__name__)
    if key not in cache:
        x, y = (np.asarray(c) for c in bp.global_coordinates())
        loads = {"1": _load(bp, rec, np.ones_like(x))}
        loads.update((name, _load(bp, rec, g(x, y))) for name, g in MOMENTS.items())
        cache[key] = loads
    return cache[key]


def _interpolate(bp, w: np.ndarray, grad: bool = True):
    """``bp.interpolate(w)`` (value and gradient, or the value alone) with the same
    arithmetic, so the same numbers, without scikit-fem's per-call split of the dofs."""
    from skfem.element import DiscreteField

    ed = bp.element_dofs
    val = w[ed[0]][:, None] * bp.basis[0][0].value
    for i in range(1, bp.Nbfun):
        val += w[ed[i]][:, None] * bp.basis[i][0].value
    if not grad:
        return val
    g = w[ed[0]][:, None] * bp.basis[0][0].grad
    for i in range(1, bp.Nbfun):
        g += w[ed[i]][:, None] * bp.basis[i][0].grad
    return DiscreteField(value=val, grad=g)


def _left_eigenvector(dual: DualSolver, tol=1e-7, maxit=60, info: dict | None = None
                      ) -> np.ndarray:
    """φ with Aᵀφ = μ Mᵀφ on the interior (inverse iteration, the primal LU), max φ = 1.

    A weight needs only a few digits: two solves when μ is far below the next eigenvalue.
    The iteration stops when its estimated error, change·r/(1 − r) with r the ratio of
    successive changes (≈ μ/λ₂), is below ``tol`` (or the change is at round-off).
    ``info``, if given, receives that ``error``, the last ``ratio`` r ≈ μ/λ₂ (1 if
    unknown, and with a shifted LU) and the eigenvalue ``mu`` of the last step.
    """
    phi = np.zeros(dual.N)
    phi[dual.idx] = 1.0
    MT = dual.mass_T()
    prev, err, r, scale = None, np.inf, 1.0, np.nan
    for _ in range(maxit):
        new = dual.solve_T(MT @ phi)
        scale = new[np.argmax(np.abs(new))]
        new /= scale
        change = np.max(np.abs(new - phi))
        phi = new
        if prev is not None:
            r = min(change / prev, 0.99)
        if change < _PHI_ROUND_OFF:
            err = _PHI_ROUND_OFF
            break
        if prev is not None:
            err = max(change * r / (1.0 - r), _PHI_ROUND_OFF)
            if err < tol:
                break
        prev = change
    if info is not None:
        # a shifted LU contracts by (μ − σ)/(λ₂ − σ), not μ/λ₂ as callers read the ratio,
        # and converges in 2-3 steps: its measured r is too rough to give λ₂ back (Δ_S =
        # 0.03: 0.003 for a true 0.033), so μ/λ₂ is unknown there (review R2)
        info.update(error=float(err), ratio=1.0 if dual.shift else float(r),
                    mu=float(dual.shift + 1.0 / scale))
    return phi


def _adjoint(dual: DualSolver, rhs, P, M, phi, tol=1e-7, maxit=30) -> np.ndarray:
    """Z with (Aᵀ − μMᵀ) Z = rhs on the solved block, m(p_h, Z) = 0 (columns of rhs ⊥ p_h)."""
    Z = dual.solve_T(rhs)
    if phi is None:
        return Z
    MT = dual.mass_T()
    mp = M @ P

    def project(Z):
        return Z - np.outer(phi, (mp @ Z) / (mp @ phi))

    Z = project(Z)
    # (Aᵀ)⁻¹μMᵀ contracts by μ/μ₂ off the principal mode: few sweeps when μ is small, none
    # when μMᵀZ is below round-off of the right-hand side
    # with a shifted LU (of Aᵀ − σMᵀ) the iteration is on μ − σ: contracts by (μ − σ)/(μ₂ − σ)
    mu = dual.mu - dual.shift
    small = mu * np.max(np.abs(MT @ Z)) <= 1e-4 * np.max(np.abs(rhs))
    for _ in range(0 if small else maxit):
        new = project(dual.solve_T(rhs + mu * (MT @ Z)))
        change = np.max(np.abs(new - Z)) / max(np.max(np.abs(new)), 1e-300)
        Z = new
        if change < tol:
            break
    return Z


#: moment goals: name -> g(x, y)
MOMENTS = {"x2": lambda x, y: x * x, "y2": lambda x, y: y * y}


def prepare(problem) -> None:
    """Fill the caches the estimates of ``problem``'s solves use, before any solve.

    The P_{k+1} basis, the recovery operators, the loads and boundary dofs depend on the
    mesh only (they are kept in its cache), the strength-free coefficients on the model
    (kept on ``problem``).  The first estimate builds them otherwise; a study builds them
    in a thread during its first solve, so that estimates computed in forked processes,
    which cannot return them, find them there.  The numbers do not change.

    Parameters
    ----------
    problem : fpsolve.fe.solver.Problem
        A fixed-mesh problem (its ``basis``, ``mesh``, ``boundary`` and ``diffusion``).
    """
    cache = problem.mesh._cache
    bp, rec = enriched_basis(problem.basis, cache)
    rec.operators()
    _loads(bp, rec, cache)
    if problem.boundary == "absorbing":
        _boundary_dofs(bp, cache)
    _coefficients(problem, bp, problem.diffusion.strength)
    blocks = getattr(problem, "_interior_blocks", None)
    if blocks is not None:                  # the duals' Mᵀ, kept on the mesh
        op = problem.operator
        blocks().mass_T(op.M_stab if op.M_stab is not None else op.M)


def estimate_errors(problem, diffusion, basis: Basis, cache: dict, P: np.ndarray, mu: float,
                    dual: DualSolver, M, boundary_dofs_plus=None,
                    enriched_duals: bool = False, negative_dual: bool = False,
                    hierarchical: bool = True) -> Estimate:
    """Dual-weighted residual estimates of ⟨x²⟩, ⟨y²⟩, μ (absorbing) and recovery of L1.

    Parameters
    ----------
    problem
        Anything with ``landscape``, ``drift``, ``boundary`` (a :class:`Problem`).
    diffusion
        The diffusion model at the solved strength.
    basis, cache
        The solve's P_k basis and the mesh cache (enriched bases are kept there).
    P, mu
        The normalised discrete solution and its escape rate (0 for reflecting).
    dual
        Transposed solves with the primal LU.
    M
        Mass matrix of ``basis``.
    enriched_duals
        Solve the moment duals, and the left eigenvector of the μ weight, in V_{k+1}
        (one more factorisation) instead of recovering their weights: needed on locally
        refined (graded) meshes, where the patch recovery loses the weights' accuracy
        and the sum of η_K, which cancels strongly there, comes out wrong by factors
        (docs/adaptivity.md).  Where 1 − φ is round-off, the μ weight is still the one of
        :func:`_escape_rate_eta`.
    negative_dual
        Also return marking indicators ``indicators["negative_mass"]`` of the linearised
        negative mass ∫ s P (s = −1 where P_h < 0; docs/adaptivity.md, the adaptive loop),
        with recovered weights; no estimate or correction is reported for it.
    hierarchical
        Where the dual-weighted μ estimate is not finite and μ_h > 0, estimate μ by
        p-enrichment (:mod:`.hierarchical`); False on levels refined anyway.
    """
    bp, rec = enriched_basis(basis, cache)
    absorbing = problem.boundary == "absorbing"
    coeff = _coefficients(problem, bp, diffusion.strength)
    ph = _interpolate(bp, rec.prolong(P[:, None])[:, 0])
    rho = _local_residual(bp, ph, mu if absorbing else 0.0, coeff)
    loads = _loads(bp, rec, cache)
    F1 = loads["1"]
    mass = P @ F1
    phi_info: dict = {}
    phi = _left_eigenvector(dual, info=phi_info) if absorbing else None
    goal_loads = {name: loads[name] for name in MOMENTS}
    if negative_dual:
        goal_loads["negative_mass"] = _load(bp, rec, -(np.asarray(ph) < 0).astype(float))
    names = list(goal_loads)
    values = {n: (P @ F) / mass for n, F in goal_loads.items()}
    rhs = [F - values[n] * F1 for n, F in goal_loads.items()]
    Z = [_adjoint(dual, np.stack(rhs, axis=1), P, M, phi)]
    if absorbing:
        Z.append(phi[:, None])
        names.append("escape_rate")
    Z = np.concatenate(Z + [P[:, None]], axis=1)
    E = rec.recover(Z) - rec.prolong(Z)
    if enriched_duals:      # graded mesh: the moment weights from duals solved in V_{k+1}
        nm = len(MOMENTS)
        x, y = (np.asarray(c) for c in bp.global_coordinates())
        gq = [g(x, y) for g in MOMENTS.values()]
        Zp, phi_p = _enriched_moment_duals(bp, rec, coeff, P, mu if absorbing else 0.0, gq,
                                           [values[n] for n in MOMENTS], absorbing, cache,
                                           dual.shift)
        E[:, :nm] = Zp - rec.prolong(Z[:, :nm])
        if absorbing:           # the μ weight from the V_{k+1} left eigenvector too
            E[:, nm] = phi_p - rec.prolong(phi[:, None])[:, 0]
    if absorbing:
        E[_boundary_dofs(bp, cache)] = 0.0
    eta = np.einsum("ei,ien->en", rho, E[bp.element_dofs])        # (ne, ngoals)
    if absorbing:
        j = names.index("escape_rate")
        eta[:, j] = _escape_rate_eta(eta[:, j], rho, dual, P, phi, basis, bp, rec, cache,
                                     phi_info)
    rel, corr, ind = _goal_results(names, eta, values, P, M, phi, mu, absorbing)
    extra = _escape_rate_fallback(problem, diffusion, basis, cache, mu, rel, corr,
                                  enriched_duals, hierarchical) if absorbing else {}
    rel["L1"], ind["L1"] = _l1_estimate(bp, E[:, -1], ph)
    return Estimate(rel, corr, ind, "enriched" if enriched_duals else "recovered", extra)


def _l1_estimate(bp, e, ph) -> tuple[float, np.ndarray]:
    """Relative L1 estimate and element indicators from the recovery error ``e`` of P."""
    l1_K = np.sum(np.abs(_interpolate(bp, e, grad=False)) * np.asarray(bp.dx), axis=1)
    l1 = np.sum(np.abs(np.asarray(ph)) * np.asarray(bp.dx))
    return float(SAFETY * l1_K.sum() / l1), l1_K / l1


def _escape_rate_fallback(problem, diffusion, basis, cache, mu, rel, corr, graded,
                          enabled) -> dict:
    """The hierarchical μ estimate where the dual-weighted one is not finite (in place).

    Returns the diagnostics entries (which estimator gave the μ estimate, the P_{k+1}
    record).  A finite DWR estimate is kept as it is (the numbers do not change).
    """
    if np.isfinite(rel["escape_rate"]) or not enabled or not mu > 0:
        return {"escape_rate_estimator": "dwr"}
    from .hierarchical import hierarchical_estimate

    est, correction, record = hierarchical_estimate(problem, diffusion, basis, cache, mu,
                                                    graded)
    if np.isfinite(est):
        rel["escape_rate"], corr["escape_rate"] = est, correction
    return {"escape_rate_estimator": "hierarchical" if np.isfinite(est) else "dwr",
            "escape_rate_hierarchical": record}


def _goal_results(names, eta, values, P, M, phi, mu, absorbing) -> tuple[dict, dict, dict]:
    """Relative estimates, corrections and element indicators of each goal from η (ne, ngoals)."""
    rel, corr, ind = {}, {}, {}
    if not absorbing:
        rel["escape_rate"], corr["escape_rate"] = 0.0, 0.0      # μ = 0 exactly
    for j, name in enumerate(names):
        if name == "negative_mass":     # marking only
            ind[name] = np.abs(eta[:, j]) / max(abs(values[name]), 1e-300)
        elif name == "escape_rate":
            eta_mu = -float(eta[:, j].sum()) / (P @ (M @ phi))      # μ − μ_h = −ρ(φ)/m(p_h, φ)
            corr[name] = eta_mu
            rel[name] = SAFETY * abs(eta_mu) / mu if mu > 0 else float("inf")
            ind[name] = np.abs(eta[:, j]) / max(abs(mu), 1e-300) / max(P @ (M @ phi), 1e-300)
        else:
            corr[name] = float(eta[:, j].sum())
            rel[name] = SAFETY * abs(corr[name]) / abs(values[name])
            ind[name] = np.abs(eta[:, j]) / abs(values[name])
    return rel, corr, ind


def _enriched_load(bp, gq) -> np.ndarray:
    """∫ g φ_i⁺ for the V_{k+1} basis functions."""
    w = gq * np.asarray(bp.dx)
    loc = np.stack([np.sum(w * np.asarray(bp.basis[i][0]), axis=1) for i in range(bp.Nbfun)])
    return np.bincount(bp.element_dofs.ravel(), weights=loc.ravel(), minlength=bp.N)


def _enriched_moment_duals(bp, rec, coeff, P, mu, gq, values, absorbing, cache, shift=0.0):
    """The moment duals solved in V_{k+1} on the same mesh: (N_{k+1}, n_goals).

    Same adjoint problems as in V_k ((Aᵀ − μM) z = ∫(g − J_g)v, m(p_h, z) = 0), assembled
    with the P_{k+1} basis and factorised once.  Reflecting: the right-hand sides are made
    orthogonal to the V_{k+1} stationary density (from the same LU), else the pinned
    solve would put their inconsistency, of the size of the error itself, into z.
    ``shift``: σ of the primal's shifted LU (absorbing): A − σM is factorised here too.
    """
    from .ordering import MIN_SIZE_GRADED, splu

    beta, D = coeff
    M, A0, A1 = _assemble_affine(bp, _pattern(bp), beta, D, np.zeros_like(beta))
    A = (A0 + A1).tocsr()
    P1 = rec.prolong(P[:, None])[:, 0]
    F1 = _enriched_load(bp, np.ones_like(gq[0]))
    R = np.stack([_enriched_load(bp, g) - J * F1 for g, J in zip(gq, values)], axis=1)
    if absorbing:
        idx = np.setdiff1d(np.arange(bp.N), _boundary_dofs(bp, cache))
        # graded meshes only, factorised once: METIS costs more than it saves below ~1e5 rows
        K = A if shift == 0.0 else (A - shift * M).tocsr()
        dual = DualSolver(splu(K[idx][:, idx], min_size=MIN_SIZE_GRADED), idx, bp.N, A, M, mu,
                          shift=shift)
        phi = _left_eigenvector(dual)
        return _adjoint(dual, R, P1, M, phi), phi
    pin = int(np.argmax(P1))
    idx = np.setdiff1d(np.arange(bp.N), [pin])
    dual = DualSolver(splu(A[idx][:, idx], min_size=MIN_SIZE_GRADED), idx, bp.N, A, M, 0.0)
    p = np.zeros(bp.N)
    p[pin] = 1.0
    p[idx] = dual.lu.solve(-np.asarray(A[idx][:, [pin]].todense()).ravel())
    R -= np.outer(F1, (p @ R) / (p @ F1))
    return dual.solve_T(R), None


def _boundary_dofs(bp, cache):
    key = ("enriched-boundary", type(bp.elem).__name__)
    if key not in cache:
        cache[key] = bp.get_dofs().flatten()
    return cache[key]


def _escape_rate_eta(eta_K, rho, dual, P, phi, basis, bp, rec, cache,
                     phi_info: dict | None = None) -> np.ndarray:
    """The μ indicators η_K, with weights that stay right where 1 − φ is round-off.

    Where 1 − φ < :data:`_MU_WEIGHT_FLOOR` on all of an element's dofs, its computed weight
    is ε-noise of φ.  If those elements cannot matter (their true weights are below the
    floor, so |η_K| ≤ floor·Σ_i|ρ_K(φ_i⁺)|, and the sum of these bounds is ≤
    :data:`_MU_FLOOR_RELATIVE`·μ) they are dropped; otherwise the weight is recomputed from
    w = 1 − φ solved directly (:func:`_escape_rate_weight`, one more factorisation).
    """
    bulk = np.abs(1.0 - phi)[basis.element_dofs].max(axis=0) < _MU_WEIGHT_FLOOR
    mixed = _phi_is_mixed(dual, P, phi, phi_info)
    if not (bulk.any() or mixed):
        return eta_K
    if not mixed:
        bound = _MU_WEIGHT_FLOOR * np.sum(np.abs(rho[bulk])) / abs(P @ (dual.Mop @ phi))
        if bound <= _MU_FLOOR_RELATIVE * dual.mu:
            return np.where(bulk, 0.0, eta_K)
        w = _escape_rate_weight(dual, P, phi, _weight_subdomain(dual, phi_info))
    else:                       # φ is no use, not even as Dirichlet data
        w = _escape_rate_weight(dual, P)
    if w is None:               # not resolved: μ has no certified digit (never a guess)
        return np.full_like(eta_K, np.inf)
    w = w[:, None]
    # φ = 1 − w: −w has the recovery error of φ (R reproduces constants) without losing w
    e = rec.prolong(w) - rec.recover(w)
    e[_boundary_dofs(bp, cache)] = 0.0
    return np.einsum("ei,ie->e", rho, e[bp.element_dofs][:, :, 0])


def _phi_is_mixed(dual: DualSolver, P, phi, phi_info: dict | None) -> bool:
    """Whether the left eigenvector φ is a round-off mixture of slow modes, not μ's.

    Its eigenvalue disagrees with μ (both below ε‖A‖: any vector of the slow modes passes
    the inverse iteration's test) and 1 − φ where P is largest is not small.  Paper
    landscape at Δ_S = 0.002 (h = 0.04): max φ at (0.66, 1.84), where P is −7e-58 of its
    maximum, 1 − φ = 0.085 at P's maximum; the μ estimate was 3e19 from ε-noise of φ
    times the core's residual.  At Δ_S = 0.004 φ's eigenvalue is round-off too, but
    1 − φ = 4e-10 there (the bulk test of :func:`_escape_rate_eta` applies); on the Fig. 3
    cases φ's eigenvalue agrees with μ to 3e-4.
    """
    if not phi_info or "mu" not in phi_info:
        return False
    if abs(phi_info["mu"] - dual.mu) <= 1e-2 * abs(dual.mu):
        return False
    return bool(1.0 - phi[int(np.argmax(P))] > _MU_WEIGHT_FLOOR)


def _weight_subdomain(dual: DualSolver, phi_info: dict | None) -> float:
    """θ of :func:`_escape_rate_weight`: the subdomain only where φ makes good Dirichlet data.

    Off S (where w ≥ θ) the weight is 1 − φ/φ_k, whose relative error there is up to
    err(φ)/θ and is carried into S.  And φ belongs to its own eigenvalue μ_φ while the
    pinned equations use ``dual.mu`` (the outflow): the μ-driven part of w is
    ~μ/λ₂ = r·(w's scale), so a relative mismatch δ moves the data by ~δ·r, relative
    δ·r/θ.  Both must be below 1e-3·θ (Fig. 3: err(φ) ≤ 2e-17, δ ≤ 3e-4, r ≤ 1e-9), else
    the full domain is solved, which needs no φ.
    """
    if not phi_info:
        return np.inf
    theta = _MU_WEIGHT_SUBDOMAIN
    mismatch = abs(phi_info["mu"] / dual.mu - 1.0) if dual.mu else np.inf
    ok = phi_info["error"] <= 1e-3 * theta and mismatch * phi_info["ratio"] <= 1e-3 * theta
    return theta if ok else np.inf


def _escape_rate_weight(dual: DualSolver, P: np.ndarray, phi: np.ndarray | None = None,
                        theta: float = np.inf, exact: bool = False) -> np.ndarray | None:
    """w = 1 − φ (φ the left eigenvector, max φ = 1, φ = 0 on the boundary) to relative accuracy.

    w ~ e^(−barrier/D) deep inside and 1 − φ is round-off (~ε) there, while the μ error
    gathers contributions P·(w − I_h w) from every shell between the bulk and the boundary
    (P·w varies little across them: radial OU at δ = 0.01, with w cut at 1e-8 the
    estimate missed 17 % on uniform meshes and all of the error on adapted ones).  w
    solves a problem without the near-null mode: Aᵀφ = μMᵀφ on the interior I with
    φ = 1 − w, and the vanishing column sums of A give, for j in I,

        Σ_{i∈I} (A − μM)_ij w_i = −Σ_{i∈B} A_ij − μ Σ_{i∈I} M_ij,

    singular with the kernel φ.  Pinning w = 0 at the interior dof k where P is largest
    (w_k ≈ μ·O(1); the pinned solution is w − w_k φ = 1 − φ/φ_k) leaves a regular system
    whose right-hand side lives at the boundary.  Its LU solve alone resolves w only to
    ε·max|w| where the slow valley mode of a flat landscape amplifies round-off (paper
    landscape at Δ_S = 0.004); iterative refinement with exact residuals
    (:func:`_refine_escape_rate_weight`) keeps w to relative accuracy everywhere (checked
    against the exact radial OU weight down to 5e-21, and for mirror symmetry on the paper
    landscape).

    With ``phi`` only S = {i ∈ I : |1 − φ_i/φ_k| < ``theta``} is solved for: elsewhere
    1 − φ/φ_k (the same pinned weight) is known to relative accuracy (error of φ)/θ and
    enters the equations of S as Dirichlet data (:data:`_MU_WEIGHT_SUBDOMAIN`; S holds
    25-45 % of the dofs on the Fig. 3 problem, so the LU is several times cheaper).
    Dividing by φ_k rather than max φ keeps w_k = 0 exactly (a pin at 1 − φ_k would
    spread its round-off over S; where φ overshoots near an unresolved boundary layer
    1 − φ is not even small in the bulk).  The LU uses the primal's fill-reducing order
    restricted to the block.

    ``exact``: refine with exact residuals even where a plain step shows none is needed.
    Returns None where the exact refinement does not converge (w not resolved).
    """
    from . import ordering

    A, Mop, I, N, mu = dual.A.tocsr(), dual.Mop.tocsr(), dual.idx, dual.N, dual.mu
    k = int(np.argmax(P[I]))                        # the pin (position in I)
    w = np.ones(N)
    w[I] = 0.0
    sub = np.ones(I.size, dtype=bool)
    if phi is not None and phi[I[k]] > 0:
        w[I] = 1.0 - phi[I] / phi[I[k]]
        sub = np.abs(w[I]) < theta
    sub[k] = False
    w[I[k]] = 0.0
    if not sub.any():
        return w
    S = I[sub]
    # the right-hand side above less the known w of I \ S, as row vectors:
    # −(1_B + w_known)ᵀA − μ(1_I − w_known)ᵀM with w_known = w on I \ S, 0 on S
    known = np.zeros(N)
    known[I] = w[I]
    known[S] = 0.0
    interior = np.zeros(N)
    interior[I] = 1.0
    rhs = -(A.T @ (1.0 - interior + known))[S] - mu * (Mop.T @ (interior - known))[S]
    K = (A - mu * Mop)[S][:, S].T.tocsc()
    perm = getattr(dual.lu, "perm", None)
    perm = None if perm is None else ordering.restrict(perm, np.flatnonzero(sub))
    # a primal LU in SuperLU's own order (small, P1/P2, or an adapted level): so this one
    lu = ordering.splu(K, perm=perm, min_size=None if perm is not None else np.inf)
    w[S] = lu.solve(rhs)
    # one refinement step with a plain residual first (a matvec and a solve, ~0.02 s at
    # 82k P3 dofs): where its correction is below _WEIGHT_RTOL of every component (Fig. 3:
    # ≤ 5e-5) the LU already resolved w and the double-double refinement (numba's import
    # and compile, ~1 s) would change nothing that matters; a flat valley's round-off
    # shows up here as corrections of 1e4 (paper landscape at Δ_S = 0.004)
    d = lu.solve(rhs - K @ w[S])
    if not exact and np.all(np.abs(d) <= _WEIGHT_RTOL * np.abs(w[S])):
        w[S] += d
        return w
    return _refine_escape_rate_weight(dual, w, lu.solve, S)


def _refine_escape_rate_weight(dual: DualSolver, w: np.ndarray, solve, free) -> np.ndarray:
    """The μ weight w of :func:`_escape_rate_weight` refined to relative accuracy everywhere.

    The LU solve's error is ε·max|w| spread over all unknowns, i.e. ~1e-18 where the
    exact w is ~μ/λ₂ (the paper landscape at Δ_S = 0.004: μ ≈ 8e-26, w ≈ 5e-26 in the
    valley, where P is large, and the computed w was antisymmetric noise 1e-21 across the
    symmetry axis).  Iterative refinement with the residual of the stored system in
    double-double (:func:`.exact_residual.refine`) recovers it: one step brings the valley
    w to ~1e-5, the next to ~1e-9 relative (docs/adaptivity.md).  The residual is formed
    with the fixed values in place (w = 1 on the boundary, 0 at the pinned dof, the
    Dirichlet data off the subdomain), so the boundary column sums of the right-hand side
    never cancel in floating point.

    Parameters
    ----------
    dual
        ``A``, ``Mop``, ``idx`` (interior dofs I) and ``mu`` of the system.
    w
        The direct solve's w on all dofs (fixed values included).
    solve
        ``solve(r)`` ≈ the pinned system's inverse applied to ``r`` on ``free``.
    free
        The unknowns (the interior dofs of the solved subdomain without the pinned one),
        in ``solve``'s order; w elsewhere is fixed (Dirichlet data).
    """
    import scipy.sparse as sp

    from .exact_residual import dd_row_sums, refine

    A, Mop, I, mu = dual.A.tocsr(), dual.Mop.tocsr(), dual.idx, dual.mu
    inner = np.zeros(dual.N)
    inner[I] = 1.0
    # rows j ∈ free of (A − μ M_I)ᵀ: Σ_i (A − μM)_ij w_i over i ∈ I plus Σ_{i∈B} A_ij·1,
    # against −μ Σ_{i∈I} M_ij (the system of _escape_rate_weight with its rhs unexpanded)
    C = (A - mu * (sp.diags(inner) @ Mop)).T.tocsr()[free]
    b = -mu * dd_row_sums(Mop.T.tocsr()[free][:, I])[0]
    w, info = refine(C, b, w, solve, cols=free, rtol=_WEIGHT_RTOL)
    # a refinement that did not converge leaves w unresolved: None (the μ estimate is
    # then infinite, i.e. flagged), not a weight of unknown accuracy
    return w if info["change"] <= _WEIGHT_RTOL else None

