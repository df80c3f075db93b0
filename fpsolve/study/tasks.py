"""The unit of work of a study: one assembly, the solves of its cases, their files.

:func:`run_task` runs in a worker process (local pool or Dask) or in the main
process.  It writes nothing into the output directory: files are made in a
private temporary directory and returned as bytes, so that the main process is
the only writer (atomic replaces, no shared file system needed on a cluster).
"""
from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import tempfile
import threading
import time
import warnings

import numpy as np

from .._blas import with_single_blas_thread
from ..io import jsonable
from ..fe.solver import FPSolveWarning, Problem
from .build import build_landscape, build_mesh, build_noise, mesh_arrays
from .forked import Forked, available as forked_available

__all__ = ["run_task", "component", "case_observables", "jsonable", "THREAD_VARIABLES",
           "single_threaded_children"]

logger = logging.getLogger(__name__)

#: Environment variables that pin BLAS/OpenMP pools to one thread in worker processes
#: (processes, not threads, are the unit of parallelism of a study).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


#: Number of lines of the marginal grid search (see case_observables).
MARGINAL_GRID = 201


def component(name: str):
    """Import ``fpsolve.<name>`` (flux, io, plot) or return None if it does not exist."""
    try:
        return importlib.import_module(f"fpsolve.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"fpsolve.{name}":
            return None
        raise


def case_observables(sol, fl) -> dict:
    """The per-case numbers of summary.json, from a Solution and its Flux (or None)."""
    mo = sol.moments()
    mean, cov = mo["mean"], mo["cov"]
    d = sol.diagnostics
    out = {
        "dofs": int(d["dofs"]),
        "escape_rate": sol.escape_rate,
        "escape_rate_eig": d.get("escape_rate_eig"),
        "mean": mean,
        "cov": cov,
        "x2": float(cov[0, 0] + mean[0] ** 2),      # ⟨x²⟩
        "y2": float(cov[1, 1] + mean[1] ** 2),
        "mode": sol.mode(),
        # 201 marginal lines bracket the maximum before the 1-D refinement: the same
        # location as the default 401 to ~1e-8 (Fig. 3 cases) at half the cost
        "marginal_mode_x": sol.marginal_mode("x", n=MARGINAL_GRID),
        "cycles": [],
        "residual": d["residual"],
        "negative_mass": d["negative_mass"],
        "min_P": d["min_P"],
        "error_estimate": dict(getattr(sol, "error_estimate", {})),
    }
    if "adapt" in d:
        out["adapt"] = d["adapt"]
    if fl is not None:
        out["cycles"] = [{"center": c["center"], "sense": c["sense"],
                          "circulation": c["circulation"]} for c in fl.cycles]
        out["flux"] = fl.summary()
    return jsonable(out)


def _capture(record) -> list[str]:
    out = []
    for w in record:
        if issubclass(w.category, FPSolveWarning):
            out.append(str(w.message))
        else:
            logger.debug("%s: %s", w.category.__name__, w.message)
    return out


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


class _Clock:
    """Wall time of consecutive steps: ``clock("solve")`` closes the step "solve"."""

    def __init__(self):
        self.t = time.perf_counter()
        self.laps = {}

    def __call__(self, name):
        now = time.perf_counter()
        self.laps[f"{name}"] = now - self.t
        self.t = now


@contextlib.contextmanager
def single_threaded_children():
    """Child processes started inside inherit one-thread BLAS/OpenMP settings."""
    saved = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    os.environ.update({k: "1" for k in THREAD_VARIABLES})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@with_single_blas_thread
def run_task(task: dict, on_case=None, keep: bool = False, renderer=None,
             on_time=None, on_last=None) -> list[dict]:
    """Assemble once, solve every case of ``task``, return results (files as bytes).

    Parameters
    ----------
    task : dict
        ``cases``: list of ``{"name", "title", "config", "hash", "strength"}`` sharing
        everything but the diffusion strength; ``outputs``: ``{"vtk", "figures",
        "flux"}`` booleans and optional ``panel``: names of the cases the panel shows;
        ``hold_last`` (optional): the last case's files are made in this process.
    on_case : callable, optional
        Called with each result as soon as it is ready (in-process runs).
    keep : bool
        Add ``live`` = (Solution, Flux or None) to the result of each case the panel
        shows (``outputs["panel"]``; in-process runs: the panel figure then needs
        neither a rebuild nor a second flux).
    renderer : fpsolve.study.render.Renderer, optional
        Draw the figure and encode the ``.vtu`` in this background process (if it
        accepts the size of the solution): the result then has ``pending``, a Future
        of the files, and ``files`` is empty.
    on_time : callable, optional
        ``on_time(case, t, fraction)`` after every step of a ``[time]`` transient
        (in-process runs: the CLI's progress bar).
    on_last : callable, optional
        With ``hold_last`` and a renderer: called with the renderer job of the last
        case (its plot data only) as soon as it is solved and its flux computed, before
        its error estimate, observables and files (the runner hands the panel over).

    Returns
    -------
    list of dict
        One per case: ``name``, ``hash``, ``summary`` (JSON-friendly), ``files``
        (relative path -> bytes), ``npz`` (coefficients) or ``error`` (one line).
    """
    cases, opts = task["cases"], task["outputs"]
    mods = {"flux": component("flux") if opts["flux"] else None,
            "io": component("io") if opts["vtk"] else None,
            "plot": component("plot") if opts["figures"] else None}
    results = []

    def done(res):
        results.append(res)
        if on_case is not None:
            on_case(res)

    t0 = time.perf_counter()
    try:
        prob, setup_warnings = _setup(cases[0]["config"])
    except Exception as exc:   # every case of the group fails with the same reason
        msg = f"{type(exc).__name__}: {exc}"
        for c in cases:
            done({"name": c["name"], "hash": c["hash"], "error": msg})
        return results
    assembly_share = (time.perf_counter() - t0) / len(cases)
    _overlap(prob, task, mods, renderer)
    panel = set(opts.get("panel", ()))
    solved: dict = {}      # cases solved ahead of their turn (_Ahead)
    for i, c in enumerate(cases):
        t1 = time.perf_counter()
        hold = task.get("hold_last", False) and c is cases[-1]
        pre = solved.pop(c["name"], None)
        ahead = _Ahead.next(prob, renderer, cases, i, solved)
        try:
            with warnings.catch_warnings(record=True) as rec:
                warnings.simplefilter("always")
                res = _solve_case(prob, c, mods, renderer, c["name"] in panel, hold,
                                  on_time, on_last, pre, ahead)
            msgs = list(dict.fromkeys(setup_warnings + _capture(rec)))
        except Exception as exc:
            done({"name": c["name"], "hash": c["hash"], "error": f"{type(exc).__name__}: {exc}"})
            continue
        # a solve done ahead counts for its own case
        moved = ((pre.seconds if pre is not None else 0.0)
                 - (ahead.seconds if ahead is not None and ahead.done else 0.0))
        # only the panel's cases are kept alive: a long sweep would hold every solution
        done(_finish_result(res, msgs, time.perf_counter() - t1 + moved, assembly_share,
                            keep and c["name"] in panel))
    return results


def _finish_result(res: dict, msgs: list, seconds: float, assembly_share: float,
                   keep: bool) -> dict:
    """A case's result with its runtime, warnings and diagnostics in the summary."""
    sol, fl = res.pop("live")
    summary = res["summary"]
    summary["runtime_s"] = seconds + assembly_share
    summary["timings_s"]["assembly_share"] = assembly_share
    summary["warnings"] = msgs
    summary["diagnostics"] = jsonable({k: v for k, v in sol.diagnostics.items()
                                       if k != "warnings"})
    if keep:
        res["live"] = (sol, fl)
    return res


def _overlap(prob, task: dict, mods: dict, renderer) -> None:
    """Start what overlaps the solves of a task: the flux's mesh-only factorisations (a
    thread), the renderer process, and the import of matplotlib for the last case."""
    cases = task["cases"]
    adaptive = prob.tol is not None    # each case ends on its own refined mesh
    if mods["flux"] is not None and not adaptive:   # mesh-only flux factorisations
        mods["flux"].prefetch_operators(prob.basis,  # overlap the first solve
                                        _orders_from(renderer))
    if renderer is not None and not adaptive and renderer.accepts(prob.basis.N):
        renderer.start(cases[0]["config"])
    prob.reuse_ordering = len(cases) >= 4    # a sweep group: share one LU ordering
    if _forks(prob, renderer):
        # the estimates' caches, built while the first solve factorises (without the
        # GIL): then the first case's estimate can be forked too
        thread = threading.Thread(target=_prepare_estimates, args=(prob,), daemon=True,
                                  name="fpsolve-estimate-caches")
        prob.__dict__[_PREPARING] = thread
        thread.start()
    if task.get("hold_last") and renderer is not None and mods["plot"] is not None:
        # the last case's figure is drawn here: import matplotlib meanwhile, in the
        # time the solves spend in SuperLU without the GIL
        from .render import _warm_up
        _WARM_UP[0] = threading.Thread(target=_warm_up, name="fpsolve-import-plot",
                                       daemon=True)
        _WARM_UP[0].start()


#: the matplotlib import thread of a held last case: joined before that case is drawn,
#: so the two threads never import the same modules at once
_WARM_UP: list = [None]


#: seconds the flux prefetch waits for the renderer's mesh order before computing it
ORDER_WAIT = 120.0


def _orders_from(renderer):
    """A function that waits for the nested-dissection orders the renderer process
    computed for the mesh and caches them here (None without a started renderer)."""
    fut = None if renderer is None else renderer.orders
    if fut is None:
        return None

    def wait():
        from ..fe.ordering import remember
        try:
            remember(fut.result(timeout=ORDER_WAIT))
        except Exception as exc:        # METIS runs here instead, as without a renderer
            logger.debug("no mesh order from the renderer: %s", exc)
    return wait


def _setup(cfg: dict):
    """The Problem of a group (one assembly) and the warnings of building it."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        L = build_landscape(cfg["landscape"])
        D = build_noise(cfg["noise"], L)
        mesh = build_mesh(cfg["mesh"])
        stab = cfg["solver"]["stabilisation"]
        prob = Problem(L, D, mesh, boundary=cfg["solver"]["boundary"],
                       order=cfg["solver"]["order"],
                       stabilisation=None if stab == "none" else stab,
                       max_dofs=cfg["solver"].get("max_dofs"), tol=cfg["solver"].get("tol"),
                       goals=cfg["solver"].get("goals"),
                       weighting=cfg["solver"].get("weighting", "auto"))
    return prob, _capture(rec)


class _Ahead:
    """The next case of a task, solved while this one waits for the flux operators.

    The first case's flux needs the mesh-only factorisations that a thread builds
    during its solve (:func:`fpsolve.fe.flux_operators.prefetch_operators`); when they
    are not done as the solve ends, the next case is solved meanwhile (``run()``): same
    solves in the same order, so the same numbers.  Its error estimate is deferred as
    usual; its warnings are replayed into its own case's record.
    """

    def __init__(self, prob, case: dict, solved: dict):
        self.prob, self.case, self.solved = prob, case, solved
        self.done = False

    @classmethod
    def next(cls, prob, renderer, cases: list, i: int, solved: dict):
        """The case after ``cases[i]``, to be solved ahead if need be, or None: only when
        the estimates are forked (:func:`_forks`) and a second solve fits in memory beside
        the first (its LU is alive until the first's estimate is forked; checked per
        case, as the available memory shrinks over a task)."""
        from ..fe.budget import fits, peak_memory
        if i + 1 >= len(cases) or not _forks(prob, renderer):
            return None
        if not fits(peak_memory(prob.basis.N, prob.order)):
            return None
        return cls(prob, cases[i + 1], solved)

    def run(self) -> None:
        t0 = time.perf_counter()
        deferred: dict = {}
        self.prob.defer_estimate = _deferring_into(deferred)
        try:
            with warnings.catch_warnings(record=True) as rec:
                warnings.simplefilter("always")
                try:
                    self.sol, self.error = self.prob.solve(self.case["strength"]), None
                except Exception as exc:     # raised in its own turn
                    self.sol, self.error = None, exc
        finally:
            self.prob.defer_estimate = None
        self.deferred, self.warnings = deferred, list(rec)
        self.seconds = time.perf_counter() - t0
        self.done = True
        self.solved[self.case["name"]] = self


def _deferring_into(deferred: dict):
    """A ``Problem.defer_estimate`` that keeps the solve's ``compute`` and ``finish`` in
    ``deferred`` (the study forks ``compute`` later, :func:`_estimate_job`)."""
    return lambda sol, compute, finish: deferred.update(compute=compute, finish=finish)


def _solve(prob, c: dict, mods: dict, renderer, early_panel: bool, on_last, clock,
           early: dict, deferred: dict, pre: _Ahead | None, ahead: _Ahead | None):
    """The case's Solution: solved here, or ahead of its turn (``pre``); then, if the
    flux operators are still being built, the next case is solved (``ahead``) before
    this case's estimate is forked."""
    if pre is not None:
        for w in pre.warnings:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if pre.error is not None:
            raise pre.error
        deferred.update(pre.deferred)
        sol = pre.sol
    else:
        if _forks(prob, renderer):
            prob.defer_estimate = _deferring_into(deferred)
        elif early_panel:
            prob.on_solved = lambda s: _early_hand_over(s, c, mods, on_last, early)
        try:
            sol = prob.solve(c["strength"])
        finally:
            prob.on_solved = prob.defer_estimate = None
    if deferred:
        from ..fe.flux_operators import prefetch_pending
        if ahead is not None and mods["flux"] is not None and prefetch_pending(prob.basis):
            ahead.run()
        deferred["job"] = _estimate_job(prob, deferred.pop("compute"))
    clock("solve")
    if pre is not None:             # each case's lap holds its own solve
        clock.laps["solve"] += pre.seconds
    if ahead is not None and ahead.done:
        clock.laps["solve"] -= ahead.seconds
    return sol


def _solve_case(prob, c: dict, mods: dict, renderer, in_panel: bool, hold: bool,
                on_time=None, on_last=None, pre: _Ahead | None = None,
                ahead: _Ahead | None = None) -> dict:
    """Solve one case, compute its flux and observables, make (or hand over) its files.

    ``hold``: the run's last case; its files are made here, and ``on_last`` gets its
    plot data before the error estimate is computed (:func:`_early_hand_over`).
    ``pre``: the case was solved ahead of its turn; ``ahead``: the next case, which may
    be solved during this one (:class:`_Ahead`).
    """
    clock = _Clock()
    early: dict = {}
    deferred: dict = {}
    early_panel = (hold and on_last is not None and mods["flux"] is not None
                   and prob.tol is None and renderer is not None
                   and renderer.accepts(prob.basis.N))
    sol = _solve(prob, c, mods, renderer, early_panel, on_last, clock, early, deferred,
                 pre, ahead)
    if deferred:
        fl, summary = _beside_estimate(sol, c, mods, on_last if early_panel else None,
                                       deferred, clock)
    else:
        if prob.tol is None:
            _caches_filled(prob, True)
        if "flux" in early:
            for w in early["warnings"]:   # in the order of a flux computed after the solve
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            fl = early["flux"]
            clock.laps["solve"] -= early["flux_s"]
            clock.laps["flux"] = early["flux_s"]
        else:
            fl = mods["flux"].flux(sol) if mods["flux"] is not None else None
            clock("flux")
        summary = case_observables(sol, fl)
        clock("observables")
    res = {"name": c["name"], "hash": c["hash"], "summary": summary, "live": (sol, fl)}
    if renderer is None or not renderer.accepts(sol.basis.N) or hold:
        if hold and _WARM_UP[0] is not None:
            _WARM_UP[0].join()
            _WARM_UP[0] = None
        res["files"] = _case_files(sol, fl, c, mods, clock)
    else:
        res["files"] = {}
        res["pending"] = _hand_over(sol, fl, c, mods, renderer, in_panel, clock)
    if "time" in c["config"]:       # [time]: spectrum and a transient
        from .dynamics import time_results
        # on the mesh of the solution: an adaptive case's own (one more assembly), and on
        # its discretisation (a Gibbs-weighted solution's transient evolves u = P/w)
        tprob = prob if sol.mesh is prob.mesh else Problem(
            prob.landscape, sol.diffusion, sol.mesh, prob.boundary, prob.order, prob.drift,
            prob.stabilisation, prob.intorder, max_dofs=prob.max_dofs,
            weighting="gibbs" if sol.weight is not None else "auto")
        with tempfile.TemporaryDirectory(prefix="fpsolve-") as tmp:
            bar = (False if on_time is None else
                   lambda t, frac, name=c["name"]: on_time(name, t, frac))
            extra, tfiles = time_results(tprob, sol, c, c["config"]["time"], tmp, mods["io"],
                                         progress=bar)
        summary.update(extra)
        res["files"].update(tfiles)
        clock("time")
    arrays = {"P": sol.P}
    if sol.mesh is not prob.mesh:      # adapted (solver.tol): the mesh goes with P
        arrays.update(mesh_arrays(sol.mesh))
        summary["adapted_mesh"] = {"vertices": sol.mesh.nvertices,
                                   "triangles": sol.mesh.nelements,
                                   "h_min": sol.mesh.quality()["h_min"],
                                   "file": f"cases/{c['name']}.npz"}
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    res["npz"] = buf.getvalue()
    summary["timings_s"] = dict(clock.laps)
    return res


def _case_files(sol, fl, c: dict, mods: dict, clock) -> dict:
    """The case's .vtu and figure, made in this process."""
    files = {}
    with tempfile.TemporaryDirectory(prefix="fpsolve-") as tmp:
        if mods["io"] is not None:
            p = os.path.join(tmp, f"{c['name']}.vtu")
            # False, not None: io would compute the flux itself
            mods["io"].export_vtk(sol, p, flux=fl if fl is not None else False)
            files[f"vtk/{c['name']}.vtu"] = _read(p)
            clock("vtk")
        if mods["plot"] is not None:
            p = os.path.join(tmp, f"{c['name']}.png")
            mods["plot"].solution_figure(sol, p, flux=fl, title=c["title"])
            files[f"figures/{c['name']}.png"] = _read(p)
            clock("figure")
    return files


#: a mesh's ``__dict__`` key: the set of (order, boundary) whose estimate caches (enriched
#: basis, recovery operators, loads: the mesh's, per element and boundary) are filled in
#: this process (by an estimate computed here, or by :func:`_prepare_estimates`): a forked
#: child, which cannot return them, would rebuild them for every case.  (The model's
#: coefficients, kept on the problem, are cheap: a child rebuilds them if need be.)
_ESTIMATED = "_fpsolve_estimated"


def _caches_filled(prob, filled: bool = False) -> bool:
    """Whether the mesh caches of ``prob``'s estimates are filled (``filled=True``: mark
    them so)."""
    done = prob.mesh.__dict__.setdefault(_ESTIMATED, set())
    if filled:
        done.add((prob.order, prob.boundary))
    return (prob.order, prob.boundary) in done
#: a Problem's ``__dict__`` key of the thread running :func:`_prepare_estimates`
_PREPARING = "_fpsolve_preparing"


def _forks(prob, renderer) -> bool:
    """Whether the error estimates of ``prob``'s solves may go to forked children.

    Only when a second core is there for them (the run draws in a background renderer,
    so it has one local worker) and the case is large enough to pay for the fork; not
    for adaptive solves (the refinement needs each estimate at once).
    """
    return (renderer is not None and prob.tol is None and renderer.accepts(prob.basis.N)
            and forked_available())


def _prepare_estimates(prob) -> None:
    """Thread: the estimates' caches of ``prob`` (mesh and model), during the first solve."""
    from ..fe.estimate import prepare
    try:
        prepare(prob)
    except Exception as exc:     # the first estimate then runs here and fills them
        logger.debug("estimate caches not prepared: %s", exc)
    else:
        _caches_filled(prob, True)


def _estimate_job(prob, compute) -> Forked:
    """After the solve (which the cache thread and the flux prefetch overlapped): the
    estimate in a forked child once the caches are filled, else here (:func:`_forks`).

    Never forked with a live thread of ours: the child would inherit half-built caches,
    the flux prefetch inside SuperLU (the flux waits for it right after anyway) or the
    last case's matplotlib import halfway."""
    thread = prob.__dict__.pop(_PREPARING, None)
    if thread is not None:
        thread.join()
    if not _caches_filled(prob):
        def fill():
            est = compute()
            _caches_filled(prob, True)       # this in-place estimate filled them
            return est
        return Forked(fill, fork=False)
    from ..fe.flux_operators import wait_prefetch
    wait_prefetch(prob.basis)
    if _WARM_UP[0] is not None:
        _WARM_UP[0].join()
    from ..fe.budget import SAFETY, estimate_memory    # no fork if the child would not fit
    from ..fe.hierarchical import HIER_BYTES_PER_DOF
    # the estimate solves P_{k+1} duals on these meshes (Problem._estimate's test)
    graded = "+refine" in prob.mesh.source or prob.mesh.graded
    need = estimate_memory(prob.basis.N, prob.order, graded, flux=True)
    if prob.boundary == "absorbing":    # where μ's dual weight fails: a P_{k+1} solve too
        need += SAFETY * HIER_BYTES_PER_DOF[prob.order] * prob.basis.N
    return Forked(compute, need=need)


def _beside_estimate(sol, c: dict, mods: dict, on_last, deferred: dict, clock):
    """The flux and observables of a solve whose error estimate a forked child computes
    meanwhile (on the other core); then the estimate completes ``sol``.

    The solve's warnings come first and the flux's after them, as in-process.  With
    ``on_last`` (the run's last case) the panel data go to the renderer before the
    estimate is in.  Returns (Flux or None, observables).
    """
    job = deferred["job"]
    try:
        with warnings.catch_warnings(record=True) as later:
            warnings.simplefilter("always")
            fl = mods["flux"].flux(sol) if mods["flux"] is not None else None
            clock("flux")
            if on_last is not None and fl is not None:
                from .render import case_job
                on_last(case_job(c["name"], c["title"], c["config"], c["strength"], sol, fl,
                                 None, False, True))
            summary = case_observables(sol, fl)
            clock("observables")
        est, seconds = job.result()
    finally:
        job.discard()
    clock("estimate")                   # the wait for the child, if any
    deferred["finish"](est, seconds)    # the solve's diagnostics and warnings
    for w in later:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    summary["error_estimate"] = jsonable(dict(sol.error_estimate))
    return fl, summary


def _early_hand_over(sol, c: dict, mods: dict, on_last, early: dict) -> None:
    """The flux of the just-solved last case and ``on_last`` of its plot data (the
    renderer draws the panel while this process computes the error estimate and the
    case's files).  The flux's warnings are kept in ``early`` to be re-issued after the
    solve's own."""
    from .render import case_job
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        fl = mods["flux"].flux(sol)
    early.update(flux=fl, warnings=list(rec), flux_s=time.perf_counter() - t0)
    on_last(case_job(c["name"], c["title"], c["config"], c["strength"], sol, fl, None,
                     False, True))


def _hand_over(sol, fl, c: dict, mods: dict, renderer, in_panel: bool, clock):
    """Give the case's figure and .vtu to the renderer process; a Future of its files."""
    from .render import case_job
    vtk = None
    if mods["io"] is not None:
        vtk = mods["io"].vtk_content(sol, fl if fl is not None else False)
        clock("vtk")
    figure = mods["plot"] is not None
    if (figure or in_panel) and fl is None:
        fl = component("plot")._flux_of(sol, None)       # the figures show the flux
    job = case_job(c["name"], c["title"], c["config"], c["strength"], sol, fl, vtk,
                   figure, in_panel)
    fut = renderer.case(job)
    clock("figure")
    return fut
