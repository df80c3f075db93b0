"""Conforming local refinement of disk meshes, and Dörfler marking.

scikit-fem's ``MeshTri.refined(marked)`` refines the marked triangles red–green–blue
(conforming, no hanging nodes).  New vertices on boundary edges are the chord midpoints;
they are moved onto the circle as :func:`~fpsolve.fe.mesh.disk_mesh` does, so the
straight mesh stays inscribed in the disk and :meth:`Mesh.geometry` keeps curving the
P2/P3 boundary elements onto the circle.
"""
from __future__ import annotations

import numpy as np

from .mesh import Mesh, MeshError, _signed_areas, _snap

__all__ = ["refine", "dorfler"]


def dorfler(indicators: np.ndarray, theta: float = 0.5) -> np.ndarray:
    """Smallest set of elements whose indicators sum to ≥ θ·total (Dörfler marking).

    Parameters
    ----------
    indicators
        Non-negative element indicators.
    theta
        Bulk fraction, 0 < θ ≤ 1.

    Returns
    -------
    ndarray of int
        Marked element indices (empty when all indicators vanish).
    """
    eta = np.asarray(indicators, dtype=float)
    if not 0 < theta <= 1:
        raise ValueError(f"theta: expected 0 < theta <= 1, got {theta!r}")
    if eta.ndim != 1 or np.any(~np.isfinite(eta)) or np.any(eta < 0):
        raise ValueError("indicators: expected a 1-D array of finite non-negative numbers")
    total = eta.sum()
    if total <= 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-eta, kind="stable")
    n = int(np.searchsorted(np.cumsum(eta[order]), theta * total * (1 - 1e-12))) + 1
    return np.sort(order[:min(n, eta.size)])


def refine(mesh: Mesh, marked) -> Mesh:
    """Refine the ``marked`` triangles (and the closure scikit-fem adds) conformingly.

    On a disk the new boundary vertices are snapped to the circle; a snap that would
    invert a triangle raises :class:`MeshError` (it cannot happen for a boundary edge
    shorter than the circle's radius).
    """
    marked = np.unique(np.asarray(marked, dtype=np.int64))
    if marked.size and (marked[0] < 0 or marked[-1] >= mesh.nelements):
        raise ValueError(f"marked: element indices must lie in [0, {mesh.nelements})")
    if marked.size == 0:
        return mesh
    m = mesh.skfem.refined(marked)
    if mesh.radius is not None:
        before = np.sign(_signed_areas(m.p, m.t))
        m = _snap(m, mesh.radius, mesh.center)
        after = _signed_areas(m.p, m.t)
        if np.any(np.sign(after) != before) or np.any(after == 0):
            raise MeshError("refine: snapping the new boundary vertices to the circle "
                            "inverted a triangle")
    level = mesh.source.count("refine") + 1
    return Mesh(m, mesh.radius, mesh.center, f"{mesh.source} +refine{level}({marked.size})")
