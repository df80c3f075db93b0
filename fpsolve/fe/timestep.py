"""TR-BDF2 time steps for M dP/dt = −A P with error control and cached factorisations.

TR-BDF2 (Bank et al. 1985; Hosea & Shampine 1996, Appl. Numer. Math. 20, 21) takes a
trapezoidal stage to t + γh and a BDF2 stage to t + h, γ = 2 − √2.  It is L-stable
and second order, and with this γ both stages solve with the same matrix M + d·h·A
(d = γ/2): one sparse LU per step size serves every step of that size.  The local
error is estimated from the three stage values and filtered through the same LU.
Accepted steps keep their size (and factorisation) unless the estimate allows at
least doubling; sizes change by powers of two, so a relaxation over many decades
costs a few factorisations.
"""
from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np

from .ordering import splu

__all__ = ["TRBDF2", "integrate", "initial_step"]

_GAMMA = 2.0 - np.sqrt(2.0)
_D = _GAMMA / 2.0                                    # = (1 − γ)/(2 − γ)
# local truncation error C·h³·y''' of TR-BDF2 with this γ (Hosea & Shampine 1996)
_C = (-3 * _GAMMA ** 2 + 4 * _GAMMA - 2) / (12 * (2 - _GAMMA))
_W1 = 1.0 / (_GAMMA * (2 - _GAMMA))
_W0 = (1 - _GAMMA) ** 2 / (_GAMMA * (2 - _GAMMA))


class TRBDF2:
    """TR-BDF2 steps of M dP/dt = −A P with factorisations cached per step size.

    Parameters
    ----------
    A, M : sparse matrices
        Operator and mass matrix on the unknowns (interior dofs when absorbing).
    cache : int
        Number of factorised step sizes kept (an output time that cuts a step short
        needs one of its own; the regular size is then still there).
    norm : callable, optional
        ``norm(P_new, err)`` → the relative size of the local error estimate ``err`` of a
        step to ``P_new``, held below ``tol`` (a Gibbs-weighted problem measures it on the
        density w·u); None: max|err| / max|P_new|.
    """

    def __init__(self, A, M, cache: int = 3, norm=None):
        self.A, self.M = A.tocsr(), M.tocsr()
        self.norm = norm
        self._lus: OrderedDict = OrderedDict()
        self._cache = cache
        self.factorisations = 0
        self.factorisation_s = 0.0

    def _lu(self, h: float):
        lu = self._lus.get(h)
        if lu is None:
            t0 = time.perf_counter()
            lu = splu((self.M + (_D * h) * self.A).tocsc(), reuse=True)
            self.factorisation_s += time.perf_counter() - t0
            self.factorisations += 1
            self._lus[h] = lu
            while len(self._lus) > self._cache:
                self._lus.popitem(last=False)
        self._lus.move_to_end(h)
        return lu

    def step(self, P, h: float):
        """One step of size ``h`` from ``P``: (P_new, estimated local error vector)."""
        lu = self._lu(h)
        AP = self.A @ P
        MP = self.M @ P
        Pg = lu.solve(MP - (_D * h) * AP)                         # trapezoidal stage
        Pn = lu.solve(_W1 * (self.M @ Pg) - _W0 * MP)             # BDF2 stage
        # y''' ≈ 2 f[t, t+γh, t+h] with f = −M⁻¹AP; the filter (M + dhA)⁻¹M cancels M⁻¹
        comb = AP / _GAMMA - (self.A @ Pg) / (_GAMMA * (1 - _GAMMA)) + (self.A @ Pn) / (1 - _GAMMA)
        err = lu.solve((-2.0 * _C * h) * comb)
        return Pn, err


def integrate(stepper: TRBDF2, P, t0: float, t1: float, h: float, tol: float, stats: dict,
              on_step=None):
    """Advance P from t0 to exactly t1 with error control; returns (P, next h).

    ``stats`` (keys steps, rejected, max_error) is updated in place; ``on_step(t)``, if
    given, is called after every accepted step (it only observes: it cannot change P).
    """
    t = t0
    while t1 - t > 1e-13 * max(abs(t1), 1e-300):
        hs = h
        if t1 - (t + hs) < 1e-9 * hs:        # land on t1 exactly (no sliver step)
            hs = t1 - t
        Pn, err = stepper.step(P, hs)
        if stepper.norm is None:
            scale = np.max(np.abs(Pn))
            e = float(np.max(np.abs(err)) / scale) if scale > 0 else 0.0
        else:
            e = float(stepper.norm(Pn, err))
        if not np.isfinite(e):
            raise FloatingPointError(f"evolve: non-finite step at t = {t:.6g}")
        fac = 0.9 * (tol / e) ** (1 / 3) if e > 0 else 8.0
        if e <= tol:
            t += hs
            P = Pn
            stats["steps"] += 1
            stats["max_error"] = max(stats["max_error"], e)
            if on_step is not None:
                on_step(t)
            if hs == h and fac >= 2.0:                  # grow by powers of two only
                h *= 2.0 ** min(int(np.log2(fac)), 2)
        else:
            stats["rejected"] += 1
            h = hs * 2.0 ** np.floor(np.log2(max(fac, 0.1)))
            if h < 1e-14 * max(abs(t1), 1.0):
                raise FloatingPointError(f"evolve: step size underflow at t = {t:.6g}")
    return P, h


def initial_step(A, M, P, tol: float) -> float:
    """h with |C|·(h·rate)³ ≈ tol, rate = ‖AP‖/‖MP‖ (the scale of M⁻¹A on P)."""
    rate = np.linalg.norm(A @ P) / max(np.linalg.norm(M @ P), 1e-300)
    return float((tol / abs(_C)) ** (1 / 3) / max(rate, 1e-300))
