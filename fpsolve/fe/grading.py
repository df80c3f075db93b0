"""A-priori grading: how fast log P varies across each element, from the model alone.

Where the probability current nearly balances (J = −βP − D∇P ≈ 0, local equilibrium),
∇log P = −D⁻¹β.  Across an element of size h the logarithm of P then changes by about
h|D⁻¹β|: :func:`equilibrium_variation`.  The cell Péclet number h|β|³/βᵀDβ of
:func:`fpsolve.fe.adapt.element_peclet` uses the diffusion along β only, and is the same
number only where β is an eigenvector of D; for the strongly anisotropic SGD noise
(D = Δ_S H²) it is several times smaller (docs/adaptivity.md, small-noise section).

Neither needs a discrete density: they can grade a mesh before P_h is trustworthy.
"""
from __future__ import annotations

import numpy as np

from .assembly import _beta0

__all__ = ["element_sizes", "element_points", "equilibrium_variation"]


def element_sizes(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Longest edge h_K of every triangle (``p``: (2, nv) vertices, ``t``: (3, ne))."""
    return np.max([np.linalg.norm(p[:, t[i]] - p[:, t[(i + 1) % 3]], axis=0)
                   for i in range(3)], axis=0)


def element_points(p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y of the centroid and the three corners of every triangle, each (4, ne)."""
    x, y = np.concatenate([p[:, t].mean(axis=1)[:, None], p[:, t]], axis=1)
    return x, y


def equilibrium_variation(p, t, landscape, drift, diffusion) -> np.ndarray:
    """h_K Σ_q |adj(D_q) β_q| / Σ_q det D_q per element: the local-equilibrium h|D⁻¹β|.

    Parameters
    ----------
    p, t : ndarray
        Mesh vertices (2, nv) and triangles (3, ne) (straight elements suffice: the
        number is an estimate of size, not a quadrature).
    landscape, drift, diffusion
        The model as a :class:`~fpsolve.fe.solution.Solution` carries it: β = ∇L + ∇·D
        for a gradient drift, −b + ∇·D for a user drift b.

    Returns
    -------
    ndarray
        One number per element, the change of log P across it if J = 0 there; 0 where
        β = 0 at every point, ``inf`` where D is singular at all four points while
        adj(D)β is not zero.

    Notes
    -----
    D⁻¹β = adj(D)β / det D.  Summing numerator and denominator over the centroid and
    the corners (as ``element_peclet`` sums |β|³ and βᵀDβ) keeps the number finite
    where D is singular at one of the points only (SGD noise: det H = 0 on curves).
    For constant D it is h times the mean of |D⁻¹β| over the four points.
    """
    p, t = np.asarray(p, dtype=float), np.asarray(t)
    x, y = element_points(p, t)
    Dhat, divhat = diffusion.unit_coefficients(x, y)
    s = diffusion.strength
    beta = _beta0(landscape, drift, x, y) + s * np.asarray(divhat)
    D = s * np.asarray(Dhat)
    a, b, c = D[0, 0], D[0, 1], D[1, 1]
    adj_beta = np.hypot(c * beta[0] - b * beta[1], a * beta[1] - b * beta[0]).sum(axis=0)
    det = (a * c - b * b).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(adj_beta > 0, element_sizes(p, t) * adj_beta / det, 0.0)
    # det < 0 only by round-off of a singular PSD tensor
    return np.where(det > 0, v, np.where(adj_beta > 0, np.inf, 0.0))
