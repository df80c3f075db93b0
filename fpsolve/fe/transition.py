"""The phase I → II transition located on the full 2-D finite-element solution.

The FE x-marginal P(x) = ∫P(x, y) dy has a maximum at x = 0 below the
critical noise level and a minimum above it.  The numerical Δ_S* is the root
of the relative curvature

    c(Δ_S) = P''(0)/P(0),

found by Brent's method on one assembled :class:`~fpsolve.Problem`
(A = A0 + Δ_S·A1: every evaluation is one ``prob.solve(Δ_S)``).  P''(0) is a
Richardson-extrapolated central difference of the exact line integrals
``sol.marginal("x", ...)`` at x = 0, ±d, ±2d:

    c_d = [P(d) − 2P(0) + P(−d)]/(d² P(0)),   c = (4 c_d − c_2d)/3,

which removes the O(d²) truncation error of the difference (the quartic
part of P is large near the transition) while d ≥ h averages over the kinks
of the FE function at element edges.  The discretisation uncertainty comes
from a second, finer mesh (h/√2 by default); see docs/transition.md.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import brentq

from ..theory import reduction as theory
from ..models.diffusion import SGD, sgd
from .mesh import Mesh, disk_mesh
from .solution import Solution
from .solver import FPSolveWarning, Problem, THRESHOLDS

__all__ = ["MeshLevel", "Transition", "marginal_curvature", "locate_transition",
           "critical_delta_s", "x_ss_curve", "l_sgd_fe", "l_sgd_profiles"]


def marginal_curvature(sol: Solution, d: float | None = None) -> float:
    """Relative curvature P''(0)/P(0) of the FE x-marginal (Richardson-extrapolated).

    Parameters
    ----------
    sol : Solution
        A stationary or quasi-stationary FE solution.
    d : float, optional
        Difference step (default: the mean edge length of the mesh).  The
        extrapolation uses the marginal at 0, ±d and ±2d.

    Returns
    -------
    float
        c = (4 c_d − c_2d)/3 with c_d the central second difference over P(0).
    """
    d = sol.mesh.h if d is None else float(d)
    if not np.isfinite(d) or d <= 0:
        raise ValueError(f"d: expected a positive number, got {d!r}")
    m2, m1, m0, p1, p2 = sol.marginal("x", [-2 * d, -d, 0.0, d, 2 * d])
    c_d = (m1 - 2 * m0 + p1) / (d * d * m0)
    c_2d = (m2 - 2 * m0 + p2) / (4 * d * d * m0)
    return float((4 * c_d - c_2d) / 3)


@dataclass
class MeshLevel:
    """Δ_S* located on one mesh.

    Attributes
    ----------
    h : float
        Mean edge length of the mesh.
    dofs : int
        Number of FE unknowns.
    value : float
        Root of c(Δ_S) on this mesh.
    nsolves : int
        Number of ``prob.solve`` calls of the root search.
    d : float
        Difference step of :func:`marginal_curvature`.
    d_sensitivity : float
        Largest shift of the root when d is halved or doubled (estimated from
        the curvature at the root and the slope dc/dΔ_S; no extra solves).
    slope : float
        dc/dΔ_S at the root (secant of the last bracket).
    negative_mass : float
        Largest negative-mass diagnostic over the solves.
    """

    h: float
    dofs: int
    value: float
    nsolves: int
    d: float
    d_sensitivity: float
    slope: float
    negative_mass: float
    history: list = field(default_factory=list, repr=False)


@dataclass
class Transition:
    """Numerical Δ_S* with a discretisation uncertainty from two mesh levels.

    Attributes
    ----------
    value : float
        Δ_S* on the finest mesh.
    uncertainty : float
        |Δ_S*(coarse) − Δ_S*(fine)|: the Richardson error estimate of the fine
        value for a refinement ratio r and observed order p with r^p = 2 (P2,
        r = √2 gives p ≈ 2 here; docs/transition.md), plus the d-sensitivity.
    nsolves : int
        Total number of solves over all levels.
    cross_diffusion : bool
        Whether D12 = D21 were kept.
    theory : float
        Adiabatic prediction −ε/λ1 (:func:`fpsolve.theory.critical_delta_s`).
    levels : list of MeshLevel
        Coarse to fine.
    """

    value: float
    uncertainty: float
    nsolves: int
    cross_diffusion: bool
    theory: float
    levels: list

    def as_dict(self) -> dict:
        """JSON-friendly summary."""
        return {"value": self.value, "uncertainty": self.uncertainty, "nsolves": self.nsolves,
                "cross_diffusion": self.cross_diffusion, "theory": self.theory,
                "levels": [{k: v for k, v in lv.__dict__.items() if k != "history"}
                           for lv in self.levels]}


def _sgd_problem(landscape, cross_diffusion: bool, mesh: Mesh, order: int, boundary: str,
                 delta_s: float) -> Problem:
    return Problem(landscape, sgd(landscape, delta_s, cross_diffusion=cross_diffusion), mesh,
                   boundary=boundary, order=order)


def locate_transition(prob: Problem, bracket=(0.009, 0.013), d: float | None = None,
                      xtol: float = 1e-7) -> MeshLevel:
    """Root of the marginal curvature c(Δ_S) on one assembled SGD problem.

    Parameters
    ----------
    prob : Problem
        With an SGD diffusion model (strength Δ_S).
    bracket : (float, float)
        Δ_S interval with c of opposite signs at its ends.
    d : float, optional
        Difference step of :func:`marginal_curvature` (default: mesh h).
    xtol : float
        Absolute tolerance of the root in Δ_S.

    Returns
    -------
    MeshLevel
    """
    if not isinstance(prob.diffusion, SGD):
        raise ValueError(f"prob: expected a Problem with SGD diffusion, got "
                         f"{type(prob.diffusion).__name__}")
    lo, hi = (float(b) for b in bracket)
    if not (0 < lo < hi):
        raise ValueError(f"bracket: expected 0 < lo < hi, got {bracket!r}")
    d = prob.mesh.h if d is None else float(d)
    history, last, neg = [], {}, [0.0]

    def c(ds):
        with warnings.catch_warnings():
            # negative mass etc. are collected and reported once below
            warnings.simplefilter("ignore", FPSolveWarning)
            sol = prob.solve(ds)
        neg[0] = max(neg[0], sol.diagnostics["negative_mass"])
        val = marginal_curvature(sol, d)
        history.append((float(ds), val))
        last["sol"] = sol
        return val

    before, prob.reuse_ordering = prob.reuse_ordering, True   # Brent: ~10 LUs, one pattern
    try:
        c_lo, c_hi = c(lo), c(hi)
        if np.sign(c_lo) == np.sign(c_hi):
            raise ValueError(f"bracket: the marginal curvature has the same sign at both ends "
                             f"(c({lo:g}) = {c_lo:.4g}, c({hi:g}) = {c_hi:.4g}); widen it")
        root = brentq(c, lo, hi, xtol=xtol, rtol=4 * np.finfo(float).eps)
    finally:
        prob.reuse_ordering = before
    # slope from the two evaluations closest to the root on either side
    h = np.array(history)
    below, above = h[h[:, 1] > 0], h[h[:, 1] <= 0]
    a = below[np.argmin(np.abs(below[:, 0] - root))]
    b = above[np.argmin(np.abs(above[:, 0] - root))]
    slope = (b[1] - a[1]) / (b[0] - a[0])
    sol = last["sol"]
    c_ref = marginal_curvature(sol, d)
    shift = max(abs(marginal_curvature(sol, f * d) - c_ref) for f in (0.5, 2.0)) / abs(slope)
    if neg[0] > THRESHOLDS["negative_mass"]:
        warnings.warn(f"critical Δ_S on h={prob.mesh.h:.3g}: negative mass up to {neg[0]:.2e} "
                      f"(threshold {THRESHOLDS['negative_mass']:g}); check the mesh-level spread",
                      FPSolveWarning, stacklevel=2)
    return MeshLevel(h=prob.mesh.h, dofs=int(prob.dofs), value=float(root), nsolves=len(history),
                     d=d, d_sensitivity=float(shift), slope=float(slope),
                     negative_mass=float(neg[0]), history=history)


def critical_delta_s(landscape, cross_diffusion: bool = True, mesh: Mesh | None = None,
                     order: int = 2, bracket=(0.009, 0.013), fine_mesh: Mesh | None = None,
                     refine: bool = True, d: float | None = None, xtol: float = 1e-7,
                     boundary: str = "absorbing") -> Transition:
    """Numerical Δ_S* of the full 2-D FE solution (root of P''(0) of the x-marginal).

    Parameters
    ----------
    landscape : PaperLandscape
        Loss; the noise is D = Δ_S H² (``fpsolve.diffusion.sgd``).
    cross_diffusion : bool
        Keep D12 = D21 (True) or drop them as the paper's MATLAB solve did.
    mesh : Mesh, optional
        Coarse level (default ``disk_mesh(2.0, 0.05)``).
    order : {1, 2}
    bracket : (float, float)
        Δ_S interval containing the transition.
    fine_mesh : Mesh, optional
        Second level; default ``disk_mesh(mesh.radius, mesh.h/√2)``.
    refine : bool
        False: one level only (uncertainty is then NaN).
    d : float, optional
        Difference step of :func:`marginal_curvature` (default: each mesh's h).
    xtol : float
        Root tolerance in Δ_S.
    boundary : {"absorbing", "reflecting"}

    Returns
    -------
    Transition
        ``value`` (finest level), ``uncertainty``, ``nsolves``, ``levels``.

    Examples
    --------
    >>> import fpsolve as fp
    >>> L = fp.landscapes.paper()
    >>> res = fp.critical_delta_s(L, mesh=fp.disk_mesh(2.0, 0.05))   # doctest: +SKIP
    >>> round(res.value, 4), res.nsolves                             # doctest: +SKIP
    (0.0106, 18)
    """
    if not isinstance(cross_diffusion, (bool, np.bool_)):
        raise ValueError(f"cross_diffusion: expected True or False, got {cross_diffusion!r}")
    mesh = disk_mesh(2.0, 0.05) if mesh is None else mesh
    meshes = [mesh]
    if refine:
        if fine_mesh is None:
            if mesh.radius is None:
                raise ValueError("fine_mesh: required when mesh is not a disk (no radius known)")
            fine_mesh = disk_mesh(mesh.radius, mesh.h / np.sqrt(2), center=mesh.center)
        meshes.append(fine_mesh)
    lo = min(bracket)
    levels = [locate_transition(_sgd_problem(landscape, bool(cross_diffusion), m, order,
                                             boundary, lo), bracket, d, xtol)
              for m in meshes]
    fine = levels[-1]
    unc = (abs(levels[0].value - fine.value) + fine.d_sensitivity) if refine else float("nan")
    return Transition(value=fine.value, uncertainty=float(unc),
                      nsolves=sum(lv.nsolves for lv in levels),
                      cross_diffusion=bool(cross_diffusion),
                      theory=theory.critical_delta_s(landscape), levels=levels)


def x_ss_curve(landscape, delta_s_values, cross_diffusion: bool = True,
               mesh: Mesh | None = None, order: int = 2, boundary: str = "absorbing",
               forms=("paper", "fpe")) -> dict:
    """x_ss(Δ_S): |marginal mode| of the FE solution against the adiabatic theory.

    Returns
    -------
    dict
        ``delta_s`` (n,), ``fe`` (n,) and one (n,) array per theory form
        (``theory_paper``, ``theory_fpe``); x_ss ≥ 0 (the problem is symmetric).
    """
    ds = np.atleast_1d(np.asarray(delta_s_values, dtype=float))
    if ds.size == 0 or np.any(ds <= 0) or not np.all(np.isfinite(ds)):
        raise ValueError(f"delta_s_values: expected positive numbers, got {delta_s_values!r}")
    mesh = disk_mesh(2.0, 0.05) if mesh is None else mesh
    prob = _sgd_problem(landscape, bool(cross_diffusion), mesh, order, boundary, float(ds[0]))
    prob.reuse_ordering = len(ds) >= 4
    fe = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FPSolveWarning)
        for s in ds:
            fe.append(abs(prob.solve(s).marginal_mode("x")))
    R = mesh.radius if mesh.radius is not None else 2.0
    out = {"delta_s": ds, "fe": np.array(fe)}
    for form in forms:
        out[f"theory_{form}"] = np.array([theory.adiabatic(landscape, s, form=form, R=R).x_ss
                                          for s in ds])
    return out


def l_sgd_fe(sol: Solution, xs, rel_floor: float = 0.0) -> np.ndarray:
    """L_SGD(x) from an FE solution: Eq. 10 with the theory marginal replaced by the FE one.

    L_SGD^FE(x) = −Δ(x) ln[P_FE(x)/P_FE(0)] − (Δ(x)/2) ln(λ(x)/Δ(x)) − ½ελ0x²,
    Δ(x) = Δ_S λ(x)², P_FE the x-marginal.  With the S30 marginal in place of
    P_FE this is exactly :meth:`fpsolve.theory.Adiabatic.L_sgd`.  NaN where
    P_FE(x) ≤ 0.
    """
    if not isinstance(sol.diffusion, SGD):
        raise ValueError(f"sol: expected a solution with SGD diffusion, got "
                         f"{type(sol.diffusion).__name__}")
    L = sol.landscape
    xs = np.asarray(xs, dtype=float)
    m = sol.marginal("x", np.append(xs.ravel(), 0.0))
    p, p0 = m[:-1].reshape(xs.shape), m[-1]
    ok = p > max(float(rel_floor) * float(np.max(m)), 0.0)
    D = sol.diffusion.delta_s * L.lam(xs) ** 2
    logp = np.where(ok, np.log(np.where(ok, p, 1.0) / p0), np.nan)
    return -D * logp - 0.5 * D * np.log(L.lam(xs) / D) - 0.5 * L.eps * L.lam0 * xs * xs


def l_sgd_profiles(sol: Solution, xs, form: str = "paper", rel_floor: float = 0.0) -> dict:
    """L_SGD(x) from FE, Eq. 10 and Eq. 11, each shifted to 0 at x = 0.

    Eq. 10 and Eq. 11 carry different additive constants (Δ(1 − κ) ln F(0) in
    Eq. 11), so profiles are compared up to a constant.  ``rel_floor`` as in
    :func:`l_sgd_fe`.

    Returns
    -------
    dict
        ``x``, ``fe``, ``eq10``, ``eq11`` (arrays like ``xs``).
    """
    xs = np.asarray(xs, dtype=float)
    R = sol.mesh.radius if sol.mesh.radius is not None else float(np.max(np.abs(xs)))
    th = theory.adiabatic(sol.landscape, sol.diffusion.delta_s, form=form, R=R)
    zero = lambda f: f(xs) - f(np.zeros(1))[0]
    return {"x": xs, "fe": zero(lambda x: l_sgd_fe(sol, x, rel_floor)),
            "eq10": zero(th.L_sgd), "eq11": zero(th.L_sgd_approx)}
