"""The result of a stationary solve: a normalised FE density and its observables."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable

import numpy as np
from scipy.optimize import minimize_scalar

from .. import _display
from .assembly import PointProbe, evaluate, line_cuts, probe_values

__all__ = ["Solution"]

_AXES = {"x": 0, "y": 1, 0: 0, 1: 1}

#: line sets of many lines whose quadrature (points located, basis evaluated) is kept
#: per basis: the cases of a study share a mesh and ask for the same marginal grid
_LINE_CACHE_MIN = 16
_LINE_CACHE_SIZE = 2
_LINE_LOCK = threading.Lock()


def _values_at_quadrature(basis, w) -> np.ndarray:
    """``basis.interpolate(w)`` without the gradients (scikit-fem's own sum, in its
    order, so the same numbers)."""
    ed = basis.element_dofs
    out = 0. * np.einsum("...,...j->...j", w[ed[0]], np.asarray(basis.basis[0][0]))
    for i in range(basis.Nbfun):
        out += np.einsum("...,...j->...j", w[ed[i]], np.asarray(basis.basis[i][0]))
    return out


def _line_quadrature(basis, axis: int, vals: np.ndarray, npts: int):
    """(weights, line, probe) of :func:`line_cuts` on ``vals``; kept on the basis for
    sets of at least ``_LINE_CACHE_MIN`` lines (the last ``_LINE_CACHE_SIZE`` of them)."""
    key = (axis, npts, vals.tobytes())
    if vals.size >= _LINE_CACHE_MIN:
        with _LINE_LOCK:
            cache = basis.__dict__.setdefault("_fpsolve_lines", OrderedDict())
            hit = cache.get(key)
            if hit is not None:
                cache.move_to_end(key)
                return hit
    pts, w, line, cells = line_cuts(basis, axis, vals, npts=npts)
    out = (w, line, PointProbe(basis, pts, cells) if w.size else None, pts)
    if vals.size >= _LINE_CACHE_MIN:
        with _LINE_LOCK:
            cache[key] = out
            while len(cache) > _LINE_CACHE_SIZE:
                cache.popitem(last=False)
    return out



#: Gauss points per segment of a line integral of a Gibbs-weighted density: exact to
#: round-off for e^(−ψ)·polynomial where ψ varies by up to ~5 nats along a segment (the
#: adaptive loop keeps elements that hold mass within 2 nats, ``gibbs.PSI_STEP``)
LINE_GAUSS = 12

class Solution:
    """Stationary (reflecting) or quasi-stationary (absorbing) density P(x, y).

    Attributes
    ----------
    P : ndarray
        FE coefficient vector, normalised so that ∫P dA = 1.
    basis : skfem.Basis
        The basis ``P`` lives on.
    escape_rate : float
        μ of A p = μ M p (0.0 for a reflecting boundary): the rate at which
        probability leaves through the absorbing boundary.  NaN where the computed μ is
        not positive (the mesh does not resolve the boundary layer; the solution is
        flagged ``untrusted``, and the computed value is in
        ``diagnostics["escape_rate_flux"]``).
    diagnostics : dict
        dofs, residual, negative_mass, min_P, escape-rate estimates, timings,
        warnings.
    error_estimate : dict
        Estimated relative errors of ``"x2"`` (the raw moment ⟨x²⟩ = ∫x²P, not the
        variance that :meth:`moments` reports: for a density off the origin the variance's
        relative error is ⟨x²⟩/Var times larger), ``"y2"``, ``"escape_rate"`` (μ; 0.0
        for a reflecting boundary, inf when μ ≤ 0) and ``"L1"`` (‖P − P_h‖_L1/‖P_h‖_L1):
        dual-weighted residuals with the solve's own LU (:mod:`fpsolve.fe.estimate`,
        docs/adaptivity.md), or P_k against P_{k+1} for a Gibbs-weighted solve; above
        10 % the result is flagged (``diagnostics["untrusted"]``).
    """

    def __init__(self, P, basis, mesh, landscape, diffusion, boundary, order,
                 escape_rate, diagnostics, drift=None, stabilisation=None):
        self.P = P
        self.basis = basis
        self.mesh = mesh
        self.landscape = landscape
        self.diffusion = diffusion
        self.drift = drift
        self.boundary = boundary
        self.order = order
        self.stabilisation = stabilisation
        self.escape_rate = float(escape_rate)
        self.diagnostics = diagnostics
        self.error_estimate: dict = dict(diagnostics.get("error_estimate", {}))
        #: the Gibbs weight w of a weighted solution (fpsolve.fe.gibbs), else None: ``P``
        #: holds w·u at the dofs, and the integrals use w itself
        self.weight = None
        self._quad = None

    # -- evaluation ---------------------------------------------------------
    def __call__(self, points) -> np.ndarray:
        """P at ``points`` of shape (n, 2) (or a single point (2,)); 0 outside the mesh."""
        if self.weight is None:
            return evaluate(self.basis, self.P, points)
        pts = np.asarray(points, dtype=float)      # w·u, w exact (fe/gibbs.py)
        u = evaluate(self.basis, self._u(), points)
        with np.errstate(all="ignore"):             # L may have no value outside the mesh
            w = self.weight(pts[..., 0], pts[..., 1])
        return np.where(u != 0, w, 0.0) * u

    def _u(self, weight=None) -> np.ndarray:
        """u = P/w at the dofs of a Gibbs-weighted solution (``weight``: default its own)."""
        return self.P / (self.weight if weight is None else weight)(*self.basis.doflocs)

    def _probed(self, probe, pts) -> np.ndarray:
        """P at the points of ``probe`` (``pts``, shape (2, n)): w·u for a weighted solution."""
        if self.weight is None:
            return probe(self.P)
        return self.weight(pts[0], pts[1]) * probe(self._u())

    def _quadrature(self):
        """x, y, P and weights at the quadrature points (cached)."""
        if self._quad is None:
            x, y = (np.asarray(c) for c in self.basis.global_coordinates())
            Pq = _values_at_quadrature(self.basis, self.P)
            self._quad = (x, y, Pq, np.asarray(self.basis.dx))
        return self._quad

    def expectation(self, f: Callable) -> float:
        """∫ f(x, y) P(x, y) dA for a vectorised callable f."""
        x, y, Pq, dx = self._quadrature()
        return float(np.sum(np.asarray(f(x, y)) * Pq * dx))

    @property
    def mass(self) -> float:
        """∫ P dA (1 up to round-off)."""
        return self.expectation(lambda x, y: np.ones_like(x))

    def moments(self) -> dict:
        """Mean (2,) and covariance (2, 2) of the density."""
        x, y, Pq, dx = self._quadrature()
        w = Pq * dx
        m = np.array([np.sum(x * w), np.sum(y * w)])
        cx, cy = x - m[0], y - m[1]
        cov = np.array([[np.sum(cx * cx * w), np.sum(cx * cy * w)],
                        [np.sum(cx * cy * w), np.sum(cy * cy * w)]])
        return {"mean": m, "cov": cov}

    def marginal(self, axis: str, values) -> np.ndarray:
        """Marginal density, e.g. ``marginal("x", xs)`` = ∫ P(xs, y) dy.

        Computed exactly for the FE function: each line is cut at the element
        edges and integrated with ``order + 1`` Gauss points per segment (exact for
        polynomials of degree 2·order + 1, so for P1, P2 and P3 alike), up to the
        slivers between the straight chords and the curved boundary elements; a
        Gibbs-weighted density w·u with :meth:`line_points` per segment.

        Parameters
        ----------
        axis : {"x", "y"}
            The coordinate held fixed on each line (the other one is integrated out).
        values : float or array_like
            Positions of the lines.

        Returns
        -------
        float or ndarray
            The marginal at ``values`` (a float for a scalar ``values``).
        """
        if axis not in _AXES:
            raise ValueError(f"axis: expected 'x' or 'y', got {axis!r}")
        vals = np.atleast_1d(np.asarray(values, dtype=float))
        w, line, probe, pts = _line_quadrature(self.basis, _AXES[axis], vals,
                                               self.line_points(self.order + 1))
        out = np.zeros(vals.size)
        if w.size:
            np.add.at(out, line, w * self._probed(probe, pts))
        return out if np.ndim(values) else float(out[0])

    def line_points(self, exact: int) -> int:
        """Gauss points per segment for line integrals of the density: ``exact`` (what
        integrates the FE function exactly) or, for a Gibbs-weighted density w·u, at
        least :data:`LINE_GAUSS` — w = e^(−ψ) is no polynomial, and with ``order + 1``
        points the marginal of radial OU δ = 0.005 (P2, adapted to L1 ≤ 1e-4: 4e-7 off)
        was 1.3e-4 off at x = 0.05."""
        return exact if self.weight is None else max(exact, LINE_GAUSS)

    # -- maxima ---------------------------------------------------------------
    def mode(self, start=None, tol: float = 1e-9) -> np.ndarray:
        """Location (x, y) of the density maximum (the global one unless ``start`` is given).

        A shrinking-grid search on the FE function, seeded by the best nodal value:
        derivative-free, so the kinks of P across element edges do not stall it.
        """
        if start is None:
            start = self.basis.doflocs[:, int(np.argmax(self.P))]
        best = np.asarray(start, dtype=float)
        step = 0.5 * self.mesh.h
        g = np.linspace(-1.0, 1.0, 11)
        gx, gy = (a.ravel() for a in np.meshgrid(g, g))
        while step > tol:
            pts = np.stack([best[0] + step * gx, best[1] + step * gy])
            vals = (probe_values(self.basis, self.P, pts) if self.weight is None
                    else self.weight(pts[0], pts[1]) * probe_values(self.basis, self._u(), pts))
            best = pts[:, int(np.argmax(vals))]
            step *= 0.3
        return best

    def marginal_mode(self, axis: str = "x", n: int = 401) -> float:
        """Location of the maximum of the marginal along ``axis``.

        Of maxima equal to 1e-9 (a symmetric marginal's two), the one of smallest
        coordinate: round-off does not pick the side.
        """
        if axis not in _AXES:
            raise ValueError(f"axis: expected 'x' or 'y', got {axis!r}")
        c = self.basis.mesh.p[_AXES[axis]]
        grid = np.linspace(c.min(), c.max(), n)
        m = self.marginal(axis, grid)
        i = int(np.argmax(m >= m.max() - 1e-9 * abs(m.max())))
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, n - 1)]
        res = minimize_scalar(lambda s: -self.marginal(axis, [s])[0], bounds=(lo, hi),
                              method="bounded", options={"xatol": 1e-10})
        return float(res.x)

    # -- reporting ------------------------------------------------------------
    def summary(self) -> dict:
        """JSON-friendly observables and diagnostics."""
        mo = self.moments()
        return {
            "dofs": int(self.P.size),
            "order": self.order,
            "boundary": self.boundary,
            "escape_rate": self.escape_rate,
            "mean": mo["mean"].tolist(),
            "cov": mo["cov"].tolist(),
            "mode": self.mode().tolist(),
            "marginal_mode_x": self.marginal_mode("x"),
            "residual": self.diagnostics["residual"],
            "negative_mass": self.diagnostics["negative_mass"],
            "min_P": self.diagnostics["min_P"],
            "error_estimate": dict(self.error_estimate),
            "warnings": list(self.diagnostics["warnings"]),
        }

    def plot(self, **kwargs):
        """Density, flux streamlines, cycle centres and x-marginal as a matplotlib Figure.

        Keyword arguments go to :func:`fpsolve.display.plot_solution` (``flux``,
        ``title``, ``extent``).
        """
        return _display.figure("solution", self, **kwargs)

    def _repr_html_(self):
        # Jupyter: dofs, <x²>, μ, negative mass, residual, error estimates
        return _display.html("solution", self)

    def __repr__(self):
        d = self.diagnostics
        return (f"Solution({self.boundary}, P{self.order}, dofs={d['dofs']}, "
                f"escape_rate={self.escape_rate:.4g}, residual={d['residual']:.2g}, "
                f"negative_mass={d['negative_mass']:.2g})")
