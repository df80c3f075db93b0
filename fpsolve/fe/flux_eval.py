"""Pointwise and quadrature evaluation for :mod:`fpsolve.fe.flux`: the flux's load forms,
values and gradients of FE functions at arbitrary points, the boundary trace basis.

Split from the flux module (which keeps the names importable) so that each stays of a
readable size; everything here depends on the mesh and the solution only.
"""
from __future__ import annotations

import functools
import threading

import numpy as np
import scipy.sparse as sp
from skfem import LinearForm
from skfem.helpers import dot, grad

from .assembly import _beta0, locate
from .geometry import _map_and_jacobian, boundary_basis
from .solution import Solution

__all__ = ["value_gradient_matrices"]


@LinearForm(nthreads=2)
def _load(v, w):
    return w.f * v


@LinearForm(nthreads=2)
def _curl_load(v, w):
    # ∫ (J_x ∂_y v − J_y ∂_x v): the weak form of the vorticity ∂_x J_y − ∂_y J_x
    g = grad(v)
    return w.J[0] * g[1] - w.J[1] * g[0]


@LinearForm(nthreads=2)
def _div_load(v, w):
    return dot(w.J, grad(v))


def _flux_loads(basis, Jq):
    """The load vectors of ``_load`` with f = J_x and f = J_y, ``_curl_load`` and
    ``_div_load`` (J at the quadrature points, (2, ne, nq)) in one pass over the basis
    functions: each element vector is scikit-fem's arithmetic (the form's expression,
    then the sum over the quadrature points) and the vectors are summed in its order,
    so they are the same numbers as four ``assemble`` calls, at less than half the cost."""
    nt, nb = basis.nelems, basis.Nbfun
    dx = basis.dx
    data = np.zeros((4, nb * nt))
    for i in range(nb):
        ixs = slice(nt * i, nt * (i + 1))
        v = basis.basis[i][0]
        g = v.grad
        data[0, ixs] = np.sum(Jq[0] * v * dx, axis=1)
        data[1, ixs] = np.sum(Jq[1] * v * dx, axis=1)
        data[2, ixs] = np.sum((Jq[0] * g[1] - Jq[1] * g[0]) * dx, axis=1)
        data[3, ixs] = np.sum(dot(Jq, grad(v)) * dx, axis=1)
    # summed entry by entry in the order of the element vectors (as the COO to dense
    # conversion of assemble does)
    rows = basis.element_dofs.ravel()
    return [np.bincount(rows, weights=d, minlength=basis.N) for d in data]


def value_gradient_matrices(basis, points):
    """Sparse matrices evaluating an FE function and its gradient at ``points``.

    Parameters
    ----------
    basis : skfem.Basis
        Scalar Lagrange basis (P1, P2 or P3, possibly on a curved quadratic mesh).
    points : ndarray, shape (2, n)

    Returns
    -------
    V, Gx, Gy : scipy.sparse.csr_matrix, each (n, basis.N)
        ``V @ u``, ``Gx @ u``, ``Gy @ u`` are u, ∂u/∂x, ∂u/∂y at the points; rows of
        points outside the mesh are zero.
    inside : ndarray of bool, shape (n,)
    """
    pts = np.asarray(points, dtype=float)
    n = pts.shape[1]
    cells, X = locate(basis, pts)
    inside = cells >= 0
    idx = np.flatnonzero(inside)
    if idx.size == 0:
        z = sp.csr_matrix((n, basis.N))
        return z, z.copy(), z.copy(), inside
    c = cells[idx]
    Xr = X[:, idx, None]
    # the inverse Jacobian once for all basis functions (gbasis recomputes it for each
    # one); the gradients are scikit-fem's own arithmetic, so the numbers are the same
    invDF = _inverse_jacobian(basis.mapping, Xr, c)
    vals, gx, gy = [], [], []
    for j in range(basis.Nbfun):
        phi, dphi = basis.elem.lbasis(Xr, j)
        g = np.einsum("ijkl,ikl->jkl", invDF, dphi)
        vals.append(np.broadcast_to(phi, g.shape[1:])[:, 0])
        gx.append(g[0][:, 0])
        gy.append(g[1][:, 0])
    rows = np.tile(idx, basis.Nbfun)
    cols = basis.element_dofs[:, c].ravel()

    def mat(data):
        return sp.coo_matrix((np.ravel(data), (rows, cols)), shape=(n, basis.N)).tocsr()

    return mat(vals), mat(gx), mat(gy), inside


def _inverse_jacobian(mapping, X, tind):
    """``mapping.invDF(X, tind)`` for X (2, n, 1), the same arithmetic, without filling
    the isoparametric mapping's Jacobian cache (it keeps every array of points it saw)
    and with one evaluation of each geometry basis function for the four entries."""
    if not hasattr(mapping, "_J") or getattr(mapping, "dim", 2) != 2:
        return mapping.invDF(X, tind)
    J = _map_and_jacobian(mapping, X[:, :, 0], tind)[1][..., None]
    det = J[0, 0] * J[1, 1] - J[0, 1] * J[1, 0]
    if np.any(det == 0):
        raise ValueError("value_gradient_matrices: zero Jacobian determinant")
    inv = np.empty(J.shape)
    inv[0, 0] = J[1, 1]
    inv[0, 1] = -J[0, 1]
    inv[1, 0] = -J[1, 0]
    inv[1, 1] = J[0, 0]
    return inv / det


def _grad_at_quadrature(basis, w):
    """``basis.interpolate(w).grad`` without the values (scikit-fem's own sum, in its
    order, so the same numbers)."""
    ed = basis.element_dofs
    out = 0. * np.einsum("...,...j->...j", w[ed[0]], basis.basis[0][0].grad)
    for i in range(basis.Nbfun):
        out += np.einsum("...,...j->...j", w[ed[i]], basis.basis[i][0].grad)
    return out


_TRACE_LOCK = threading.Lock()


def _trace_basis(basis):
    """:func:`~fpsolve.fe.geometry.boundary_basis` of ``basis``, kept on the basis (it
    depends on the mesh and the element only: the cases of a study share it)."""
    with _TRACE_LOCK:
        fb = basis.__dict__.get("_fpsolve_trace_basis")
        if fb is None:
            fb = boundary_basis(basis)
            # interpolate() recomputes np.unique(element_dofs) on every call to split
            # composite elements; for this scalar basis the result is constant
            fb.split_indices = functools.partial(_constant, fb.split_indices())
            basis.__dict__["_fpsolve_trace_basis"] = fb
    return fb


def _constant(value):
    return value


def _points(points, name="points"):
    pts = np.asarray(points, dtype=float)
    single = pts.ndim == 1
    pts = np.atleast_2d(pts)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"{name}: expected shape (n, 2) or (2,), got {np.shape(points)}")
    if not np.all(np.isfinite(pts)):
        raise ValueError(f"{name}: coordinates must be finite")
    return pts, single


def _beta(sol: Solution, x, y):
    """β = ∇L + ∇·D (or −b + ∇·D for a user drift), as assembled by assembly.assemble."""
    return _beta0(sol.landscape, sol.drift, x, y) + sol.diffusion.divergence(x, y)


def _flux_from(D, beta, P, gradP):
    return -(np.einsum("ij...,j...->i...", D, gradP) + beta * P)
