"""Figures and VTK files of a study, drawn in one background process.

On a single-worker run the main process only solves: for each finished case it
hands its coefficients, its flux field (J and the cycles) and the arrays of its
``.vtu`` to a renderer process, and goes on with the next case while the renderer
rebuilds the Solution from its coefficients (one basis per mesh, built once),
draws the case figure, encodes the ``.vtu`` and returns both as bytes.  The
renderer keeps the plot data (:class:`fpsolve.plot.PlotData`) of the panel's
cases, so the panel re-uses the density values, marginals and flux fields of the
case figures.  The main process stays the only writer of the output directory.

matplotlib holds the GIL, so a thread would not overlap it with the solves; a
process does, on a second core.  The files are the same bytes as those drawn
in-process (tests/test_study_render.py).
"""
from __future__ import annotations

import logging
import multiprocessing
import threading
import time
import warnings
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from types import SimpleNamespace

from .tasks import _capture, single_threaded_children

__all__ = ["Renderer", "case_job", "render_here", "prebuild", "MIN_DOFS"]

logger = logging.getLogger(__name__)

#: Solutions with fewer unknowns are drawn in the main process: starting the renderer
#: (a process importing matplotlib, ~0.5 s forked, 1–2 s spawned) costs more than
#: their figures.
MIN_DOFS = 20_000
#: What the renderer process keeps between jobs: bases per (mesh, order) and the
#: plot data of the cases the panel will show.
_STATE: dict = {"bases": {}, "data": {}}


class Renderer:
    """One background process that draws case figures, ``.vtu`` files and the panel.

    Jobs run in submission order in one process (its state carries the plot data
    from the case figures to the panel).  A dispatcher thread hands them over one at a
    time, so the jobs not yet started stay here and :meth:`reclaim` can take them back.
    Every method returns a Future whose result is a dict with ``files`` (relative path
    -> bytes), ``warnings`` and ``cpu_s``.
    """

    def __init__(self, min_dofs: int = MIN_DOFS):
        self.min_dofs = min_dofs
        self._ex = None                   # the process, started by the first job
        self._queue: deque = deque()      # (Future, function, args, case job or None)
        self._cv = threading.Condition()
        self._thread = None
        self._closing = False
        self.kept: set[str] = set()
        #: Future of the nested-dissection order the process computed for the flux
        #: operators of the mesh of :meth:`start` (``fpsolve.fe.ordering.pattern_orders``)
        self.orders = None
        self.cpu_s = 0.0
        self.wait_s = 0.0

    @property
    def started(self) -> bool:
        return self._thread is not None

    def accepts(self, dofs: int) -> bool:
        """Whether a solution of ``dofs`` unknowns is worth drawing in the background."""
        return dofs >= self.min_dofs

    def start(self, config: dict | None = None) -> None:
        """Start the process now: it computes the nested-dissection order of the mesh of
        ``config`` (a case configuration) for the flux operators (a METIS call, which
        would hold this process's GIL) and imports matplotlib, while this process
        assembles and solves.  (The first solve computes its own order meanwhile: the
        flux operators' factorisations are the longer chain that waits for an order.)"""
        started, pool = self._ex is not None, self._pool()
        if self.orders is None and config is not None:
            # a job of its own: the flux prefetch waits for the order, not for matplotlib
            self.orders = pool.submit(_orders, config)
        if not started:
            pool.submit(_warm_up)

    def case(self, job: dict) -> Future:
        """Render one case: ``job`` from :func:`case_job`."""
        if job["keep"]:
            self.kept.add(job["name"])
        return self._submit(_render_case, (job,), job)

    def panel(self, names: list, titles: list, dpi: int = 150, jobs=()) -> Future:
        """The panel of cases ``names`` (rows of case names), ``titles`` alike: kept
        cases, or cases whose ``jobs`` (taken back by :meth:`reclaim`) come along."""
        light = [dict(j, vtk=None, figure=False, keep=True) for j in jobs]
        return self._submit(_render_panel, (names, titles, dpi, light), None)

    def reclaim(self) -> dict:
        """Take back the case jobs that have not started: {name: job}.

        Their futures are cancelled; the caller draws them with :func:`render_here`
        (when the main process has nothing else to do, the two processes then share the
        last figures and the panel instead of the renderer doing all of them).
        """
        with self._cv:
            back = {item[3]["name"]: item[3] for item in self._queue
                    if item[3] is not None and item[0].cancel()}
            self._queue = deque(item for item in self._queue if not item[0].cancelled())
        self.kept -= set(back)
        return back

    def _submit(self, fn, args, job) -> Future:
        fut = Future()
        fut.add_done_callback(self._count)
        with self._cv:
            self._queue.append((fut, fn, args, job))
            if self._thread is None:
                self._thread = threading.Thread(target=self._dispatch, daemon=True,
                                                name="fpsolve-renderer")
                self._thread.start()
            self._cv.notify()
        return fut

    def _dispatch(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closing:
                    self._cv.wait()
                if not self._queue:
                    return
                fut, fn, args, _ = self._queue.popleft()
                if not fut.set_running_or_notify_cancel():
                    continue
            try:
                fut.set_result(self._pool().submit(fn, *args).result())
            except BaseException as exc:      # handed to whoever waits for the job
                fut.set_exception(exc)

    def _pool(self) -> ProcessPoolExecutor:
        if self._ex is None:
            with single_threaded_children():
                self._ex = ProcessPoolExecutor(max_workers=1, mp_context=_context())
        return self._ex

    def _count(self, fut: Future) -> None:
        if not fut.cancelled() and fut.exception() is None:
            self.cpu_s += fut.result()["cpu_s"]

    def result(self, fut: Future) -> dict:
        """The result of a job, waiting for it (the time waited adds to ``wait_s``)."""
        from .runner import StudyRunError
        t0 = time.perf_counter()
        try:
            return fut.result()
        except Exception as exc:     # the renderer died (out of memory, killed, ...)
            raise StudyRunError(f"renderer process failed: {type(exc).__name__}: "
                                f"{exc}") from None
        finally:
            self.wait_s += time.perf_counter() - t0

    def close(self) -> None:
        """Cancel the jobs not started, wait for the running one, end the process."""
        with self._cv:
            self._closing = True
            for item in self._queue:
                item[0].cancel()
            self._queue.clear()
            self._cv.notify()
        if self._thread is not None:
            self._thread.join()
        if self._ex is not None:
            self._ex.shutdown(wait=True, cancel_futures=True)


def _context():
    """How the renderer process starts: forked while this process has no other thread.

    A forked renderer starts with numpy, scipy, scikit-fem and fpsolve imported (a
    spawned interpreter spends ~1 s of CPU importing them again, while the main process
    assembles, and delivers the mesh order for the flux prefetch that much later).  With
    a thread alive (BLAS pools aside, which re-initialise after a fork) the child could
    inherit a lock held in the middle of that thread's work, or half-built caches of the
    flux prefetch: then it is spawned.  The process forks when the executor starts its
    first job (``ProcessPoolExecutor`` launches fork workers before its manager thread).
    """
    from .forked import available
    if available() and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def case_job(name: str, title: str, config: dict, strength, sol, fl, vtk, figure: bool,
             keep: bool) -> dict:
    """What the renderer needs of one solved case (plain arrays: cheap to pickle).

    ``fl`` is the case's Flux (J and cycles for the figure); ``vtk`` the content of its
    ``.vtu`` (:func:`fpsolve.io.vtk_content`) or None.
    """
    from .build import mesh_arrays
    d = sol.diagnostics
    return {"name": name, "title": title, "config": config, "strength": strength,
            "P": sol.P, "escape_rate": sol.escape_rate,
            # an adaptive solve's own mesh (the config's [mesh] is only where it started)
            "mesh": mesh_arrays(sol.mesh) if "adapt" in d else None,
            "diagnostics": {k: v for k, v in d.items()},
            "J": None if fl is None else fl.J,
            "cycles": None if fl is None else fl.cycles,
            "vtk": vtk, "figure": figure, "keep": keep}


# -- in the renderer process ---------------------------------------------------------------

def _warm_up() -> None:
    # imported while the main process validates, assembles and solves the first case
    # (and in the main process while it solves the last group, whose last figure it draws)
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401
    import matplotlib.tri  # noqa: F401
    import meshio  # noqa: F401
    import mpl_toolkits.axes_grid1  # noqa: F401

    from .. import io, plot  # noqa: F401
    from ..fe import solution  # noqa: F401


def prebuild(config) -> None:
    """Build the mesh, basis and sparsity pattern of the case ``config`` in this process
    (cached: the assembly finds them) before a forked renderer starts, which then
    inherits them instead of building them again before its first METIS call.  A
    configuration that fails here fails in its task, with its own error."""
    from ..fe.assembly import _pattern
    try:
        _pattern(_basis(config)[1])
    except Exception as exc:
        logger.debug("renderer prebuild skipped: %r", exc)


def _orders(config) -> dict:
    """The first job: the nested-dissection order of the FE sparsity pattern of the case
    ``config`` (the mass matrix's: the flux operators'), for the main process."""
    import numpy as np

    from ..fe.assembly import _pattern
    from ..fe.ordering import pattern_orders
    pattern = _pattern(_basis(config)[1])      # M, A0 and A1 share it (fe/assembly.py)
    return pattern_orders(pattern.csr(np.ones(pattern.nnz)))


def _basis(cfg: dict, arrays=None):
    """The mesh and basis of a case: its adapted mesh (``arrays``, see
    :func:`fpsolve.study.build.mesh_arrays`) or its configuration's (built once per process)."""
    from ..fe.assembly import make_basis
    from .build import case_mesh

    mesh = case_mesh(cfg["mesh"], arrays)
    order = cfg["solver"]["order"]
    if arrays is not None:          # one case's own mesh: nothing to share
        return mesh, make_basis(mesh, order)
    key = (id(mesh), order)
    if key not in _STATE["bases"]:
        _STATE["bases"][key] = make_basis(mesh, order)
    return mesh, _STATE["bases"][key]


def _solution(job: dict):
    """The case's Solution rebuilt from its coefficients (no assembly, no solve)."""
    from ..fe.solution import Solution
    from .build import build_landscape, build_noise

    cfg = job["config"]
    L = build_landscape(cfg["landscape"])
    D = build_noise(cfg["noise"], L)
    if job["strength"] is not None and float(job["strength"]) != D.strength:
        D = D.with_strength(job["strength"])
    mesh, basis = _basis(cfg, job.get("mesh"))
    stab = cfg["solver"]["stabilisation"]
    return Solution(job["P"], basis, mesh, L, D, cfg["solver"]["boundary"],
                    cfg["solver"]["order"], job["escape_rate"], job["diagnostics"], None,
                    None if stab == "none" else stab)


def render_here(job: dict) -> dict:
    """Run a case job in this process (same files as the renderer makes)."""
    return _render_case(job, keep=False)


def _render_case(job: dict, keep: bool = True) -> dict:
    from .. import io, plot

    c0 = time.process_time()
    files = {}
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        if job["vtk"] is not None:
            files[f"vtk/{job['name']}.vtu"] = io.vtu_bytes(job["vtk"])
        if job["figure"] or job["keep"]:
            flux = SimpleNamespace(J=job["J"], cycles=job["cycles"])
            data = plot.PlotData(_solution(job), flux)
            if job["figure"]:
                fig = plot.solution_fig_from(data, job["title"])
                files[f"figures/{job['name']}.png"] = plot.png_bytes(fig)
            if job["keep"] and keep:
                if job["figure"]:
                    # the panel's window is known once every case is solved: its
                    # contours now, on the whole mesh, while later cases are solved
                    data.prepare_contours()
                _STATE["data"][job["name"]] = data
    return {"files": files, "warnings": _capture(rec), "cpu_s": time.process_time() - c0}


def _render_panel(names: list, titles: list, dpi: int, jobs=()) -> dict:
    from .. import plot

    c0 = time.process_time()
    for job in jobs:
        _render_case(job)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        data = [[_STATE["data"][n] for n in row] for row in names]
        png = plot.png_bytes(plot.panel_fig_from(data, titles), dpi)
    return {"files": {"panel.png": png}, "warnings": _capture(rec),
            "cpu_s": time.process_time() - c0}
