"""The FE side of the cross-check: scalars, bin-averaged marginal and current, density grid."""
from __future__ import annotations

import warnings

import numpy as np

from ..fe.flux import Flux
from ..fe.solver import FPSolveWarning
from .estimators import _ModeEstimator

# Gauss–Legendre points per marginal bin for the FE bin averages (exact for a smooth
# marginal to far below MC noise at bin widths ~0.05).
_GAUSS_PER_BIN = 4


def _inside_eval(f, X, Y, R, ncomp=None):
    """f(points) on the points strictly inside the disk, 0 elsewhere.

    Points on or just outside the curved boundary are skipped: the FE functions vanish
    or are not defined there, and fpsolve.fe.assembly.locate's isoparametric inversion
    is slow for them (it used to raise; docs/crosscheck.md).
    """
    pts = np.stack([X.ravel(), Y.ravel()], axis=1)
    inside = np.hypot(pts[:, 0], pts[:, 1]) < R * (1 - 1e-4)
    out = np.zeros((pts.shape[0],) if ncomp is None else (pts.shape[0], ncomp))
    if inside.any():
        out[inside] = f(pts[inside])
    return out


def _fe_reference(sol, coarse, medges, cedges, current_sub, curve_points):
    def scalars(s):
        return {"x2": s.expectation(lambda x, y: x * x), "y2": s.expectation(lambda x, y: y * y),
                "absx": s.expectation(lambda x, y: np.abs(x)),
                "mode": abs(s.marginal_mode("x")), "escape_rate": float(s.escape_rate)}

    fe = scalars(sol)
    err = {k: 0.0 for k in fe}
    if coarse is not None:
        c = scalars(coarse)
        err = {k: abs(fe[k] - c[k]) for k in fe}
    # bin averages of the FE marginal (Gauss–Legendre inside each bin)
    g, gw = np.polynomial.legendre.leggauss(_GAUSS_PER_BIN)
    lo, w = medges[:-1], np.diff(medges)
    pts = (lo[:, None] + 0.5 * w[:, None] * (g[None, :] + 1)).ravel()
    fm = (sol.marginal("x", pts).reshape(-1, _GAUSS_PER_BIN) * gw).sum(1) / 2
    centres = 0.5 * (medges[1:] + medges[:-1])
    fe["mode_binned"] = _ModeEstimator(centres)(fm)
    xs = np.linspace(medges[0], medges[-1], curve_points)
    curve = (xs, sol.marginal("x", xs))
    # bin averages of the FE current (sub × sub midpoints per bin)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FPSolveWarning)
        fl = Flux(sol)
    notes = [f"flux: {w.message}" for w in caught if issubclass(w.category, FPSolveWarning)]
    xe, ye = cedges
    off = (np.arange(current_sub) + 0.5) / current_sub
    sx = (xe[:-1, None] + np.diff(xe)[:, None] * off).ravel()
    sy = (ye[:-1, None] + np.diff(ye)[:, None] * off).ravel()
    X, Y = np.meshgrid(sx, sy, indexing="ij")
    J = _inside_eval(fl, X, Y, sol.mesh.radius, 2)            # 0 outside the disk, as in MC
    nx, ny = xe.size - 1, ye.size - 1
    Jb = J.T.reshape(2, nx, current_sub, ny, current_sub).mean(axis=(2, 4))
    gx = np.linspace(medges[0], medges[-1], 121)
    gy = np.linspace(ye[0], ye[-1], 121)
    GX, GY = np.meshgrid(gx, gy, indexing="ij")
    dens = _inside_eval(sol, GX, GY, sol.mesh.radius).reshape(GX.shape)
    fe["error"] = err
    fe["error"]["mode_binned"] = err["mode"]
    return fe, fm, Jb, curve, (gx, gy, dens), notes
