"""The quasi-stationary density where it is exponentially small, to relative accuracy.

The inverse iteration's LU gives P with an error of ~ε·max P spread over the dofs (its
normwise backward error, amplified along the slow modes of a flat landscape).  The escape
rate is the outflow of P through the absorbing boundary, where P is e^(−barrier/D) of its
maximum: once the discrete P there falls below that floor, μ_flux is noise.  Measured on
the paper landscape at Δ_S = 0.002 (P3, uniform h = 0.014, 667k dofs): μ_flux = −4.0e-39
while the discrete problem's μ is 8.23e-53 (h = 0.02: 7.97e-53); the inverse iteration's
componentwise residual stalled at 3e-2.

Away from the core the eigen-equations of P are a Dirichlet problem that is far from
singular: on S = {i ∈ I : |P_i| < :data:`LAYER_FRACTION`·max P},

    Σ_{j∈S} (A − μM)_ij P_j = −Σ_{j∉S} (A − μM)_ij P_j,   i ∈ S,

with the core values as data (0 on the boundary).  P decays outward from the data, so
the solution keeps the data's relative accuracy (~ε/LAYER_FRACTION) down to any size;
iterative refinement with double-double residuals (:mod:`.exact_residual`) takes the LU
solve there, as for the μ weight (:mod:`.estimate`).
"""
from __future__ import annotations

import numpy as np

__all__ = ["LAYER_FRACTION", "LAYER_RTOL", "LAYER_TRIGGER", "below_round_off",
           "resolve_layer"]

#: the re-solve is needed only where P next to the boundary is below this fraction of its
#: maximum.  Measured (paper landscape, stalled iterations): the LU's layer was right to
#: ≥ 6 digits down to ~1e-32 (Δ_S = 0.002, h = 0.04 … 0.02, adaptive levels to 393k dofs)
#: and wrong from 4e-30 (Δ_S = 0.0015, h = 0.04: μ 25 % off) and ~1e-50 (Δ_S = 0.002,
#: h = 0.025, 0.014); Fig. 3-like stalls (h = 0.1) have 6e-9 … 7e-12
LAYER_TRIGGER = 1e-20

#: the re-solved region: where P is below this fraction of its maximum.  The core data then
#: carry a relative error of ~ε·(LU growth)/LAYER_FRACTION; μ came out the same to 9 digits
#: with 1e-8 and 1e-3 (Δ_S = 0.002, h = 0.014)
LAYER_FRACTION = 1e-6
#: refinement until every correction is below this, relative, componentwise
LAYER_RTOL = 1e-6


def below_round_off(A, B: np.ndarray, P: np.ndarray) -> bool:
    """Whether P on the interior dofs coupled to the boundary B (those that carry the
    outflow μ) is below :data:`LAYER_TRIGGER` of max P."""
    near = np.setdiff1d(np.unique(A.tocsr()[B].indices), B)
    return near.size > 0 and np.max(np.abs(P[near])) < LAYER_TRIGGER * np.max(P)


def resolve_layer(A, Mstab, I: np.ndarray, P: np.ndarray, mu: float, perm=None
                  ) -> tuple[np.ndarray, dict]:
    """P on the outer region re-solved as a Dirichlet problem, to relative accuracy.

    Parameters
    ----------
    A, Mstab
        The full stiffness matrix and the eigenproblem's mass matrix (all dofs).
    I
        Interior dofs (P = 0 on the others).
    P
        The inverse iteration's density on all dofs.
    mu
        The escape rate in the equations (its size against ‖A‖ hardly matters: μ ≪ ε‖A‖
        where this is needed).
    perm
        The global LU's fill-reducing order on I (restricted to S), or None.

    Returns
    -------
    P : ndarray
        P with its values on S replaced (not re-normalised).
    info : dict
        ``subdomain`` (dofs of S), ``refinements``, ``change`` (largest componentwise
        relative correction of the last refinement) and ``resolved`` (change ≤
        :data:`LAYER_RTOL`).
    """
    from . import ordering
    from .exact_residual import refine

    sub = np.abs(P[I]) < LAYER_FRACTION * np.max(P)
    S = I[sub]
    out = np.array(P, dtype=float)
    if S.size == 0:
        return out, {"subdomain": 0, "refinements": 0, "change": 0.0, "resolved": True}
    K = (A - mu * Mstab).tocsr()[S]
    out[S] = 0.0
    rhs = -(K @ out)                       # the core's values as Dirichlet data
    # the primal's order restricted to S; where the primal kept SuperLU's own order
    # (small or graded matrices), so does this block
    perm = None if perm is None else ordering.restrict(perm, np.flatnonzero(sub))
    lu = ordering.splu(K[:, S].tocsc(), perm=perm, min_size=None if perm is not None else np.inf)
    out[S] = lu.solve(rhs)
    out, info = refine(K, np.zeros(S.size), out, lu.solve, cols=S, rtol=LAYER_RTOL, maxit=8)
    return out, {"subdomain": int(S.size), "refinements": info["iterations"],
                 "change": info["change"], "resolved": info["change"] <= LAYER_RTOL}
