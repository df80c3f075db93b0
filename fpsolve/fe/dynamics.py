"""Time-dependent Fokker–Planck equation: P(x, t) from an initial density.

The FE semi-discretisation of ∂P/∂t = −∇·J is the stiff linear system

    M dP/dt = −A P          (absorbing: on the interior dofs, P = 0 on the boundary)

with the assembled operator A of :mod:`~fpsolve.fe.assembly` (column sums zero, so a
reflecting boundary conserves ∫P exactly).  It is integrated with TR-BDF2
(Bank et al. 1985; Hosea & Shampine 1996, Appl. Numer. Math. 20, 21): a trapezoidal
stage to t + γh followed by a BDF2 stage to t + h, γ = 2 − √2.  The method is
L-stable and second order, and with this γ both stages solve with the same matrix
M + d·h·A (d = γ/2), so one sparse LU per step size serves every step of that size.
The local error is estimated from the three stage values and filtered through the
same LU (Hosea–Shampine), and the step size is controlled on it: accepted steps keep
their size (re-using the factorisation) unless the estimate allows at least doubling,
and sizes change by powers of two, so a relaxation over many decades costs a few
factorisations (docs/dynamics.md).

``evolve`` returns an :class:`Evolution`: the raw FE vectors at the output times,
the survival probability S(t) = ∫P dA, and :class:`~fpsolve.fe.solution.Solution`
views of the density conditioned on survival.
"""
from __future__ import annotations

import time
import warnings
from typing import Callable

import numpy as np
from skfem import LinearForm

from .gibbs import attach as gibbs_attach
from .gibbs import barrier as gibbs_barrier
from .gibbs_dynamics import OUTFLOW_BARRIER, P0_REFUSE, P0_WARN, WeightedSystem
from .ordering import splu
from .solution import Solution
from .solver import FPSolveWarning, Problem
from .timestep import TRBDF2, initial_step, integrate

__all__ = ["gaussian", "Gaussian", "evolve", "evolve_problem", "Evolution"]


class Gaussian:
    """A normal density N(mean, cov) in the plane, callable as ``g(x, y)``.

    Parameters
    ----------
    mean : array_like, shape (2,)
    cov : array_like, shape (2, 2), symmetric positive definite
    """

    def __init__(self, mean, cov):
        m = np.asarray(mean, dtype=float)
        c = np.asarray(cov, dtype=float)
        if m.shape != (2,) or not np.all(np.isfinite(m)):
            raise ValueError(f"mean: expected two finite numbers, got {mean!r}")
        if c.shape != (2, 2) or not np.all(np.isfinite(c)) or not np.allclose(c, c.T):
            raise ValueError(f"cov: expected a symmetric 2x2 matrix, got {cov!r}")
        if np.linalg.eigvalsh(c).min() <= 0:
            raise ValueError(f"cov: expected a positive definite matrix, got {c.tolist()}")
        self.mean, self.cov = m, c
        self._inv = np.linalg.inv(c)
        self._norm = 1.0 / (2 * np.pi * np.sqrt(np.linalg.det(c)))

    def __call__(self, x, y):
        dx, dy = np.asarray(x) - self.mean[0], np.asarray(y) - self.mean[1]
        q = self._inv[0, 0] * dx * dx + 2 * self._inv[0, 1] * dx * dy + self._inv[1, 1] * dy * dy
        return self._norm * np.exp(-0.5 * q)

    def __repr__(self):
        return f"Gaussian(mean={self.mean.tolist()}, cov={self.cov.tolist()})"


def gaussian(mean, cov) -> Gaussian:
    """Initial density N(mean, cov) for :func:`evolve` (see :class:`Gaussian`)."""
    return Gaussian(mean, cov)


@LinearForm(nthreads=2)
def _load(v, w):
    return w.f * v


def _same_space(p0, problem: Problem) -> bool:
    """Whether ``p0`` is a Solution whose coefficients live on the problem's basis."""
    return isinstance(p0, Solution) and (
        p0.basis is problem.basis or (p0.P.size == problem.dofs and p0.mesh is problem.mesh
                                      and p0.order == problem.order))


def _as_density(p0) -> Callable:
    """``p0`` as a vectorised f(x, y) (a Solution on another mesh is evaluated there)."""
    if isinstance(p0, Solution):
        sol = p0
        return lambda x, y: sol(np.column_stack([np.ravel(x), np.ravel(y)])  # noqa: E731
                                ).reshape(np.shape(x))
    if not callable(p0):
        raise TypeError("p0: expected a callable density f(x, y), a Solution or "
                        f"fpsolve.gaussian(mean, cov), got {type(p0).__name__}")
    return p0


def _load_vector(basis, f) -> np.ndarray:
    """∫ f φ_i dA at the quadrature of ``basis``."""
    x, y = (np.asarray(c) for c in basis.global_coordinates())
    fq = np.asarray(f(x, y), dtype=float)
    if fq.shape != x.shape or not np.all(np.isfinite(fq)):
        raise ValueError("p0: expected finite values of the shape of its arguments")
    return _load.assemble(basis, f=fq)


def _project(problem: Problem, M, p0, dofs) -> np.ndarray:
    """L2 projection of the initial density onto the FE space (``dofs`` free, rest 0)."""
    basis = problem.basis
    N = basis.N
    if _same_space(p0, problem):
        P = np.zeros(N)
        P[dofs] = np.asarray(p0.P, dtype=float)[dofs]
        return P / (M @ P).sum()
    b = _load_vector(basis, _as_density(p0))
    P = np.zeros(N)
    P[dofs] = splu(M[dofs][:, dofs].tocsc()).solve(b[dofs])
    mass = (M @ P).sum()
    if not mass > 0:
        raise ValueError(f"p0: its projection has no positive mass ({mass:.3g}) on this mesh")
    return P / mass           # S(0) = 1: ev.mass is the survival probability


def _project_weighted(problem: Problem, system: WeightedSystem, p0, dofs) -> tuple:
    """(u₀, relative L1 error of w·u₀ against p0) of a Gibbs-weighted problem: a weighted
    Solution on its basis gives its own u, anything else the weighted L2 projection."""
    if _same_space(p0, problem) and p0.weight is not None:
        u = np.zeros(problem.dofs)
        u[dofs] = p0._u(system.weight)[dofs]
        return u / (system.M @ u).sum(), 0.0
    f = _as_density(p0)
    return system.project(f, _load_vector(problem.basis, f), dofs, splu)


def _check_times(times) -> np.ndarray:
    t = np.atleast_1d(np.asarray(times, dtype=float))
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)):
        raise ValueError(f"times: expected a non-empty 1-D list of finite times, got {times!r}")
    if t[0] < 0 or np.any(np.diff(t) <= 0):
        raise ValueError("times: expected increasing times >= 0")
    return t


class _Progress:
    """Integration progress as the fraction of output intervals done (within an
    interval, linear in t: log-spaced outputs then advance the bar evenly in log t),
    sent to a callback ``f(t, fraction)`` or shown as a rich bar on stderr."""

    def __init__(self, progress, times, label: str):
        if not (isinstance(progress, bool) or callable(progress)):
            raise TypeError("progress: expected True/False or a callable f(t, fraction), "
                            f"got {type(progress).__name__}")
        self.grid = times if times[0] == 0 else np.r_[0.0, times]
        self.n = max(len(self.grid) - 1, 1)
        self.i, self.bar, self.call = 0, None, progress if callable(progress) else None
        if progress is True:
            try:
                from rich.console import Console
                from rich.progress import (BarColumn, Progress, TextColumn, TimeElapsedColumn,
                                           TimeRemainingColumn)
            except ImportError:       # rich is optional: no bar
                return
            self.bar = Progress(TextColumn(label), BarColumn(),
                                TextColumn("t = {task.fields[t]:<10.4g}"), TimeElapsedColumn(),
                                TimeRemainingColumn(), console=Console(stderr=True),
                                transient=True)
            self.task = self.bar.add_task(label, total=float(self.n), t=0.0)
            self.bar.start()

    def output(self, t: float) -> None:
        """An output time is reached: the next interval starts."""
        self.i = int(np.searchsorted(self.grid, t, side="right")) - 1
        self(t)

    def __call__(self, t: float) -> None:
        i = min(self.i, len(self.grid) - 2)
        span = self.grid[i + 1] - self.grid[i] if i >= 0 else 0.0
        done = min((i + (t - self.grid[i]) / span) / self.n if span > 0 else 1.0, 1.0)
        if self.call is not None:
            self.call(float(t), float(done))
        if self.bar is not None:
            self.bar.update(self.task, completed=done * self.n, t=float(t))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def evolve_problem(problem: Problem, p0, times, tol: float = 1e-6,
                   strength: float | None = None, progress=False) -> "Evolution":
    """Integrate M dP/dt = −A P of an assembled :class:`Problem` (see :func:`evolve`).

    A Gibbs-weighted problem (``problem.gibbs``, :mod:`.gibbs`) is evolved in u = P/w on
    its weighted pencil, as its stationary solve (:mod:`.gibbs_dynamics`).
    """
    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise ValueError(f"tol: expected a number in (0, 1), got {tol!r}")
    times = _check_times(times)
    if problem.gibbs:
        other = problem._reweighted(strength)   # the Gibbs decision is made per strength
        if other is not None:
            return evolve_problem(other, p0, times, tol, None, progress)
        return _evolve_weighted(problem, p0, times, tol, strength, progress)
    op = problem.plain_operator()
    diffusion = problem.diffusion
    if strength is not None and float(strength) != diffusion.strength:
        if not op.affine:
            raise ValueError("strength: a stabilised operator is not affine in the strength; "
                             "build a Problem at that strength instead")
        diffusion = diffusion.with_strength(strength)
    A = op.A(diffusion.strength)
    M = op.M_stab if op.M_stab is not None else op.M
    dofs = problem.interior_dofs if problem.boundary == "absorbing" else np.arange(problem.dofs)
    t0 = time.perf_counter()
    P = _project(problem, op.M, p0, dofs)
    stepper = TRBDF2(A[dofs][:, dofs], M[dofs][:, dofs])
    ev = Evolution(problem, diffusion, stepper, dofs, A, M, tol)
    return _integrate(ev, P, times, t0, progress)


def _evolve_weighted(problem: Problem, p0, times, tol, strength, progress) -> "Evolution":
    """:func:`evolve_problem` of a Gibbs-weighted problem: M_w du/dt = −A_w u, stepped
    symmetrically scaled, from the weighted L2 projection of ``p0``."""
    diffusion = problem.diffusion
    if strength is not None and float(strength) != diffusion.strength:
        diffusion = diffusion.with_strength(strength)
    t0 = time.perf_counter()
    system = WeightedSystem(problem, diffusion)
    dofs = problem.interior_dofs if problem.boundary == "absorbing" else np.arange(problem.dofs)
    u, error = _project_weighted(problem, system, p0, dofs)
    stepper = TRBDF2(system.As[dofs][:, dofs], system.Ms[dofs][:, dofs],
                     norm=system.error_norm(dofs))
    ev = Evolution(problem, diffusion, stepper, dofs, system.A, system.M, tol, system)
    ev._check_initial(error)
    if problem.boundary == "absorbing" and not (_same_space(p0, problem)
                                                and p0.weight is not None):
        ev._check_outflow(gibbs_barrier(problem.landscape, diffusion, problem.mesh))
    return _integrate(ev, u / system.scale, times, t0, progress)


def _integrate(ev: "Evolution", X, times, t0, progress) -> "Evolution":
    """Run ``ev`` from the stepper's initial vector ``X`` with the progress bar."""
    pr = ev.problem
    bar = _Progress(progress, times, f"evolve P{pr.order}, {pr.dofs} dofs")
    try:
        ev._run(X, times, t0, bar)
    finally:
        bar.close()
    return ev


def evolve(landscape, diffusion, mesh, p0, times, order: int = 2,
           boundary: str = "absorbing", tol: float = 1e-6, drift: Callable | None = None,
           stabilisation: str | None = None, progress=False) -> "Evolution":
    """P(x, t) of the Fokker–Planck equation from the initial density ``p0``.

    Parameters
    ----------
    landscape, diffusion, mesh, order, boundary, drift, stabilisation
        As for :class:`fpsolve.Problem`.
    p0 : callable, Solution or Gaussian
        Initial density: ``f(x, y)`` (vectorised), a :class:`Solution` (on the same
        mesh and order its coefficients are used, else it is projected) or
        :func:`gaussian`.  It is L2-projected onto the FE space (absorbing: with P = 0
        on the boundary) and normalised to ∫P dA = 1, so that ``ev.mass`` is the survival
        probability.
    times : array_like
        Increasing output times ≥ 0 (t = 0 is the projected ``p0``).
    tol : float
        Bound on the estimated local error of each step, relative to max |P|.
    progress : bool or callable
        True: a rich progress bar on stderr while integrating (none if rich is not
        installed); a callable ``f(t, fraction)`` is called after every accepted step
        with the time reached and the fraction of output intervals done.  Either
        only observes: the result is the same as without.

    Returns
    -------
    Evolution
        ``ev.times``, ``ev.mass`` (survival probability), ``ev[i]``, ``ev.at(t)``.

    Examples
    --------
    >>> import fpsolve as fp
    >>> L = fp.landscapes.quadratic([[1.0, 0.3], [0.3, 2.0]])
    >>> D = fp.diffusion.constant([[0.1, 0.04], [0.04, 0.05]])
    >>> ev = fp.evolve(L, D, fp.disk_mesh(2.0, 0.1), fp.gaussian([0.5, 0], 0.02 * np.eye(2)),
    ...                [0.5, 1.0, 2.0], boundary="reflecting")
    >>> ev.at(1.0).moments()["mean"]
    """
    problem = Problem(landscape, diffusion, mesh, boundary, order, drift, stabilisation)
    return evolve_problem(problem, p0, times, tol, progress=progress)


class Evolution:
    """P(x, t) at the output times of :func:`evolve`.

    Attributes
    ----------
    times : ndarray
        Output times.
    P : ndarray, shape (len(times), dofs)
        Raw FE coefficient vectors (not renormalised: ∫P dA = :attr:`mass`); for a
        Gibbs-weighted problem the nodal density w·u (the interpolant; its integrals use w
        exactly), with the coefficients u in :attr:`u`.
    u : ndarray or None
        A Gibbs-weighted problem's coefficients u = P/w (:mod:`.gibbs_dynamics`), else None.
    mass : ndarray
        Survival probability S(t) = ∫P dA (constant for a reflecting boundary).
    escape_rate : ndarray
        Instantaneous outflow rate −S'(t)/S(t) = ∮J·n ds / ∫P dA, from the discrete
        operator as for the quasi-stationary solve (0 for a reflecting boundary); a
        Gibbs-weighted transient reports a rate that is not positive as NaN (flagged).
    stats : dict
        steps, rejected steps, factorisations, largest accepted error estimate, timings;
        a Gibbs-weighted problem adds ``weighting`` and ``initial_L1_error`` (how far the
        represented initial density is from ``p0``).
    diagnostics : dict
        ``untrusted`` (a Gibbs-weighted transient whose initial density is not represented
        to :data:`~.gibbs_dynamics.P0_WARN`), ``escape_rate_untrusted`` (an outflow rate
        was not positive, its raw values in ``escape_rate_flux``, or the absorbing boundary
        lies more than :data:`~.gibbs_dynamics.OUTFLOW_BARRIER` nats above the minimum and
        p0 was projected: all its rates are suspect) and ``warnings``; the frames carry
        them too.

    ``ev[i]`` and ``ev.at(t)`` are :class:`Solution` objects of the density
    *conditioned on survival* (normalised to ∫P = 1, so ``moments()`` are those of
    the surviving walkers; multiply by ``mass`` for the absolute density).
    """

    def __init__(self, problem: Problem, diffusion, stepper: TRBDF2, dofs, A, M, tol,
                 system: WeightedSystem | None = None):
        self.problem, self.diffusion, self.tol = problem, diffusion, tol
        self._stepper, self._dofs, self._A, self._M = stepper, dofs, A, M
        self._system = system
        self.stats = {"steps": 0, "rejected": 0, "max_error": 0.0}
        self.diagnostics = {"untrusted": False, "escape_rate_untrusted": False, "warnings": []}
        self.u = None
        self._h = None

    def _check_initial(self, error: float) -> None:
        """Record how well w·u₀ represents p0: refuse it beyond
        :data:`~.gibbs_dynamics.P0_REFUSE`, flag it beyond :data:`~.gibbs_dynamics.P0_WARN`."""
        self.stats.update(weighting="gibbs", initial_L1_error=error)
        where = ("where p0/w varies faster than the mesh resolves (p0 narrower than the "
                 "elements, or far from the Gibbs density e^(-L/δ) where the mesh is coarse)")
        if not error <= P0_REFUSE:
            raise ValueError(f"p0: the Gibbs-weighted discretisation cannot represent it on this "
                             f"mesh (relative L1 error {error:.2g} > {P0_REFUSE:g}) {where}; "
                             "refine the mesh where p0 lives")
        if error > P0_WARN:
            msg = (f"initial density represented with a relative L1 error {error:.2g} "
                   f"(> {P0_WARN:g}) {where}: the transient is untrusted")
            self.diagnostics.update(untrusted=True)
            self.diagnostics["warnings"].append(msg)
            warnings.warn(msg, FPSolveWarning, stacklevel=4)

    def _check_outflow(self, barrier: float) -> None:
        """Flag the outflow rates of a transient from a projected p0 whose absorbing boundary
        is more than :data:`~.gibbs_dynamics.OUTFLOW_BARRIER` nats above the minimum: the
        mesh adapted for the quasi-stationary u does not resolve the transient u there."""
        if barrier > OUTFLOW_BARRIER:
            msg = (f"absorbing boundary {barrier:.0f} nats of L/δ above the minimum (> "
                   f"{OUTFLOW_BARRIER:g}): the transient's escape rates are untrusted (the "
                   "mesh does not resolve u = P/w near the boundary before it settles); the "
                   "densities are not affected")
            self.diagnostics["escape_rate_untrusted"] = True
            self.diagnostics["warnings"].append(msg)
            warnings.warn(msg, FPSolveWarning, stacklevel=4)

    def _full(self, p) -> np.ndarray:
        P = np.zeros(self.problem.dofs)
        P[self._dofs] = p
        return P

    def _coefficients(self, X) -> np.ndarray:
        """The FE coefficients (P, or u of a weighted problem) of stepper vectors ``X``."""
        return X if self._system is None else X * self._system.scale

    def _rates(self, C) -> tuple:
        """(mass, escape rate) of coefficient rows ``C`` (shape (n, dofs))."""
        MC = (self._M @ C.T).T
        mass = MC.sum(axis=1)
        if self.problem.boundary != "absorbing":
            return mass, np.zeros(len(C))
        out_flow = -(self._A @ C.T)[self.problem.boundary_dofs].sum(axis=0)
        # per interior mass 1ᵀM_II p, whose rate of change is exactly the outflow
        return mass, out_flow / MC[:, self._dofs].sum(axis=1)

    def _run(self, X, times, t0_wall, bar):
        p = X[self._dofs]
        st = self._stepper
        self._h = initial_step(st.A, st.M, p, self.tol)
        out, t = [], 0.0
        for ti in times:
            p, self._h = integrate(st, p, t, ti, self._h, self.tol, self.stats, bar)
            t = ti
            bar.output(t)
            out.append(self._full(p))
        self.times = np.asarray(times, dtype=float)
        self._X = np.array(out)
        C = self._coefficients(self._X)
        if self._system is None:
            self.P = C
        else:
            self.u, self.P = C, C * self._system.nodal_weight
        self.mass, self.escape_rate = self._rates(C)
        if self._system is not None:
            self.escape_rate = self._positive(self.escape_rate, self.times)
        self.stats.update(factorisations=st.factorisations,
                          factorisation_s=st.factorisation_s,
                          total_s=time.perf_counter() - t0_wall, dofs=int(self.problem.dofs))

    def _positive(self, rates, times) -> np.ndarray:
        """A weighted absorbing transient's outflow rates, NaN where not positive (the raw
        values in ``diagnostics["escape_rate_flux"]``, with a warning): the step error is
        controlled on the density, and the mesh adapted for the quasi-stationary u need not
        resolve the projected or transient u where w is tiny, where the outflow lives.  Then
        every rate of the run is suspect (δ = 0.005: 895·μ and 28·μ after a negative one,
        where the exact rate is within 0.5 % of μ): ``escape_rate_untrusted``.  The
        densities are not affected: ``untrusted`` is left alone."""
        rates = np.asarray(rates, dtype=float)
        bad = ~(rates > 0)
        if self.problem.boundary != "absorbing" or not bad.any():
            return rates
        raw = self.diagnostics.setdefault("escape_rate_flux", {})
        raw.update({float(t): float(r) for t, r in zip(times[bad], rates[bad])})
        msg = ("outflow rate of the transient not positive (reported as NaN) at t = "
               f"{float(times[bad][0]):g}: the mesh does not resolve u = P/w near the absorbing "
               "boundary, and every escape rate of this transient is untrusted")
        self.diagnostics["escape_rate_untrusted"] = True
        if not any(w.startswith("outflow rate") for w in self.diagnostics["warnings"]):
            self.diagnostics["warnings"].append(msg)
            warnings.warn(msg, FPSolveWarning, stacklevel=4)
        return np.where(bad, np.nan, rates)

    def __len__(self) -> int:
        return len(self.times)

    def __getitem__(self, i) -> Solution:
        i = range(len(self))[i]
        C = self.P if self.u is None else self.u
        return self._solution(C[i], self.times[i], self.mass[i], self.escape_rate[i])

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def at(self, t: float) -> Solution:
        """The density at time ``t``: an output time, or integrated from the last one before it."""
        t = float(t)
        if not (np.isfinite(t) and t >= 0):
            raise ValueError(f"t: expected a finite time >= 0, got {t!r}")
        k = np.flatnonzero(np.isclose(self.times, t, rtol=1e-12, atol=0.0))
        if k.size:
            return self[int(k[0])]
        before = np.flatnonzero(self.times < t)
        if before.size == 0:
            raise ValueError(f"t: {t:g} is before the first output time {self.times[0]:g}")
        i = int(before[-1])
        stats = {"steps": 0, "rejected": 0, "max_error": 0.0}
        p, _ = integrate(self._stepper, self._X[i][self._dofs], self.times[i], t, self._h,
                         self.tol, stats)
        C = self._coefficients(self._full(p))
        MC = self._M @ C
        mass = float(MC.sum())
        rate = (float(-(self._A @ C)[self.problem.boundary_dofs].sum() / MC[self._dofs].sum())
                if self.problem.boundary == "absorbing" else 0.0)
        if self._system is not None:
            rate = float(self._positive(np.array([rate]), np.array([t]))[0])
        return self._solution(C, t, mass, rate)

    def _solution(self, C, t, mass, rate) -> Solution:
        """The frame of coefficients ``C`` (P, or u of a weighted problem) as a Solution
        normalised to ∫P = 1 (a weighted one integrates with w, as the stationary one)."""
        pr = self.problem
        basis = pr.basis
        if self._system is None:
            Pn = C / mass
            Pq = np.asarray(basis.interpolate(Pn))
        else:
            Pn, Pq = self._system.density(C / mass)
        dx = np.asarray(basis.dx)
        neg = float(np.sum(np.maximum(-Pq, 0.0) * dx) / np.sum(np.abs(Pq) * dx))
        diag = {"dofs": int(basis.N), "order": pr.order, "boundary": pr.boundary,
                "time": float(t), "survival": float(mass), "residual": float("nan"),
                "negative_mass": neg, "min_P": float(min(Pn.min(), Pq.min())),
                "max_P": float(Pn.max()), "tol": self.tol, "warnings": []}
        if self._system is not None:
            diag.update(weighting="gibbs", untrusted=self.diagnostics["untrusted"],
                        escape_rate_untrusted=self.diagnostics["escape_rate_untrusted"],
                        warnings=list(self.diagnostics["warnings"]))
        sol = Solution(Pn, basis, pr.mesh, pr.landscape, self.diffusion, pr.boundary,
                       pr.order, rate, diag, pr.drift, pr.stabilisation)
        if self._system is not None:
            gibbs_attach(sol, self._system.weight, Pq)
        return sol

    def summary(self) -> dict:
        """JSON-friendly times, survival, escape rates and integrator statistics."""
        out = {"times": self.times.tolist(), "survival": self.mass.tolist(),
               "escape_rate": self.escape_rate.tolist(), "tol": self.tol,
               **{k: v for k, v in self.stats.items()}}
        if self._system is not None:        # a weighted transient says whether to trust it
            out.update(untrusted=self.diagnostics["untrusted"],
                       escape_rate_untrusted=self.diagnostics["escape_rate_untrusted"],
                       warnings=list(self.diagnostics["warnings"]))
        return out

    def __repr__(self):
        s = self.stats
        return (f"Evolution({self.problem.boundary}, P{self.problem.order}, dofs={s['dofs']}, "
                f"t=[{self.times[0]:g}..{self.times[-1]:g}] in {s['steps']} steps, "
                f"{s['factorisations']} LU, S(t_end)={self.mass[-1]:.6g})")
