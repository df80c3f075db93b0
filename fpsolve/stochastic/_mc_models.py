"""Which models run in the compiled kernel, and with which code and coefficients.

:func:`sgd_model` and :func:`langevin_model` return a :class:`._mc_codegen.Compiled`
(the kernel's prologue, step and coefficient arrays) or ``None`` and the reason, in
which case the generic numpy path runs through ``L.gradient`` / ``L.hessian`` /
``D.noise_factor``.

Compiled: the paper family and quadratics (fixed code, bit-identical to the numpy
twin), expression landscapes (sympy-printed ∇L and H); noise that is constant
(isotropic, constant, SGD on a quadratic), SGD noise B = √Δ_S H of the simulated
landscape (with or without cross-diffusion), or an expression tensor (B = √D).
"""
from __future__ import annotations

import math

import numpy as np
import sympy as sp

from ..models import diffusion as _diffusion
from ..models import expressions as _expressions
from ..models import landscapes as _landscapes
from . import _mc_kernels as _K
from ._mc_codegen import CodegenError, Compiled, coefficients, printed

LK_PAPER, LK_QUADRATIC = 0, 1
NK_CONST, NK_HESS, NK_HESS_DIAG = 0, 1, 2
_NOISE_LINES = {NK_CONST: _K.NOISE_CONST, NK_HESS: _K.NOISE_HESS,
                NK_HESS_DIAG: _K.NOISE_HESS_DIAG}


def same_landscape(L1, L2) -> bool:
    return (L1 is L2) or (type(L1) is type(L2) and L1.params == L2.params)


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


def _landscape_part(L, hessian: bool):
    """(prologue, step lines, lp, lk) of ∇L (and H when ``hessian``), or a reason str."""
    t = type(L)
    if t is _landscapes.PaperLandscape:
        lp = [L.eps * L.lam0, L.lam0, L.lam1, L.lam2, 2 * L.lam1, 4 * L.lam2, 12 * L.lam2, 0.0]
        step = _K.PAPER_GRADIENT + (_K.PAPER_HESSIAN if hessian else ())
        return _K.PAPER_PROLOGUE, step, np.array(lp), LK_PAPER
    if t is _landscapes.QuadraticLandscape:
        A, c = L.A, L.center
        lp = np.array([A[0, 0], A[0, 1], A[1, 1], c[0], c[1], 0.0, 0.0, 0.0])
        return _K.QUADRATIC_PROLOGUE, _K.QUADRATIC_GRADIENT, lp, LK_QUADRATIC
    if t is _landscapes.ExpressionLandscape:
        return _expression_landscape(L, hessian)
    return f"the landscape is a Python class ({t.__name__}), not an expression"


def _expression_landscape(L, hessian):
    X, Y = _expressions.COORDS
    (e,), values, names = coefficients([L.expr], "lc")
    g = [sp.diff(e, X), sp.diff(e, Y)]
    targets = {"gx": g[0], "gy": g[1]}
    if hessian:
        targets.update(hxx=sp.diff(g[0], X), hxy=sp.diff(g[0], Y), hyy=sp.diff(g[1], Y))
    try:
        step = tuple(printed(targets, "lt"))
    except CodegenError as exc:
        return f"the expression landscape cannot be compiled ({exc})"
    pro = tuple(f"{n} = lp[{i}]" for i, n in enumerate(names))
    return pro, step, np.array(values + [0.0]), None


def _tensor_part(D):
    """(prologue, step lines, bm) of B = √D for an expression tensor, or a reason str."""
    X, Y = _expressions.COORDS
    texts, params = D.texts, D._params
    exprs = [sp.Float(D.strength) * _expressions.parse(texts[k], params)
             for k in ("D11", "D12", "D22")]
    # D12 = 0: √D = diag(√D11, √D22), no root of a 2x2 matrix on the walker's chain
    root = _K.NOISE_SQRT_PSD
    if exprs[1] == 0:
        root = _K.NOISE_SQRT_ISO if exprs[0] == exprs[2] else _K.NOISE_SQRT_DIAG
    exprs, values, names = coefficients(exprs, "nc")
    keep = ("d11", "d22") if root is not _K.NOISE_SQRT_PSD else ("d11", "d12", "d22")
    try:
        step = tuple(printed({k: e for k, e in zip(("d11", "d12", "d22"), exprs) if k in keep},
                             "nt"))
    except CodegenError as exc:
        return f"the expression noise cannot be compiled ({exc})"
    pro = tuple(f"{n} = bm[{i}]" for i, n in enumerate(names))
    return pro, step + root, np.array(values + [0.0])


def _combine(L, nk, bm, what, noise=None):
    """Compiled model of landscape ``L`` with noise code ``nk`` (or a tensor part)."""
    part = _landscape_part(L, hessian=nk in (NK_HESS, NK_HESS_DIAG))
    if isinstance(part, str):
        return None, part
    pro, step, lp, lk = part
    if noise is not None:
        npro, nstep, bm = noise
        return Compiled(pro + npro, step + nstep, lp, bm, what), None
    npro = _K.CONST_PROLOGUE if nk == NK_CONST else ()
    return Compiled(pro + npro, step + _NOISE_LINES[nk], lp, np.asarray(bm, float), what,
                    lk=lk, nk=nk if lk is not None else None), None


def sgd_model(L, cross: bool):
    """(Compiled or None, reason) of SGD on ``L``."""
    what = f"sgd on {L.kind}"
    if type(L) is _landscapes.QuadraticLandscape:
        return _combine(L, NK_CONST, sgd_hessian_factor(L.A, cross), what)
    return _combine(L, NK_HESS if cross else NK_HESS_DIAG, np.zeros(4), what)


def langevin_model(L, D, drift):
    """(Compiled or None, s, reason) with the noise scale c = √(2 dt s)."""
    if drift is not None:
        return None, 1.0, "a drift callable b(x, y) is Python code"
    what = f"langevin on {L.kind} with {D.kind} noise"
    B = constant_factor(D)
    if B is not None:
        fast, why = _combine(L, NK_CONST, B, what)
        return fast, 1.0, why
    if type(D) is _diffusion.SGD and same_landscape(D.landscape, L):
        nk = NK_HESS if D.cross_diffusion else NK_HESS_DIAG
        fast, why = _combine(L, nk, np.zeros(4), what)
        return fast, D.strength, why          # B = √Δ_S H (or its diagonal variant)
    if type(D) is _diffusion.Expression:
        noise = _tensor_part(D)
        if isinstance(noise, str):
            return None, 1.0, noise
        fast, why = _combine(L, None, None, what, noise)
        return fast, 1.0, why
    return None, 1.0, (f"the noise model {type(D).__name__} is Python code (compiled: "
                       f"isotropic, constant, expression, sgd of the same landscape)")
