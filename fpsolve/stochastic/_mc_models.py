"""Which models run in the compiled kernel, and with which coefficients.

A *fast* model is the tuple ``(lk, lp, nk, bm)`` of ``_mc_kernels``: landscape code and
coefficients, noise code and constant noise factor.  ``None`` means the generic numpy
path through ``L.gradient`` / ``L.hessian`` / ``D.noise_factor``.
"""
from __future__ import annotations

import math

import numpy as np

from ..models import diffusion as _diffusion
from ..models import landscapes as _landscapes

LK_PAPER, LK_QUADRATIC = 0, 1
NK_CONST, NK_HESS, NK_HESS_DIAG = 0, 1, 2


def same_landscape(L1, L2) -> bool:
    return (L1 is L2) or (type(L1) is type(L2) and L1.params == L2.params)


def landscape_code(L):
    """(lk, lp) for the compiled landscapes; None for anything else (incl. subclasses)."""
    if type(L) is _landscapes.PaperLandscape:
        lp = [L.eps * L.lam0, L.lam0, L.lam1, L.lam2, 2 * L.lam1, 4 * L.lam2, 12 * L.lam2, 0.0]
        return LK_PAPER, np.array(lp)
    if type(L) is _landscapes.QuadraticLandscape:
        A, c = L.A, L.center
        return LK_QUADRATIC, np.array([A[0, 0], A[0, 1], A[1, 1], c[0], c[1], 0.0, 0.0, 0.0])
    return None


def constant_factor(D):
    """Noise factor B of a position-independent diffusion model, else None."""
    t = type(D)
    constant = t in (_diffusion.Isotropic, _diffusion.Constant) or (
        t is _diffusion.SGD and type(D.landscape) is _landscapes.QuadraticLandscape)
    if not constant:
        return None
    return np.ascontiguousarray(D.noise_factor(np.zeros(1), np.zeros(1))[:, :, 0]).ravel()


def sgd_hessian_factor(A, cross):
    """B for SGD on a quadratic (constant) Hessian A."""
    if cross:
        return np.array([A[0, 0], A[0, 1], A[1, 0], A[1, 1]], dtype=float)
    b1 = math.sqrt(A[0, 0] * A[0, 0] + A[0, 1] * A[0, 1])
    b2 = math.sqrt(A[0, 1] * A[0, 1] + A[1, 1] * A[1, 1])
    return np.array([b1, 0.0, 0.0, b2])


def sgd_fast(L, cross: bool):
    """The compiled model of SGD on ``L``, or None."""
    code = landscape_code(L)
    if code is None:
        return None
    lk, lp = code
    if lk == LK_PAPER:
        return (lk, lp, NK_HESS if cross else NK_HESS_DIAG, np.zeros(4))
    return (lk, lp, NK_CONST, sgd_hessian_factor(L.A, cross))


def langevin_fast(L, D, drift):
    """(compiled model or None, s) with the noise scale c = √(2 dt s)."""
    code = landscape_code(L)
    B = constant_factor(D)
    fast = None
    if code is not None and drift is None:
        lk, lp = code
        if B is not None:
            fast = (lk, lp, NK_CONST, B)
        elif (type(D) is _diffusion.SGD and lk == LK_PAPER
              and same_landscape(D.landscape, L)):
            fast = (lk, lp, NK_HESS if D.cross_diffusion else NK_HESS_DIAG, np.zeros(4))
    if fast is not None and fast[2] != NK_CONST:
        return fast, D.strength      # B = √Δ_S H (or its diagonal variant)
    return fast, 1.0
