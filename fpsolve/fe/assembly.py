"""Finite-element assembly of the stationary Fokker–Planck operator (scikit-fem).

Weak form (docs/theory.md), with β = ∇L + ∇·D (minus the drift):

    a(P, v) = ∫ (D ∇P)·∇v dA + ∫ P (β·∇v) dA,      J = −D∇P − βP.

Its natural boundary condition is J·n = 0 (reflecting); absorbing boundaries are
imposed by eliminating the boundary dofs.  Because D = s·D̂ (s = Δ_S for SGD),

    A(s) = A0 + s·A1,   A0 = ∫ P (∇L·∇v),   A1 = ∫ (D̂∇P)·∇v + ∫ P (∇·D̂)·∇v,

so a sweep over s re-uses one assembly.  Coefficients are evaluated once, at the
quadrature points, vectorised, and passed to the forms as fields (measured 2–3× faster
than evaluating them inside the form, whose body runs once per pair of basis functions:
36 times per element for P2).
"""
from __future__ import annotations

import functools

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree
from skfem import Basis, BilinearForm, ElementTriP1, ElementTriP2, ElementTriP3
from skfem.helpers import dot, grad, mul

from ..models.diffusion import DiffusionModel
from ..models.landscapes import Landscape
from ..models.validity import check_diffusion, check_finite, check_landscape
from .geometry import inverse_map
from .mesh import Mesh

__all__ = ["Operator", "assemble", "make_basis", "mass_matrix", "evaluate", "STABILISATIONS", "locate", "reference_coordinates",
           "probe_matrix", "probe_values", "PointProbe", "line_cuts"]

logger = logging.getLogger(__name__)

STABILISATIONS = (None, "supg")
_ELEMENTS = {1: ElementTriP1, 2: ElementTriP2, 3: ElementTriP3}


@BilinearForm(nthreads=2)
def _convection(u, v, w):
    return u * dot(w.beta, grad(v))


@BilinearForm(nthreads=2)
def _diffusion(u, v, w):
    return dot(mul(w.D, grad(u)), grad(v)) + u * dot(w.divD, grad(v))


@BilinearForm(nthreads=2)
def _supg(u, v, w):
    # τ (β·∇u + (∇·β) u)(β·∇v): the convective part of the strong residual tested
    # against the streamline perturbation −τβ·∇v (transport velocity is −β).
    # The second-order part of the residual is dropped (exact for P1, an
    # O(h) inconsistency for P2 that vanishes under refinement).
    return w.tau * (dot(w.beta, grad(u)) + w.divbeta * u) * dot(w.beta, grad(v))


@BilinearForm(nthreads=2)
def _supg_mass(u, v, w):
    return -w.tau * u * dot(w.beta, grad(v))


@dataclass
class Operator:
    """Assembled matrices of one problem on one basis.

    ``A(s) = A0 + s·A1`` unless a stabilisation made the operator non-affine in
    the strength (then ``A1`` is None and ``A_fixed`` holds A at ``strength``).
    ``M`` is the mass matrix (``M_stab`` its SUPG-consistent variant for the
    eigenproblem).  Column sums of A vanish (v = 1 is a test function), which is
    what makes the boundary outflow computable from A (see fpsolve/fe/solver.py).
    """

    basis: Basis
    A0: sp.csr_matrix | None
    A1: sp.csr_matrix | None
    M: sp.csr_matrix
    strength: float
    A_fixed: sp.csr_matrix | None = None
    M_stab: sp.csr_matrix | None = None
    timings: dict = field(default_factory=dict)

    @property
    def affine(self) -> bool:
        return self.A_fixed is None

    def A(self, strength: float | None = None) -> sp.csr_matrix:
        if strength is None or strength == self.strength:
            if self.A_fixed is not None:
                return self.A_fixed
            strength = self.strength
        if not self.affine:
            raise ValueError("operator assembled with stabilisation is not affine in the "
                             "diffusion strength: re-assemble for each value")
        if self.A0.indices is self.A1.indices:       # one shared pattern: data arithmetic
            return sp.csr_matrix((self.A0.data + strength * self.A1.data, self.A0.indices,
                                  self.A0.indptr), shape=self.A0.shape)
        return (self.A0 + strength * self.A1).tocsr()


def make_basis(mesh: Mesh, order: int = 2, intorder: int | None = None) -> Basis:
    """The scikit-fem basis the solver uses for ``order`` on ``mesh``.

    Built once per mesh and shared (it is never modified); ``intorder`` defaults to
    the solver's quadrature order 2·order + 1.
    """
    if order not in _ELEMENTS:
        raise ValueError(f"order: expected 1, 2 or 3, got {order!r}")
    intorder = 2 * order + 1 if intorder is None else intorder
    key = ("basis", order, intorder)
    if key not in mesh._cache:
        basis = Basis(mesh.geometry(order), _ELEMENTS[order](), intorder=intorder)
        # scikit-fem's interpolate() recomputes np.unique(element_dofs) on every call
        # (to split composite elements); for this scalar basis the result is constant
        basis.split_indices = functools.partial(_constant, basis.split_indices())
        mesh._cache[key] = basis
    return mesh._cache[key]


def _constant(value):
    return value


class _Pattern:
    """CSR sparsity pattern of one basis, shared by M, A0 and A1.

    ``perm`` maps each local entry (element e, test i, trial j), in C order, to its
    position in ``indices``; a matrix is then one ``bincount`` of the element
    matrices, and A0 + s·A1 is an operation on the data arrays alone.
    """

    def __init__(self, element_dofs: np.ndarray, N: int):
        E = np.ascontiguousarray(element_dofs.T, dtype=np.int64)        # (ne, Nb)
        nb = E.shape[1]
        keys = (E[:, :, None] * N + E[:, None, :]).ravel()
        uniq, self.perm = np.unique(keys, return_inverse=True)
        self.perm = self.perm.ravel()
        self.N, self.nnz, self.nb = N, uniq.size, nb
        rows = uniq // N
        self.indices = (uniq - rows * N).astype(np.int32)
        self.indptr = np.searchsorted(rows, np.arange(N + 1)).astype(np.int32)

    def matrix(self, local: np.ndarray) -> sp.csr_matrix:
        """Sum element matrices ``local`` (ne, Nb, Nb) into a CSR matrix."""
        data = np.bincount(self.perm, weights=local.ravel(), minlength=self.nnz)
        return self.csr(data)

    def csr(self, data: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((data, self.indices, self.indptr), shape=(self.N, self.N))


def _pattern(basis: Basis) -> _Pattern:
    """The basis' sparsity pattern, cached on its scikit-fem mesh (per element type)."""
    cache = basis.mesh.__dict__.setdefault("_fpsolve_patterns", {})
    key = type(basis.elem).__name__
    if key not in cache:
        cache[key] = _Pattern(basis.element_dofs, basis.N)
    return cache[key]


def _shape_functions(basis: Basis, sl=slice(None)):
    """Values (ne, Nb, nq) and gradients (2, ne, Nb, nq) of the basis on elements ``sl``."""
    phi = np.stack([np.asarray(basis.basis[i][0])[sl] for i in range(basis.Nbfun)], axis=1)
    G = np.stack([basis.basis[i][0].grad[:, sl] for i in range(basis.Nbfun)], axis=2)
    return phi, G


def _local_mass(basis: Basis) -> np.ndarray:
    phi, _ = _shape_functions(basis)
    return phi @ (phi * np.asarray(basis.dx)[:, None, :]).transpose(0, 2, 1)


def mass_matrix(basis: Basis) -> sp.csr_matrix:
    """Mass matrix ∫ u v of ``basis`` on its cached sparsity pattern."""
    return _pattern(basis).matrix(_local_mass(basis))


# elements per block of the batched element-matrix products (bounds the temporaries
# to ~100 MB for P3 while keeping numpy's per-call overhead negligible)
_BLOCK = 8192


def _assemble_affine(basis: Basis, pattern: _Pattern, beta0, Dhat, divhat):
    """M, A0 = ∫P(β0·∇v), A1 = ∫(D̂∇P)·∇v + P(∇·D̂)·∇v on one shared pattern.

    Element matrices are batched matrix products over the quadrature points
    (entry [e, i, j] = test i, trial j); each form is one ``bincount``.
    """
    ne = basis.element_dofs.shape[1]
    dx_all = np.asarray(basis.dx)
    nnz = pattern.nnz
    data = np.zeros((3, nnz))
    nb = pattern.nb
    for start in range(0, ne, _BLOCK):
        sl = slice(start, min(start + _BLOCK, ne))
        phi, G = _shape_functions(basis, sl)
        dx = dx_all[sl][:, None, :]
        phidx = (phi * dx).transpose(0, 2, 1)                  # (ne, nq, Nb): trial × weight
        b = beta0[:, sl][:, :, None, :]
        dv = divhat[:, sl][:, :, None, :]
        Dh = Dhat[:, :, sl][:, :, :, None, :]
        # A0: (β0·∇v_i) φ_j;  A1: ∇v_i·(D̂∇φ_j) + (∇·D̂·∇v_i) φ_j
        conv = (b[0] * G[0] + b[1] * G[1]) @ phidx
        DG0 = (Dh[0, 0] * G[0] + Dh[0, 1] * G[1]) * dx
        DG1 = (Dh[1, 0] * G[0] + Dh[1, 1] * G[1]) * dx
        left = np.concatenate([G[0], G[1], dv[0] * G[0] + dv[1] * G[1]], axis=-1)
        right = np.concatenate([DG0, DG1, phidx.transpose(0, 2, 1)], axis=-1)
        diff = left @ right.transpose(0, 2, 1)
        mass = phi @ phidx
        idx = pattern.perm[start * nb * nb:sl.stop * nb * nb]
        for k, loc in enumerate((mass, conv, diff)):
            data[k] += np.bincount(idx, weights=loc.ravel(), minlength=nnz)
    return pattern.csr(data[0]), pattern.csr(data[1]), pattern.csr(data[2])


def _beta0(landscape: Landscape | None, drift: Callable | None, x, y):
    """β0 = −(drift): ∇L for gradient drift, −b(x, y) for a user drift."""
    if drift is not None:
        b = np.asarray(drift(x, y), dtype=float)
        if b.shape != (2, *x.shape):
            raise ValueError(f"drift: b(x, y) must return shape (2, *x.shape) = "
                             f"{(2, *x.shape)}, got {b.shape}")
        check_finite(b, x, y, f"drift {getattr(drift, '__name__', 'b')}(x, y)", "b")
        return -b
    return landscape.gradient(x, y)


def _check_models(landscape, diffusion, drift, mesh, x, y, beta0, Dhat, divhat) -> None:
    """L, ∇L (or the drift), D and ∇·D finite, D a PSD tensor, at the quadrature points.

    ModelError names the model and the first bad point.  L itself is checked too,
    at the quadrature points and the vertices (cheap: ~1 % of the assembly):
    ``log(x)`` has a finite gradient 1/x at every quadrature point but no value on
    half of a disk around 0, and ``1/x`` is infinite at the vertices on x = 0.
    """
    if landscape is not None:
        check_landscape(landscape, x, y, None, beta0 if drift is None else None,
                        with_gradient=drift is None)
        check_landscape(landscape, mesh.p[0], mesh.p[1], with_gradient=False)
    check_diffusion(diffusion, x, y, Dhat, divhat)


def _supg_tau(beta, D, h):
    """Streamline parameter τ = h/(2|β|)(coth Pe − 1/Pe), Pe = |β|h/(2 βᵀDβ/|β|²)."""
    bnorm = np.sqrt(dot(beta, beta))
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = dot(beta, mul(D, beta)) / bnorm ** 2
        pe = bnorm * h / (2.0 * kappa)
        pe = np.where(np.isfinite(pe), pe, 1e300)
        pe_s = np.maximum(pe, 1e-3)
        xi = np.where(pe > 1e-3, 1.0 / np.tanh(np.minimum(pe_s, 350.0)) - 1.0 / pe_s, pe / 3.0)
        tau = np.where(bnorm > 0, h / (2.0 * bnorm) * xi, 0.0)
    return tau


def assemble(landscape: Landscape | None, diffusion: DiffusionModel, mesh: Mesh,
             order: int = 2, drift: Callable | None = None,
             stabilisation: str | None = None, intorder: int | None = None) -> Operator:
    """Assemble the Fokker–Planck operator of ``landscape``/``drift`` and ``diffusion``.

    Parameters
    ----------
    landscape
        Loss L; the drift is −∇L.  May be None when ``drift`` is given.
    diffusion
        Diffusion model (D = strength × unit tensor).
    mesh
        :class:`fpsolve.fe.mesh.Mesh`; P2/P3 on a disk use curved boundary elements.
    order
        1, 2 or 3 (Lagrange P1 / P2 / P3).  Orders 2 and 3 use the curved
        (quadratic) disk boundary.
    drift
        Optional callable b(x, y) -> (2, *x.shape) replacing −∇L (non-gradient drift).
    stabilisation
        None (plain Galerkin) or ``"supg"`` (streamline-upwind Petrov–Galerkin).
    intorder
        Quadrature order (default 2·order + 1: the coefficients are not polynomials
        of low degree).
    """
    if order not in _ELEMENTS:
        raise ValueError(f"order: expected 1, 2 or 3, got {order!r}")
    if stabilisation not in STABILISATIONS:
        raise ValueError(f"stabilisation: expected one of {STABILISATIONS}, got {stabilisation!r}")
    if landscape is None and drift is None:
        raise ValueError("landscape: give a Landscape or a drift callable (both are None)")
    if not isinstance(diffusion, DiffusionModel):
        raise TypeError(f"diffusion: expected a fpsolve diffusion model, got "
                        f"{type(diffusion).__name__}")
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh: expected fpsolve.Mesh (from disk_mesh or load_mesh), got "
                        f"{type(mesh).__name__}")
    t0 = time.perf_counter()
    basis = make_basis(mesh, order, intorder)
    t1 = time.perf_counter()
    x, y = basis.global_coordinates()
    x, y = np.asarray(x), np.asarray(y)
    with np.errstate(all="ignore"):     # non-finite values are reported below, with a point
        beta0 = _beta0(landscape, drift, x, y)
        Dhat, divhat = diffusion.unit_coefficients(x, y)
    _check_models(landscape, diffusion, drift, mesh, x, y, beta0, Dhat, divhat)
    t2 = time.perf_counter()
    s = float(diffusion.strength)
    pattern = _pattern(basis)
    if stabilisation is None:
        M, A0, A1 = _assemble_affine(basis, pattern, beta0, Dhat, divhat)
        op = Operator(basis, A0, A1, M, s)
    else:
        M = mass_matrix(basis)
        beta = beta0 + s * divhat
        D = s * Dhat
        divbeta = _divergence_fd(lambda xx, yy: _beta0(landscape, drift, xx, yy)
                                 + s * diffusion.unit_divergence(xx, yy), x, y)
        tau = _supg_tau(beta, D, np.asarray(basis.mesh_parameters()) * np.ones_like(x))
        A = (_convection.assemble(basis, beta=beta)
             + _diffusion.assemble(basis, D=D, divD=np.zeros_like(beta))
             + _supg.assemble(basis, beta=beta, divbeta=divbeta, tau=tau))
        Ms = M + _supg_mass.assemble(basis, beta=beta, tau=tau)
        op = Operator(basis, None, None, M, s, A_fixed=A.tocsr(), M_stab=Ms.tocsr())
    t3 = time.perf_counter()
    op.timings = {"basis_s": t1 - t0, "coefficients_s": t2 - t1, "assembly_s": t3 - t2}
    return op


def _divergence_fd(f, x, y, h=1e-5):
    """∇·f by central differences (only SUPG's τ-weighted term needs it)."""
    return ((f(x + h, y)[0] - f(x - h, y)[0]) + (f(x, y + h)[1] - f(x, y - h)[1])) / (2 * h)


# ---------------------------------------------------------------------------
# Point location and evaluation (robust: points outside the mesh are reported,
# never trigger scikit-fem's all-elements fallback search, which allocates a
# (2, points, elements) array and can exhaust memory for many points).
# ---------------------------------------------------------------------------

def _tree(m) -> cKDTree:
    if not hasattr(m, "_fpsolve_tree"):
        object.__setattr__(m, "_fpsolve_tree", cKDTree(m.p[:, m.t].mean(axis=1).T))
    return m._fpsolve_tree


def _curved(m) -> np.ndarray:
    """Elements whose map is not affine (a P2 edge node off its edge's midpoint)."""
    if not hasattr(m, "_fpsolve_curved"):
        curved = np.zeros(m.t.shape[1], dtype=bool)
        if hasattr(m, "doflocs") and m.doflocs.shape[1] > m.nvertices:
            t2f = m.t2f if m.dim() == 2 else None
            if t2f is not None:
                mid = m.doflocs[:, m.nvertices + t2f]                  # (2, 3, ne)
                a = m.p[:, m.t]                                       # (2, 3, ne)
                straight = 0.5 * (a + np.roll(a, -1, axis=1))        # edges 01, 12, 20
                h = np.linalg.norm(a[:, 1] - a[:, 0], axis=0)
                dev = np.linalg.norm(mid - straight, axis=0).max(axis=0)
                curved = dev > 1e-12 * h
        object.__setattr__(m, "_fpsolve_curved", curved)
    return m._fpsolve_curved


def _invF(basis, pts, cells, X0):
    """Inverse of the curved map (:func:`fpsolve.fe.geometry.inverse_map`, whose stopping
    test is scaled to the element size); points where it fails are outside (cell -1)."""
    X, ok = inverse_map(basis.mapping, pts, cells, X0)
    return X, np.where(ok, cells, -1)


def _barycentric(m, pts, cells):
    """Reference coordinates (λ1, λ2) of pts (2, ...) in the straight triangles ``cells``."""
    p = m.p
    a = p[:, m.t[0, cells]]
    e1 = p[:, m.t[1, cells]] - a
    e2 = p[:, m.t[2, cells]] - a
    r = pts - a
    det = e1[0] * e2[1] - e1[1] * e2[0]
    return np.stack([(r[0] * e2[1] - r[1] * e2[0]) / det, (e1[0] * r[1] - e1[1] * r[0]) / det])


#: how far (in barycentric units of the straight triangle) a point of a curved element's
#: bulge can lie outside its chord: sagitta/height ≲ h/(4R) ≤ ¼ for h ≤ R
BULGE = 0.3


def _finish(basis, pts, cells, X, s):
    """Apply inside tests; exact Newton inverse in curved elements.  Modifies in place."""
    curved = _curved(basis.mesh)[np.maximum(cells, 0)] & (cells >= 0)
    # affine elements: barycentric coordinates are exact; tolerance for round-off only
    cells[~curved & (s < -1e-12)] = -1
    # curved elements bulge outward by O(h²/R): test generously, then invert exactly
    cells[curved & (s < -BULGE)] = -1
    idx = np.flatnonzero(curved & (cells >= 0))
    if idx.size:
        Xi, ci = _invF(basis, pts[:, idx], cells[idx], X[:, idx])
        tol = 1e-9
        inside = (ci >= 0) & (Xi[0] >= -tol) & (Xi[1] >= -tol) & (1 - Xi[0] - Xi[1] >= -tol)
        X[:, idx] = Xi
        cells[idx[~inside]] = -1
    return cells, X


def locate(basis: Basis, points: np.ndarray, k: int = 8):
    """Element index and reference coordinates of each point; -1 where outside.

    Candidates come from a k-d tree of element centroids; reference coordinates are
    the barycentric coordinates in affine elements and a Newton inverse only in the
    curved (isoparametric) boundary ring.

    Parameters
    ----------
    points
        Array (2, n).

    Returns
    -------
    cells : (n,) int, -1 for points outside the (possibly curved) mesh
    X : (2, n) reference coordinates (undefined where cells == -1)
    """
    m = basis.mesh
    pts = np.asarray(points, dtype=float)
    n = pts.shape[1]
    k = min(k, m.t.shape[1])
    _, cand = _tree(m).query(pts.T, k)
    cand = cand.reshape(n, k)
    L = _barycentric(m, pts[:, :, None], cand)                 # (2, n, k)
    score = np.minimum(np.minimum(L[0], L[1]), 1 - L[0] - L[1])
    best = np.argmax(score, axis=1)
    rows = np.arange(n)
    cells, X = _finish(basis, pts, cand[rows, best].copy(), L[:, rows, best].copy(),
                       score[rows, best])
    # a point in the bulge of a curved element may score better in a straight neighbour
    # (and be rejected there): try the other curved candidates
    curved = _curved(m)
    for j in range(k):
        miss = np.flatnonzero((cells < 0) & curved[cand[:, j]] & (score[:, j] >= -BULGE)
                              & (best != j))
        if miss.size:
            c, Xj = _finish(basis, pts[:, miss], cand[miss, j].copy(),
                            L[:, miss, j].copy(), score[miss, j])
            cells[miss], X[:, miss] = c, Xj
    return cells, X


def reference_coordinates(basis: Basis, points: np.ndarray, cells: np.ndarray):
    """Like :func:`locate` for points whose (candidate) element is already known."""
    pts = np.asarray(points, dtype=float)
    cells = np.asarray(cells).copy()
    X = _barycentric(basis.mesh, pts, cells)
    s = np.minimum(np.minimum(X[0], X[1]), 1 - X[0] - X[1])
    return _finish(basis, pts, cells, X, s)


def probe_matrix(basis: Basis, points: np.ndarray, cells=None, X=None) -> sp.csr_matrix:
    """Sparse (n × ndofs) matrix evaluating an FE function at ``points`` (2, n).

    Rows of points outside the mesh are zero (the density vanishes outside).
    Values need only the reference basis at the reference coordinates.
    """
    pts = np.asarray(points, dtype=float)
    if cells is None:
        cells, X = locate(basis, pts)
    elif X is None:
        cells, X = reference_coordinates(basis, pts, cells)
    inside = np.flatnonzero(cells >= 0)
    n = pts.shape[1]
    if inside.size == 0:
        return sp.csr_matrix((n, basis.N))
    c = cells[inside]
    Xr = X[:, inside]
    phis = np.array([basis.elem.lbasis(Xr, j)[0] for j in range(basis.Nbfun)])  # (Nbfun, m)
    rows = np.tile(inside, basis.Nbfun)
    cols = basis.element_dofs[:, c].ravel()
    return sp.coo_matrix((phis.ravel(), (rows, cols)), shape=(n, basis.N)).tocsr()


class PointProbe:
    """Evaluation of FE functions at fixed points, reusable for many coefficient vectors.

    ``PointProbe(basis, points, cells, X)(u)`` is ``probe_matrix(basis, points, cells, X)
    @ u`` bit for bit: each point's terms φ_j u_j are added from 0 in the order of the
    matrix row (by increasing dof), as the sparse product adds them.  Without the
    matrix (a COO to CSR conversion per call, what costs in the many small evaluations
    of a shrinking-grid search); the located points and basis values can be kept and
    applied to other vectors on the same basis (the cases of a study share a mesh).

    Parameters
    ----------
    basis : skfem.Basis
        The FE space.
    points : ndarray, shape (2, n)
        The points.
    cells, X : ndarray, optional
        Their elements and reference coordinates, if known (else located here).

    Attributes
    ----------
    inside : ndarray of bool, shape (n,)
        Points inside the mesh (the value is 0 at the others).
    """

    def __init__(self, basis: Basis, points: np.ndarray, cells=None, X=None):
        pts = np.asarray(points, dtype=float)
        if cells is None:
            cells, X = locate(basis, pts)
        elif X is None:
            cells, X = reference_coordinates(basis, pts, cells)
        self.inside = cells >= 0
        self._idx = np.flatnonzero(self.inside)
        self._n = pts.shape[1]
        c = cells[self._idx]
        dofs = basis.element_dofs[:, c]
        order = np.argsort(dofs, axis=0, kind="stable")
        phis = np.array([basis.elem.lbasis(X[:, self._idx], j)[0] for j in range(basis.Nbfun)])
        self._phis = np.take_along_axis(phis.reshape(basis.Nbfun, -1), order, axis=0)
        # int32 halves what a kept probe holds (a marginal grid: ~10⁶ entries)
        itype = np.int32 if basis.N < 2 ** 31 else np.int64
        self._dofs = np.take_along_axis(dofs, order, axis=0).astype(itype)

    def __call__(self, u: np.ndarray) -> np.ndarray:
        out = np.zeros(self._n)
        if self._idx.size:
            terms = self._phis * np.asarray(u)[self._dofs]
            acc = np.zeros(self._idx.size)
            for t in terms:
                acc += t
            out[self._idx] = acc
        return out


def probe_values(basis: Basis, u: np.ndarray, points: np.ndarray, cells=None, X=None,
                 inside: bool = False):
    """``probe_matrix(basis, points, cells, X) @ u`` without building the matrix (the
    same floats, see :class:`PointProbe`).

    Parameters
    ----------
    basis : skfem.Basis
        The FE space of ``u``.
    u : ndarray
        Coefficients.
    points : ndarray, shape (2, n)
        The points.
    cells, X : ndarray, optional
        Their elements and reference coordinates, if known.
    inside : bool
        Also return the mask of the points inside the mesh.

    Returns
    -------
    ndarray, or (ndarray, ndarray of bool) with ``inside``
        The values (0 outside the mesh).
    """
    probe = PointProbe(basis, points, cells, X)
    return (probe(u), probe.inside) if inside else probe(u)


def evaluate(basis: Basis, u: np.ndarray, points) -> np.ndarray | float:
    """The FE function ``u`` at ``points`` of shape (n, 2) (or one point (2,)); 0 outside."""
    pts = np.asarray(points, dtype=float)
    single = pts.ndim == 1
    pts = np.atleast_2d(pts)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points: expected shape (n, 2), got {np.shape(points)}")
    vals = probe_matrix(basis, pts.T) @ u
    return float(vals[0]) if single else vals


@functools.lru_cache(maxsize=16)
def _gauss(npts: int):
    """Gauss–Legendre points and weights on [-1, 1] (an eigenvalue problem: kept)."""
    g, gw = np.polynomial.legendre.leggauss(npts)
    g.flags.writeable = False
    gw.flags.writeable = False
    return g, gw


def _line_extent(m, axis: int):
    """Coordinates along ``axis`` of the straight triangles' vertices (3, ne) and their
    min and max, cached on the mesh."""
    cache = m.__dict__.setdefault("_fpsolve_line_extent", {})
    if axis not in cache:
        ca = m.p[axis][m.t[:3]]
        cache[axis] = (ca, ca.min(axis=0), ca.max(axis=0))
    return cache[axis]


def _line_elements(lo, hi, values):
    """Pairs (line i, element e) with lo_e ≤ values_i ≤ hi_e and hi_e > lo_e, ordered by
    line, then element (an interval search on the sorted values: no lines × elements
    table)."""
    if values.size == 1:       # one line (a 1-D search step): a plain scan is cheaper
        el = np.flatnonzero((lo <= values[0]) & (hi >= values[0]) & (hi > lo))
        return np.zeros(el.size, dtype=np.int64), el
    order = np.argsort(values, kind="stable")
    vs = values[order]
    first = np.searchsorted(vs, lo, "left")       # first sorted line with v ≥ lo
    last = np.searchsorted(vs, hi, "right")       # lines with v ≤ hi end here
    count = np.where(hi > lo, last - first, 0)
    el = np.repeat(np.arange(lo.size), count)
    start = np.cumsum(count) - count
    line = order[first[el] + np.arange(el.size) - start[el]]
    srt = np.lexsort((el, line))
    return line[srt], el[srt]


def _shared_edge_duplicate(m, ca, el, v) -> np.ndarray:
    """Where a line runs along an interior edge, both neighbours cut the same segment:
    True for the copy in the element whose third vertex lies below the line (redteam F7:
    the marginal on a row of ``disk_mesh``'s horizontal edges, or on the vertical edges of
    a bisected mesh, was counted twice).  A boundary edge has one copy and keeps it."""
    dup = np.zeros(el.size, dtype=bool)
    # local edges (0,1), (1,2), (2,0) are scikit-fem's t2f rows 0, 1, 2 (as vertex sets)
    for k, (a, b, c) in enumerate(((0, 1, 2), (1, 2, 0), (2, 0, 1))):
        on = (ca[a, el] == v) & (ca[b, el] == v)
        if np.any(on):
            interior = m.f2t[1, m.t2f[k, el[on]]] >= 0
            dup[np.flatnonzero(on)] = interior & (ca[c, el[on]] < v[on])
    return dup


def line_cuts(basis: Basis, axis: int, values: np.ndarray, npts: int = 3):
    """Quadrature on the lines θ_axis = value, exact for FE functions of degree ≤ 2·npts−1.

    Each line is cut into the segments where it crosses the (straight) triangles,
    with ``npts`` Gauss points per segment, so the integral of a P1/P2 function
    along the line is exact up to the curved-boundary slivers.

    Returns ``(points (2, m), weights (m,), line (m,), cells (m,))`` where ``line``
    gives the index into ``values`` of each quadrature point and ``cells`` its element;
    ordered by line, then element.
    """
    m = basis.mesh
    p = m.p[:2]
    t = m.t[:3]
    other = 1 - axis
    ca, lo, hi = _line_extent(m, axis)    # (3, ne): coordinate across the lines
    g, gw = _gauss(npts)
    vals = np.asarray(values, dtype=float).ravel()
    line, el = _line_elements(lo, hi, vals)
    v = vals[line]
    # intersections of each line with the three edges of each of its elements
    ends = []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        ua, ub = ca[a, el], ca[b, el]
        wa, wb = p[other][t[a, el]], p[other][t[b, el]]
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (v - ua) / (ub - ua)
        hit = (s >= 0) & (s <= 1) & (ub != ua)
        ends.append(np.where(hit, wa + s * (wb - wa), np.nan))
    ends = np.array(ends)
    a0, a1 = np.nanmin(ends, axis=0), np.nanmax(ends, axis=0)
    keep = (a1 > a0) & ~_shared_edge_duplicate(m, ca, el, v)
    a0, a1, el, line, v = a0[keep], a1[keep], el[keep], line[keep], v[keep]
    if el.size == 0:
        return np.zeros((2, 0)), np.zeros(0), np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    mid, half = 0.5 * (a0 + a1), 0.5 * (a1 - a0)
    q = mid[:, None] + half[:, None] * g[None, :]
    pts = np.empty((2, q.size))
    pts[axis] = np.repeat(v, npts)
    pts[other] = q.ravel()
    return (pts, (half[:, None] * gw[None, :]).ravel(), np.repeat(line, npts),
            np.repeat(el, npts))
