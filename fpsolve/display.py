"""How result objects show themselves: ``plot()`` figures and Jupyter HTML tables.

* :func:`plot_solution` — the density figure of :mod:`fpsolve.plot` (P, flux
  streamlines, cycle centres, x-marginal) as a Figure: ``Solution.plot()``.
* :func:`plot_flux` — stream function ψ with the cycle centres, and |J| with
  streamlines: ``Flux.plot()``.
* :func:`plot_montecarlo` — the 2-D density histogram and the x- and y-marginals
  with ±2 standard-error bands: ``MonteCarloResult.plot()``.
* :func:`plot_sweep` — ⟨x²⟩, ⟨y²⟩, the escape rate μ and the x-marginal mode against
  Δ_S (or any parameter) for the solutions of ``Problem.sweep``.
* :func:`html` — the key numbers as an HTML table (``_repr_html_``): dofs, ⟨x²⟩, μ,
  negative mass, residual and any error estimate of a solution; cycles of a flux;
  moments ± standard errors and the escape rate of a Monte Carlo run.

The result classes reach this module through :mod:`fpsolve._display` (they sit in
lower layers).  Every function returns a :class:`matplotlib.figure.Figure` built
without pyplot (no global state, no display needed); in Jupyter a returned Figure is
shown inline.  matplotlib is imported inside the functions only.
"""
from __future__ import annotations

import html as _html
import numbers

import numpy as np

from . import plot as _plot
from .fe.flux import Flux
from .fe.solution import Solution
from .stochastic.montecarlo import MonteCarloResult

__all__ = ["plot_solution", "plot_flux", "plot_montecarlo", "plot_sweep", "figure", "html"]


def _need(obj, cls, name):
    if not isinstance(obj, cls):
        raise TypeError(f"{name}: expected a {cls.__name__}, got {type(obj).__name__}")


def plot_solution(sol, flux=None, title=None, extent=None):
    """Density, flux streamlines, cycle centres and x-marginal of one solution.

    The figure of :func:`fpsolve.plot.solution_figure`, returned instead of saved.

    Parameters
    ----------
    sol : Solution
    flux : Flux, optional
        Flux of ``sol`` (computed if None).
    title : str, optional
        Default: the diffusion model and its parameters.
    extent : (xmin, xmax, ymin, ymax), optional
        Plot window; default where P ≥ 1e-2 max P, padded.

    Returns
    -------
    matplotlib.figure.Figure
    """
    _need(sol, Solution, "sol")
    return _plot._solution_fig(sol, flux, title, extent)


def _tri_field(basis, values, extent, nrefs):
    from matplotlib.tri import Triangulation
    px, py, tri, vals = _plot._refined(basis, values, extent, nrefs)
    return Triangulation(px, py, tri), vals


def _disk(ax, mesh):
    from matplotlib.patches import Circle
    if mesh.radius is not None:
        ax.add_patch(Circle(mesh.center, mesh.radius, fill=False, color="0.3", lw=1.0))


def _mark_cycles(ax, cycles):
    for c in cycles:
        ccw = c["sense"] == "ccw"
        ax.plot(*c["center"], "o", ms=6, mfc="#ff5a36" if ccw else "#36c2ff", mec="black",
                zorder=5)
        ax.annotate(f"{'↺' if ccw else '↻'} {c['current']:.3g}", c["center"],
                    xytext=(6, 4), textcoords="offset points", fontsize=9, zorder=6)


def plot_flux(fl, extent=None, title=None):
    """Stream function ψ with the cycle centres (left) and |J| with streamlines (right).

    Parameters
    ----------
    fl : Flux
    extent : (xmin, xmax, ymin, ymax), optional
        Plot window; default that of :func:`plot_solution`.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Cycle centres are marked ↺ (ccw, maximum of ψ) or ↻ (cw) with the current
        they carry.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    _need(fl, Flux, "fl")
    sol = fl.solution
    ext = _plot.auto_extent(sol, fl) if extent is None else _plot._check_extent(extent)
    nrefs = _plot._subdivisions(sol)
    fig = Figure(figsize=(11.0, 4.8), layout="constrained")
    ax_psi, ax_j = fig.subplots(1, 2, sharex=True, sharey=True)
    T, psi = _tri_field(sol.basis, fl.psi, ext, nrefs)
    m = float(np.max(np.abs(fl.psi))) or 1.0
    cs = ax_psi.tricontourf(T, psi, levels=MaxNLocator(nbins=20).tick_values(-m, m),
                            cmap="RdBu_r")
    ax_psi.tricontour(T, psi, levels=[0.0], colors="k", linewidths=0.6)
    fig.colorbar(cs, ax=ax_psi, label="stream function ψ")
    _mark_cycles(ax_psi, fl.cycles)
    T, mag = _tri_field(sol.basis, fl.magnitude, ext, nrefs)
    cm = ax_j.tricontourf(T, mag, levels=20, cmap="magma")
    fig.colorbar(cm, ax=ax_j, label="|J| (projected)")
    _streamlines(ax_j, fl, ext)
    for ax, name in ((ax_psi, "ψ: maximum = ccw cycle"), (ax_j, "|J| and streamlines")):
        _disk(ax, sol.mesh)
        ax.set_xlim(ext[0], ext[1])
        ax.set_ylim(ext[2], ext[3])
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_title(name, fontsize=10)
    fig.suptitle(_plot.default_title(sol) if title is None else str(title))
    return fig


def _streamlines(ax, fl, ext, n=120):
    from .fe.flux import value_gradient_matrices
    gx, gy = np.linspace(ext[0], ext[1], n), np.linspace(ext[2], ext[3], n)
    GX, GY = np.meshgrid(gx, gy)
    V, _, _, inside = value_gradient_matrices(fl.basis, np.stack([GX.ravel(), GY.ravel()]))
    U = np.where(inside, V @ fl.J[0], np.nan).reshape(GX.shape)
    W = np.where(inside, V @ fl.J[1], np.nan).reshape(GX.shape)
    if np.any(np.isfinite(U)) and np.nanmax(np.hypot(U, W)) > 0:
        ax.streamplot(gx, gy, U, W, color="white", linewidth=0.7, density=1.0,
                      arrowsize=0.8)


def plot_montecarlo(res, title=None):
    """Density histogram and the x- and y-marginals (±2 SE bands) of a Monte Carlo run.

    Parameters
    ----------
    res : MonteCarloResult
    title : str, optional
        Default: simulator, walkers, steps and time step.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    _need(res, MonteCarloResult, "res")
    P, xe, ye = res.density
    fig = Figure(figsize=(11.0, 4.2), layout="constrained")
    ax, axx, axy = fig.subplots(1, 3, width_ratios=[1.2, 1.0, 1.0])
    pc = ax.pcolormesh(xe, ye, P.T, cmap="viridis", shading="flat")
    fig.colorbar(pc, ax=ax, label="P(x, y) (histogram)")
    if res.radius is not None:
        from matplotlib.patches import Circle
        ax.add_patch(Circle((0.0, 0.0), res.radius, fill=False, color="0.3", lw=1.0))
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    for a, axis in ((axx, "x"), (axy, "y")):
        c, v, se = res.marginal(axis, return_se=True)
        a.plot(c, v, color="k", lw=1.2)
        a.fill_between(c, v - 2 * se, v + 2 * se, color="C0", alpha=0.35, lw=0,
                       label="±2 SE (walker groups)")
        a.set_xlabel(axis)
        a.set_ylabel(f"P({axis}) = ∫P d{'y' if axis == 'x' else 'x'}")
        a.set_ylim(bottom=0.0)
        a.grid(alpha=0.3)
    axx.legend(fontsize=8, loc="upper right")
    if title is None:
        title = (f"{res.simulator}: {res.n_walkers} walkers × {res.n_steps} steps, "
                 f"dt = {res.dt:g}")
    fig.suptitle(str(title))
    return fig


def _sweep_values(sols, values):
    if values is not None:
        vals = [float(v) for v in values]
        if len(vals) != len(sols):
            raise ValueError(f"values: expected {len(sols)} values (one per solution), "
                             f"got {len(vals)}")
        return vals
    strengths = [getattr(s.diffusion, "strength", None) for s in sols]
    if any(not isinstance(v, numbers.Real) for v in strengths):
        raise ValueError("values: the diffusion models have no noise strength "
                         "(Δ_S); pass values=[...]")
    return [float(v) for v in strengths]


def plot_sweep(sols, values=None, parameter="Δ_S", title=None):
    """Observables of a parameter sweep: ⟨x²⟩ and ⟨y²⟩, escape rate μ, x-marginal mode.

    Parameters
    ----------
    sols : list of Solution
        E.g. from :meth:`fpsolve.Problem.sweep`.
    values : list of float, optional
        The parameter of each solution; default the noise strength Δ_S of each
        solution's diffusion model.
    parameter : str
        Label of the horizontal axis.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    sols = list(sols)
    if not sols:
        raise ValueError("sols: expected at least one Solution")
    for s in sols:
        _need(s, Solution, "sols")
    xs = _sweep_values(sols, values)
    x2 = [s.expectation(lambda x, y: x * x) for s in sols]
    y2 = [s.expectation(lambda x, y: y * y) for s in sols]
    mu = [s.escape_rate for s in sols]
    mode = [abs(s.marginal_mode("x")) for s in sols]
    fig = Figure(figsize=(11.0, 3.6), layout="constrained")
    a, b, c = fig.subplots(1, 3, sharex=True)
    a.plot(xs, x2, "o-", ms=4, label="⟨x²⟩")
    a.plot(xs, y2, "s-", ms=4, label="⟨y²⟩")
    a.set_ylabel("second moments")
    a.legend(fontsize=8)
    _escape_panel(b, xs, mu, [bool(s.diagnostics.get("untrusted")) for s in sols])
    c.plot(xs, mode, "o-", ms=4, color="C2")
    c.set_ylabel("|x| of the x-marginal maximum")
    for ax in (a, b, c):
        ax.set_xlabel(parameter)
        ax.grid(alpha=0.3)
    if title is not None:
        fig.suptitle(str(title))
    return fig


def _escape_panel(ax, xs, mu, untrusted):
    """μ on a log axis; values the solver flagged untrusted as open markers, and
    values ≤ 0 (no escape resolved) named in the legend instead of being hidden."""
    xs, mu, bad = np.asarray(xs), np.asarray(mu, dtype=float), np.asarray(untrusted)
    pos = mu > 0
    if np.any(pos):
        ax.semilogy(xs[pos], mu[pos], "-", color="C3", lw=1)
        ok, flag = pos & ~bad, pos & bad
        ax.plot(xs[ok], mu[ok], "o", ms=4, color="C3", label="μ")
        if np.any(flag):
            ax.plot(xs[flag], mu[flag], "o", ms=6, mfc="none", mec="C3",
                    label="μ untrusted (estimated error too large)")
    if np.any(~pos):
        ax.plot([], [], " ", label=f"{int(np.sum(~pos))} value(s) μ ≤ 0 not shown")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax.set_ylabel("escape rate μ")


_FIGURES = {"solution": plot_solution, "flux": plot_flux, "montecarlo": plot_montecarlo,
            "sweep": plot_sweep}


def figure(kind: str, obj, **kwargs):
    """The figure of ``kind`` ("solution", "flux", "montecarlo", "sweep") for ``obj``."""
    if kind not in _FIGURES:
        raise ValueError(f"kind: expected one of {sorted(_FIGURES)}, got {kind!r}")
    return _FIGURES[kind](obj, **kwargs)


# -- HTML tables ---------------------------------------------------------------------
def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)) or v is None:
        return str(v)
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        return f"{float(v):.6g}"
    return str(v)


def _table(title: str, rows, notes=()) -> str:
    """An HTML table: a caption and (name, value) rows; notes as a list below."""
    e = _html.escape
    body = "".join(f"<tr><th style='text-align:left'>{e(k)}</th>"
                   f"<td style='text-align:left'>{e(_fmt(v))}</td></tr>" for k, v in rows)
    out = f"<table><caption style='text-align:left'><b>{e(title)}</b></caption>{body}</table>"
    if notes:
        out += "<ul>" + "".join(f"<li>{e(str(n))}</li>" for n in notes) + "</ul>"
    return out


_OBSERVABLES = {"x2": "⟨x²⟩", "y2": "⟨y²⟩", "escape_rate": "μ", "L1": "P (L1 norm)"}


def _estimates(sol) -> list:
    """Rows of the estimated relative errors (``sol.error_estimate``) and the flag."""
    est = getattr(sol, "error_estimate", None) or {}
    rows = [(f"est. relative error of {_OBSERVABLES.get(k, k)}", v) for k, v in est.items()]
    if "untrusted" in sol.diagnostics:
        rows.append(("untrusted (estimate above the limit)", sol.diagnostics["untrusted"]))
    return rows


def solution_html(sol) -> str:
    """HTML table of a Solution: dofs, ⟨x²⟩, ⟨y²⟩, μ, negative mass, error estimates."""
    d = sol.diagnostics
    mean = sol.moments()["mean"]
    rows = [("boundary, element", f"{sol.boundary}, P{sol.order}"),
            ("dofs", d["dofs"]), ("elements", d.get("nelements", sol.mesh.nelements)),
            ("mean (x, y)", f"({_fmt(mean[0])}, {_fmt(mean[1])})"),
            ("⟨x²⟩", sol.expectation(lambda x, y: x * x)),
            ("⟨y²⟩", sol.expectation(lambda x, y: y * y)),
            ("escape rate μ", sol.escape_rate),
            ("negative mass", d.get("negative_mass", "n/a")), ("min P", d.get("min_P", "n/a")),
            ("residual", d.get("residual", "n/a"))]
    # a snapshot of fp.evolve: its time and the survival probability it is conditioned on
    rows += [(label, d[k]) for k, label in (("time", "time t"), ("survival", "survival S(t)"))
             if k in d]
    rows += _estimates(sol)
    title = _plot.default_title(sol).replace(r"$\Delta_S$", "Δ_S").replace("$", "")
    return _table(f"Solution ({title})", rows,
                  d.get("warnings", ()))


def flux_html(fl) -> str:
    """HTML table of a Flux: cycles (sense, centre, current), max |ψ|, entropy production."""
    d = fl.diagnostics
    rows = [("cycles", len(fl.cycles)), ("max |ψ|", d["psi_max_abs"]),
            ("‖∇φ‖ / ‖J‖", d["grad_phi_fraction"]), ("flux resolved", d["flux_resolved"]),
            ("entropy production", fl.entropy_production if fl.entropy_production is not None
             else "n/a")]
    for i, c in enumerate(fl.cycles):
        rows.append((f"cycle {i + 1}", f"{c['sense']} at ({c['center'][0]:.4g}, "
                                       f"{c['center'][1]:.4g}), current {c['current']:.4g}"))
    return _table("Flux", rows, d.get("warnings", ()))


def montecarlo_html(res) -> str:
    """HTML table of a MonteCarloResult: run size, moments ± SE, escape rate ± SE."""
    m = res.moments()
    rows = [("simulator", res.simulator), ("walkers × steps", f"{res.n_walkers} × {res.n_steps}"),
            ("burn-in steps", res.n_burn), ("dt", res.dt)]
    for i, ax in enumerate("xy"):
        rows.append((f"mean {ax}", f"{m['mean'][i]:.6g} ± {m['mean_se'][i]:.2g}"))
    for i, ax in enumerate("xy"):
        rows.append((f"var {ax}", f"{m['cov'][i, i]:.6g} ± {m['cov_se'][i, i]:.2g}"))
    if res.radius is not None:
        rows += [("exits", res.exits),
                 ("escape rate μ", f"{res.escape_rate:.6g} ± {res.escape_rate_se:.2g}")]
    rows += [("diverged walkers", res.diverged), ("backend", res.backend),
             ("seconds", res.elapsed)]
    return _table("Monte Carlo", rows)


_HTML = {"solution": solution_html, "flux": flux_html, "montecarlo": montecarlo_html}


def html(kind: str, obj) -> str:
    """The HTML table of ``kind`` ("solution", "flux", "montecarlo") for ``obj``."""
    if kind not in _HTML:
        raise ValueError(f"kind: expected one of {sorted(_HTML)}, got {kind!r}")
    return _HTML[kind](obj)
