"""Relaxation spectrum of the Fokker–Planck generator: A p = λ M p nearest λ = 0.

Solutions of M dP/dt = −A P are sums of modes e^{−λt} p, so the eigenvalues λ of the
pencil (A, M) are decay rates (Re λ ≥ 0).  Absorbing: the pencil on the interior dofs,
whose first eigenvalue is the escape rate μ; reflecting: the full pencil, whose first
eigenvalue is 0 (the stationary density).  The SGD operator is not self-adjoint, so
the spectrum is complex in general: conjugate pairs λ = a ± iω are damped
oscillations of frequency ω.

The eigenvalues are computed by ARPACK in shift-invert mode (``scipy.sparse.linalg.eigs``)
with one sparse LU of A − σM.  For an absorbing boundary σ = 0 (A is non-singular on
the interior dofs); for a reflecting one A is singular and σ is a small negative shift,
far below the first non-zero rate.  The first rate of an absorbing spectrum is replaced
by the boundary-outflow value of μ (relative precision where the eigenvalue drowns in
round-off, see the solver).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .gibbs import symmetric_scaling
from .ordering import splu

__all__ = ["Spectrum", "eigensolve", "spectrum"]


class Spectrum:
    """The ``k`` slowest modes of a Fokker–Planck problem.

    Attributes
    ----------
    rates : ndarray of complex, shape (k,)
        Decay rates λ (Re λ ≥ 0), ordered by real part (then |Im λ|).
    modes : ndarray of complex, shape (k, dofs)
        Eigenfunctions as FE coefficient vectors (zero on an absorbing boundary),
        scaled to max |p| = 1 with a real, positive largest entry.
    relaxation_time : float
        1 / Re(λ₂ − λ₁): the time scale on which P(t) approaches the (quasi-)stationary
        state.
    frequency : float
        |Im λ₂|, the angular frequency of the slowest relaxing mode (0 when it is real).
    error_estimate : ndarray of float, shape (k,), or None
        Estimated error of each rate, P_k against P_{k+1} (:mod:`.spectrum_estimate`):
        relative, except absolute for the zero rate of a reflecting problem; inf where
        unknown.  None when the spectrum was computed with ``estimate=False``.
    untrusted : bool or None
        True when a rate's estimate exceeds 0.1 (a :class:`~.solver.FPSolveWarning` was
        raised); None when not estimated.
    """

    def __init__(self, rates, modes, boundary, eig_floor, escape_rate_flux=None):
        self.rates = rates
        self.modes = modes
        self.boundary = boundary
        #: eigenvalues below ~10 ε ‖A‖ are round-off
        self.eig_floor = eig_floor
        self.escape_rate_flux = escape_rate_flux
        gap = rates[1].real - rates[0].real if rates.size > 1 else np.nan
        self.relaxation_time = 1.0 / gap if gap > 0 else np.inf
        self.frequency = abs(rates[1].imag) if rates.size > 1 else 0.0
        #: e.g. a negative escape rate (unresolved boundary layer): λ₁ is not trustworthy
        self.warnings = []
        self.error_estimate = None
        self.untrusted = None
        #: the V_{k+1} record of the estimate (rates, pairing, dofs or why skipped)
        self.estimate_record: dict | None = None
        if boundary == "absorbing" and rates[0].real < 0:
            self.warnings.append(
                f"escape rate λ₁ = {rates[0].real:.3e} < 0: the quasi-stationary density is "
                "negative near the boundary (unresolved boundary layer); λ₁ is not "
                "trustworthy, refine the mesh near the boundary")

    def summary(self) -> dict:
        """JSON-friendly rates (real and imaginary parts), relaxation time, frequency and the
        rates' error estimates."""
        return {"boundary": self.boundary, "rates_real": self.rates.real.tolist(),
                "rates_imag": self.rates.imag.tolist(),
                "relaxation_time": self.relaxation_time, "frequency": self.frequency,
                "eig_floor": self.eig_floor, "escape_rate_flux": self.escape_rate_flux,
                # JSON has no inf: an unknown estimate is None (as fpsolve.io.jsonable)
                "error_estimate": (None if self.error_estimate is None else
                                   [float(e) if np.isfinite(e) else None
                                    for e in self.error_estimate]),
                "untrusted": self.untrusted, "warnings": list(self.warnings)}

    def __repr__(self):
        r = ", ".join(f"{z.real:.4g}{z.imag:+.3g}j" if z.imag else f"{z.real:.4g}"
                      for z in self.rates)
        return f"Spectrum({self.boundary}, rates=[{r}], relaxation_time={self.relaxation_time:.4g})"


def _sort(vals, vecs):
    order = np.lexsort((np.abs(vals.imag), vals.real))
    return vals[order], vecs[:, order]


def _normalise(vecs):
    out = np.array(vecs, dtype=complex).T
    for v in out:
        j = int(np.argmax(np.abs(v)))
        v *= np.conj(v[j]) / abs(v[j]) ** 2
    return out


def spectrum(problem, k: int = 6, strength: float | None = None, tol: float = 1e-12,
             estimate: bool = True) -> Spectrum:
    """The ``k`` eigenvalues of the generator nearest 0 (see :meth:`Problem.spectrum`).

    Parameters
    ----------
    problem : fpsolve.Problem
    k : int
        Number of modes (1 ≤ k < dofs − 2).
    strength : float, optional
        Diffusion strength (Δ_S for SGD); default the model's.
    tol : float
        ARPACK relative accuracy of the eigenvalues.
    estimate : bool
        Estimate each rate's error against the same pencil in V_{k+1}
        (:mod:`.spectrum_estimate`: ``error_estimate``, ``untrusted``); False skips
        that second eigensolve.

    Returns
    -------
    Spectrum
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: expected a positive integer, got {k!r}")
    s = problem.diffusion.strength if strength is None else float(strength)
    A, M, scale, weight = _pencil(problem, s)
    absorbing = problem.boundary == "absorbing"
    dofs = problem.interior_dofs if absorbing else np.arange(problem.dofs)
    B = problem.boundary_dofs if absorbing else None
    vals, vecs, mu_flux, floor = eigensolve(A, M, dofs, B, k, tol, scale)
    modes = _normalise((vecs * (scale * weight)).T)   # the density modes P = w·u
    spec = Spectrum(vals, modes, problem.boundary, floor, mu_flux)
    if estimate:
        from .spectrum_estimate import attach_estimate

        attach_estimate(spec, problem, s, vecs * scale, tol)
    return spec


def eigensolve(A, M, I, B, k: int, tol: float, scale):
    """The ``k`` eigenpairs of the pencil (A, M) on the dofs ``I`` nearest 0.

    ``B``: the boundary dofs of an absorbing problem (None: reflecting); its first rate
    is replaced by the boundary-outflow μ.  ``scale``: the pencil's symmetric scaling
    (ones for a plain pencil).

    Returns
    -------
    (rates, vectors, mu_flux, eig_floor)
        Sorted rates, the pencil's eigenvectors on all dofs (k × dofs, zero off ``I``),
        the outflow μ (None reflecting) and 10 ε ‖A_II‖.
    """
    AII, MII = A[I][:, I].tocsc(), M[I][:, I].tocsc()
    n = AII.shape[0]
    if k >= n - 2:
        raise ValueError(f"k: expected fewer than {n - 2} modes for {n} unknowns, got {k}")
    normA = spla.norm(AII, np.inf)
    # reflecting: A is singular; shift just left of 0 (far below the first rate)
    sigma = 0.0 if B is not None else -1e-8 * normA / spla.norm(MII, np.inf)
    lu = splu((AII - sigma * MII).tocsc())
    opinv = spla.LinearOperator(AII.shape, matvec=lu.solve, dtype=float)
    ncv = min(n - 1, max(2 * k + 1, 20))
    vals, vecs = spla.eigs(AII, k=k, M=MII, sigma=sigma, OPinv=opinv, ncv=ncv, tol=tol,
                           v0=np.ones(n))
    vals, vecs = _sort(vals, vecs)
    full = np.zeros((k, A.shape[0]), dtype=complex)
    full[:, I] = vecs.T
    mu_flux = None
    if B is not None:
        mu_flux = _outflow_rate(lu, A, MII, vecs[:, 0].real, I, B, scale)
        vals[0] = mu_flux      # relative precision where the eigenvalue is round-off
    return vals, full, mu_flux, 10 * np.finfo(float).eps * normA


def _pencil(problem, s):
    """(A, M, scale, weight) whose pencil the modes are taken of, at strength ``s``.

    Plain: the problem's operator (scale = weight = 1).  Gibbs-weighted (:mod:`.gibbs`): the
    weighted pencil of u = P/w, symmetrically scaled (S A S, S M S, S = diag(A)^(−1/2), as
    the solver): the same rates as the plain pencil's, but on a mesh adapted for u it is the
    better discretisation (radial OU δ = 0.01, 38k P3 dofs: rates 1e-6 … 3e-5 off, the
    plain pencil 2e-4 … 2e-2; review R5).  A mode is P = weight·scale·v.
    """
    if not problem.gibbs:
        op = problem.operator
        one = np.ones(problem.dofs)
        return op.A(s), (op.M_stab if op.M_stab is not None else op.M), one, one
    diffusion = problem.diffusion
    op = problem.operator
    if s != diffusion.strength:
        op = problem._assemble(diffusion.with_strength(s))
    A, M = op.A_fixed, op.M
    scale = symmetric_scaling(A)
    S = sp.diags(scale)
    return (S @ A @ S).tocsr(), (S @ M @ S).tocsr(), scale, op.gibbs(*problem.basis.doflocs)


def _outflow_rate(lu, A, MII, p, I, B, scale, steps: int = 3) -> float:
    """μ = −Σ_B (A P)_B / 1ᵀM_II p after a few inverse-iteration steps on ARPACK's vector.

    The outflow comes from the tiny values of p next to the boundary; a Krylov vector
    carries them only to ~1e-12 of max |p|, an inverse-iteration step (same LU) to
    relative precision, as in the quasi-stationary solver.  ``scale``: the pencil is
    S A S, S M S (a Gibbs-weighted problem); the sums are of the unscaled one.
    """
    p = p / np.max(np.abs(p)) * np.sign(p[np.argmax(np.abs(p))])
    for _ in range(steps):
        p = lu.solve(MII @ p)
        p /= np.max(np.abs(p))
    P = np.zeros(A.shape[0])
    P[I] = p
    # (S A S)(S⁻¹P) = S (A P): undo S on the rows, and sum the unscaled M u
    return float(-((A @ P) / scale)[B].sum() / ((MII @ p) / scale[I]).sum())
