"""Theory lines of the phase diagram: σ*(η) of the I → II transition and the divergence
bound σ_m(η) (Yang–Tang–Tu S35, S39, S40).
"""
from __future__ import annotations

import numpy as np

from .._args import err as _err
from ..theory import reduction as _theory
from ._phase_common import _landscape

def critical_sigma(eta, landscape=None, discrete: bool = True):
    """σ*(η) of the phase I → II transition.

    ``discrete=False``: the paper's boundary ησ = Δ_S* = −ε/λ1
    (:func:`fpsolve.theory.critical_delta_s`, S35).  ``discrete=True`` adds the
    finite-η correction of SGD's y-variance: at x = 0 the update
    y ← (1 − ηλ0) y + η√(2σ) λ0 z has the stationary variance
    ⟨y²⟩ = Δ_Sλ0/(1 − ηλ0/2) instead of the continuous-time Δ_Sλ0, and the
    noise-induced drift −½λ'⟨y²⟩ that destabilises x = 0 grows by the same factor:
    ησ* = Δ_S*(1 − ηλ0/2).  (η = 0.04: σ* = 0.0105, the paper's value.)

    Parameters
    ----------
    eta : float or array_like
        Learning rate(s) > 0.
    landscape : PaperLandscape, optional
        Default :func:`fig2_landscape`.
    discrete : bool
        Include the finite-η factor (default True).

    Returns
    -------
    float or ndarray
        σ*; NaN where ηλ0 ≥ 2 (x = 0 itself is unstable for plain GD).
    """
    L = _landscape("critical_sigma", landscape)
    eta = np.asarray(eta, dtype=float)
    if not np.all(np.isfinite(eta)) or np.any(eta <= 0):
        raise _err("critical_sigma", "eta", "positive and finite", eta)
    ds = _theory.critical_delta_s(L)
    factor = 1.0 - 0.5 * eta * L.lam0 if discrete else np.ones_like(eta)
    with np.errstate(invalid="ignore"):
        out = np.where(factor > 0, ds * factor / eta, np.nan)
    return float(out) if out.ndim == 0 else out


def divergence_sigma(eta, landscape=None, approx: str = "S39"):
    """σ_m(η) = Δ_m(η)/η from the paper's divergence bound (S39, or S40 = main text).

    Uses :func:`fpsolve.theory.delta_m` with η_min = η; NaN where S39 has no
    solution (ηλ(x_F) ≥ 2).  The paper calls these analytical values an *upper*
    bound of the true Δ_m; the Monte Carlo boundary lies far below it (see
    ``docs/phase_diagram.md``).
    """
    L = _landscape("divergence_sigma", landscape)
    e = np.asarray(eta, dtype=float)
    if not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise _err("divergence_sigma", "eta", "positive and finite", eta)
    if approx not in ("S39", "S40"):
        raise _err("divergence_sigma", "approx", "'S39' or 'S40'", approx)
    flat = e.ravel()
    out = np.full(flat.shape, np.nan)
    for k, v in enumerate(flat):
        try:
            out[k] = _theory.delta_m(L, float(v), approx=approx) / v
        except ValueError:        # S39: η λ(x_F) ≥ 2 diverges at any Δ_S
            pass
    return float(out[0]) if e.ndim == 0 else out.reshape(e.shape)
