"""Residuals of sparse systems in double-double arithmetic, and iterative refinement with them.

A direct (LU) solve of ``K x = b`` is backward stable only in norm: its error is
ε·‖K‖·‖x‖ spread over all components, so where the exact ``x`` is far below ‖x‖ (the
μ weight of an exponentially small escape rate: 1e-25 deep inside, O(1) at the
boundary) the computed values are round-off.  Iterative refinement ``x ← x + LU⁻¹(b − Kx)``
recovers them to relative accuracy component by component, provided the residual itself
is exact enough: here every product ``K_ij x_j`` is formed without error (Dekker's
two-product) and summed with two-sum into a double-double accumulator, so the residual
is the one of the stored matrix to ~2^-104 of the size of its terms, rounded to double.  The stored ``K`` and ``b`` are exact by
definition: the target is the solution of the discrete system.
"""
from __future__ import annotations

import numpy as np

__all__ = ["dd_residual", "dd_row_sums", "refine"]


def dd_residual(K, x: np.ndarray, b: np.ndarray, b_low: np.ndarray | None = None,
                low: bool = False):
    """``b + b_low − K x`` for a CSR matrix, accumulated in double-double, then rounded.

    Parameters
    ----------
    K : scipy.sparse.csr_matrix
        The system matrix, rows = equations (taken as exact).
    x : ndarray
        The approximate solution (``K.shape[1]`` entries).
    b, b_low : ndarray
        The right-hand side as an unevaluated sum ``b + b_low`` (``b_low`` defaults to 0):
        a double-double right-hand side keeps what forming it lost to cancellation.
    low : bool
        Return the pair ``(hi, lo)`` of the double-double result instead of ``hi``.

    Returns
    -------
    ndarray, or (ndarray, ndarray) with ``low``
        The residual rounded to double (its high part), or its two parts.
    """
    K = K.tocsr()
    b = np.ascontiguousarray(b, dtype=float)
    bl = np.zeros_like(b) if b_low is None else np.ascontiguousarray(b_low, dtype=float)
    hi, lo = np.empty(K.shape[0]), np.empty(K.shape[0])
    from ._dd_kernels import residual     # numba: imported on first use only

    residual(K.indptr.astype(np.int64), K.indices.astype(np.int64),
              np.ascontiguousarray(K.data, dtype=float), np.ascontiguousarray(x, dtype=float),
              b, bl, hi, lo)
    return (hi, lo) if low else hi


def dd_row_sums(K) -> tuple[np.ndarray, np.ndarray]:
    """Row sums of a sparse matrix as a double-double pair (no cancellation).

    Parameters
    ----------
    K : scipy.sparse matrix

    Returns
    -------
    (ndarray, ndarray)
        ``(hi, lo)``: the sums are ``hi + lo``.
    """
    hi, lo = dd_residual(K, np.ones(K.shape[1]), np.zeros(K.shape[0]), low=True)
    return -hi, -lo


def refine(K, b: np.ndarray, x: np.ndarray, solve, cols=None, b_low: np.ndarray | None = None,
           rtol: float = 1e-3, maxit: int = 6) -> tuple[np.ndarray, dict]:
    """Iterative refinement of ``K x = b`` with double-double residuals.

    Parameters
    ----------
    K : scipy.sparse matrix
        The system (exact by definition), one row per equation; its columns are the
        entries of ``x``, of which only ``cols`` are unknowns (the others are fixed
        values, e.g. Dirichlet data, whose products stay in the residual exactly).
    b, b_low : ndarray
        Right-hand side ``b + b_low`` (see :func:`dd_residual`).
    x : ndarray
        A first solution (e.g. the direct solve's).
    solve : callable
        ``solve(r)`` ≈ ``K[:, cols]⁻¹ r``: the LU that produced ``x``.
    cols : ndarray of int, optional
        The unknowns (default: all entries of ``x``).
    rtol : float
        Stop when every correction is below ``rtol`` of its component.
    maxit : int
        At most this many corrections.

    Returns
    -------
    x : ndarray
        The refined solution.
    info : dict
        ``iterations`` and ``change`` (the largest componentwise relative correction of the
        last step; > rtol means the refinement did not converge).
    """
    x = np.array(x, dtype=float)
    cols = np.arange(x.size) if cols is None else np.asarray(cols)
    K = K.tocsr()
    change = np.inf
    it = 0
    for it in range(1, maxit + 1):
        d = solve(dd_residual(K, x, b, b_low))
        x[cols] += d
        xc = x[cols]
        nz = xc != 0.0
        change = float(np.max(np.abs(d[nz]) / np.abs(xc[nz]), initial=0.0))
        if change <= rtol:
            break
    return x, {"iterations": it, "change": change}
