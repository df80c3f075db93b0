"""Background rendering (fpsolve.study.render): figures, panel and .vtu drawn by the
renderer process are the files drawn in process, and summary.json is the same.  (The
error estimates forked beside the renderer: tests/test_forked.py; a study whose estimate
children fail: below.)"""
import functools
import json
import os
import warnings

import pytest

from fpsolve.study import StudyRunError, forked, load_study, run_study
from study_helpers import (FAST, HAVE_FLUX, HAVE_IO, HAVE_PLOT, PANEL_ROWS, assert_same_files,
                           files, strip_times)


@pytest.mark.skipif(not (HAVE_PLOT and HAVE_IO and HAVE_FLUX), reason="plot/io/flux missing")
def test_background_rendering_writes_the_same_files_and_summary(tmp_path, four_study):
    """Figures, panel and .vtu drawn by the renderer process are the bytes drawn in
    process; summary.json is the same apart from timings."""
    path = four_study(h=0.3, output=PANEL_ROWS)
    runs = {}
    for background in (False, True):
        out = str(tmp_path / f"out-{background}")
        res = run_study(load_study(path), out, background=background)
        prov = json.loads(open(os.path.join(out, "provenance.json")).read())
        assert ("render" in prov["execution"]) is background
        runs[background] = (out, res)
    (a, ra), (b, rb) = runs[False], runs[True]
    assert strip_times(ra.summary) == strip_times(rb.summary)
    assert "panel.png" in files(a)
    assert_same_files(a, b)


def test_renderer_failure_is_a_run_error(tmp_path, monkeypatch, four_study):
    """A renderer that dies fails the run with a one-line error; the cases it did not
    deliver are not committed (a rerun recomputes them)."""
    if not (HAVE_PLOT and HAVE_IO):
        pytest.skip("plot/io missing")
    import fpsolve.study.render as render

    def dead(self, fut):
        raise StudyRunError("renderer process failed: BrokenProcessPool: terminated")

    monkeypatch.setattr(render.Renderer, "result", dead)
    path = four_study(output={**FAST, "figures": True})
    out = str(tmp_path / "out")
    with pytest.raises(StudyRunError, match="renderer process failed"):
        run_study(load_study(path), out, background=True)
    assert not os.path.exists(os.path.join(out, "cases", "a.json"))
    monkeypatch.undo()
    assert run_study(load_study(path), out).computed == ["a", "b", "c", "d"]


@pytest.mark.skipif(not (HAVE_PLOT and HAVE_IO and HAVE_FLUX), reason="plot/io/flux missing")
def test_reclaimed_jobs_and_early_panel_give_the_same_files(tmp_path, monkeypatch,
                                                           four_study):
    """Case jobs the renderer has not started when the last case is solved come back to
    the main process; the panel goes to the renderer with their data (and the last
    case's, before its error estimate).  Forced here for every job (the renderer waits
    until the reclaim): the files are those of a run without the renderer."""
    import threading

    import fpsolve.study.render as render

    path = four_study(h=0.3, output=PANEL_ROWS)
    plain = str(tmp_path / "plain")
    run_study(load_study(path), plain, background=False)

    reclaimed, taken = threading.Event(), {}
    dispatch, reclaim = render.Renderer._dispatch, render.Renderer.reclaim

    def late_dispatch(self):
        reclaimed.wait(timeout=600)
        dispatch(self)

    def recording_reclaim(self):
        back = reclaim(self)
        taken.update(back)
        reclaimed.set()
        return back

    monkeypatch.setattr(render.Renderer, "_dispatch", late_dispatch)
    monkeypatch.setattr(render.Renderer, "reclaim", recording_reclaim)
    out = str(tmp_path / "back")
    res = run_study(load_study(path), out, background=True)
    # the last case never goes to the renderer: it is drawn here while the renderer
    # draws the panel
    assert sorted(taken) == ["a", "b", "c"] and res.computed == ["a", "b", "c", "d"]
    assert_same_files(plain, out)




@pytest.mark.skipif(not (HAVE_PLOT and HAVE_IO and forked.available()),
                    reason="plot/io missing or no fork")
def test_a_failing_estimate_child_is_logged_and_recomputed_with_the_same_summary(
        tmp_path, monkeypatch, caplog, four_study):
    """Every case's error estimate goes to a forked child (background renderer); each
    child fails after issuing a warning.  Each failure is logged with its reason, the
    estimate is computed in the main process, and summary.json is that of a run
    without children: the failed children's warnings are not in it."""
    from fpsolve.fe.solver import FPSolveWarning
    from fpsolve.study import build, tasks

    path = four_study(h=0.3, output=PANEL_ROWS)
    plain = run_study(load_study(path), str(tmp_path / "plain"), background=False)
    parent, started = os.getpid(), []

    def failing_in_the_child(fn):
        @functools.wraps(fn)
        def wrapper():
            if os.getpid() != parent:
                warnings.warn("a warning of the failed child", FPSolveWarning)
                raise RuntimeError("the estimate broke in the child")
            return fn()
        return wrapper

    class ChildFails(forked.Forked):
        def __init__(self, fn, fork=True, need=None):
            super().__init__(failing_in_the_child(fn), fork, need)
            started.append(self.pid)

    monkeypatch.setattr(tasks, "Forked", ChildFails)
    monkeypatch.setattr(build, "_MESHES", {})     # a mesh no estimate has run on yet
    with caplog.at_level("WARNING", logger="fpsolve.study.forked"):
        res = run_study(load_study(path), str(tmp_path / "failed"), background=True)
    assert len(started) == 4 and None not in started          # four children, forked
    failures = [r.getMessage() for r in caplog.records if r.name == "fpsolve.study.forked"]
    assert len(failures) == 4
    assert all("RuntimeError: the estimate broke in the child" in m
               and "computed in this process" in m for m in failures)
    assert json.dumps(strip_times(res.summary)) == json.dumps(strip_times(plain.summary))
    assert not any("failed child" in w for c in res.summary["cases"] for w in c["warnings"])
    assert all(c["error_estimate"]["x2"] is not None for c in res.summary["cases"])
