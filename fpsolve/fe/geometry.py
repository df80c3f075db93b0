"""Inverse map and boundary traces of curved (isoparametric) triangles.

P2/P3 solves on a disk use a quadratic geometry (:meth:`fpsolve.fe.mesh.Mesh.geometry`)
whose boundary elements are curved.  scikit-fem inverts that map by a Newton iteration
that stops when the step in reference coordinates is below an absolute 1e-12.  The step
cannot get below the round-off of the physical coordinates divided by the element size,
eps·|x|/h: on the disk of radius 2 this is 5e-12 for h = 1e-4, a size the adaptive
loop reaches in the boundary layer.  The iteration then "does not converge" although it
has, so ``basis.boundary()`` raised and point location declared such elements outside.

* :func:`inverse_map` is Newton from the straight triangle's barycentric coordinates
  with a stopping test scaled to that round-off floor.
* :func:`boundary_basis` needs no inverse at all: a boundary quadrature point is the
  image of a known point of the element's reference edge (the facet map and the element
  map agree on the edge: the same two vertices and edge node), so its reference
  coordinates are written down exactly.
"""
from __future__ import annotations

import numpy as np
from skfem import FacetBasis
from skfem.quadrature import get_quadrature

__all__ = ["inverse_map", "boundary_basis", "facet_reference_points"]

#: Newton steps of :func:`inverse_map` (quadratic maps from the barycentric start need 2-4)
MAX_NEWTON = 30
_EPS = np.finfo(float).eps


def _map_and_jacobian(mapping, X, tind):
    """x = F(X) and DF(X) for one reference point per element, X of shape (2, n).

    scikit-fem's Fmap/_J arithmetic (sum over the geometry's basis functions, in their
    order, from 0), uncached (mapping.J caches every argument it sees), with each basis
    function evaluated once for F and the four entries of DF (not six times).
    """
    Xr = X[:, :, None]
    p = mapping.mesh.doflocs
    t = mapping.mesh.dofs.element_dofs
    F = np.zeros((2, len(tind), 1))
    J = np.zeros((2, 2, len(tind), 1))
    for itr in range(t.shape[0]):
        phi, dphi = mapping.elem.lbasis(Xr, itr)
        pv = p[:2, t[itr, tind]][:, :, None]
        F += pv * phi
        J += pv[:, None] * np.asarray(dphi)[None, :2]
    return F[:, :, 0], J[:, :, :, 0]


def inverse_map(mapping, x, tind, X0):
    """Reference coordinates of points ``x`` (2, n) in the curved elements ``tind`` (n,).

    Newton's method from ``X0`` (the barycentric coordinates in the straight triangle:
    the curved map differs from it by O(h/R)).  A point has converged when the step is
    below 64·eps·(|x| + h)/h, the round-off floor of reference coordinates in an element
    of size h = |det DF|^½ (or 1e-12, whichever is larger).

    Parameters
    ----------
    mapping : skfem mapping
        The mesh's (isoparametric) mapping.
    x : array_like (2, n)
        Physical points.
    tind : array_like of int (n,)
        The element of each point.
    X0 : array_like (2, n)
        Starting reference coordinates.

    Returns
    -------
    X : ndarray (2, n)
    converged : ndarray of bool (n,)
        False where Newton did not settle (the point is far outside its element or the
        map is singular there).
    """
    x = np.asarray(x, dtype=float)
    tind = np.asarray(tind)
    X = np.array(X0, dtype=float, copy=True)
    done = np.zeros(x.shape[1], dtype=bool)
    scale = np.abs(x).max(axis=0)
    for _ in range(MAX_NEWTON):
        todo = np.flatnonzero(~done)
        if todo.size == 0:
            break
        F, J = _map_and_jacobian(mapping, X[:, todo], tind[todo])
        det = J[0, 0] * J[1, 1] - J[0, 1] * J[1, 0]
        r = x[:, todo] - F
        with np.errstate(divide="ignore", invalid="ignore"):
            dX = np.stack([J[1, 1] * r[0] - J[0, 1] * r[1],
                           J[0, 0] * r[1] - J[1, 0] * r[0]]) / det
            h = np.sqrt(np.abs(det))
            tol = np.maximum(1e-12, 64 * _EPS * (scale[todo] + h) / h)
        bad = ~np.all(np.isfinite(dX), axis=0)
        dX[:, bad] = 0.0
        # keep far-outside points bounded (they are rejected by the caller's inside test)
        X[:, todo] = np.clip(X[:, todo] + dX, -1.0, 2.0)
        done[todo[~bad & (np.abs(dX).max(axis=0) <= tol)]] = True
    return X, done


def facet_reference_points(mesh, find, tind, s) -> np.ndarray:
    """Reference coordinates, in elements ``tind``, of the points ``s`` of facets ``find``.

    ``s`` (1, nq) are points of the reference line [0, 1], measured from
    ``mesh.facets[0, find]`` (the convention of the facet map ``mapping.G``).  Each
    facet is a local edge (a, b) of its element; the point is P_a + s(P_b − P_a) with
    the edge taken in the facet's direction.

    Parameters
    ----------
    mesh : skfem.MeshTri
        The mesh (its ``t2f``, ``facets`` and reference domain are used).
    find, tind : array_like of int
        Facets and, for each, an element that has it as an edge.
    s : array_like (1, nq)
        Points of the reference line [0, 1].

    Returns
    -------
    ndarray (2, len(find), nq)
    """
    find, tind = np.asarray(find), np.asarray(tind)
    edges = np.asarray(mesh.refdom.facets)            # local vertex pairs of the edges
    P = np.asarray(mesh.refdom.p, dtype=float)        # reference vertices (2, 3)
    local = np.argmax(mesh.t2f[:, tind] == find[None, :], axis=0)
    if not np.all(mesh.t2f[local, tind] == find):
        raise ValueError("facet_reference_points: a facet is not an edge of its element")
    a, b = edges[local, 0], edges[local, 1]
    forward = mesh.t[a, tind] == mesh.facets[0, find]
    start = np.where(forward, a, b)
    end = np.where(forward, b, a)
    s = np.asarray(s, dtype=float).reshape(-1)
    return (P[:, start, None] + s[None, None, :] * (P[:, end] - P[:, start])[:, :, None])


class _FacetInverse:
    """The element map with the exact facet inverse (used only while a FacetBasis is
    built; every other attribute is the wrapped mapping's)."""

    def __init__(self, mapping, mesh, find, s):
        self._mapping, self._mesh, self._find, self._s = mapping, mesh, find, s

    def invF(self, x, tind=None, **_):
        Y = facet_reference_points(self._mesh, self._find, tind, self._s)
        # the facet map and the element map are one quadratic on the edge: check it
        err = np.abs(self._mapping.F(Y, tind) - x).max(initial=0.0)
        size = np.abs(x).max(initial=1.0)
        if err > 1e-10 * max(size, 1.0):
            raise ValueError(f"boundary_basis: facet and element maps disagree by {err:.1e}")
        return Y

    def __getattr__(self, name):
        return getattr(self._mapping, name)


def boundary_basis(basis, facets=None, intorder: int | None = None) -> FacetBasis:
    """A ``FacetBasis`` on the boundary facets of ``basis`` (as ``basis.boundary()``),
    with the reference coordinates of its quadrature points computed exactly.

    Parameters
    ----------
    basis : skfem.Basis
        Cell basis (P1-P3, straight or curved mesh).
    facets : array of int, optional
        Facet indices (default: all boundary facets).
    intorder : int, optional
        Quadrature order on the facets (default 2 × the element degree, as scikit-fem).

    Returns
    -------
    skfem.FacetBasis
    """
    m = basis.mesh
    find = (np.flatnonzero(m.f2t[1] == -1) if facets is None
            else np.asarray(facets)).astype(np.int32)
    order = intorder if intorder is not None else 2 * basis.elem.maxdeg
    X, W = get_quadrature(m.brefdom, order)
    proxy = _FacetInverse(basis.mapping, m, find, X)
    fb = FacetBasis(m, basis.elem, mapping=proxy, quadrature=(X, W), facets=find)
    fb.mapping = basis.mapping
    return fb
