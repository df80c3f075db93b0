"""Error estimate of the relaxation spectrum (:mod:`.spectrum`): λ_k against λ_{k+1}.

The same pencil is solved again in V_{k+1} on the same mesh (the plain Galerkin
operator, or the Gibbs-weighted pencil with the same weight, as the exit time's
estimate :mod:`.mfpt_estimate`), for a few more rates than asked, with the same
shift-invert near 0.  Each P_k rate is paired with a V_{k+1} rate by its *mode*: the
P_k eigenfunction is embedded exactly in V_{k+1} and the pairing maximises the summed
M-cosines of the paired modes, with the rates' relative distance as a tie-break
(:func:`match`).  Pairing by value alone mis-pairs the modes of a cluster that the mesh
splits differently in P_k and P_{k+1} (the rate-2 triple of the radial OU: one radial,
two angular modes), and the conjugate rates a ± iω of a rotating drift; inside an exactly
degenerate eigenspace any pairing is right.

The estimate of a rate is ``SAFETY``·|λ_{k+1} − λ_k| / |λ_{k+1}| (relative), except for
the zero rate of a reflecting problem (the stationary density, exactly 0): there it is
the absolute ``SAFETY``·|λ_{k+1} − λ_k| in the rates' units.  It is inf where unknown:
the V_{k+1} pencil does not fit the memory or its eigensolve fails, a rate's mode is not
found among the V_{k+1} modes (cosine < ``MIN_COSINE``), and for the escape rate μ of an
absorbing problem where μ_k or μ_{k+1} is not positive or the boundary layer that
carries the outflow is not resolved (cell Péclet number > ``PECLET_MAX``, as the
hierarchical μ estimate of :mod:`.hierarchical`).  A rate whose estimate exceeds
``UNTRUSTED`` (0.1) flags the spectrum (``untrusted``) with a
:class:`~.solver.FPSolveWarning`: before, the P1 rates of a reflecting radial OU on a
coarse mesh came back 8 % off without a word (redteam F5).
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence

from .estimate import SAFETY, enriched_basis
from .gibbs import symmetric_scaling
from .hierarchical import PECLET_MAX, _outflow_peclet, fits_budget
from .mfpt_estimate import _next_pencil
from .solver import UNTRUSTED, FPSolveWarning, SolverError
from .spectrum import eigensolve

__all__ = ["attach_estimate", "match", "MIN_COSINE"]

#: a P_k mode whose best V_{k+1} partner has a smaller M-cosine is not found: its
#: rate's estimate is inf (an exactly degenerate pair shares its cosines: ≥ 0.71 each)
MIN_COSINE = 0.5


def match(rates_k, modes_k, rates_n, modes_n, M) -> tuple[np.ndarray, np.ndarray]:
    """Pair each P_k rate with a V_{k+1} rate by its mode.

    Parameters
    ----------
    rates_k, rates_n : ndarray of complex, shapes (k,), (m,) with m ≥ k
    modes_k, modes_n : ndarray of complex, shapes (k, N), (m, N)
        The eigenfunctions as coefficient vectors of the *same* space V_{k+1}.
    M : sparse matrix (N, N)
        The inner product (mass matrix) of the cosines.

    Returns
    -------
    (index, cosine)
        ``rates_n[index[i]]`` is the partner of ``rates_k[i]``; ``cosine[i]`` the
        |M-cosine| of the two modes.
    """
    Mk, Mn = modes_k @ M, modes_n @ M
    nk = np.sqrt(np.abs(np.einsum("ij,ij->i", Mk, modes_k.conj())))
    nn = np.sqrt(np.abs(np.einsum("ij,ij->i", Mn, modes_n.conj())))
    cos = np.abs(modes_k.conj() @ Mn.T) / np.outer(nk, nn)
    size = np.maximum(np.abs(rates_n), np.max(np.abs(rates_n)) * 1e-8)
    dist = np.abs(rates_k[:, None] - rates_n[None, :]) / size[None, :]
    # the cosines decide; the distance breaks ties inside a degenerate eigenspace and
    # between the conjugate modes a ± iω (|u^H M ū| can be anything)
    rows, cols = linear_sum_assignment((1.0 - cos) + np.minimum(dist, 1.0))
    index = np.empty(rates_k.size, dtype=int)
    index[rows] = cols
    return index, cos[np.arange(rates_k.size), index]


def _next_spectrum(problem, diffusion, m: int, tol: float):
    """(bp, M, rates, functions u (m × N), (B, outflow per boundary dof)) in V_{k+1}.

    M is the unscaled mass (the inner product of the functions u); the outflow is None
    for a reflecting problem.
    """
    bp, A, M, I, B = _next_pencil(problem, diffusion)
    absorbing = problem.boundary == "absorbing"
    scale = symmetric_scaling(A) if problem.gibbs else np.ones(bp.N)
    S = sp.diags(scale)                  # scaled as the P_k pencil (spectrum._pencil)
    As, Ms = (S @ A @ S).tocsr(), (S @ M @ S).tocsr()
    if not absorbing:                    # reflecting: the full pencil, as for P_k
        I, B = np.arange(bp.N), None
    vals, vecs, _, _ = eigensolve(As, Ms, I, B, min(m, I.size - 3), tol, scale)
    u = vecs * scale
    outflow = -(A @ u[0].real)[B] if absorbing else None
    return bp, M, vals, u, (B, outflow)


def _rate_estimates(rates_k, rates_n, reflecting: bool) -> np.ndarray:
    """SAFETY·|λ_{k+1} − λ_k| / |λ_{k+1}| per pair; absolute for a reflecting zero rate."""
    diff = SAFETY * np.abs(rates_n - rates_k)
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.where(np.abs(rates_n) > 0, diff / np.abs(rates_n), np.inf)
    if reflecting:
        est[0] = diff[0]
    return np.where(np.isfinite(est), est, np.inf)


def _estimate(spec, problem, diffusion, u_k, tol, record: dict) -> np.ndarray:
    """The per-rate estimates (see the module docstring); fills ``record``."""
    k = spec.rates.size
    bp, M, rates_n, u_n, (B, outflow) = _next_spectrum(problem, diffusion,
                                                       k + max(2, k // 2), tol)
    _, rec = enriched_basis(problem.basis, problem.mesh._cache)
    emb = rec.prolong(u_k.real.T) + 1j * rec.prolong(u_k.imag.T)
    index, cos = match(spec.rates, emb.T, rates_n, u_n, M)
    paired = rates_n[index]
    est = _rate_estimates(spec.rates, paired, problem.boundary == "reflecting")
    est[cos < MIN_COSINE] = np.inf
    if np.any(cos < MIN_COSINE):
        lost = ", ".join(f"λ{i + 1}" for i in np.flatnonzero(cos < MIN_COSINE))
        record["unmatched"] = f"the mode of {lost} not found among the P_{{k+1}} modes"
    record.update(dofs=int(bp.N), rates=[complex(z) for z in paired],
                  pairing=index.tolist(), cosine=cos.tolist())
    if outflow is not None:
        pe = _outflow_peclet(problem, diffusion, bp, B, outflow)
        record["layer_peclet"] = pe
        if not pe <= PECLET_MAX:
            est[0] = np.inf
            record["skipped"] = f"boundary layer not resolved (Péclet {pe:.2g} > {PECLET_MAX:g})"
        elif not (spec.rates[0].real > 0 and paired[0].real > 0):
            est[0] = np.inf
            record["skipped"] = "escape rate not positive"
    return est


def attach_estimate(spec, problem, strength: float, u_k, tol: float) -> None:
    """Estimate the error of each rate of ``spec`` and flag it.

    Sets ``spec.error_estimate``, ``spec.estimate_record`` (the V_{k+1} rates, pairing,
    cosines, dofs, or why the estimate was skipped) and ``spec.untrusted`` (with a
    :class:`~.solver.FPSolveWarning`, also listed in ``spec.warnings``, where a rate's
    estimate exceeds ``UNTRUSTED`` or is unknown).

    Parameters
    ----------
    spec : Spectrum
    problem : fpsolve.Problem
    strength : float
        The diffusion strength the spectrum was computed at.
    u_k : ndarray of complex, shape (k, dofs)
        The P_k eigenfunctions (the pencil's vectors times its scaling).
    tol : float
        ARPACK tolerance of the V_{k+1} eigensolve.
    """
    diffusion = problem.diffusion
    if strength != diffusion.strength:
        diffusion = diffusion.with_strength(strength)
    record: dict = {"dofs_k": int(problem.dofs)}
    est = np.full(spec.rates.size, np.inf)
    if not fits_budget(problem.dofs, problem.order):
        record["skipped"] = "memory budget"
    else:
        try:
            est = _estimate(spec, problem, diffusion, u_k, tol, record)
        except (SolverError, MemoryError, ArpackError, ArpackNoConvergence,
                RuntimeError, ValueError) as exc:
            record["skipped"] = f"P_{{k+1}} eigensolve failed: {exc}"
    spec.error_estimate, spec.estimate_record = est, record
    bad = np.flatnonzero(~(est <= UNTRUSTED))
    spec.untrusted = bool(bad.size)
    if bad.size:
        worst = record.get("skipped", record.get(
            "unmatched", f"estimated error up to {np.max(est[bad]):.1e}"))
        which = ", ".join(f"λ{i + 1}" for i in bad)
        which = f"rates {which} are" if bad.size > 1 else f"rate {which} is"
        msg = (f"spectrum: {which} not known to 10 % on this mesh ({worst}): refine the "
               "mesh or raise the order")
        spec.warnings.append(msg)
        warnings.warn(msg, FPSolveWarning, stacklevel=4)
