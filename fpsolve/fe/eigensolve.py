"""The eigen-solves behind :class:`~fpsolve.fe.solver.Problem`: sparse LU and inverse iteration.

* Absorbing boundary: :func:`_quasi_stationary`, the principal eigenpair of A p = μ M p on
  the interior dofs, by inverse iteration with one sparse LU (:func:`_inverse_iteration`,
  its stop rules on the componentwise residual); slow iterations (μ₂/μ₁ near 1) go on
  with the LU of A − σM (:func:`_slow_shift`); the adaptive loop may ask for a shift
  itself; a stall whose boundary layer is below round-off is re-solved there
  (:mod:`fpsolve.fe.layer`); ARPACK shift-invert is the last fallback.
* Reflecting boundary: :func:`_stationary_reflecting`, the null vector of A (pinned).

:mod:`fpsolve.fe.solver` (``Problem``) imports from here; the names it re-exports stay
available there.
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

class SolverError(RuntimeError):
    """The linear algebra failed (singular system, no convergence)."""


def _splu(A, reuse: bool = False, min_size: int | None = None):
    """Sparse LU of a FE matrix with a symmetric sparsity pattern.

    SuperLU's default (COLAMD on AᵀA, unsymmetric mode) fills in 1.5-3x as much
    and factorises 2-5x slower on P2 matrices of 20k-190k dofs (docs/performance.md);
    symmetric mode keeps a fill-reducing order on Aᵀ+A while partial pivoting (the
    default diag_pivot_thresh=1) is unchanged.  The order is METIS nested dissection
    when ``pymetis`` is installed (a core dependency; computed once per
    sparsity pattern and cached), else SuperLU's minimum degree on Aᵀ+A: nested
    dissection factorises P3 matrices several times faster from ~80k dofs on
    (docs/ordering.md).  ``reuse`` (a sweep factorises the pattern many times) lets
    P2 matrices use the nested-dissection order too.
    """
    from . import ordering as _ordering

    return _ordering.splu(A, reuse=reuse, min_size=min_size)


#: the inverse iteration also stops only when every row's residual is this small against
#: that row's own terms (|A||p|): the boundary-layer values, e^(−barrier/D) of the bulk,
#: carry μ_flux; a max-norm test stops while they are still wrong (radial OU δ = 0.005:
#: μ = 7.9e-32 after 2 steps, the converged 7.0e-42 after 3)
COMPONENTWISE_TOL = 1e-10
#: ... unless that residual has stopped falling for this many sweeps of an unchanging
#: iterate (paper landscape Δ_S = 0.004, 62k dofs: stuck at 1e-5 in 16 rows where P_h
#: crosses zero from the 2nd sweep on; the loop ran 100 sweeps and ARPACK for nothing)
COMPONENTWISE_STALL = 3
#: ... and is then followed by a re-solve of the region where P is tiny (fe/layer.py): its
#: values there may be round-off (paper landscape Δ_S = 0.002, h = 0.014: μ_flux −4e-39
#: from the LU, 8.2e-53 after).  A result whose componentwise residual is still above this,
#: or whose re-solve did not converge, is flagged
COMPONENTWISE_CEILING = 1e-4


def _componentwise_residual(AII, absA, MII, p, mu) -> float:
    """max_i |A p − μ M p|_i / (|A| |p|)_i over the rows with a nonzero scale."""
    r = np.abs(AII @ p - mu * (MII @ p))
    scale = absA @ np.abs(p)
    ok = scale > 0
    return float(np.max(r[ok] / scale[ok])) if ok.any() else 0.0


class _InteriorBlocks:
    """The interior blocks of a problem's matrices, with what depends only on their pattern
    (or, for the mass matrix, on the matrix) kept for the next strength.

    ``A[I][:, I].tocsc()`` and ``abs(·).tocsr()`` gather the same entries of ``A.data`` for
    every A of one sparsity pattern: the gathers are recorded once (by slicing the entry
    positions) and replayed, which gives the same arrays bit for bit without the slicing
    and conversions (~40 ms a case at 82k P3 dofs).  ``M`` does not depend on the strength.
    Shared by the problems on one mesh (Fig. 3: both noise models).
    """

    def __init__(self, I):
        self.I = I
        self._pattern = None     # A's indptr, indices; the CSC and CSR gathers and structures
        self._mass = None        # (Mstab, M_II, ∫ of each interior basis function)
        self._mass_T = None      # (Mop, Mop.T as CSR)

    def stiffness(self, A):
        """(A_II as CSC, |A_II| as CSR), as ``A[I][:, I].tocsc()`` and ``abs(A_II).tocsr()``."""
        A = A.tocsr()
        if not A.has_canonical_format:          # duplicates: no one-to-one gather
            AII = A[self.I][:, self.I].tocsc()
            return AII, abs(AII).tocsr()
        pat = self._pattern                     # read once: other threads may replace it
        if not (pat is not None and np.array_equal(pat[0], A.indptr)
                and np.array_equal(pat[1], A.indices)):
            # the positions (+1: none is an explicit zero) go through the same slicing
            pos = sp.csr_matrix((np.arange(1.0, A.nnz + 1.0), A.indices, A.indptr),
                                shape=A.shape)
            csc = pos[self.I][:, self.I].tocsc()
            csr = csc.tocsr()
            pat = (A.indptr.copy(), A.indices.copy(),
                   [(c.data.astype(np.int64) - 1, c.indices, c.indptr) for c in (csc, csr)])
            self._pattern = pat
        (gc, ic, pc), (gr, ir, pr) = pat[2]
        n = self.I.size
        AII = sp.csc_matrix((A.data[gc], ic, pc), shape=(n, n))
        absA = sp.csr_matrix((np.abs(A.data[gr]), ir, pr), shape=(n, n))
        return AII, absA

    def mass_T(self, Mop):
        """``Mop.T`` as CSR (the error estimate's duals), kept for the next strength."""
        m = self._mass_T
        if m is None or m[0] is not Mop:
            m = self._mass_T = (Mop, Mop.T.tocsr())
        return m[1]

    def mass(self, Mstab):
        """(M_II as CSR, its column sums)."""
        m = self._mass
        if m is None or m[0] is not Mstab:
            MII = Mstab[self.I][:, self.I].tocsr()
            m = self._mass = (Mstab, MII, np.asarray(MII.sum(axis=0)).ravel())
        return m[1], m[2]


#: a shifted inverse iteration (adaptive levels, σ just below the previous level's μ) is
#: kept only if it found 0 < μ − σ ≤ SHIFT_WINDOW·σ and a density of one sign
#: (:func:`_shift_accepted`); else the level is solved again without the shift.  The
#: eigenvalue nearest σ is the principal one when σ < μ₁, but the window alone cannot tell:
#: σ = 1.25 μ₁ at Δ_S = 0.03 (μ₂ = 1.3 μ₁) put μ₂ inside it (review R1)
SHIFT_WINDOW = 0.05
#: ... and the density of the pair found must not dip below −SHIFT_SIGN·max: the
#: principal mode's undershoots are discretisation error (≤ a few % of max P on the
#: coarsest meshes measured); a higher mode changes sign at O(max)
SHIFT_SIGN = 0.5
#: a plain solve whose inverse iteration still moves after this many sweeps (μ₂/μ₁ near 1:
#: paper landscape Δ_S = 0.03, h = 0.056 took 68 sweeps; from 0.05 on, 100 and then ARPACK)
#: goes on with A − σM, σ just below its μ estimate (:func:`_slow_shift`)
SLOW_SWEEPS = 8
#: ... σ = μ_k(1 − offset), offset = SLOW_MARGIN·|μ_k − μ_(k−1)|/μ_k within these bounds.
#: Measured from the constant start vector (Δ_S = 0.03-0.4): μ_k approaches μ₁ from below
#: with an error 1-1.5× its last change, so σ < μ₁ with μ₁ − σ a few times that error
SLOW_MARGIN = 3.0
SLOW_OFFSET = (1e-6, 1e-2)


def _shift_accepted(mu: float, sigma: float, p: np.ndarray) -> bool:
    """Whether a shifted iteration found the principal pair (μ in the window, p of one
    sign up to discretisation undershoots)."""
    if not 0.0 < mu - sigma <= SHIFT_WINDOW * sigma:
        return False
    top = np.max(np.abs(p))
    return bool(np.max(-p * np.sign(p[np.argmax(np.abs(p))])) <= SHIFT_SIGN * top)


def _quasi_stationary(A, Mstab, M, I, B, tol=1e-13, maxit=100, reuse=False, blocks=None,
                      min_size=None, shift=None):
    """Principal eigenpair of A p = μ M p on the interior dofs (inverse iteration).

    ``blocks``: the problem's :class:`_InteriorBlocks` of I (kept between strengths).
    ``shift``: σ (< μ) of the adaptive loop: A − σM is factorised instead of A, and the
    iteration contracts by (μ − σ)/(μ₂ − σ) instead of μ/μ₂; the returned LU is then of
    A − σM (``info["stop"]["shift"]`` = σ).  None (default): σ = 0, as before.
    """
    t0 = time.perf_counter()
    blocks = _InteriorBlocks(I) if blocks is None else blocks
    AII, absA = blocks.stiffness(A)
    MII, mI = blocks.mass(Mstab)
    sigma = 0.0 if shift is None else float(shift)
    system = (AII, absA, MII, mI)
    try:
        lu = _interior_lu(AII if sigma == 0.0 else (AII - sigma * MII).tocsc(), reuse, min_size)
        tf = time.perf_counter() - t0
        p, mu, it, stop, cw, method = _inverse_iteration(
            lu, *system, sigma, tol, maxit, slow=SLOW_SWEEPS if shift is None else None)
    except SolverError:
        if sigma == 0.0:
            raise
        mu, it, tf = np.nan, 0, time.perf_counter() - t0    # σ an eigenvalue: no shift
        stop = None
    rejected = None
    if stop == "slow":          # a plain solve with μ₂/μ₁ near 1: go on shifted
        shift = _slow_shift(mu, cw)
        p, mu, it, stop, cw, method, lu, sigma, tf, rejected = _shifted_continuation(
            system, p, mu, it, lu, shift, tol, maxit, reuse, min_size, tf)
    elif sigma != 0.0 and not (np.isfinite(mu) and _shift_accepted(mu, sigma, p)):
        rejected = float(mu)                 # not certainly the principal pair: no shift
        t1 = time.perf_counter()
        lu, sigma = _interior_lu(AII, reuse, min_size), 0.0
        tf += time.perf_counter() - t1
        p, mu, it2, stop, cw, method = _inverse_iteration(lu, *system, 0.0, tol, maxit)
        it += it2
    P = np.zeros(A.shape[0])
    P[I] = p
    P /= (M @ P).sum()
    AP = A @ P
    mu_flux = float(-AP[B].sum() / (Mstab @ P)[I].sum())
    stop = {"reason": stop, "sweeps": it, "componentwise_residual": float(cw)}
    if shift is not None:
        stop["shift"] = float(sigma)
        if rejected is not None:
            stop["shift_rejected"] = {"shift": float(shift), "eigenvalue": rejected}
    # a stall above the ceiling gets the re-solve too: where it succeeds the result is
    # checked (its residual below the ceiling) instead of flagged wholesale (review R11)
    if stop["reason"] != "converged" and (not cw <= COMPONENTWISE_CEILING
                                          or _layer_below_round_off(A, B, P)):
        P, mu_flux = _resolve_layer(A, Mstab, M, I, B, P, mu_flux, lu, stop,
                                    (AII, absA, MII))
    r = AII @ P[I] - mu * (MII @ P[I])
    normA = absA.sum(axis=1).max()          # spla.norm(AII, np.inf), from |A_II| at hand
    residual = float(np.max(np.abs(r)) / (normA * np.max(np.abs(P))))
    # μ = pᵀAp/pᵀMp is known to ~ε‖M⁻¹A‖, not ε‖A‖: on graded meshes the smallest
    # elements set it (A_ii/M_ii ~ D/h²); the larger of the two is the round-off floor
    dM = MII.diagonal()
    ratio = np.abs(AII.diagonal())[dM > 0] / dM[dM > 0]
    scale = max(normA, float(ratio.max()) if ratio.size else 0.0)
    return P, float(mu), {"residual": residual, "mu_flux": mu_flux, "iterations": it,
                          "method": method, "factorisation_s": tf,
                          "eig_floor": 10 * np.finfo(float).eps * scale, "lu": lu,
                          "stop": stop}


def _slow_shift(mu: float, dmu: float) -> float | None:
    """σ for a slow plain iteration at μ_k = ``mu`` whose last change was ``dmu``, or None
    (μ_k not positive)."""
    if not (np.isfinite(mu) and mu > 0):
        return None
    offset = min(SLOW_OFFSET[1], max(SLOW_OFFSET[0], SLOW_MARGIN * abs(dmu) / mu))
    return (1.0 - offset) * mu


def _shifted_continuation(system, p, mu, it, lu, shift, tol, maxit, reuse, min_size, tf):
    """Continue a slow unshifted iteration from its iterate ``p`` with A − σM, σ = ``shift``;
    kept if :func:`_shift_accepted`, else the unshifted iteration goes on from ``p``.

    Returns (p, μ, sweeps, stop, cw, method, lu, σ, factorisation seconds, rejected μ).
    """
    AII, MII = system[0], system[2]
    if shift is not None:
        t1 = time.perf_counter()
        try:
            lu_s = _interior_lu((AII - shift * MII).tocsc(), reuse, min_size)
            tf += time.perf_counter() - t1
            q, nu, it2, stop, cw, method = _inverse_iteration(lu_s, *system, shift, tol,
                                                              maxit, p0=p)
            if np.isfinite(nu) and _shift_accepted(nu, shift, q):
                return q, nu, it + it2, stop, cw, method, lu_s, shift, tf, None
            it, rejected = it + it2, float(nu)
        except SolverError:         # σ at an eigenvalue (cannot happen below μ₁): no shift
            rejected = float("nan")
    else:
        rejected = float("nan")
    q, nu, it2, stop, cw, method = _inverse_iteration(lu, *system, 0.0, tol, maxit, p0=p)
    return q, nu, it + it2, stop, cw, method, lu, 0.0, tf, rejected


def _interior_lu(K, reuse, min_size):
    try:
        return _splu(K, reuse, min_size)
    except RuntimeError as exc:   # exactly singular: no escape at all (μ = 0)
        raise SolverError(f"absorbing solve: interior operator is singular ({exc})") from None


def _inverse_iteration(lu, AII, absA, MII, mI, sigma, tol, maxit, slow=None, p0=None):
    """Inverse iteration with ``lu`` of A_II − σ M_II from ``p0`` (default: the constant
    vector), with the stop rules below; ARPACK shift-invert (same LU) after ``maxit`` sweeps.
    With ``slow``, an iterate that still moves after that many sweeps is returned with the
    stop reason ``"slow"`` and μ's last change in place of the componentwise residual.

    Returns (p, μ, sweeps, stop reason, componentwise residual, method).
    """
    p = np.ones(MII.shape[0]) if p0 is None else p0.copy()
    p /= mI @ p
    mu, method, it = np.nan, "inverse-iteration", 0
    best, stalled, cw, stop = np.inf, 0, np.nan, "max-sweeps"
    for it in range(1, maxit + 1):
        q = lu.solve(MII @ p)
        mass = mI @ q
        if not np.isfinite(mass) or mass == 0:
            raise SolverError("absorbing solve: inverse iteration broke down (non-finite iterate)")
        nu = 1.0 / mass                 # = μ − σ
        q *= nu
        mu, mu_prev = sigma + nu, mu    # σ = 0: exactly ν
        change = np.max(np.abs(q - p)) / np.max(np.abs(q))
        p = q
        if slow is not None and it >= slow and not change < tol:
            return p, mu, it, "slow", mu - mu_prev, method
        if change < tol:
            cw = _componentwise_residual(AII, absA, MII, p, mu)
            if cw < COMPONENTWISE_TOL:
                stop = "converged"
                break
            # the iterate no longer changes and the componentwise residual sits at its
            # round-off floor (the LU's normwise backward error ε‖A‖‖p‖ shows in the rows
            # where |p| ≪ max|p| once P_h changes sign, i.e. A is no M-matrix): further
            # sweeps, and ARPACK after them, return the same vector
            stalled = stalled + 1 if cw > 0.5 * best else 0
            best = min(best, cw)
            if stalled >= COMPONENTWISE_STALL:
                stop = "stalled" if cw <= COMPONENTWISE_CEILING else "stalled-above-ceiling"
                break
    else:
        # slow convergence (small spectral gap): ARPACK shift-invert, same factorisation
        method = "arpack"
        op = spla.LinearOperator(AII.shape, matvec=lu.solve, dtype=float)
        try:
            vals, vecs = spla.eigs(AII, k=1, M=MII, sigma=sigma, OPinv=op, v0=p, tol=1e-14)
        except spla.ArpackNoConvergence as exc:
            raise SolverError(f"absorbing solve: eigen-solver did not converge ({exc})") from None
        mu = float(np.real(vals[0]))
        p = np.real(vecs[:, 0])
        p /= mI @ p
        cw = _componentwise_residual(AII, absA, MII, p, mu)
        stop = "arpack"
    return p, mu, it, stop, cw, method


def _layer_below_round_off(A, B, P) -> bool:
    from .layer import below_round_off

    return below_round_off(A, B, P)


def _resolve_layer(A, Mstab, M, I, B, P, mu_flux, lu, stop, interior):
    """P where it is tiny re-solved to relative accuracy (:mod:`.layer`), when the inverse
    iteration did not converge componentwise and P next to the boundary is below
    ``layer.LAYER_TRIGGER`` of its maximum: its layer values may be round-off then
    (paper landscape Δ_S = 0.002, h = 0.014: μ_flux −4.0e-39 from the LU, 8.23e-53 after).
    Records ``stop["layer"]`` (with the outflow μ before); the componentwise residual of the
    result replaces the stalled one.  Returns (P, μ_flux)."""
    from .layer import resolve_layer

    Q, info = resolve_layer(A, Mstab, I, P, mu_flux, getattr(lu, "perm", None))
    Q /= (M @ Q).sum()
    mu_q = float(-(A @ Q)[B].sum() / (Mstab @ Q)[I].sum())
    info["escape_rate_before"] = mu_flux
    stop["layer"] = info
    stop["componentwise_residual"] = _componentwise_residual(*interior, Q[I], mu_q)
    return Q, mu_q


def _stationary_reflecting(A, M, k, reuse=False, min_size=None):
    """Null vector of A (reflecting): pin P_k = 1, drop equation k, renormalise."""
    t0 = time.perf_counter()
    N = A.shape[0]
    lu = keep = None

    def pinned(k):
        nonlocal lu, keep
        keep = np.setdiff1d(np.arange(N), [k])
        Akk = A[keep][:, keep].tocsc()
        rhs = -np.asarray(A[keep][:, [k]].todense()).ravel()
        try:
            lu = _splu(Akk, reuse, min_size)
        except RuntimeError as exc:
            raise SolverError(f"reflecting solve: pinned system is singular ({exc})") from None
        P = np.zeros(N)
        P[k] = 1.0
        P[keep] = lu.solve(rhs)
        return P

    P = pinned(k)
    method = "pinned"
    if abs(P[k]) < 1e-6 * np.max(np.abs(P)):   # pinned where P is tiny: pin at the maximum
        P = pinned(int(np.argmax(np.abs(P))))
    P /= (M @ P).sum()
    tf = time.perf_counter() - t0
    residual = float(np.max(np.abs(A @ P)) / (spla.norm(A, np.inf) * np.max(np.abs(P))))
    return P, {"residual": residual, "method": method, "factorisation_s": tf, "lu": lu,
               "keep": keep}
