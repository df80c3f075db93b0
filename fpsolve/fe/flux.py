"""Probability flux J, its Helmholtz decomposition, flux cycles and entropy production.

The flux of the Fokker–Planck equation (Itô, docs/theory.md) is

    J = −∇L P − ∇·(D P) = −D∇P − βP,     β = ∇L + ∇·D,

and for a user drift b (``sol.drift``) β = −b + ∇·D, exactly the coefficient the
operator of :mod:`fpsolve.fe.assembly` was assembled with, so that ∫ J_h·∇v dA = −(A P)_v for
every test function v (the discrete flux is *consistent* with the solve).

Conventions (checked by the tests against exact rotating flows, see docs/flux.md):

* **Stream function.** J = (∂ψ/∂y, −∂ψ/∂x) + ∇φ with ψ = 0 on the boundary.  ψ solves
  ∫ ∇ψ·∇v dA = ∫ (J_x ∂_y v − J_y ∂_x v) dA for all v vanishing on the boundary
  (−Δψ = ∂_x J_y − ∂_y J_x), in the FE space of P.  A **maximum** of ψ is the centre
  of a **counter-clockwise** ("ccw") cycle, a minimum of a clockwise ("cw") one.
* **Potential part.** φ solves the Neumann problem ∫ ∇φ·∇v dA = ∫ J·∇v dA for all v
  (−Δφ = −∇·J in Ω, ∂φ/∂n = J·n on ∂Ω), normalised to ∫φ dA = 0.  With ψ = 0 on the
  boundary the two parts are L2-orthogonal; ∇φ carries all of the boundary outflow
  (the escape flux μ of an absorbing boundary) and vanishes for a reflecting one.
* **Current through a polyline** a → b: ∫ J·n ds with n the segment direction rotated
  by −90° (clockwise), i.e. n points to the *right* of the direction of travel.  Through
  the vertical segment (0, 0) → (0, 2) it is the current in +x.  For the
  divergence-free part it equals ψ(b) − ψ(a).
* **Circulation** of a cycle = ψ at its centre (> 0 for ccw): the probability current
  through any line from the centre to the boundary (or to a ψ = 0 separatrix).
"""
from __future__ import annotations

import sys
import types
import warnings

import numpy as np
from skfem import LinearForm

from .. import _display
from .assembly import _gauss, probe_values
# pointwise evaluation and the load forms (also importable from here under these names)
from .flux_eval import (_beta, _curl_load, _div_load, _flux_from, _flux_loads,  # noqa: F401
                        _grad_at_quadrature, _load, _points, _trace_basis,
                        value_gradient_matrices)
# the mesh-only operators (also reachable here under their old names)
from .flux_operators import _laplace, _mesh_operators, _spd_lu, prefetch_operators  # noqa: F401
from .solution import Solution
from .solver import FPSolveWarning

__all__ = ["Flux", "flux", "prefetch_operators", "value_gradient_matrices", "MIN_CYCLE_FRACTION",
           "ENTROPY_TAIL_TOLERANCE", "NEGATIVE_MASS_LIMIT"]

#: Extrema of ψ with |ψ| below this fraction of max |ψ| are not reported as cycles.
MIN_CYCLE_FRACTION = 0.05
#: Entropy production is reported only if the quadrature points where D is (nearly)
#: singular contribute less than this fraction of the integral (docs/flux.md).
ENTROPY_TAIL_TOLERANCE = 1e-3
#: ... and only if the density has at most this much negative mass.
NEGATIVE_MASS_LIMIT = 1e-6
# A quadrature point counts as "D nearly singular" where λ_min/λ_max of D is below
# this factor times the P-weighted median of λ_min/λ_max (relative, so that a strongly
# but uniformly anisotropic D, like the paper's κ ≈ 2500, is not flagged).
_SINGULAR_RATIO = 1e-3


class Flux:
    """Probability flux of a :class:`~fpsolve.Solution` and everything derived from it.

    Build it with :func:`flux`.

    Attributes
    ----------
    solution : Solution
    J : ndarray, shape (2, N)
        L2 projection of J onto the (continuous) FE space of P: dof vectors of J_x, J_y.
    magnitude : ndarray, shape (N,)
        |J| of the projected field at the dof locations.
    psi : ndarray, shape (N,)
        Stream function ψ (dof vector on ``solution.basis``), ψ = 0 on the boundary.
    phi : ndarray, shape (N,)
        Potential φ of the curl-free part (∫φ dA = 0).
    cycles : list of dict
        One per significant extremum of ψ, largest |circulation| first, with keys
        ``center`` (x, y), ``sense`` ("ccw" | "cw"), ``circulation`` (ψ at the centre,
        signed, > 0 for ccw), ``current`` (|circulation|: the probability current
        carried round the cycle, i.e. through any cut from the centre to the boundary),
        ``current_line`` (the same current as a line integral of J·n along the radial
        cut centre → boundary, oriented with the cycle: an independent O(h^p) check),
        ``psi_fraction`` (|ψ(centre)| / max|ψ|), ``density`` (P at the centre).
        Empty when the flux is not resolved by the mesh (see :meth:`find_cycles`).
    entropy_production : float or None
        ∫ J·D⁻¹J / P dA, or None where it is not defined (``entropy_production_reason``
        says why).
    diagnostics : dict
        Norms of the decomposition, boundary outflow vs escape rate, symmetry checks.
    """

    def __init__(self, sol: Solution, min_fraction: float = MIN_CYCLE_FRACTION):
        if not isinstance(sol, Solution):
            raise TypeError(f"sol: expected a fpsolve Solution, got {type(sol).__name__}")
        try:
            min_fraction = float(min_fraction)
        except (TypeError, ValueError):
            raise ValueError(f"min_fraction: expected a number in [0, 1), got "
                             f"{min_fraction!r}") from None
        if not 0.0 <= min_fraction < 1.0:
            raise ValueError(f"min_fraction: expected a number in [0, 1), got {min_fraction!r}")
        self.solution = sol
        self.min_fraction = min_fraction
        basis = self.basis = sol.basis
        x, y, Pq, dx = sol._quadrature()
        self._dx = dx
        gradP = (np.asarray(_grad_at_quadrature(basis, sol.P)) if sol.weight is None
                 else _density_fields(sol, basis)[1])
        self._Dq = np.asarray(sol.diffusion.tensor(x, y), dtype=float)
        self.at_quadrature = _flux_from(self._Dq, _beta(sol, x, y), Pq, gradP)
        ops = self._ops = _mesh_operators(basis)
        self._M = ops["M"]
        loads = _flux_loads(basis, self.at_quadrature)
        self.J = np.stack([ops["lu_M"].solve(loads[i]) for i in range(2)])
        self.magnitude = np.hypot(self.J[0], self.J[1])
        self._boundary_dofs = ops["B"]
        K = ops["K"]
        self.psi = self._stream_function(K, loads[2])
        self._div_rhs = loads[3]                   # ∫ J·∇v = −(A P)
        self.phi = self._potential(K)
        self.diagnostics = self._decomposition_norms(K)
        self.diagnostics.update(self._outflow())
        self.diagnostics["warnings"] = []
        # ZZ-type resolution test: the element-scale part of J_h (not a discrete
        # rotational or gradient field) estimates its discretisation error; cycles are
        # only meaningful where the rotational signal exceeds it.
        d = self.diagnostics
        noise = d["helmholtz_residual"] * d["J_L2"]
        d["flux_resolved"] = bool(d["rot_psi_L2"] > noise)
        if d["flux_resolved"]:
            self.cycles = self.find_cycles()
        else:
            self.cycles = []
            d["warnings"].append(
                f"flux not resolved: the rotational part ‖rot ψ‖ = {d['rot_psi_L2']:.3g} does "
                f"not exceed the element-scale noise of J_h ({noise:.3g}); no cycles reported "
                "(refine the mesh; Flux.find_cycles() lists the extrema of ψ regardless)")
        self.entropy_production, self.entropy_production_reason, ep = self._entropy()
        self.diagnostics.update(ep)
        self.diagnostics.update(self._symmetry())
        for w in self.diagnostics["warnings"]:
            warnings.warn(w, FPSolveWarning, stacklevel=3)

    # -- evaluation -------------------------------------------------------------------
    def __call__(self, points, projected: bool = False) -> np.ndarray:
        """J at ``points`` (n, 2) -> (n, 2); a single point (2,) gives (2,).

        By default J = −D∇P_h − βP_h is evaluated from the FE density at each point
        (discontinuous across element edges, like ∇P_h); ``projected=True`` evaluates
        the continuous L2-projected field instead.  J = 0 outside the mesh.
        """
        pts, single = _points(points)
        V, Gx, Gy, inside = value_gradient_matrices(self.basis, pts.T)
        if projected:
            out = np.stack([V @ self.J[0], V @ self.J[1]], axis=1)
        else:
            x, y = pts[inside, 0], pts[inside, 1]
            sol = self.solution
            out = np.zeros((pts.shape[0], 2))
            P, gradP = _point_density(sol, V, Gx, Gy, inside, x, y)
            Jp = _flux_from(np.asarray(sol.diffusion.tensor(x, y)), _beta(sol, x, y), P, gradP)
            out[inside] = Jp.T
        return out[0] if single else out

    def psi_at(self, points) -> np.ndarray:
        """Stream function ψ at ``points`` (n, 2) (a float for one point (2,))."""
        pts, single = _points(points)
        V = value_gradient_matrices(self.basis, pts.T)[0]
        vals = V @ self.psi
        return float(vals[0]) if single else vals

    def phi_at(self, points) -> np.ndarray:
        """Potential φ of the curl-free part at ``points`` (n, 2)."""
        pts, single = _points(points)
        vals = value_gradient_matrices(self.basis, pts.T)[0] @ self.phi
        return float(vals[0]) if single else vals

    def cell_average(self) -> np.ndarray:
        """Element averages of J (exact quadrature of the FE flux), shape (2, nelements)."""
        dx = self._dx
        return (self.at_quadrature * dx).sum(-1) / dx.sum(-1)

    # -- currents ------------------------------------------------------------------------
    def through(self, polyline, npts: int | None = None) -> float:
        """Probability current through a polyline, ∫ J·n ds.

        Parameters
        ----------
        polyline : array_like, shape (m, 2), m ≥ 2
            Vertices a0 → a1 → ... ; n is the direction of each segment rotated by −90°
            (pointing to the right of the direction of travel).
        npts : int, optional
            Gauss points per piece (default order + 2).  Each segment is cut where it
            crosses mesh edges, so the integrand is smooth on every piece.

        Returns
        -------
        float
            The current; for the divergence-free part it equals ψ(end) − ψ(start)
            (see :meth:`psi_difference`).
        """
        poly, _ = _points(polyline, "polyline")
        if poly.shape[0] < 2:
            raise ValueError(f"polyline: expected at least 2 vertices, got {poly.shape[0]}")
        npts = self.solution.line_points(self.solution.order + 2) if npts is None else int(npts)
        if npts < 1:
            raise ValueError(f"npts: expected a positive integer, got {npts!r}")
        return self._currents([poly], npts)[0][0]

    def _polyline_rule(self, poly, npts):
        """Points (m, 2) and weights n|t| ds (m, 2) of ∫ J·n ds along ``poly`` (None
        when it has no length)."""
        g, gw = _gauss(npts)
        g, gw = 0.5 * (g + 1.0), 0.5 * gw
        pts, wts = [], []
        for a, b in zip(poly[:-1], poly[1:]):
            t = b - a
            if not np.any(t):
                continue
            s = self._edge_crossings(a, b)
            lo, ln = s[:-1], np.diff(s)
            q = (lo[:, None] + ln[:, None] * g[None, :]).ravel()
            pts.append(a[None, :] + q[:, None] * t[None, :])
            # J·n |t| ds with n |t| = (t_y, −t_x)
            wts.append(((ln[:, None] * gw[None, :]).ravel()[:, None]
                        * np.array([t[1], -t[0]])[None, :]))
        if not pts:
            return None
        return np.concatenate(pts), np.concatenate(wts)

    def _currents(self, polylines, npts=None):
        """:meth:`through` of several polylines (validated arrays) with one evaluation
        of J at all their points (J at a point does not depend on the others, so the
        currents are the same); also J at each polyline's points (None if empty)."""
        npts = self.solution.line_points(self.solution.order + 2) if npts is None else npts
        rules = [self._polyline_rule(np.asarray(p, dtype=float), npts) for p in polylines]
        used = [r for r in rules if r is not None]
        if not used:
            return [0.0] * len(rules), [None] * len(rules)
        J = self(np.concatenate([r[0] for r in used]))
        out, Js, k = [], [], 0
        for r in rules:
            if r is None:
                out.append(0.0)
                Js.append(None)
                continue
            Jr = np.array(J[k:k + len(r[0])])     # a fresh array, as self(points) gives
            k += len(r[0])
            out.append(float(np.sum(Jr * r[1])))
            Js.append(Jr)
        return out, Js

    def psi_difference(self, polyline) -> float:
        """ψ(end) − ψ(start): the current of the divergence-free part through ``polyline``."""
        poly, _ = _points(polyline, "polyline")
        if poly.shape[0] < 2:
            raise ValueError(f"polyline: expected at least 2 vertices, got {poly.shape[0]}")
        v = self.psi_at(poly[[0, -1]])
        return float(v[1] - v[0])

    def _edge_crossings(self, a, b) -> np.ndarray:
        """Sorted parameters s ∈ [0, 1] where a + s(b − a) crosses a mesh edge."""
        m = self.basis.mesh
        p = m.p[:2]
        f = m.facets
        p0, e = p[:, f[0]], p[:, f[1]] - p[:, f[0]]
        d = b - a
        den = d[0] * e[1] - d[1] * e[0]
        w = p0 - a[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (w[0] * e[1] - w[1] * e[0]) / den
            u = (w[0] * d[1] - w[1] * d[0]) / den
        ok = (np.abs(den) > 1e-14 * np.hypot(*d) * np.hypot(*e)) & (s > 0) & (s < 1) \
            & (u >= 0) & (u <= 1)
        s = np.unique(np.concatenate([[0.0, 1.0], s[ok]]))
        return s[np.concatenate([[True], np.diff(s) > 1e-12])]

    # -- decomposition ---------------------------------------------------------------------
    def _stream_function(self, K, f=None) -> np.ndarray:
        if f is None:
            f = _curl_load.assemble(self.basis, J=self.at_quadrature)
        I = self._ops["I"]
        psi = np.zeros(self.basis.N)
        psi[I] = self._ops["lu_dirichlet"].solve(f[I])     # ψ = 0 on the boundary
        return psi

    def _potential(self, K) -> np.ndarray:
        # Neumann problem: singular K with null vector 1 and Σ rhs = ∫ J·∇1 = 0, so one
        # equation is redundant; pin one dof and fix the constant by ∫φ = 0.
        N = self.basis.N
        keep = self._ops["keep"]
        phi = np.zeros(N)
        phi[keep] = self._ops["lu_neumann"].solve(self._div_rhs[keep])
        m = self._M @ np.ones(N)
        return phi - (m @ phi) / m.sum()

    def _decomposition_norms(self, K) -> dict:
        dx = self._dx
        Jq = self.at_quadrature
        gpsi = np.asarray(_grad_at_quadrature(self.basis, self.psi))
        gphi = np.asarray(_grad_at_quadrature(self.basis, self.phi))
        rot = np.stack([gpsi[1], -gpsi[0]])
        norm = lambda F: float(np.sqrt(np.sum((F * F).sum(0) * dx)))
        nJ = norm(Jq)
        return {
            "J_L2": nJ,
            "rot_psi_L2": norm(rot),
            "grad_phi_L2": norm(gphi),
            "grad_phi_fraction": norm(gphi) / nJ if nJ > 0 else 0.0,
            "helmholtz_residual": norm(Jq - rot - gphi) / nJ if nJ > 0 else 0.0,
            "psi_max_abs": float(np.max(np.abs(self.psi))),
        }

    # -- boundary outflow ------------------------------------------------------------------
    def _outflow(self) -> dict:
        sol = self.solution
        B = self._boundary_dofs
        interior = np.ones(self.basis.N, dtype=bool)
        interior[B] = False
        MP = _density_load(sol, self._M)
        # consistent residual flux (fe/solver.py): −Σ_B (A P)_i / Σ_I (M P)_i, with
        # −(A P)_i = ∫ J_h·∇φ_i computed from this module's J
        resid = float(self._div_rhs[B].sum() / MP[interior].sum())
        trace = self._trace_outflow()
        # the computed μ, also where it is ≤ 0 and the solution reports NaN
        mu = sol.diagnostics.get("escape_rate_flux", sol.escape_rate)
        out = {"escape_rate": mu,
               "escape_rate_eig": sol.diagnostics.get("escape_rate_eig"),
               "outflow_residual": resid, "outflow_trace": trace}
        scale = max(abs(mu), abs(resid))
        out["outflow_residual_mismatch"] = abs(resid - mu) / scale if scale > 0 else 0.0
        out["outflow_trace_mismatch"] = (abs(trace - mu) / abs(mu) if mu != 0
                                         else abs(trace))
        if sol.stabilisation is not None:
            out["outflow_note"] = ("SUPG: the solve used the stabilised operator, the "
                                   "residual outflow here uses the Galerkin flux")
        return out

    def _trace_outflow(self) -> float:
        """∮ J_h·n ds from element traces (converges like the flux, O(h^p))."""
        # exact facet quadrature points: basis.boundary() inverts the curved map by a
        # Newton iteration that fails in the tiny boundary elements of adapted meshes
        fb = _trace_basis(self.basis)
        sol = self.solution
        x, y = (np.asarray(c) for c in fb.global_coordinates())
        Pf, gradPf = _density_fields(sol, fb)
        Jf = _flux_from(np.asarray(sol.diffusion.tensor(x, y)), _beta(sol, x, y), Pf, gradPf)
        n = np.asarray(fb.normals)
        return float(np.sum((Jf * n).sum(0) * np.asarray(fb.dx)))

    # -- cycles ---------------------------------------------------------------------------
    def find_cycles(self, min_fraction: float | None = None, max_cycles: int = 32) -> list:
        """Centres of the flux cycles: significant local extrema of ψ.

        Extrema are found on the dofs (ψ_i ≥ ψ_j for every dof j sharing an element),
        refined by a derivative-free shrinking-grid search on the FE function and merged
        when closer than the mesh size.  :attr:`cycles` is this list when the flux is
        resolved (``diagnostics["flux_resolved"]``), else empty.

        Parameters
        ----------
        min_fraction : float, optional
            Ignore extrema with |ψ| < min_fraction · max|ψ| (default: the Flux's).
        max_cycles : int
            Stop after this many cycles (an unresolved ψ has a very large number of
            noise extrema).

        Returns
        -------
        list of dict
            See :class:`Flux`.
        """
        min_fraction = self.min_fraction if min_fraction is None else float(min_fraction)
        if not 0.0 <= min_fraction < 1.0:
            raise ValueError(f"min_fraction: expected a number in [0, 1), got {min_fraction!r}")
        psi = self.psi
        scale = float(np.max(np.abs(psi)))
        if scale == 0.0:
            return []
        basis = self.basis
        thresh = min_fraction * scale
        cand = _dof_extrema(psi, basis.element_dofs, thresh)
        h = self.solution.mesh.h
        found = []
        k = 0
        while k < len(cand) and len(found) < max_cycles:
            # refine the next candidates together (each one's search is independent of
            # the others, so a batch gives the same centres), as many as could still be
            # accepted; merged in order as before
            batch = cand[k:k + max_cycles - len(found)]
            k += len(batch)
            signs = np.array([sg for sg, _ in batch])
            centres = self._refine_extrema(basis.doflocs[:, [i for _, i in batch]], signs, h)
            for sign, c in zip(signs, centres.T):
                if len(found) >= max_cycles:
                    break
                if any(f[0] == sign and np.hypot(*(c - f[1])) < h for f in found):
                    continue
                found.append((sign, c))
        if not found:
            return []
        # ψ, the cut currents and P at all centres in one evaluation each
        vals = self.psi_at(np.array([c for _, c in found]))
        keep = [(sign, c, v) for (sign, c), v in zip(found, vals) if not sign * v < thresh]
        if not keep:
            return []
        cuts = self._currents([np.array([c, self._boundary_point(c)]) for _, c, _ in keep])[0]
        dens = self.solution(np.array([c for _, c, _ in keep]))
        cycles = []
        for (sign, c, val), cut, rho in zip(keep, cuts, dens):
            cycles.append({"center": (float(c[0]), float(c[1])),
                           "sense": "ccw" if sign > 0 else "cw",
                           "circulation": float(val),
                           "current": float(abs(val)),
                           # independent check: ∫ J·n along the cut centre → boundary,
                           # oriented with the cycle (O(h^p), ψ converges faster)
                           "current_line": float(-sign * cut),
                           "psi_fraction": float(abs(val) / scale),
                           "density": float(rho)})
        return _order_cycles(cycles, scale)

    def _refine_extremum(self, start, sign, h, tol=1e-10):
        """Shrinking-grid search for the extremum of sign·ψ (derivative-free, like
        Solution.mode: the kinks of ψ_h across element edges do not stall it)."""
        return self._refine_extrema(np.asarray(start, dtype=float)[:, None],
                                    np.array([float(sign)]), h, tol)[:, 0]

    def _refine_extrema(self, starts, signs, h, tol=1e-10):
        """:meth:`_refine_extremum` of several starts (2, k) at once: the points of all
        searches are located and evaluated in one batch per step."""
        best = np.array(starts, dtype=float)
        signs = np.asarray(signs, dtype=float)[:, None]
        step = h
        g = np.linspace(-1.0, 1.0, 11)
        gx, gy = (a.ravel() for a in np.meshgrid(g, g))
        rows = np.arange(best.shape[1])
        while step > tol:
            pts = np.stack([best[0][:, None] + step * gx, best[1][:, None] + step * gy])
            v, inside = probe_values(self.basis, self.psi, pts.reshape(2, -1), inside=True)
            val = np.where(inside.reshape(pts.shape[1:]), signs * v.reshape(pts.shape[1:]),
                           -np.inf)
            best = pts[:, rows, np.argmax(val, axis=1)]
            step *= 0.3
        return best

    def _boundary_point(self, c) -> np.ndarray:
        """End of the cut from a cycle centre to the boundary (radial on a disk)."""
        mesh = self.solution.mesh
        if mesh.radius is not None:
            o = np.asarray(mesh.center, dtype=float)
            d = c - o
            r = np.hypot(*d)
            d = d / r if r > 0 else np.array([1.0, 0.0])
            return o + mesh.radius * d
        bl = self.basis.doflocs[:, self._boundary_dofs]
        return bl[:, int(np.argmin(np.hypot(bl[0] - c[0], bl[1] - c[1])))]

    # -- entropy production ------------------------------------------------------------------
    def _entropy(self):
        """∫ J·D⁻¹J / P dA where it is defined; else (None, reason)."""
        sol = self.solution
        D, Jq, dx = self._Dq, self.at_quadrature, self._dx
        Pq = sol._quadrature()[2]
        neg = float(sol.diagnostics.get("negative_mass", 0.0))
        info = {"entropy_production": None, "entropy_production_reason": ""}
        tr = D[0, 0] + D[1, 1]
        det = D[0, 0] * D[1, 1] - D[0, 1] * D[1, 0]
        lmin = 0.5 * tr - np.sqrt(np.maximum(0.25 * tr * tr - det, 0.0))
        lmax = tr - lmin
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(lmax > 0, lmin / lmax, 0.0)
        w = np.maximum(Pq, 0) * dx
        order = np.argsort(ratio, axis=None)
        cw = np.cumsum(w.ravel()[order])
        median = float(ratio.ravel()[order][np.searchsorted(cw, 0.5 * cw[-1])])
        cut = _SINGULAR_RATIO * median
        info.update(D_ratio_min=float(ratio.min()), D_ratio_median=median)
        pos = Pq > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            Dinv_J = np.stack([D[1, 1] * Jq[0] - D[0, 1] * Jq[1],
                               D[0, 0] * Jq[1] - D[1, 0] * Jq[0]]) / det
            dens = np.where(pos & (det > 0), (Jq * Dinv_J).sum(0) / Pq, 0.0)
        if np.any(pos & ~(det > 0)):
            # exactly singular D where the density lives: J·D⁻¹J is infinite unless J = 0
            dens = np.where(pos & ~(det > 0), np.inf, dens)
        total = float(np.sum(dens * dx))
        near = pos & (ratio < cut)
        tail = float(np.sum(np.where(near, dens, 0.0) * dx))
        info["entropy_production_singular_part"] = tail
        x, y = sol._quadrature()[:2]
        if np.any(near) and not (np.isfinite(total) and tail <= ENTROPY_TAIL_TOLERANCE * total):
            # point of the largest near-singular contribution (where it matters)
            k = np.unravel_index(int(np.argmax(np.where(near, dens * dx, -np.inf))),
                                 ratio.shape)
            reason = (f"not defined: D is singular on the domain (λ_min/λ_max of D down to "
                      f"{ratio.min():.1e}, e.g. at ({x[k]:.3g}, {y[k]:.3g})) and J has a "
                      f"component in its null direction there: the quadrature points with "
                      f"λ_min/λ_max < {cut:.1e} carry {tail:.3g} of the integral {total:.3g}, "
                      "which grows without bound under refinement")
            info["entropy_production_reason"] = reason
            return None, reason, info
        if neg > NEGATIVE_MASS_LIMIT:
            reason = (f"not defined: the FE density has negative mass {neg:.2e} > "
                      f"{NEGATIVE_MASS_LIMIT:g} (J·D⁻¹J/P is meaningless where P_h ≤ 0)")
            info["entropy_production_reason"] = reason
            return None, reason, info
        reason = ("defined: D is non-degenerate on the mesh" if not np.any(near) else
                  f"defined: D nearly singular at some points (λ_min/λ_max down to "
                  f"{ratio.min():.1e}) but these carry only {tail:.2e} of the integral")
        if sol.boundary == "absorbing" and sol.escape_rate > 0:
            # at an absorbing wall J·D⁻¹J/P ~ (J·n)/dist: a log-divergent layer of weight μ
            reason += (f"; interior value: an absorbing wall adds a logarithmic layer "
                       f"of weight μ = {sol.escape_rate:.2e} (μ·ln(R/δ) for cut-off δ)")
        info["entropy_production"] = total
        info["entropy_production_reason"] = reason
        return total, reason, info

    # -- symmetry -------------------------------------------------------------------------
    def _mirror_symmetric(self, axis: int) -> bool:
        """Is the problem invariant under reflection of coordinate ``axis`` about the
        mesh centre (β(Sθ) = Sβ(θ), D(Sθ) = S D(θ) S)?"""
        sol = self.solution
        mesh = sol.mesh
        if mesh.radius is None:
            return False
        c = np.asarray(mesh.center, dtype=float)
        rng = np.random.default_rng(0)
        r = mesh.radius * np.sqrt(rng.uniform(0, 0.99, 400))
        t = rng.uniform(0, 2 * np.pi, 400)
        x, y = c[0] + r * np.cos(t), c[1] + r * np.sin(t)
        xs, ys = (2 * c[0] - x, y) if axis == 0 else (x, 2 * c[1] - y)
        s = np.array([1.0, 1.0])
        s[axis] = -1.0
        b, bs = _beta(sol, x, y), _beta(sol, xs, ys)
        D, Ds = np.asarray(sol.diffusion.tensor(x, y)), np.asarray(sol.diffusion.tensor(xs, ys))
        SDS = s[:, None, None] * D * s[None, :, None]
        tol = 1e-9
        return bool(np.max(np.abs(bs - s[:, None] * b)) <= tol * max(np.abs(b).max(), 1e-300)
                    and np.max(np.abs(Ds - SDS)) <= tol * max(np.abs(D).max(), 1e-300))

    def _symmetry(self) -> dict:
        sol = self.solution
        mesh = sol.mesh
        out = {}
        if mesh.radius is None:
            return out
        c = np.asarray(mesh.center, dtype=float)
        R = mesh.radius
        lines = []
        for axis in (0, 1):
            a, b = c.copy(), c.copy()
            # the line θ_axis = centre, crossed in the +axis direction
            if axis == 0:
                a[1], b[1] = c[1] - R, c[1] + R
            else:
                a[0], b[0] = c[0] + R, c[0] - R
            lines.append(np.array([a, b]))
        net, Js = self._currents(lines)        # one evaluation of J for both lines
        for name, line, current, J in zip("xy", lines, net, Js):
            out[f"net_flux_{name}0"] = current
            out[f"abs_flux_{name}0"] = self._abs_through(line, J)
        sym = [self._mirror_symmetric(0), self._mirror_symmetric(1)]
        out["mirror_symmetric"] = {"x": sym[0], "y": sym[1]}
        if not any(sym) or not self.cycles:
            return out
        centres = np.array([cy["center"] for cy in self.cycles])
        circ = np.array([cy["circulation"] for cy in self.cycles])
        dist, rel, sense_ok = 0.0, 0.0, True
        for axis in (0, 1):
            if not sym[axis]:
                continue
            img = centres.copy()
            img[:, axis] = 2 * c[axis] - img[:, axis]
            d = np.hypot(img[:, None, 0] - centres[None, :, 0],
                         img[:, None, 1] - centres[None, :, 1])
            j = np.argmin(d, axis=1)
            dist = max(dist, float(d[np.arange(len(j)), j].max()))
            rel = max(rel, float(np.max(np.abs(np.abs(circ[j]) - np.abs(circ))
                                        / np.abs(circ))))
            sense_ok &= bool(np.all(np.sign(circ[j]) == -np.sign(circ)))   # ψ is odd
        out["cycle_center_mismatch"] = dist
        out["cycle_circulation_mismatch"] = rel
        out["cycle_sense_consistent"] = sense_ok
        return out

    def _abs_through(self, line, J=None) -> float:
        """∫ |J·n| ds along a segment (scale for the net current through it); ``J``: the
        flux at the segment's points of :meth:`through` (the same points), if known."""
        a, b = (np.asarray(p, dtype=float) for p in line)
        s = self._edge_crossings(a, b)
        g, gw = _gauss(self.solution.line_points(self.solution.order + 2))
        g, gw = 0.5 * (g + 1.0), 0.5 * gw
        lo, ln = s[:-1], np.diff(s)
        q = (lo[:, None] + ln[:, None] * g[None, :]).ravel()
        t = b - a
        if J is None:
            J = self(a[None, :] + q[:, None] * t[None, :])
        Jn = J @ np.array([t[1], -t[0]])
        return float(np.sum(np.abs(Jn) * (ln[:, None] * gw[None, :]).ravel()))

    # -- reporting ------------------------------------------------------------------------
    def summary(self) -> dict:
        """JSON-friendly cycles, entropy production and diagnostics."""
        def clean(v):
            if isinstance(v, dict):
                return {k: clean(u) for k, u in v.items()}
            if isinstance(v, (list, tuple)):
                return [clean(u) for u in v]
            if isinstance(v, (np.floating, float)):
                return float(v) if np.isfinite(v) else None     # strict JSON
            if isinstance(v, (np.integer,)):
                return int(v)
            if isinstance(v, np.bool_):
                return bool(v)
            return v

        return clean({
            "cycles": self.cycles,
            "entropy_production": self.entropy_production,
            "entropy_production_reason": self.entropy_production_reason,
            "psi_max_abs": self.diagnostics["psi_max_abs"],
            "min_fraction": self.min_fraction,
            "diagnostics": self.diagnostics,
        })

    def plot(self, **kwargs):
        """Stream function with cycle centres and |J| with streamlines, as a Figure.

        Keyword arguments go to :func:`fpsolve.display.plot_flux` (``extent``, ``title``).
        """
        return _display.figure("flux", self, **kwargs)

    def _repr_html_(self):
        return _display.html("flux", self)

    def __repr__(self):
        ep = ("n/a" if self.entropy_production is None
              else f"{self.entropy_production:.4g}")
        return (f"Flux({len(self.cycles)} cycles, max|ψ|={self.diagnostics['psi_max_abs']:.3g}, "
                f"‖∇φ‖/‖J‖={self.diagnostics['grad_phi_fraction']:.2g}, entropy production {ep})")


def _density_fields(sol: Solution, basis) -> tuple[np.ndarray, np.ndarray]:
    """P and ∇P at the quadrature points of ``basis`` (``sol``'s basis or its trace basis).

    A Gibbs-weighted density P = w·u (fe/gibbs.py) with w and ψ exact: P = w u,
    ∇P = w(∇u − u∇ψ), so that J is the solve's own flux −w(δ∇u + β̃u); its nodal
    interpolant missed the boundary outflow by 1-2 % (radial OU, δ = 0.05 … 0.005).
    """
    if sol.weight is None:
        f = basis.interpolate(sol.P)
        return np.asarray(f), np.asarray(f.grad)
    x, y = (np.asarray(c) for c in basis.global_coordinates())
    f = basis.interpolate(sol._u())
    psi, gpsi = sol.weight.psi(x, y)
    w = np.exp(-psi)
    return w * np.asarray(f), w * (np.asarray(f.grad) - np.asarray(f) * gpsi)


def _point_density(sol: Solution, V, Gx, Gy, inside, x, y):
    """P and ∇P at points inside the mesh from their value/gradient matrices; w·u with w
    exact for a Gibbs-weighted density (its interpolant gave a spurious current 7 orders
    above the solve's own in the bulk of a detailed-balance problem, review R1)."""
    if sol.weight is None:
        return (V @ sol.P)[inside], np.stack([(Gx @ sol.P)[inside], (Gy @ sol.P)[inside]])
    u = sol._u()
    psi, gpsi = sol.weight.psi(x, y)
    w, uv = np.exp(-psi), (V @ u)[inside]
    gu = np.stack([(Gx @ u)[inside], (Gy @ u)[inside]])
    return w * uv, w * (gu - uv * gpsi)


def _density_load(sol: Solution, M) -> np.ndarray:
    """(∫ P φ_i)_i: M P, or for a Gibbs-weighted density with w exact at the quadrature."""
    if sol.weight is None:
        return M @ sol.P
    _, _, Pq, _ = sol._quadrature()
    return _density_form.assemble(sol.basis, P=Pq)


@LinearForm
def _density_form(v, w):
    return w.P * v


def flux(sol: Solution, min_fraction: float = MIN_CYCLE_FRACTION) -> Flux:
    """Probability flux, stream function, cycles and diagnostics of a solution.

    Parameters
    ----------
    sol : Solution
        From :func:`fpsolve.solve` or :meth:`fpsolve.Problem.solve`.
    min_fraction : float
        Extrema of ψ with |ψ| < ``min_fraction`` · max|ψ| are not reported as cycles.

    Returns
    -------
    Flux

    Examples
    --------
    >>> fl = fp.flux(sol)
    >>> fl.cycles[0]["center"], fl.cycles[0]["sense"]
    >>> fl.through([(0.0, 0.0), (0.0, 2.0)])      # current in +x through the segment
    """
    return Flux(sol, min_fraction)


class _CallableModule(types.ModuleType):
    """``fpsolve.flux`` is both this module and the function :func:`flux`:
    ``fp.flux(sol)`` and ``fp.flux.flux(sol)`` are the same call (a plain
    ``from .flux import flux`` in the package would shadow the module and break
    ``fpsolve.flux.flux``)."""

    __call__ = staticmethod(flux)


sys.modules[__name__].__class__ = _CallableModule


def _dof_extrema(psi: np.ndarray, element_dofs: np.ndarray, thresh: float) -> list:
    """(sign, dof) of the local extrema of ψ on the dofs with |ψ| ≥ ``thresh``, largest
    first: ψ_i ≥ ψ_j (sign +1; ≤ for −1) for every dof j sharing an element with i."""
    nb_max = np.full(psi.size, -np.inf)
    nb_min = np.full(psi.size, np.inf)
    emax, emin = psi[element_dofs].max(axis=0), psi[element_dofs].min(axis=0)
    for row in element_dofs:
        np.maximum.at(nb_max, row, emax)
        np.minimum.at(nb_min, row, emin)
    cand = []
    for sign, nb in ((1.0, nb_max), (-1.0, nb_min)):
        idx = np.flatnonzero((psi == nb) & (sign * psi >= thresh))
        cand += [(sign, i) for i in idx]
    cand.sort(key=lambda c: -abs(psi[c[1]]))
    return cand


def _order_cycles(cycles: list, scale: float, rel: float = 1e-7) -> list:
    """Largest |circulation| first; cycles within ``rel``·scale of each other (mirror
    images of a symmetric landscape) ordered by their centres rounded to 1e-6, so that
    round-off cannot swap them (a rounded |circulation| key still flipped when the
    values straddled a rounding edge, and mirror images in y share x to round-off)."""
    def where(g):
        return tuple(round(float(c), 6) for c in g["center"])

    cycles = sorted(cycles, key=lambda cy: -abs(cy["circulation"]))
    out, group = [], []
    for cy in cycles:
        if group and abs(group[-1]["circulation"]) - abs(cy["circulation"]) > rel * scale:
            out += sorted(group, key=where)
            group = []
        group.append(cy)
    return out + sorted(group, key=where)
