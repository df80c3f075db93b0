"""The curved boundary's share of the error of a reflecting solve (first-order term).

The estimates compare P_k with P_{k+1} (or use duals) on one geometry, so they cannot
see how the curved mesh differs from the circle.  The area-preserving edge nodes
(:func:`.mesh.area_preserving_edge_nodes`) remove that difference's O(h⁴) part; what is
left, ∫ g·gap ds over the boundary (gap the normal offset of the curved edges from the
circle, g the goal's boundary density), cancels on uniformly spaced boundaries but not on
adaptively refined ones: reflecting OU, A = diag(1, 4), δ = 0.5, P3 from
``disk_mesh(1, 0.2)``, ``tol=1e-10`` converged with ⟨x²⟩ 1.0e-8 off and an estimate of
1.4e-11 (review R24).

For a reflecting boundary the density reaches the circle, and moving the boundary by the
gap adds (or removes) a strip of width gap where the density is P: to first order

    ⟨q⟩_h − ⟨q⟩ = ∮ (q − ⟨q⟩) P gap ds / ∫ P dA,     ∫|P_h − P| ≲ 2 ∮ |P gap| ds.

(Exact for detailed balance, where the shape of P does not depend on the domain; for
other models the first term of the change.)  An absorbing boundary has P = 0 there: its
first-order term is of the fluxes, and is not added.
"""
from __future__ import annotations

import numpy as np

from .estimate import SAFETY
from .geometry import boundary_basis

__all__ = ["boundary_term", "add_boundary_term"]

#: the moments of the estimates (raw second moments, as fpsolve.fe.estimate)
_MOMENTS = {"x2": 0, "y2": 1}


def boundary_term(sol) -> tuple[dict, dict] | None:
    """(absolute corrections, per-element indicators) of x2, y2 and L1 from the curved
    boundary of a reflecting solve on a disk (None for other solves).

    Parameters
    ----------
    sol : Solution
        A solved reflecting problem on a mesh that knows its circle (``mesh.radius``).

    Returns
    -------
    (dict, dict) or None
        ``correction[g]``: the first-order ⟨q⟩_h − ⟨q⟩ (L1: the bound 2∮|P gap| ds);
        ``indicators[g]``: its absolute contribution per element (boundary elements only).
    """
    mesh = sol.mesh
    if mesh.radius is None or sol.boundary != "reflecting":
        return None
    fb = boundary_basis(sol.basis, intorder=2 * sol.order + 6)
    x, y = (np.asarray(c) for c in fb.global_coordinates())
    c = np.asarray(mesh.center, dtype=float)
    gap = np.hypot(x - c[0], y - c[1]) - mesh.radius
    if sol.weight is None:
        P = np.asarray(fb.interpolate(sol.P))
    else:
        P = sol.weight(x, y) * np.asarray(fb.interpolate(sol._u()))
    ds = np.asarray(fb.dx)
    mass = sol.mass
    x2 = _raw_second_moments(sol)
    corr, ind = {}, {}
    for g, axis in _MOMENTS.items():
        per_facet = np.sum(((x, y)[axis] ** 2 - x2[axis]) * P * gap * ds, axis=1) / mass
        corr[g] = float(per_facet.sum())
        ind[g] = np.bincount(fb.tind, np.abs(per_facet), minlength=mesh.nelements)
    per_facet = 2.0 * np.sum(np.abs(P * gap) * ds, axis=1) / mass
    corr["L1"] = float(per_facet.sum())
    ind["L1"] = np.bincount(fb.tind, per_facet, minlength=mesh.nelements)
    return corr, ind


def add_boundary_term(sol, est) -> None:
    """Add :func:`boundary_term` to the estimate ``est`` of ``sol`` (in place): relative
    estimates grow by ``SAFETY``·|correction|/|q|, indicators by the per-element part;
    ``est.diagnostics["geometry"]`` records the corrections."""
    term = boundary_term(sol)
    if term is None:
        return
    corr, ind = term
    x2 = _raw_second_moments(sol)
    scale = {"x2": abs(x2[0]), "y2": abs(x2[1]), "L1": 1.0}
    for g, value in corr.items():
        if g in est.relative and scale[g] > 0:
            est.relative[g] = float(est.relative[g] + SAFETY * abs(value) / scale[g])
            if g in est.indicators:
                est.indicators[g] = est.indicators[g] + ind[g]
    est.diagnostics["geometry"] = corr


def _raw_second_moments(sol) -> np.ndarray:
    """(⟨x²⟩, ⟨y²⟩): the raw moments the estimates' "x2", "y2" are of."""
    mom = sol.moments()
    return mom["cov"].diagonal() + mom["mean"] ** 2
