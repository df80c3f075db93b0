"""Analysis drivers of studies with an ``[analysis]`` section.

Each kind has one small module with ``run(params, ctx) -> dict``: it calls library
functions (``fpsolve.montecarlo``, ``compare``, ``transition``, ``theory``, ``phase``,
``variance_flatness``), makes the figures, returns the JSON-able results and the
Markdown table through ``ctx``.  Nothing here is numerics: the numbers come from the
library, and the library never imports this package.

Kinds: ``figS5`` (:mod:`.figs5`), ``transition`` (:mod:`.transition`),
``phase_diagram`` (:mod:`.phase_diagram`), ``variance_flatness``
(:mod:`.variance_flatness`), ``ldc`` (:mod:`.ldc`).
"""
from __future__ import annotations

import contextlib
import importlib
import os
import time
import warnings

from ..outputs import atomic_path, atomic_write

__all__ = ["Context", "driver", "MODULES"]

#: analysis kind -> module (relative to this package)
MODULES = {"figS5": "figs5", "transition": "transition", "phase_diagram": "phase_diagram",
           "variance_flatness": "variance_flatness", "ldc": "ldc"}


def driver(kind: str):
    """The module that runs analysis ``kind``."""
    return importlib.import_module(f"{__name__}.{MODULES[kind]}")


class Context:
    """What an analysis driver may touch: its output directory (atomic writes only),
    the number of workers or a Dask client, a progress sink and a clock.

    Attributes
    ----------
    out : str
        Output directory (exists).
    workers : int
        Worker threads for the Monte Carlo kernels.
    client : distributed.Client or None
        With ``[execution] scheduler = "tcp://..."``: the Monte Carlo blocks (walker
        blocks, grid-point blocks, independent experiments) run on this cluster; the
        results are identical to a local run.
    files : list of str
        Files written so far, relative to ``out`` (recorded in summary.json).
    timings : dict
        Wall time per step (``with ctx.step("name"): ...``).
    warnings : list of str
        Distinct warning messages of the library calls (``ctx.step`` records them).
    """

    def __init__(self, out: str, workers: int, progress=None, client=None):
        self.out = out
        self.workers = int(workers)
        self.client = client
        self.files: list[str] = []
        self.timings: dict[str, float] = {}
        self.warnings: list[str] = []
        self._progress = progress or (lambda message: None)

    def progress(self, message: str) -> None:
        """One line of progress (printed by the CLI unless --quiet)."""
        self._progress(message)

    @contextlib.contextmanager
    def step(self, name: str):
        """Time a step, record its warnings, report it when done."""
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            yield
        for w in rec:
            msg = " ".join(f"{w.category.__name__}: {w.message}".split())
            if msg not in self.warnings:
                self.warnings.append(msg)
        dt = time.perf_counter() - t0
        self.timings[name] = self.timings.get(name, 0.0) + dt
        self.progress(f"{name}: {dt:.1f} s")

    def path(self, rel: str) -> str:
        p = os.path.join(self.out, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def _record(self, rel: str) -> None:
        if rel not in self.files:
            self.files.append(rel)

    def save_figure(self, rel: str, fig, dpi: int = 110) -> None:
        """Save a matplotlib Figure to ``out/rel`` atomically (PNG)."""
        with atomic_path(self.path(rel)) as tmp:
            fig.savefig(tmp, dpi=dpi)
        self._record(rel)

    def write_text(self, rel: str, text: str) -> None:
        atomic_write(self.path(rel), text)
        self._record(rel)

    def write_bytes(self, rel: str, data: bytes) -> None:
        atomic_write(self.path(rel), data)
        self._record(rel)


#: Keys whose values are wall times: kept out of the results so that the same seed
#: gives identical results (they go to summary.json's timings_s instead).
TIME_KEYS = ("seconds", "elapsed", "elapsed_s")


def strip_times(obj, prefix: str = ""):
    """``(obj without TIME_KEYS entries, {dotted path: time})`` for nested dicts/lists."""
    times = {}
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            if k in TIME_KEYS:
                if isinstance(v, dict):
                    times.update({f"{path}.{kk}": vv for kk, vv in v.items()})
                else:
                    times[path] = v
                continue
            out[k], t = strip_times(v, path)
            times.update(t)
        return out, times
    if isinstance(obj, list):
        out = []
        for i, v in enumerate(obj):
            c, t = strip_times(v, f"{prefix}[{i}]")
            out.append(c)
            times.update(t)
        return out, times
    return obj, times


def new_figure(*args, **kwargs):
    """A matplotlib Figure without pyplot's global state (Agg backend)."""
    from matplotlib.figure import Figure
    return Figure(*args, **kwargs)


def md_table(head: list, rows: list) -> list[str]:
    """Lines of a Markdown table."""
    return ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)] + \
        ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
