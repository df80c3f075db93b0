"""The main process's writer of finished cases (a study run's only writer).

:class:`CaseWriter` takes each case result as it comes (from this process, a worker or
Dask), waits in order for the files the renderer process (:mod:`fpsolve.study.render`)
still draws, and commits each case: its files, its coefficients, then its record
``cases/<name>.json``, whose presence makes the case reusable by a later run.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import Future

from .. import __version__
from .outputs import atomic_write, write_json

__all__ = ["CaseWriter"]

logger = logging.getLogger("fpsolve.study.runner")


class CaseWriter:
    """Writes finished cases: files, coefficients, then the record (which commits it).

    A case whose figure and ``.vtu`` are still with the renderer waits (in order) until
    they arrive; meanwhile this process solves the next case.
    """

    def __init__(self, study, out, records, reporter, live, renderer):
        self.out, self.records, self.reporter = out, records, reporter
        self.live, self.renderer = live, renderer
        self.total = len(study.cases)
        self.done = 0
        self.failed: dict[str, str] = {}
        self.computed: list[str] = []
        self.waiting: list[dict] = []

    def report(self, outcome: dict) -> None:
        self.done += 1
        self.reporter.case_finished(dict(outcome, done=self.done, total=self.total))

    def handle(self, res: dict) -> None:
        if "error" in res:
            self.failed[res["name"]] = res["error"]
            self.report({"name": res["name"], "reused": False, "error": res["error"]})
        elif "pending" in res or self.waiting:
            self.waiting.append(res)        # cases are committed in the order they come
        else:
            self.commit(res)
        self.poll()

    def poll(self, block: bool = False) -> None:
        """Commit the waiting cases whose files are ready (all of them if ``block``)."""
        while self.waiting and (block or "pending" not in self.waiting[0]
                                or self.waiting[0]["pending"].done()):
            res = self.waiting.pop(0)
            if "pending" in res:
                got = self.renderer.result(res.pop("pending"))
                res["files"].update(got["files"])
                s = res["summary"]
                s["warnings"] = list(dict.fromkeys(s["warnings"] + got["warnings"]))
                s["timings_s"]["render_cpu"] = got["cpu_s"]
            self.commit(res)

    def take_back(self, jobs: dict) -> None:
        """The reclaimed case ``jobs`` wait for :meth:`render_here` (their cancelled
        futures are replaced by ones that are not done yet)."""
        for res in self.waiting:
            if res["name"] in jobs:
                res["pending"] = Future()

    def render_here(self, jobs: dict) -> None:
        """Make the files of the reclaimed case ``jobs`` in this process."""
        from .render import render_here
        for res in self.waiting:
            job = jobs.get(res["name"])
            if job is not None:
                done = Future()
                done.set_result(render_here(job))
                res["pending"] = done

    def commit(self, res: dict) -> None:
        out, name = self.out, res["name"]
        for rel, data in res["files"].items():
            os.makedirs(os.path.dirname(os.path.join(out, rel)), exist_ok=True)
            atomic_write(os.path.join(out, rel), data)
        atomic_write(os.path.join(out, "cases", f"{name}.npz"), res["npz"])
        rec = {"name": name, "hash": res["hash"], "fpsolve": __version__,
               "summary": res["summary"], "files": sorted(res["files"])}
        write_json(os.path.join(out, "cases", f"{name}.json"), rec)   # last: commits the case
        logger.info("case %s written (%.1f s)", name, res["summary"]["runtime_s"])
        self.records[name] = rec
        self.computed.append(name)
        if "live" in res:
            self.live[name] = res["live"]
        for w in res["summary"]["warnings"]:
            self.reporter.warning(name, w)
        self.report({"name": name, "reused": False, "summary": res["summary"]})
