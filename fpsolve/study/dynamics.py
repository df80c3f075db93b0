"""The ``[time]`` section of a case: the relaxation spectrum and a transient from a Gaussian.

Called by :func:`fpsolve.study.tasks.run_task` after the case's (quasi-)stationary solve,
on the same assembled :class:`~fpsolve.Problem`; returns the summary entries and the
files (bytes) of the case's time series.
"""
from __future__ import annotations

import os

import numpy as np

from .._json import jsonable
from ..fe.dynamics import evolve_problem, gaussian
from .schema.time import output_times

__all__ = ["time_results"]


def _distance(sol_t, sol) -> float:
    """∫|P(t)/S(t) − P_stationary| dA: 2 × total-variation distance to the final state
    (Gibbs-weighted densities with w exact at the quadrature points, as their integrals)."""
    if sol_t.weight is None and sol.weight is None:
        d = np.asarray(sol.basis.interpolate(sol_t.P - sol.P))
        return float(np.sum(np.abs(d) * np.asarray(sol.basis.dx)))
    _, _, Pt, dx = sol_t._quadrature()
    return float(np.sum(np.abs(Pt - sol._quadrature()[2]) * dx))


def time_results(prob, sol, case: dict, cfg: dict, tmp: str, iomod=None, progress=False):
    """Spectrum and transient of one case.

    Parameters
    ----------
    prob : fpsolve.Problem
        The case's assembled problem.
    sol : fpsolve.Solution
        Its (quasi-)stationary solution (the transient's distance is measured to it).
    case : dict
        The task's case (``name``, ``strength``).
    cfg : dict
        The resolved ``[time]`` section.
    tmp : str
        Private directory for the files.
    iomod : module, optional
        :mod:`fpsolve.io` when VTK output is wanted.
    progress : bool or callable
        As for :func:`fpsolve.evolve` (it only observes the integration).

    Returns
    -------
    (dict, dict)
        Summary entries ``{"time": ..., "spectrum": ...}`` and files (relative path -> bytes).
    """
    out, files = {}, {}
    if cfg["spectrum"] > 0:
        out["spectrum"] = prob.spectrum(cfg["spectrum"], case["strength"]).summary()
    ev = evolve_problem(prob, gaussian(cfg["initial_mean"], cfg["initial_cov"]),
                        output_times(cfg), tol=cfg["tol"], strength=case["strength"],
                        progress=progress)
    frames = list(ev)
    mom = [s.moments() for s in frames]
    out["time"] = {**ev.summary(),
                   "mean": [m["mean"] for m in mom], "cov": [m["cov"] for m in mom],
                   "x2": [float(m["cov"][0, 0] + m["mean"][0] ** 2) for m in mom],
                   "distance_to_stationary": [_distance(s, sol) for s in frames],
                   "negative_mass": [s.diagnostics["negative_mass"] for s in frames]}
    if iomod is not None and cfg["vtk"]:
        name = f"{case['name']}_time"
        iomod.export_series(ev, os.path.join(tmp, f"{name}.pvd"))
        for f in sorted(os.listdir(tmp)):
            if f.startswith(name + "_") and f.endswith(".vtu") or f == f"{name}.pvd":
                with open(os.path.join(tmp, f), "rb") as fh:
                    files[f"vtk/{f}"] = fh.read()
    return jsonable(out), files
