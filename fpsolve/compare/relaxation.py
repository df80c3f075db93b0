"""Relaxation times of the FE operator: how long a Monte Carlo burn-in must be."""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse.linalg as spla

from ..fe.assembly import probe_matrix
from ..fe.solution import Solution
from ..fe.solver import Problem
from ._checks import _count


def relaxation_times(sol: Solution, k: int = 5) -> dict:
    """Slowest relaxation modes of the FE operator of ``sol``: how long a burn-in must be.

    Solves A p = μ M p for the ``k`` eigenvalues nearest 0 (re-assembling the
    problem of ``sol``).  The lowest is the escape rate μ₁ (absorbing) or 0
    (reflecting); the others relax at rates μ_k − μ₁.  Each mode's parity under
    θ → −θ is measured on the FE function (+1 even, −1 odd); a start that is
    symmetric under θ → −θ (the simulators' default, a narrow Gaussian at the origin)
    does not excite odd modes of a symmetric problem, and odd modes do not change
    even observables such as ⟨x²⟩.

    Parameters
    ----------
    sol : Solution
    k : int
        Number of eigenvalues (≥ 2).

    Returns
    -------
    dict
        ``rates`` (k − 1 relaxation rates, real parts, ascending), ``imag`` (their
        imaginary parts), ``times`` (1/rates), ``parity`` (per mode, in [−1, 1]),
        ``density_parity`` (of P itself), ``tau_slowest``, ``tau_even`` (slowest mode
        with parity > 0, NaN if none found).
    """
    if not isinstance(sol, Solution):
        raise TypeError(f"sol: expected a fpsolve Solution, got {type(sol).__name__}")
    k = _count("k", k, 2)
    prob = Problem(sol.landscape, sol.diffusion, sol.mesh, sol.boundary, sol.order,
                   sol.drift, sol.stabilisation)
    op = prob.operator
    A = op.A(sol.diffusion.strength)
    M = op.M_stab if op.M_stab is not None else op.M
    idx = prob.interior_dofs if sol.boundary == "absorbing" else np.arange(prob.dofs)
    Ai, Mi = A[idx][:, idx].tocsc(), M[idx][:, idx].tocsc()
    # a small negative shift keeps A − σM regular (A is singular for reflecting walls)
    sigma = -1e-3 * max(abs(sol.diagnostics.get("escape_rate_flux", 0.0)), 1e-3)
    # a fixed start vector: ARPACK's default is random, which made the times (and the
    # burn-in derived from them) differ in the last digits between identical calls; a
    # generic vector, not ones, so that modes odd under θ → −θ are not missed
    v0 = np.random.default_rng(0).standard_normal(Ai.shape[0])
    vals, vecs = spla.eigs(Ai, k=min(k, Ai.shape[0] - 2), M=Mi, sigma=sigma, which="LM",
                           v0=v0)
    order = np.argsort(vals.real)
    vals, vecs = vals[order], vecs[:, order]
    # parity under θ → −θ, measured where the density lives
    x, y = prob.basis.doflocs
    big = np.abs(sol.P) > 1e-3 * np.abs(sol.P).max()
    pts = np.stack([x[big], y[big]])
    Pp, Pm = probe_matrix(prob.basis, pts), probe_matrix(prob.basis, -pts)

    def parity(full):
        a, b = Pp @ full, Pm @ full
        den = math.sqrt(float(a @ a) * float(b @ b))
        return float(a @ b) / den if den > 0 else float("nan")

    par = []
    for v in vecs.T:
        full = np.zeros(prob.dofs)
        full[idx] = v.real if np.abs(v.real).max() >= np.abs(v.imag).max() else v.imag
        par.append(parity(full))
    rates = vals.real[1:] - vals.real[0]
    times = 1.0 / rates
    even = [t for t, p in zip(times, par[1:]) if p > 0]
    return {"rates": rates.tolist(), "imag": vals.imag[1:].tolist(), "times": times.tolist(),
            "parity": par[1:], "density_parity": parity(sol.P),
            "tau_slowest": float(times[0]), "tau_even": float(even[0]) if even else float("nan")}
