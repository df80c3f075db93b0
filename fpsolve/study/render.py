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
in-process (tests/test_study.py).
"""
from __future__ import annotations

import multiprocessing
import time
import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from types import SimpleNamespace

from .tasks import _capture, single_threaded_children

__all__ = ["Renderer", "case_job", "MIN_DOFS"]

#: Solutions with fewer unknowns are drawn in the main process: starting the renderer
#: (a fresh interpreter importing matplotlib, ~1–2 s) costs more than their figures.
MIN_DOFS = 20_000
#: What the renderer process keeps between jobs: bases per (mesh, order) and the
#: plot data of the cases the panel will show.
_STATE: dict = {"bases": {}, "data": {}}


class Renderer:
    """A one-process pool that draws case figures, ``.vtu`` files and the panel.

    Jobs run in submission order in one process (its state carries the plot data
    from the case figures to the panel).  Every method returns a Future whose result
    is a dict with ``files`` (relative path -> bytes), ``warnings`` and ``cpu_s``.
    """

    def __init__(self, min_dofs: int = MIN_DOFS):
        self.min_dofs = min_dofs
        self._ex = None                   # started by the first job
        self.kept: set[str] = set()
        self.cpu_s = 0.0
        self.wait_s = 0.0

    @property
    def started(self) -> bool:
        return self._ex is not None

    def accepts(self, dofs: int) -> bool:
        """Whether a solution of ``dofs`` unknowns is worth drawing in the background."""
        return dofs >= self.min_dofs

    def case(self, job: dict) -> Future:
        """Render one case: ``job`` from :func:`case_job`."""
        if job["keep"]:
            self.kept.add(job["name"])
        return self._track(self._pool().submit(_render_case, job))

    def panel(self, names: list, titles: list, dpi: int = 150) -> Future:
        """The panel of kept cases ``names`` (rows of case names), ``titles`` alike."""
        return self._track(self._pool().submit(_render_panel, names, titles, dpi))

    def _pool(self) -> ProcessPoolExecutor:
        if self._ex is None:
            # spawn, not fork: the parent holds thread pools (BLAS, assembly, the flux
            # prefetch) that a forked child would inherit in an undefined state
            with single_threaded_children():
                self._ex = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_warm_up)
        return self._ex

    def _track(self, fut: Future) -> Future:
        def add(f):
            if not f.cancelled() and f.exception() is None:
                self.cpu_s += f.result()["cpu_s"]
        fut.add_done_callback(add)
        return fut

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
        if self._ex is not None:
            self._ex.shutdown(wait=True, cancel_futures=True)


def case_job(name: str, title: str, config: dict, strength, sol, fl, vtk, figure: bool,
             keep: bool) -> dict:
    """What the renderer needs of one solved case (plain arrays: cheap to pickle).

    ``fl`` is the case's Flux (J and cycles for the figure); ``vtk`` the content of its
    ``.vtu`` (:func:`fpsolve.io.vtk_content`) or None.
    """
    d = sol.diagnostics
    return {"name": name, "title": title, "config": config, "strength": strength,
            "P": sol.P, "escape_rate": sol.escape_rate,
            "diagnostics": {k: v for k, v in d.items()},
            "J": None if fl is None else fl.J,
            "cycles": None if fl is None else fl.cycles,
            "vtk": vtk, "figure": figure, "keep": keep}


# -- in the renderer process ---------------------------------------------------------------

def _warm_up() -> None:
    # imported while the main process validates, assembles and solves the first case
    import matplotlib.figure  # noqa: F401
    import matplotlib.tri  # noqa: F401
    import meshio  # noqa: F401

    from .. import io, plot  # noqa: F401
    from ..fe import solution  # noqa: F401


def _solution(job: dict):
    """The case's Solution rebuilt from its coefficients (no assembly, no solve)."""
    from ..fe.assembly import make_basis
    from ..fe.solution import Solution
    from .build import build_landscape, build_mesh, build_noise

    cfg = job["config"]
    L = build_landscape(cfg["landscape"])
    D = build_noise(cfg["noise"], L)
    if job["strength"] is not None and float(job["strength"]) != D.strength:
        D = D.with_strength(job["strength"])
    mesh = build_mesh(cfg["mesh"])
    order = cfg["solver"]["order"]
    key = (id(mesh), order)
    if key not in _STATE["bases"]:
        _STATE["bases"][key] = make_basis(mesh, order)
    stab = cfg["solver"]["stabilisation"]
    return Solution(job["P"], _STATE["bases"][key], mesh, L, D, cfg["solver"]["boundary"],
                    order, job["escape_rate"], job["diagnostics"], None,
                    None if stab == "none" else stab)


def _render_case(job: dict) -> dict:
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
            if job["keep"]:
                _STATE["data"][job["name"]] = data
    return {"files": files, "warnings": _capture(rec), "cpu_s": time.process_time() - c0}


def _render_panel(names: list, titles: list, dpi: int) -> dict:
    from .. import plot

    c0 = time.process_time()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        data = [[_STATE["data"][n] for n in row] for row in names]
        png = plot.png_bytes(plot.panel_fig_from(data, titles), dpi)
    return {"files": {"panel.png": png}, "warnings": _capture(rec),
            "cpu_s": time.process_time() - c0}
