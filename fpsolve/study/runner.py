"""Run a validated study: plan tasks, execute them (in-process, process pool or
Dask), write every output atomically, skip cases whose results are up to date.

Output directory layout::

    summary.json            per-case observables (and failures), sweeps, files
                            (an [analysis] study: its results, table.md, figures;
                            see fpsolve.study.analyses)
    provenance.json         versions, command line, configuration hash, date
    <study>.toml            copy of the study file
    panel.png               the cases side by side (plot.panel_figure)
    <series>.png            observables against the swept parameter (series "sweep",
                            or "sweep-<case>" when a study has cases and a sweep)
    vtk/<case>.vtu          density, flux, ... (io.export_vtk)
    vtk/<series>.pvd        a sweep as a ParaView time series (time = parameter)
    figures/<case>.png      one figure per case (plot.solution_figure)
    cases/<case>.json       the case's record: configuration hash, summary, files
    cases/<case>.npz        FE coefficients (rebuilds the Solution for the panel)

A case is reused when ``cases/<case>.json`` holds the same configuration hash and
all its files exist; the record is written last, so a run killed at any moment
leaves either a complete case or none.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np

try:
    import resource
except ImportError:       # Windows: no CPU accounting in provenance.json
    resource = None

from .. import __version__
from .build import build_landscape, build_noise, case_mesh
from .outputs import (atomic_path, atomic_write, provenance, remove_stale_temporaries,
                      sweep_figure, write_json)
from .schema import Case, Study, StudyError, _digest, case_hash
from .tasks import _capture, component, jsonable, run_task, single_threaded_children
from .writer import CaseWriter

__all__ = ["run_study", "plan_tasks", "Reporter", "RunResult", "StudyRunError"]

logger = logging.getLogger(__name__)

#: How long to wait for a Dask scheduler before giving up (distributed's syntax).
CONNECT_TIMEOUT = "20s"


class StudyRunError(RuntimeError):
    """Cases failed (solver, assembly, I/O) or the scheduler was unreachable."""


class Reporter:
    """Receives progress events; the CLI prints them, the default does nothing.

    Library code never prints: subclass this (see :mod:`fpsolve.cli`) to show progress.
    """

    def start(self, study: Study, total: int, reused: int, tasks: int, workers: int) -> None:
        """Called once, before the first solve."""

    def case_finished(self, outcome: dict) -> None:
        """``outcome``: ``name``, ``done``, ``total``, ``reused`` and ``summary`` or ``error``."""

    def warning(self, case: str, message: str) -> None:
        """An FPSolveWarning of ``case`` (also stored in summary.json)."""

    def note(self, message: str) -> None:
        """Something the user should know that is not a failure."""

    def step(self, message: str) -> None:
        """A finished step of an analysis (studies with [analysis])."""

    def time_step(self, case: str, t: float, fraction: float) -> None:
        """A ``[time]`` step of ``case`` (in this process): t reached, fraction of outputs."""

    def finish(self, result: "RunResult") -> None:
        """Called once, after the last file is written."""


@dataclass
class RunResult:
    """What a run produced."""

    out: str
    summary: dict
    computed: list = field(default_factory=list)
    reused: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    seconds: float = 0.0


def plan_tasks(cases: list[Case], workers: int) -> list[list[Case]]:
    """Group ``cases`` by shared assembly, then split groups until every worker has work.

    A group of n strengths costs one assembly and n solves; splitting it costs one
    more assembly but lets two workers share it.  Deterministic: the same cases and
    worker count always give the same tasks, and the numbers never depend on them.
    """
    groups: dict[str, list[Case]] = {}
    for c in cases:
        groups.setdefault(c.group_key(), []).append(c)
    tasks = list(groups.values())
    while len(tasks) < workers:
        i = max(range(len(tasks)), key=lambda k: len(tasks[k]), default=None)
        if i is None or len(tasks[i]) < 2:
            break
        big = tasks.pop(i)
        half = (len(big) + 1) // 2
        tasks[i:i] = [big[:half], big[half:]]
    return tasks


def _payload(task: list[Case], outputs: dict) -> dict:
    return {"cases": [{"name": c.name, "title": c.title, "config": c.config, "hash": c.hash,
                       "strength": c.strength} for c in task],
            "outputs": outputs}


def _required_files(case: Case, outputs: dict) -> list[str]:
    files = [f"cases/{case.name}.npz"]
    if outputs["vtk"]:
        files.append(f"vtk/{case.name}.vtu")
    if outputs["figures"]:
        files.append(f"figures/{case.name}.png")
    return files


def _valid_record(out: str, case: Case, outputs: dict):
    path = os.path.join(out, "cases", f"{case.name}.json")
    try:
        with open(path, encoding="utf-8") as fh:
            rec = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("hash") != case.hash or "summary" not in rec:
        return None
    if not all(os.path.isfile(os.path.join(out, f)) for f in _required_files(case, outputs)):
        return None
    return rec


def _rebuild_solution(out: str, case: Case, record: dict, bases: dict):
    """The Solution of a finished case, from its coefficients (no assembly, no solve)."""
    from ..fe.assembly import make_basis
    from ..fe.solution import Solution
    cfg = case.config
    L = build_landscape(cfg["landscape"])
    D = build_noise(cfg["noise"], L)
    order = cfg["solver"]["order"]
    with np.load(os.path.join(out, "cases", f"{case.name}.npz")) as z:
        P = z["P"]
        # an adaptive case's own mesh is stored with its coefficients
        adapted = "mesh_p" in z.files
        mesh = case_mesh(cfg["mesh"], z)
    key = (id(mesh), order)
    if adapted:                                   # this case's own mesh: nothing to share
        basis = make_basis(mesh, order)
    else:
        if key not in bases:
            bases[key] = make_basis(mesh, order)  # the solver's basis (P1-P3)
        basis = bases[key]
    if P.size != basis.N:
        raise StudyRunError(f'case "{case.name}": stored coefficients do not match its mesh '
                            f"({P.size} vs {basis.N} dofs); rerun with --force")
    s = record["summary"]
    diag = dict(s.get("diagnostics", {}), warnings=list(s.get("warnings", [])))
    stab = cfg["solver"]["stabilisation"]
    mu = s["escape_rate"]             # null: a μ ≤ 0 reported as NaN (fe/solver.py)
    sol = Solution(P, basis, mesh, L, D, cfg["solver"]["boundary"], order,
                   float("nan") if mu is None else mu, diag, None,
                   None if stab == "none" else stab)
    if diag.get("weighting") == "gibbs":          # P holds w·u at the dofs
        from ..fe.gibbs import attach, weight_of
        attach(sol, weight_of(L, D, basis))
    return sol


def _case_entry(case: Case, rec: dict | None, error: str | None, reused: bool) -> dict:
    params = json.loads(json.dumps(case.config))
    params["mesh"].pop("path", None)
    entry = {"name": case.name, "title": case.title, "config_hash": case.hash,
             "parameters": params}
    if case.series is not None:
        entry["series"], entry["value"] = case.series, case.value
    if error is not None:
        entry["error"] = error
        return entry
    entry.update(rec["summary"])
    entry["files"] = rec["files"]
    entry["reused"] = reused
    return entry


def run_study(study: Study, out: str | None = None, *, force: bool = False,
              workers: int | None = None, reporter: Reporter | None = None,
              command: str | None = None, background: bool | None = None) -> RunResult:
    """Solve every case of ``study`` and write its outputs.

    Parameters
    ----------
    study : Study
        From :func:`fpsolve.study.load_study` (already validated).
    out : str, optional
        Output directory (default ``results/<study name>``, relative to the
        current directory).  Created only now, after validation.
    force : bool
        Recompute cases even if their outputs are up to date.
    workers : int, optional
        Local worker processes (overrides ``[execution] workers``); ignored when
        ``[execution] scheduler`` names a Dask scheduler.
    reporter : Reporter, optional
        Progress sink (the CLI's prints; default silent).
    command : str, optional
        Command line recorded in provenance.json.
    background : bool, optional
        Draw figures and encode ``.vtu`` files in a second process while this one
        solves (:mod:`fpsolve.study.render`).  Default: for solutions of at least
        ``render.MIN_DOFS`` unknowns when the run uses one local worker and the
        machine has at least two cores.  The files are the same either way.

    Returns
    -------
    RunResult

    Raises
    ------
    StudyError
        ``out`` exists and is not a directory (bad input; nothing written).
    StudyRunError
        Some cases failed (all others are written, and summary.json lists the
        failures) or the Dask scheduler could not be reached.
    """
    t_start = time.perf_counter()
    reporter = reporter or Reporter()
    out = out if out is not None else os.path.join("results", study.name)
    if os.path.exists(out) and not os.path.isdir(out):
        raise StudyError(out, None, "output path exists and is not a directory")
    workers = workers if workers is not None else study.execution["workers"]
    if int(workers) < 1:
        raise StudyError("--workers", None, f"expected a positive integer, got {workers!r}")
    if study.analysis is not None:
        return _run_analysis(study, out, force, int(workers), reporter, command, t_start)
    run = _Run(study, out, force, reporter, t_start)
    records = run.reusable_records()
    todo = [c for c in study.cases if c.name not in records]
    run.prepare_directory()
    scheduler = study.execution["scheduler"]
    client = _connect(scheduler) if scheduler != "local" and todo else None
    renderer = None
    try:
        n_workers = workers if client is None else max(1, sum(client.nthreads().values()))
        if client is None:
            n_workers = _memory_workers(todo, n_workers, run.outputs["flux"])
        tasks = plan_tasks(todo, n_workers)
        if _use_background(background, client, n_workers, todo, run.outputs):
            renderer = _renderer(background, tasks)
        logger.info("%d cases in %d tasks on %d workers (%s)", len(todo), len(tasks),
                    n_workers, scheduler)
        computed, failed = _execute(study, out, tasks, run.task_outputs(), records,
                                    n_workers, client, reporter, run.live, renderer,
                                    lambda back: run.early_panel(renderer, back))
        run.t_cases = time.perf_counter()
        run.cpu_cases = _cpu(resource.RUSAGE_SELF) if resource is not None else None
        sweeps, panel_file = run.study_products(records, renderer)
    finally:
        if client is not None:
            client.close()
        if renderer is not None:
            renderer.close()
    if renderer is not None and renderer.started:
        run.render = {"cpu_s": renderer.cpu_s, "wait_s": renderer.wait_s}
    return run.finish(records, computed, failed, sweeps, panel_file, command,
                      {"workers": n_workers, "scheduler": scheduler, "tasks": len(tasks)})


def _renderer(background, tasks):
    """The background renderer, its process started now if the first case will use it:
    its interpreter then imports matplotlib while this one assembles, instead of during
    the first solve."""
    from .build import case_dofs
    from .render import MIN_DOFS, Renderer, prebuild
    renderer = Renderer(MIN_DOFS if background is None else 0)
    cfg = tasks[0][0].config
    # an adaptive case's size is known only after refining (its first job starts it)
    if cfg["solver"].get("tol") is None and renderer.accepts(case_dofs(cfg)):
        prebuild(cfg)       # inherited by a forked renderer, found by the assembly
        renderer.start(cfg)
    return renderer


def _memory_workers(todo: list[Case], workers: int, flux: bool) -> int:
    """Fewer local workers when the largest cases would not fit in memory together.

    Every case passed the budget check alone; two of them in parallel may not (an
    adaptive case may grow to its whole ``max_dofs`` budget).
    """
    from ..fe.budget import format_bytes, parallel_workers
    from .build import case_peak_memory
    if workers <= 1 or len(todo) <= 1:
        return workers
    peaks = [case_peak_memory(c.config, flux) for c in todo]
    k = parallel_workers(peaks, workers)
    if k < workers:
        logger.warning("running %d case%s at a time instead of %d: the largest cases need "
                       "an estimated %s each (adaptive cases up to their max_dofs budget)",
                       k, "s" * (k != 1), workers, format_bytes(max(peaks)))
    return k


def _use_background(background, client, workers: int, todo, outputs: dict) -> bool:
    if client is not None or workers != 1 or not todo:
        return False
    if not (outputs["vtk"] or outputs["figures"]):
        return False
    if background is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:          # not on Linux
            cores = os.cpu_count() or 1
        return cores >= 2
    return bool(background)


class _Run:
    """The bookkeeping of one run_study call (outputs, reuse, study-level products)."""

    def __init__(self, study: Study, out: str, force: bool, reporter: Reporter, t_start):
        self.study, self.out, self.force, self.reporter = study, out, force, reporter
        self.t_start = t_start
        self.t_cases = self.cpu_cases = None
        self.live: dict = {}
        self.render = None
        self.panel_future = None
        self.mods = {name: component(name) for name in ("flux", "io", "plot")}
        self.missing = [f"fpsolve.{n}" for n, m in self.mods.items() if m is None]
        o = study.output
        self.outputs = {"vtk": o["vtk"] and self.mods["io"] is not None,
                        "figures": o["figures"] and self.mods["plot"] is not None,
                        "flux": o["flux"] and self.mods["flux"] is not None}
        for opt, mod in (("vtk", "io"), ("figures", "plot"), ("flux", "flux")):
            if o[opt] and self.mods[mod] is None:
                reporter.note(f"fpsolve.{mod} is not available: output.{opt} is skipped")
        self.panel_wanted = o["panel"] is not False and self.mods["plot"] is not None
        if o["panel"] is not False and self.mods["plot"] is None:
            reporter.note("fpsolve.plot is not available: no panel figure")
        self.layout = _panel_layout(o["panel"], study.cases) if self.panel_wanted else None
        for c in study.cases:        # what is computed depends on what is available
            c.hash = case_hash(c.config, self.outputs["flux"])

    def early_panel(self, renderer, jobs: dict) -> None:
        """Hand the panel to the renderer as soon as every one of its cases is solved
        (kept there, or among the reclaimed ``jobs``), before this process draws the
        reclaimed cases."""
        if not self.panel_wanted or self.panel_future is not None:
            return
        names = [n for r in self.layout for n in r]
        if not all(n in renderer.kept or n in jobs for n in names):
            return
        by_name = {c.name: c for c in self.study.cases}
        titles = _reshape(self.layout)([by_name[n].title for n in names])
        self.panel_future = renderer.panel(self.layout, titles,
                                           jobs=[jobs[n] for n in names if n in jobs])

    def prepare_directory(self) -> None:
        """Create the output directory, clear dead runs' temporaries, copy the study."""
        out = self.out
        os.makedirs(os.path.join(out, "cases"), exist_ok=True)
        for sub in ("", "cases", "vtk", "figures"):
            remove_stale_temporaries(os.path.join(out, sub))
        atomic_write(os.path.join(out, os.path.basename(self.study.path)), self.study.text)

    def task_outputs(self) -> dict:
        """``outputs`` of the tasks, with the names the panel shows."""
        names = [n for r in self.layout for n in r] if self.layout else []
        return dict(self.outputs, panel=names)

    def reusable_records(self) -> dict:
        records = {}
        if not self.force:
            for c in self.study.cases:
                rec = _valid_record(self.out, c, self.outputs)
                if rec is not None:
                    records[c.name] = rec
        logger.info("%s: %d of %d cases up to date in %s", self.study.name, len(records),
                    len(self.study.cases), self.out)
        return records

    def study_products(self, records: dict, renderer) -> tuple:
        """The sweep files and the panel (each skipped when up to date)."""
        path = os.path.join(self.out, "cases", "_products.json")
        try:
            with open(path, encoding="utf-8") as fh:
                self.products = json.load(fh)
        except (OSError, ValueError):
            self.products = {}
        self.made = {}
        sweeps = []
        if self.study.sweep is not None:
            for series, members in self.study.sweep.series.items():
                sweeps.append(self._sweep_entry(series, members, records))
        panel_file = self._panel(records, renderer) if self.panel_wanted else None
        write_json(path, self.made)
        return sweeps, panel_file

    def _up_to_date(self, rel: str, key: str) -> bool:
        return (not self.force and self.products.get(rel) == key
                and os.path.isfile(os.path.join(self.out, rel)))

    def _sweep_entry(self, series: str, members: list, records: dict) -> dict:
        study, out = self.study, self.out
        by_name = {c.name: c for c in study.cases}
        entry = {"series": series, "parameter": study.sweep.parameter,
                 "values": [by_name[m].value for m in members], "cases": members}
        ok = [m for m in members if m in records]
        if self.outputs["vtk"] and ok:
            rel = f"vtk/{series}.pvd"
            key = _digest([records[m]["hash"] for m in ok] + ok)
            if not self._up_to_date(rel, key):
                with atomic_path(os.path.join(out, rel)) as tmp:
                    self.mods["io"].write_pvd(tmp, [(by_name[m].value, f"{m}.vtu") for m in ok])
            self.made[rel] = key
            entry["pvd"] = rel
        if study.output["sweep_plot"] and ok:
            rel = f"{series}.png"
            key = _digest(["sweep-plot"] + [records[m]["hash"] for m in ok] + ok)
            if not self._up_to_date(rel, key):
                rows = [dict(records[m]["summary"], value=by_name[m].value) for m in ok]
                title = (f"{study.name}: {study.sweep.parameter} sweep" if series == "sweep"
                         else f"{study.name}: case {series[len('sweep-'):]}")
                sweep_figure(os.path.join(out, rel), study.sweep.parameter, rows, title)
            self.made[rel] = key
            entry["plot"] = rel
        return entry

    def _panel(self, records: dict, renderer):
        by_name = {c.name: c for c in self.study.cases}
        layout = self.layout
        names = [n for r in layout for n in r]
        if not all(n in records for n in names):
            self.reporter.note("panel figure skipped: some of its cases failed")
            return None
        rel = "panel.png"
        key = _digest(["panel", layout] + [records[n]["hash"] for n in names]
                      + [by_name[n].title for n in names])
        if not self._up_to_date(rel, key):
            titles = _reshape(layout)([by_name[n].title for n in names])
            if self.panel_future is not None:
                # handed to the renderer when the last case was solved
                res = renderer.result(self.panel_future)
                atomic_write(os.path.join(self.out, rel), res["files"][rel])
                msgs = res["warnings"]
            else:
                msgs = self._panel_here(layout, names, titles, records, by_name, rel)
            for msg in dict.fromkeys(msgs):
                self.reporter.warning("panel", msg)
        self.made[rel] = key
        return rel

    def _panel_here(self, layout, names, titles, records, by_name, rel) -> list:
        """Draw the panel in this process; its warnings."""
        # solutions of this process are in memory; the others are rebuilt from
        # their coefficients and panel_figure computes their flux
        bases: dict = {}
        sols, fluxes = [], []
        for n in names:
            sol, fl = self.live.get(n) or (_rebuild_solution(self.out, by_name[n], records[n],
                                                             bases), None)
            sols.append(sol)
            fluxes.append(fl)
        shape = _reshape(layout)
        with atomic_path(os.path.join(self.out, rel)) as tmp, \
                warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            self.mods["plot"].panel_figure(shape(sols), tmp, titles=titles,
                                           fluxes=shape(fluxes))
        return _capture(rec)

    def finish(self, records, computed, failed, sweeps, panel_file, command,
               execution: dict) -> RunResult:
        """Write summary.json and provenance.json; report; raise if cases failed."""
        study, out = self.study, self.out
        summary = jsonable({
            "study": {"name": study.name, "description": study.description,
                      "file": os.path.basename(study.path)},
            "fpsolve": __version__,
            "config_hash": study.hash,
            "cases": [_case_entry(c, records.get(c.name), failed.get(c.name),
                                  c.name not in computed) for c in study.cases],
            "sweeps": sweeps,
            "panel": panel_file,
            "failed": sorted(failed),
        })
        write_json(os.path.join(out, "summary.json"), summary)
        reused = [c.name for c in study.cases if c.name in records and c.name not in computed]
        t_end = time.perf_counter()
        execution["wall_s"] = {"total": t_end - self.t_start,
                               "cases": self.t_cases - self.t_start,
                               "study_outputs": t_end - self.t_cases}
        if resource is not None:   # CPU of this process and of its finished local workers
            own = _cpu(resource.RUSAGE_SELF)
            execution["cpu_s"] = {"main_cases": self.cpu_cases,
                                  "main_study_outputs": own - self.cpu_cases,
                                  "workers": _cpu(resource.RUSAGE_CHILDREN)}
        if self.render is not None:
            execution["render"] = self.render
        write_json(os.path.join(out, "provenance.json"),
                   jsonable(provenance(study, command, computed, reused, sorted(failed),
                                       execution, self.missing)))
        result = RunResult(out, summary, computed, reused, failed,
                           time.perf_counter() - self.t_start)
        self.reporter.finish(result)
        if failed:
            first = next(c.name for c in study.cases if c.name in failed)
            more = f" (and {len(failed) - 1} more; see {os.path.join(out, 'summary.json')})" \
                if len(failed) > 1 else ""
            raise StudyRunError(f'case "{first}" failed: {failed[first]}{more}')
        return result


def _panel_layout(panel, cases) -> list:
    """Rows of case names of the ``[output] panel`` setting."""
    if panel is True:
        return [[c.name for c in cases]]
    if not any(isinstance(r, list) for r in panel):
        return [list(panel)]          # a flat list is one row
    return [r if isinstance(r, list) else [r] for r in panel]


def _analysis_up_to_date(out: str, study: Study):
    """The summary of a finished run of the same analysis configuration, or None."""
    try:
        with open(os.path.join(out, "summary.json"), encoding="utf-8") as fh:
            old = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(old, dict) or old.get("config_hash") != study.hash \
            or not isinstance(old.get("files"), list):
        return None
    if not all(os.path.isfile(os.path.join(out, f)) for f in old["files"]):
        return None
    return old


def _run_analysis(study: Study, out: str, force: bool, workers: int, reporter: Reporter,
                  command: str | None, t_start: float) -> RunResult:
    """Run the driver of ``study.analysis`` (fpsolve.study.analyses) and write its outputs.

    summary.json is written last and only on success; it carries the configuration
    hash and the list of files, so a rerun of an identical configuration whose files
    all exist is skipped (unless ``force``).
    """
    from .analyses import Context, driver
    kind = study.analysis["kind"]
    if not force:
        old = _analysis_up_to_date(out, study)
        if old is not None:
            reporter.note(f"{study.name}: analysis {kind!r} is up to date in {out} "
                          "(same configuration); --force recomputes it")
            result = RunResult(out, old, [], [kind], {}, time.perf_counter() - t_start)
            reporter.finish(result)
            return result
    os.makedirs(out, exist_ok=True)
    remove_stale_temporaries(out)
    for sub in ("figures",):
        remove_stale_temporaries(os.path.join(out, sub))
    atomic_write(os.path.join(out, os.path.basename(study.path)), study.text)
    scheduler = study.execution["scheduler"]
    client = _connect(scheduler) if scheduler != "local" else None
    if client is not None:
        workers = max(1, sum(client.nthreads().values()))
    ctx = Context(out, workers, getattr(reporter, "step", None), client)
    ctx.progress(f"{study.name}: analysis {kind!r} on {workers} worker"
                 f"{'s' * (workers != 1)} ({scheduler}) -> {out}/")
    params = {k: v for k, v in study.analysis.items() if k != "kind"}
    cpu0 = _cpu(resource.RUSAGE_SELF) if resource is not None else None
    try:
        results = driver(kind).run(params, ctx)
    except (StudyError, StudyRunError, KeyboardInterrupt):
        raise
    except Exception as exc:        # numerical or runtime failure of the library
        logger.debug("analysis %s failed", kind, exc_info=True)
        raise StudyRunError(f"analysis {kind!r} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if client is not None:
            client.close()
    for msg in ctx.warnings:
        reporter.warning("analysis", msg)
    total = time.perf_counter() - t_start
    summary = jsonable({
        "study": {"name": study.name, "description": study.description,
                  "file": os.path.basename(study.path)},
        "fpsolve": __version__,
        "config_hash": study.hash,
        "analysis": {"kind": kind, "parameters": study.analysis},
        "results": results,
        "table": "table.md" if "table.md" in ctx.files else None,
        "figures": [f for f in ctx.files if f.endswith(".png")],
        "files": list(ctx.files),
        "warnings": ctx.warnings,
        "runtime_s": total,
        "timings_s": ctx.timings,
    })
    execution = {"workers": workers, "scheduler": scheduler, "tasks": 1,
                 "wall_s": {"total": total}}
    if resource is not None:
        execution["cpu_s"] = {"main": _cpu(resource.RUSAGE_SELF) - cpu0,
                              "workers": _cpu(resource.RUSAGE_CHILDREN)}
    write_json(os.path.join(out, "provenance.json"),
               jsonable(provenance(study, command, [kind], [], [], execution, [])))
    write_json(os.path.join(out, "summary.json"), summary)     # last: commits the run
    result = RunResult(out, summary, [kind], [], {}, time.perf_counter() - t_start)
    reporter.finish(result)
    return result


def _execute(study, out, tasks, outputs, records, workers, client, reporter, live,
             renderer=None, early_panel=None):
    """Run ``tasks``; write each finished case as soon as it (and its files) arrive.

    Cases solved in this process leave (Solution, Flux) in ``live``.  With a renderer,
    once the last case is solved the jobs it has not started come back to this process,
    after ``early_panel(jobs)`` has handed it the panel.
    """
    payloads = [_payload(t, outputs) for t in tasks]
    if renderer is not None and payloads:
        # the last case's files are drawn here while the renderer draws the panel
        payloads[-1]["hold_last"] = True
    cases = CaseWriter(study, out, records, reporter, live, renderer)
    taken: dict = {}

    def last_solved(job):
        # the renderer's unstarted jobs come back; the panel goes to it right away
        back = renderer.reclaim()
        cases.take_back(back)
        taken.update(back)
        if early_panel is not None:
            early_panel(dict(back, **{job["name"]: job}))

    reporter.start(study, len(study.cases), len(records), len(tasks), workers)
    for c in study.cases:
        if c.name in records:
            cases.report({"name": c.name, "reused": True,
                          "summary": records[c.name]["summary"]})
    if client is not None:
        _run_dask(client, payloads, cases.handle)
    elif workers > 1 and len(payloads) > 1:
        _run_pool(min(workers, len(payloads)), payloads, cases.handle, reporter.time_step)
    else:
        for p in payloads:
            run_task(p, on_case=cases.handle, keep=True, renderer=renderer,
                     on_time=reporter.time_step,
                     on_last=None if renderer is None else last_solved)
    if renderer is not None and renderer.started:
        back = dict(renderer.reclaim(), **taken)
        if early_panel is not None:
            early_panel(back)          # unless last_solved handed it over already
        cases.render_here(back)
    cases.poll(block=True)
    return cases.computed, cases.failed


def _cpu(who) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def _reshape(layout):
    """A function putting a flat list into the rows of ``layout``."""
    def shape(flat):
        out, k = [], 0
        for row in layout:
            out.append(list(flat[k:k + len(row)]))
            k += len(row)
        return out
    return shape


def _run_pool(workers: int, payloads: list[dict], handle, on_time=None) -> None:
    """Run ``payloads`` on ``workers`` processes: this one and ``workers − 1`` children.

    The main process takes the next task whenever it is free (it would otherwise
    only wait), keeping its solutions in memory for the panel figure; children get
    at most one queued task each, so the split adapts to task lengths.
    """
    # spawn, not fork: the parent may hold BLAS/assembly thread pools, and children
    # must start with the one-thread environment set before numpy is imported
    ctx = multiprocessing.get_context("spawn")
    queue = list(payloads)
    pending = set()

    def collect(futures):
        for fut in futures:
            pending.discard(fut)
            try:
                results = fut.result()
            except Exception as exc:   # a worker died (out of memory, killed, ...)
                raise StudyRunError(f"worker process failed: {type(exc).__name__}: {exc}") \
                    from None
            for res in results:
                handle(res)

    with single_threaded_children():
        ex = ProcessPoolExecutor(max_workers=workers - 1, mp_context=ctx)
    try:
        while queue or pending:
            while queue and len(pending) < workers - 1:
                pending.add(ex.submit(run_task, queue.pop(0)))
            collect([f for f in list(pending) if f.done()])
            if queue:
                run_task(queue.pop(0), on_case=handle, keep=True, on_time=on_time)
            elif pending:
                collect(list(wait(pending, return_when=FIRST_COMPLETED).done))
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def _connect(address: str):
    try:
        from distributed import Client
    except ImportError:
        raise StudyRunError("execution.scheduler: dask.distributed is not installed "
                            "(pip install 'fpsolve[dask]')") from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise StudyRunError(f"execution.scheduler: cannot connect to {address}: {exc}") from None


def _run_dask(client, payloads: list[dict], handle) -> None:
    # workers must be able to import fpsolve; files come back as bytes, so they
    # need no access to the output directory
    from distributed import as_completed as dask_completed
    futures = [client.submit(run_task, p, pure=False) for p in payloads]
    try:
        for fut in dask_completed(futures, loop=client.loop):
            try:
                results = fut.result()
            except Exception as exc:
                raise StudyRunError(f"Dask task failed: {type(exc).__name__}: {exc}") from None
            for res in results:
                handle(res)
    except BaseException:
        client.cancel(futures)
        raise
